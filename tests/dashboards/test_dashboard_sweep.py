"""The sweep page on a sweep with more varying keys than axes (store_cases.PHASE_SWEEP: cell ×
task × seq_len, the RNN at two seeds): facet and fixed values in the controls and the URL, and a
click that opens exactly the runs of the clicked cell — in Python and in a real Chromium."""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pandas as pd
import pytest
from store_cases import PHASE_SEQ_LENS, PHASE_SWEEP

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:dash.development.base_component"
)

FIX = "sweep-fix"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def phase_app(phase_store):
    """The app (dash.Dash) over the phase-diagram store."""
    from dashboards.app import create_app

    return create_app(str(phase_store.root))


@pytest.fixture
def page_module(phase_app) -> Iterator:
    """The sweep page module, inside a request of the app (so it reads that store)."""
    from dashboards.app import page_module as module_of

    with phase_app.server.test_request_context("/"):
        yield module_of("sweep")


@pytest.fixture(scope="module")
def runs(phase_store) -> pd.DataFrame:
    frame = phase_store.runs()
    return frame[frame["sweep"] == PHASE_SWEEP]


def walk(component):
    if isinstance(component, list | tuple):
        for c in component:
            yield from walk(c)
        return
    if component is None or isinstance(component, str | int | float):
        return
    yield component
    yield from walk(getattr(component, "children", None))


def find(layout, cid):
    return next(c for c in walk(layout) if getattr(c, "id", None) == cid)


def cell_runs(runs: pd.DataFrame, **where) -> set[str]:
    keep = pd.Series(True, index=runs.index)
    for key, value in where.items():
        keep &= runs[key] == value
    return set(runs.loc[keep, "run_id"])


def fix_ids(*keys: str) -> list[dict]:
    return [{"type": FIX, "key": k} for k in keys]


def test_layout_reads_facet_and_fix_from_the_url(page_module):
    layout = page_module.layout(
        name=PHASE_SWEEP, x="seq_len", y="cell", facet="none", fix="task:identity"
    )
    assert find(layout, "sweep-facet").value == "none"
    task = find(layout, {"type": FIX, "key": "task"})
    assert task.value == "identity" and not task.disabled
    assert [o["value"] for o in task.options] == ["adding", "identity"]
    assert find(layout, {"type": FIX, "key": "cell"}).disabled  # it is the y axis
    # a value the sweep does not have is dropped: the figure then names its default
    stale = page_module.layout(name=PHASE_SWEEP, x="seq_len", y="cell", fix="task:copy")
    assert find(stale, {"type": FIX, "key": "task"}).value is None


def test_url_holds_facet_and_fix(page_module):
    keys = fix_ids("task", "seq_len", "cell")
    search = page_module.url_search("seq_len", "cell", "decay_rate", "none", ["identity"], keys)
    assert dict(parse_qsl(search[1:])) == {
        "x": "seq_len",
        "y": "cell",
        "color": "decay_rate",
        "facet": "none",
        "fix": "task:identity",
    }
    # a fixed value of a key now on an axis is not sent; the auto facet is the default
    search = page_module.url_search("task", "cell", "decay_rate", "auto", ["identity"], keys)
    assert dict(parse_qsl(search[1:])) == {"x": "task", "y": "cell", "color": "decay_rate"}
    assert page_module.fix_disabled("seq_len", "task", "auto", keys) == [True, True, True]
    assert page_module.fix_disabled("seq_len", "task", "none", keys) == [True, True, False]


def test_click_opens_exactly_the_runs_of_the_cell(page_module, phase_store, runs):
    """The unshown task is fixed (default: adding), not averaged: (rnn, T = 5) holds the two
    seeds of the adding run, not the identity runs."""
    root = str(phase_store.root)
    fig = page_module.update_phase_diagram(PHASE_SWEEP, "seq_len", "cell", "decay_rate")
    fig = fig.to_plotly_json()
    row = list(fig["layout"]["yaxis"]["ticktext"]).index("rnn")
    click = {"points": [{"curveNumber": 0, "x": 0, "y": row}]}  # what dcc.Graph sends
    href, _ = page_module.click_target(root, PHASE_SWEEP, click, fig)
    expected = cell_runs(runs, cell="rnn", seq_len=5, task="adding")
    assert len(expected) == 2
    assert set(parse_qs(urlsplit(href).query)["runs"][0].split(",")) == expected
    # fixed to identity from the dropdown
    fixed = page_module.update_phase_diagram(
        PHASE_SWEEP, "seq_len", "cell", "decay_rate", "auto", ["identity"], fix_ids("task")
    ).to_plotly_json()
    href, _ = page_module.click_target(root, PHASE_SWEEP, click, fixed)
    expected = cell_runs(runs, cell="rnn", seq_len=5, task="identity")
    assert set(parse_qs(urlsplit(href).query)["runs"][0].split(",")) == expected
    # faceted by task: the second panel's cell holds the identity runs
    faceted = page_module.update_phase_diagram(
        PHASE_SWEEP, "seq_len", "cell", "decay_rate", "task"
    ).to_plotly_json()
    click = {"points": [{"curveNumber": 1, "x": 0, "y": row}]}
    href, _ = page_module.click_target(root, PHASE_SWEEP, click, faceted)
    assert set(parse_qs(urlsplit(href).query)["runs"][0].split(",")) == expected
    # a cell without runs says so
    empty = copy.deepcopy(fixed)
    empty["data"][0]["customdata"][row][0][2] = ""
    href, note = page_module.click_target(
        root, PHASE_SWEEP, {"points": [{"curveNumber": 0, "x": 0, "y": row}]}, empty
    )
    assert href is None and "No runs at" in note and "task = identity" in note


def test_a_bad_fix_shows_its_reason(page_module, phase_store):
    fig = page_module.figure(
        str(phase_store.root), PHASE_SWEEP, {"x": "seq_len", "y": "cell", "fix": {"task": "copy"}}
    )
    assert len(fig.data) == 0
    assert "task takes adding, identity" in fig.layout.annotations[0].text


# ----------------------------------------------------------------------------- in Chromium
@pytest.fixture(scope="module")
def server(phase_app) -> Iterator[str]:
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    httpd = make_server("127.0.0.1", 0, phase_app.server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@pytest.mark.browser
def test_click_in_chromium_opens_the_cell(server, runs):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)  # a failure bound, for a loaded machine
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server}/sweep/{PHASE_SWEEP}?x=seq_len&y=cell&fix=task:identity")
            page.wait_for_function(
                "() => { const g = document.querySelector('#sweep-fig-phase_diagram "
                ".js-plotly-plot'); return g && g.data && g.data.length > 0; }"
            )
            hover = page.evaluate(
                "() => document.querySelector('#sweep-fig-phase_diagram .js-plotly-plot')"
                ".data[0].hovertemplate"
            )
            assert "runs: %{customdata[6]}" in hover
            box = page.locator("#sweep-fig-phase_diagram .nsewdrag").first.bounding_box()
            # column 0 of the seq_len cells; rows bottom-up gru, lstm, rnn: rnn on top
            columns = len(PHASE_SEQ_LENS)
            page.mouse.click(box["x"] + box["width"] / (2 * columns), box["y"] + box["height"] / 6)
            page.wait_for_url("**/compare?runs=**")
            opened = set(parse_qs(urlsplit(page.url).query)["runs"][0].split(","))
        finally:
            browser.close()
    assert opened == cell_runs(runs, cell="rnn", seq_len=5, task="identity")
    assert errors == [], errors


def test_blank_dropdowns_name_the_default(page_module):
    fig = page_module.update_phase_diagram(PHASE_SWEEP, "seq_len", "cell", "decay_rate")
    keys = fix_ids("task", "seq_len")
    assert page_module.fix_placeholders(fig.to_plotly_json(), keys) == [
        "default: adding",
        "default",
    ]
