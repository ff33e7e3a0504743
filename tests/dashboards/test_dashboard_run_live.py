"""The run page of a RUNNING run in a real headless Chromium gains its new recordings without a
reload: a run written with `gradlab.init` / `run.record` while two pages of it are open.

The page that stood on the latest step follows the new steps; the page the user moved back to
an earlier step stays there (its slider still gains the new steps); when the run finishes the
header says so and polling stops. Reuses the browser fixtures of test_dashboard_browser.py over
its own store.
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
graphs_drawn = browser_tests.graphs_drawn

RUN = "live-run"
#: Bounds the wait for a poll to show a new recording (POLL_MS plus the round trip): generous,
#: for a loaded machine; a failure bound, not a measurement.
LIVE_TIMEOUT_MS = 60_000
#: Whether ``#run-step-shown`` reads ``text`` (a live page updates it in its own callback).
SHOWN = "(text) => document.getElementById('run-step-shown').innerText === text"
GRAPH = """(cid) => {
    const el = document.getElementById(cid);
    return el.classList.contains('js-plotly-plot') ? el : el.querySelector('.js-plotly-plot');
}"""
#: The last training step the training curves draw.
TRAINING_STEPS = (
    f"() => Math.max(...({GRAPH})('run-fig-training')._fullData.flatMap(t => Array.from(t.x)))"
)
#: The rows (recorded steps) of the gradient-flow heatmap.
HEATMAP_ROWS = f"() => ({GRAPH})('run-fig-gradient_flow')._fullData[0].y.length"


class LiveRun:
    """A run of a small LSTM on the adding task, recorded and logged step by step."""

    def __init__(self, root: str, name: str = RUN) -> None:
        import torch

        import gradlab
        from gradlab.tasks import make

        self.task, gen = make("adding", seq_len=10), torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        self.model, self.head = gradlab.LSTM(2, 6), torch.nn.Linear(6, 1)
        self.x, self.y = self.task.sample(4, gen)
        self.run = gradlab.init(root, name=name, config={"lr": 1e-2, "hidden": 6})
        self.logged = 0

    def log(self, step: int) -> None:
        """Log a loss at each step up to ``step`` (written to disk)."""
        for s in range(self.logged, step + 1):
            self.run.log({"loss": 1.0 / (1 + s)}, step=s)
        self.logged = step + 1
        self.run.flush()

    def step(self, step: int) -> None:
        """Log a loss at each step up to ``step`` and record the model at ``step`` (flushed)."""
        self.log(step)
        loss_fn = lambda out: self.task.loss(self.head(out), self.y)  # noqa: E731
        self.run.record(self.model, self.x, loss_fn, step=step)
        self.run.flush()  # its analysis runs in the background: wait until it is written


@pytest.fixture(scope="module")
def live_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash-live") / "store"
    root.mkdir()
    return str(root)


@pytest.fixture(scope="module")
def dash_app(live_store):
    """The app over this module's store (the browser fixtures serve `dash_app.app`)."""
    from dashboards.app import create_app

    return types.SimpleNamespace(app=create_app(live_store))


def _shown(pg) -> str:
    return pg.inner_text("#run-step-shown")


def test_the_page_of_a_running_run_gains_new_recordings(page, context, live_store):
    live = LiveRun(live_store)
    live.step(0)
    live.step(3)
    page.goto(f"{page.base}/run/{RUN}")  # on the latest step (3)
    graphs_drawn(page, 6)
    back = context.new_page()  # a second page, moved back to step 0
    back.set_default_timeout(browser_tests.TIMEOUT_MS)
    back.goto(f"{page.base}/run/{RUN}?step=0")
    graphs_drawn(back, 6)
    assert _shown(page) == "(step 3)" and _shown(back) == "(step 0)"  # in the pages' layout
    assert page.inner_text(".status") == "running"
    assert page.evaluate(HEATMAP_ROWS) == 2

    live.step(6)  # a new recording lands while both pages are open
    # each figure, the step text and the URL have their own callbacks: wait for each
    page.wait_for_function(SHOWN, arg="(step 6)", timeout=LIVE_TIMEOUT_MS)
    page.wait_for_function(f"() => ({HEATMAP_ROWS})() === 3", timeout=LIVE_TIMEOUT_MS)
    steps_6 = f"() => {{ try {{ return ({TRAINING_STEPS})() === 6; }} catch {{ return false; }} }}"
    page.wait_for_function(steps_6, timeout=LIVE_TIMEOUT_MS)  # false while it is redrawn
    page.wait_for_url("**step=6**", timeout=LIVE_TIMEOUT_MS)
    # the page the user moved back stays on step 0, and its slider gained step 6
    back.wait_for_function(f"() => ({HEATMAP_ROWS})() === 3", timeout=LIVE_TIMEOUT_MS)
    assert _shown(back) == "(step 0)" and "step=0" in back.url
    back.close()

    live.run.finish()
    page.wait_for_function("() => document.querySelector('.status').innerText === 'complete'",
                           timeout=LIVE_TIMEOUT_MS)  # fmt: skip


def _find(component, cid):
    """The component of id ``cid`` in a layout tree (None if absent)."""
    if getattr(component, "id", None) == cid:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found = _find(child, cid)
            if found is not None:
                return found
    return None


def test_a_poll_sets_only_what_changed_and_stops_after_the_run_finished(dash_app, live_store):
    from dash import no_update

    from dashboards.app import page_module

    page = page_module("run")
    live = LiveRun(live_store, name="live-unit")
    live.step(0)
    with dash_app.app.server.test_request_context("/"):
        layout = page.layout(run_id="live-unit")
        assert _find(layout, "run-live") is not None, layout
        shown = _find(layout, "run-live").data
        assert _find(layout, "run-poll").disabled is False
        ids = [{"type": page.DATA_TOKEN, "fig": name} for name in shown["tokens"]]
        assert "training" in shown["tokens"] and len(ids) >= 6

        # nothing written: nothing changes, polling goes on
        out = page.live_update(1, "live-unit", shown, 0, ids)
        assert out[0] == [no_update] * len(ids) and out[3] is no_update and out[4] is False

        live.log(5)  # only training losses land: only the training curves redraw
        tokens, cards, _, now, disabled, *slider = page.live_update(2, "live-unit", shown, 0, ids)
        changed = [i["fig"] for i, t in zip(ids, tokens, strict=True) if t is not no_update]
        assert changed == ["training"] and cards is no_update and disabled is False
        assert slider == [no_update] * 4  # no new recorded step

        live.step(6)  # a recording: the slider gains step 6 and, standing on the latest, moves
        tokens, _, _, now, disabled, *slider = page.live_update(3, "live-unit", now, 0, ids)
        assert tokens.count(no_update) < len(ids) - 1
        assert slider[0] == 1 and slider[2] == 1 and disabled is False

        live.run.finish()  # one more poll picks up the final state, then polling stops
        _, _, head, now, disabled, *_ = page.live_update(4, "live-unit", now, 0, ids)
        assert now["status"] == "complete" and head is not no_update and disabled is False
        assert page.live_update(5, "live-unit", now, 0, ids)[4] is True
