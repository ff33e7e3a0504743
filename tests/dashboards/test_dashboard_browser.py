"""The dashboard in a real headless Chromium (Playwright): pages render, URLs round-trip, the
runs table opens Compare, a phase-diagram click opens a cell's runs, exports download.

Skipped when /usr/bin/chromium is missing, unless the CI environment variable is set: in CI a
missing browser fails loudly.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dash.development.base_component"),
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Bounds every wait for the page (a failure bound, generous for a loaded machine).
TIMEOUT_MS = 60_000

ALL_GRAPHS_DRAWN = """(n) => {
    // every dcc.Graph of the page (its wrapper .dash-graph exists before plotly.js has drawn
    // into it, so a graph not drawn yet is waited for, not missed)
    const containers = Array.from(document.querySelectorAll('.dash-graph'));
    const plot = (c) => c.classList.contains('js-plotly-plot') ? c
        : c.querySelector('.js-plotly-plot');
    const summary = (g) => g.layout && g.layout.meta && g.layout.meta.gradlab
        && g.layout.meta.gradlab.summary;  // a one-line summary in place of flat lines
    const drawn = (g) => g && g.data && (g.data.length > 0 || summary(g));
    return containers.length >= n && containers.every(c => drawn(plot(c)));
}"""


@pytest.fixture(scope="module")
def server(dash_app) -> Iterator[str]:
    """The session app served by werkzeug on 127.0.0.1 (a free port) in a thread."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    httpd = make_server("127.0.0.1", 0, dash_app.app.server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {CHROMIUM} is missing: the browser tests must run in CI")
        pytest.skip(f"{CHROMIUM} is missing (set CI=1 to make this a failure)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def context(browser):
    """One browser context for the module (its HTTP cache keeps plotly.js between tests)."""
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context, server):
    """A fresh page; fails the test on any console error or uncaught page error."""
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.base = server
    yield pg
    pg.close()
    assert errors == [], errors


#: The number of traces the plotly graph inside the element with id `arg` draws.
TRACE_COUNT = """(id) => {
    const el = document.getElementById(id);
    const plot = '.js-plotly-plot';
    const graph = el.matches(plot) ? el : el.querySelector(plot);
    return graph.data.length;
}"""


def graphs_drawn(pg, n: int) -> None:
    """Wait until the page has at least `n` graphs and every graph on it is drawn."""
    pg.wait_for_function(ALL_GRAPHS_DRAWN, arg=n)


def graph_count(pg) -> int:
    return pg.evaluate("() => document.querySelectorAll('.js-plotly-plot').length")


def test_runs_page_lists_runs(page, real_store):
    page.goto(page.base + "/")
    page.wait_for_selector("#runs-table")
    page.get_by_text(real_store.failed).wait_for()
    assert page.get_by_text("ValueError: boom at step 2").count() == 1
    assert page.locator("#runs-table tr:has(input[type=checkbox])").count() == 8
    # the store by its folder's name: no absolute server path on the page
    assert page.inner_text("#runs-count") == "8 runs"
    assert page.inner_text("#runs-folder") == "in store/"
    assert real_store.root not in page.inner_text("body")


def test_run_page_draws_every_figure(page, real_store):
    from gradlab.figures import FIGURES
    from gradlab.probes import FixedPointProbe

    page.goto(f"{page.base}/run/{real_store.ids[('lstm', 0.9)]}")
    # an LSTM run has every run / runs figure of the registry, the fixed-point ones included
    names = [s.name for s in FIGURES.values() if s.scope in ("run", "runs")]
    graphs_drawn(page, len(names))
    assert graph_count(page) == len(names)
    # graphs_drawn counts dcc.Graph wrappers: one per figure, as plotly's plots are
    assert page.evaluate("() => document.querySelectorAll('.dash-graph').length") == len(names)
    fixed = [s.name for s in FIGURES.values() if s.needs_probe == FixedPointProbe.probe]
    assert fixed and set(fixed) <= set(names)
    for name in fixed:  # drawn with data: traces, not a "no data" message
        traces = page.evaluate(TRACE_COUNT, f"run-fig-{name}")
        assert traces > 0, name
    assert page.get_by_text("Compare with GRU").count() == 1


def test_compare_and_sweep_pages_draw(page, real_store):
    ids = ",".join(real_store.ids[(c, 1.5)] for c in ("rnn", "lstm", "gru"))
    page.goto(f"{page.base}/compare?runs={ids}")
    graphs_drawn(page, 4)
    traces = page.evaluate(  # the overlaid figures: a line (or more) per run
        "() => Array.from(document.querySelectorAll('[id^=compare-fig-] .js-plotly-plot'))"
        ".map(g => g.data.length)"
    )
    assert len(traces) >= 3 and min(traces) >= 3
    page.goto(f"{page.base}/sweep/tiny")
    graphs_drawn(page, 1)
    kind = page.evaluate("() => document.querySelector('.js-plotly-plot').data[0].type")
    assert kind == "heatmap"


@pytest.mark.parametrize("path", ["/run/nope", "/run/..%2Fetc", "/run/a.b"])
def test_bad_run_ids_show_a_message(page, path):
    page.goto(page.base + path)
    message = page.wait_for_selector("#run-problem")
    assert "run" in message.inner_text()
    assert graph_count(page) == 0


#: True once the element with id `arg` holds a drawn plotly graph (its data and layout set).
GRAPH_DRAWN = """(id) => {
    const el = document.getElementById(id);
    if (!el) return false;
    const g = el.classList.contains('js-plotly-plot') ? el : el.querySelector('.js-plotly-plot');
    return Boolean(g && g.data && g.layout);
}"""


def _graph_layout(pg, cid: str, key: str):
    """The axis `key`'s type of the graph `cid`, once that graph itself is drawn."""
    pg.wait_for_function(GRAPH_DRAWN, arg=cid)
    return pg.evaluate(
        """([cid, key]) => {
            const el = document.getElementById(cid);
            const g = el.classList.contains('js-plotly-plot') ? el
                : el.querySelector('.js-plotly-plot');
            return g.layout[key].type;
        }""",
        [cid, key],
    )


def test_run_page_url_round_trip(page, real_store):
    rid = real_store.ids[("rnn", 0.9)]
    page.goto(f"{page.base}/run/{rid}")
    graphs_drawn(page, 8)
    assert _graph_layout(page, "run-fig-timestep_profile", "yaxis") == "log"
    page.locator("#run-scale input[value=linear]").check()
    page.wait_for_url("**scale=linear**")
    page.wait_for_function(
        """() => {
            const g = document.querySelector('#run-fig-timestep_profile .js-plotly-plot')
                || document.getElementById('run-fig-timestep_profile');
            return g.layout && g.layout.yaxis.type === 'linear';
        }"""
    )
    query = parse_qs(urlsplit(page.url).query)
    assert query["scale"] == ["linear"] and query["step"] == ["5"]
    page.reload()
    graphs_drawn(page, 8)
    assert page.locator("#run-scale input[value=linear]").is_checked()
    assert _graph_layout(page, "run-fig-timestep_profile", "yaxis") == "linear"


def test_select_two_runs_and_compare(page, real_store):
    rnn, lstm = real_store.ids[("rnn", 0.9)], real_store.ids[("lstm", 0.9)]
    page.goto(page.base + "/")
    page.wait_for_selector("#runs-table")
    for rid in (rnn, lstm):
        page.locator(f"#runs-table tr:has-text('{rid}') input[type=checkbox]").check()
    compare = page.locator("#runs-compare")
    page.wait_for_function("() => !document.getElementById('runs-compare').disabled")
    compare.click()
    page.wait_for_url("**/compare?runs=**")
    assert set(parse_qs(urlsplit(page.url).query)["runs"][0].split(",")) == {rnn, lstm}
    graphs_drawn(page, 4)


def test_phase_diagram_click_opens_the_cell(page, real_store):
    page.goto(f"{page.base}/sweep/tiny?x=gain&y=cell&color=decay_rate")
    graphs_drawn(page, 1)
    box = page.locator("#sweep-fig-phase_diagram .nsewdrag").first.bounding_box()
    # right half = gain 1.5; middle row of three categories (sorted: gru, lstm, rnn) = lstm
    page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + 0.5 * box["height"])
    page.wait_for_url("**/compare?runs=**")
    assert parse_qs(urlsplit(page.url).query)["runs"] == [real_store.ids[("lstm", 1.5)]]
    graphs_drawn(page, 4)


def test_csv_download(page, real_store):
    rid = real_store.ids[("gru", 0.9)]
    page.goto(f"{page.base}/run/{rid}")
    graphs_drawn(page, 9)
    button = page.locator("#run-card-timestep_profile button", has_text="CSV")
    with page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == f"run-{rid}-timestep_profile.csv"
    with open(download.path(), encoding="utf-8") as fh:
        header = fh.readline()
    assert "run_id" in header and "value" in header
