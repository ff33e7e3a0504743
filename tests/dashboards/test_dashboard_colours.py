"""Per-run colours and the step slider in a real headless Chromium: a 4-run compare draws four
colours and four distinguishable baselines; arrow keys on the run page's slider land on recorded
steps; a URL step that was not recorded snaps to the nearest recorded one and says so.

Reuses the browser fixtures of test_dashboard_browser.py over its own small REAL store: copy
tasks at four lengths (so four different no-memory baselines), two RNNs and two LSTMs, recorded
at steps 0, 3 and 5.
"""

from __future__ import annotations

import types
from urllib.parse import parse_qs, urlsplit

import pytest
import test_dashboard_browser as browser_tests

from gradlab.figures import style

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dash.development.base_component"),
]

# The browser fixtures, shared by name (module scope: one Chromium and one server).
browser, context, page, server = (
    browser_tests.browser,
    browser_tests.context,
    browser_tests.page,
    browser_tests.server,
)
graphs_drawn = browser_tests.graphs_drawn

BASE = dict(task="copy", hidden_size=4, steps=6, record_every=3, batch_size=4, probe_batch=4,
            hidden_samples=1, jacobian_samples=1, seed=0, sweep="colours")  # fmt: skip
RUNS = (("rnn", 21), ("lstm", 22), ("rnn", 23), ("lstm", 24))

#: (colour, dash) of each run's loss line and of each baseline line of the training figure.
TRAINING_LINES = """() => {
    const g = document.querySelector('#compare-fig-training .js-plotly-plot')
        || document.getElementById('compare-fig-training');
    const pick = (name) => g.data
        .filter(t => t.meta && t.meta.const && t.meta.const.name === name)
        .map(t => [t.meta.const.run_id, t.line.color, t.line.dash || 'solid']);
    return {loss: pick('loss'), baseline: pick('baseline_loss')};
}"""
SHOWN = "(text) => document.getElementById('run-step-shown').innerText === text"
PROFILE_AT = """(step) => {
    const g = document.querySelector('#run-fig-timestep_profile .js-plotly-plot');
    return g && g.data.length > 0
        && g.layout.meta.gradlab.title.endsWith(`at training step ${step}`);
}"""
SWATCHES = """() => Array.from(document.querySelectorAll('#compare-runs .run-swatch'))
    .map(e => e.getAttribute('data-color'))"""


@pytest.fixture(scope="module")
def colour_store(tmp_path_factory):
    from gradlab.store import open_store
    from gradlab.train import train

    root = tmp_path_factory.mktemp("dash-colours") / "store"
    store = open_store(root, fsync=False)
    ids = [train({**BASE, "cell": cell, "seq_len": n}, store) for cell, n in RUNS]
    return str(root), ids


@pytest.fixture(scope="module")
def dash_app(colour_store):
    """The app over this module's store (the browser fixtures serve `dash_app.app`)."""
    from dashboards.app import create_app

    return types.SimpleNamespace(app=create_app(colour_store[0]))


def test_four_run_compare_has_four_colours_and_baselines(page, colour_store):
    _, ids = colour_store
    page.goto(f"{page.base}/compare?runs={','.join(ids)}")
    graphs_drawn(page, 4)
    lines = page.evaluate(TRAINING_LINES)
    loss = {rid: colour for rid, colour, _ in lines["loss"]}
    assert loss == dict(zip(ids, style.RUN_COLORS[:4], strict=True))  # in URL order
    baselines = lines["baseline"]
    assert len(baselines) == 4
    assert {rid: colour for rid, colour, _ in baselines} == loss  # each in its run's colour
    assert len({dash for _, _, dash in baselines}) == 4
    assert page.evaluate(SWATCHES) == list(style.RUN_COLORS[:4])  # the run list says which
    # colour by cell type: the cells' fixed colours, in figures, swatches and the URL
    page.goto(f"{page.base}/compare?runs={','.join(ids)}&color_by=cell")
    graphs_drawn(page, 4)
    cells = [style.cell_color(cell) for cell, _ in RUNS]
    assert [c for _, c, _ in page.evaluate(TRAINING_LINES)["loss"]] == cells
    assert page.evaluate(SWATCHES) == cells


def test_arrow_keys_move_the_slider_to_recorded_steps(page, colour_store):
    """Steps 0, 3, 5 are recorded: ArrowRight goes 0 → 3 → 5 (never 1), in the URL, beside
    the slider and in the figures (not a "no data" card)."""
    rid = colour_store[1][0]
    page.goto(f"{page.base}/run/{rid}?step=0")
    graphs_drawn(page, 8)
    assert page.inner_text("#run-step-shown") == "(step 0)"
    page.locator("#run-step [role=slider]").focus()
    for step in (3, 5):
        page.keyboard.press("ArrowRight")
        page.wait_for_url(f"**step={step}**")
        assert parse_qs(urlsplit(page.url).query)["step"] == [str(step)]
        page.wait_for_function(SHOWN, arg=f"(step {step})")
        page.wait_for_function(PROFILE_AT, arg=step)


def test_unrecorded_url_step_snaps_and_says_so(page, colour_store):
    rid = colour_store[1][0]
    page.goto(f"{page.base}/run/{rid}?step=4")
    graphs_drawn(page, 8)
    assert page.inner_text("#run-step-notice") == "step 4 was not recorded; showing 3"
    assert page.inner_text("#run-step-shown") == "(step 3)"
    page.wait_for_function(PROFILE_AT, arg=3)
