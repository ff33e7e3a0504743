"""A cell added through the registry (IndRNN) and an activation added by a plugin (softsign) on
the dashboard in a real headless Chromium: runs table, run page, compare and sweep pages.

Reuses the browser fixtures of test_dashboard_browser.py over its own small REAL store: one
sweep ("reg") of IndRNN (relu, softsign) and a vanilla RNN, trained by `gradlab.train`.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import test_dashboard_browser as browser_tests

from gradlab.sweep.plugins import import_plugin

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dash.development.base_component"),
]

# The browser fixtures, shared by name (module scope: one Chromium for this module).
browser, context, page, server = (
    browser_tests.browser,
    browser_tests.context,
    browser_tests.page,
    browser_tests.server,
)
graph_count, graphs_drawn = browser_tests.graph_count, browser_tests.graphs_drawn

SOFTSIGN = Path(__file__).resolve().parents[2] / "experiments" / "softsign_activation.py"
BASE = dict(task="adding", seq_len=8, hidden_size=4, steps=4, record_every=2, batch_size=4,
            probe_batch=4, hidden_samples=2, jacobian_samples=1, seed=0, sweep="reg")  # fmt: skip
RUNS = {
    "indrnn-relu": dict(cell="indrnn", gain=0.9),
    "indrnn-softsign": dict(cell="indrnn", activation="softsign", gain=0.9),
    "rnn-relu": dict(cell="rnn", activation="relu", gain=0.9),
    "indrnn-tanh": dict(cell="indrnn", activation="tanh", gain=1.5),
}


@pytest.fixture(scope="module")
def reg_store(tmp_path_factory):
    from gradlab.store import open_store
    from gradlab.train import train

    import_plugin(str(SOFTSIGN))
    root = tmp_path_factory.mktemp("dash-registry") / "store"
    store = open_store(root, fsync=False)
    ids = {name: train({**BASE, **run}, store) for name, run in RUNS.items()}
    return str(root), ids


@pytest.fixture(scope="module")
def dash_app(reg_store):
    """The app over this module's store (the browser fixtures serve `dash_app.app`)."""
    from dashboards.app import create_app

    return types.SimpleNamespace(app=create_app(reg_store[0]))


def test_runs_table_shows_the_new_cell_and_activation(page, reg_store):
    page.goto(page.base + "/")
    page.wait_for_selector("#runs-table")
    assert page.locator("#runs-table tr:has(input[type=checkbox])").count() == len(RUNS)
    table = page.locator("#runs-table").inner_text()
    assert "indrnn" in table and "softsign" in table
    color = page.locator("#runs-table td[data-dash-column=cell]", has_text="indrnn").first
    assert color.evaluate("e => getComputedStyle(e).color") == "rgb(204, 121, 167)"  # #CC79A7


@pytest.mark.parametrize("run", ["indrnn-relu", "indrnn-softsign"])
def test_indrnn_run_page_draws_its_figures(page, reg_store, run):
    page.goto(f"{page.base}/run/{reg_store[1][run]}")
    graphs_drawn(page, 6)
    n = graph_count(page)
    assert n >= 6
    titles = page.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(g => (g.layout.meta && g.layout.meta.gradlab && g.layout.meta.gradlab.title) || '')"
    )
    assert not any("Gate means" in t for t in titles)  # an IndRNN has no gates
    assert any("indrnn" in t for t in titles), titles


def test_compare_and_sweep_pages_with_indrnn(page, reg_store):
    ids = ",".join(reg_store[1][r] for r in ("indrnn-relu", "rnn-relu"))
    page.goto(f"{page.base}/compare?runs={ids}&color_by=cell")  # the cells' own colours
    graphs_drawn(page, 2)
    colors = page.evaluate(
        "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".flatMap(g => g.data.map(t => t.line && t.line.color))"
    )
    assert "#CC79A7" in colors and "#D55E00" in colors
    page.goto(f"{page.base}/sweep/reg")
    graphs_drawn(page, 1)
