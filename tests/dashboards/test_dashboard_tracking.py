"""A run logged by your own loop (`gradlab.init`) on the dashboard in a real headless Chromium:
listed on the runs page, and its run page draws every figure a `gradlab.train` run of the same
cell draws, none of them empty.

Reuses the browser fixtures of test_dashboard_browser.py over its own small REAL store: one LSTM
run trained by `gradlab.train` and one LSTM loop on sequential digits logged with the run API.
"""

from __future__ import annotations

import types

import pytest
import test_dashboard_browser as browser_tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dash.development.base_component"),
]

browser, context, page, server = (
    browser_tests.browser,
    browser_tests.context,
    browser_tests.page,
    browser_tests.server,
)
graph_count, graphs_drawn = browser_tests.graph_count, browser_tests.graphs_drawn

TRAINED = dict(task="seq_digits", seq_len=64, cell="lstm", hidden_size=8, steps=6,
               record_every=3, batch_size=4, probe_batch=4, hidden_samples=2, seed=0)  # fmt: skip
LOGGED = "own-loop"
LOOP_STEPS = 200
EVERY_CARD_DRAWN = """() => {
    const cards = document.querySelectorAll('.figure-card');
    const graphs = Array.from(document.querySelectorAll('.figure-card .js-plotly-plot'));
    const summary = (g) => g.layout && g.layout.meta && g.layout.meta.gradlab
        && g.layout.meta.gradlab.summary;
    return cards.length > 0 && graphs.length === cards.length
        && graphs.every(g => g.data && (g.data.length > 0 || summary(g)));
}"""
FIGURE_TITLES = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .map(g => [(g.layout.meta && g.layout.meta.gradlab && g.layout.meta.gradlab.title) || '',
               !!(g.layout.meta && g.layout.meta.gradlab && g.layout.meta.gradlab.empty
                  && !g.layout.meta.gradlab.summary)])"""  # a summary line is not empty


def _own_loop(store) -> None:
    import torch

    import gradlab
    from gradlab.tasks import make

    task, gen = make("seq_digits"), torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model, head = gradlab.LSTM(1, 8), torch.nn.Linear(8, 10)
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-2)
    x_probe, y_probe = task.sample(4, gen)
    with gradlab.init(store, name=LOGGED, config={"lr": 1e-2, "hidden": 8}) as run:
        for step in range(LOOP_STEPS):  # the 200-step loop, recorded 5 times
            if step % 50 == 0 or step == LOOP_STEPS - 1:
                run.record(model, x_probe, lambda out: task.loss(head(out), y_probe), step=step)
            x, y = task.sample(4, gen)
            loss = task.loss(head(model(x)[0]), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log({"loss": loss}, step=step)


@pytest.fixture(scope="module")
def own_store(tmp_path_factory):
    from gradlab.store import open_store
    from gradlab.train import train

    root = tmp_path_factory.mktemp("dash-own-loop") / "store"
    store = open_store(root, fsync=False)
    trained = train(TRAINED, store)
    _own_loop(store)
    return str(root), trained


@pytest.fixture(scope="module")
def dash_app(own_store):
    """The app over this module's store (the browser fixtures serve `dash_app.app`)."""
    from dashboards.app import create_app

    return types.SimpleNamespace(app=create_app(own_store[0]))


def test_the_logged_run_is_listed(page, own_store):
    page.goto(page.base + "/")
    page.wait_for_selector("#runs-table")
    assert page.locator("#runs-table tr:has(input[type=checkbox])").count() == 2
    assert LOGGED in page.locator("#runs-table").inner_text()


def test_the_logged_run_page_draws_what_a_trained_run_draws(page, own_store):
    page.goto(f"{page.base}/run/{own_store[1]}")
    page.wait_for_function(EVERY_CARD_DRAWN)  # figures arrive one by one: wait for the last
    trained = page.evaluate(FIGURE_TITLES)
    page.goto(f"{page.base}/run/{LOGGED}")
    page.wait_for_function(EVERY_CARD_DRAWN)
    logged = page.evaluate(FIGURE_TITLES)
    assert len(logged) == len(trained) >= 6
    assert not any(empty for _, empty in logged), logged
    from gradlab.store import open_store

    steps = open_store(own_store[0]).metrics(LOGGED, probes="train")["step"]
    assert steps.max() == LOOP_STEPS - 1 and steps.nunique() == LOOP_STEPS
