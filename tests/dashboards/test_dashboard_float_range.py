"""The float-range note in the dashboard, in a real headless Chromium: the run page of a
float32 run whose adjoint underflows shows the note on the profile and the heatmap (and grey
cells); the float64-adjoint run and the dead-relu run (true zeros) show none.

Its own small store (tests/conftest.py's `range_store`) and server: the session store of
test_dashboard_browser.py is counted there, so it is not extended. Skipped when
/usr/bin/chromium is missing, unless CI is set.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dash.development.base_component"),
]

CHROMIUM = "/usr/bin/chromium"
#: Bounds every wait for the page (a failure bound, generous for a loaded machine).
TIMEOUT_MS = 60_000
FLOW = ("timestep_profile", "gradient_flow")
NOTES = """(cid) => {
    const el = document.getElementById(cid);
    const g = el.classList.contains('js-plotly-plot') ? el : el.querySelector('.js-plotly-plot');
    const shown = Array.from(g.querySelectorAll('.annotation-text')).map(a => a.textContent);
    const grey = g.data.filter(t => (t.name || '').includes('range')).length;
    return {shown, grey};
}"""
DRAWN = """(ids) => ids.every(cid => {
    const el = document.getElementById(cid);
    const g = el && (el.classList.contains('js-plotly-plot') ? el
        : el.querySelector('.js-plotly-plot'));
    return g && g.data && g.data.length > 0;
})"""


@pytest.fixture(scope="module")
def server(range_store) -> Iterator[str]:
    from werkzeug.serving import make_server

    from dashboards.app import create_app

    store, _ = range_store
    app = create_app(str(store.root))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    httpd = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {CHROMIUM} is missing: the browser tests must run in CI")
        pytest.skip(f"{CHROMIUM} is missing (set CI=1 to make this a failure)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.base = server
        try:
            yield pg
        finally:
            browser.close()
        assert errors == [], errors


def flow_notes(page, run_id: str) -> dict[str, dict]:
    page.goto(f"{page.base}/run/{run_id}")
    ids = [f"run-fig-{name}" for name in FLOW]
    page.wait_for_function(DRAWN, arg=ids)
    return {name: page.evaluate(NOTES, f"run-fig-{name}") for name in FLOW}


def test_run_page_shows_where_float32_underflows(page, range_store):
    store, ids = range_store
    m = store.run(ids["underflow"]).metrics(probes="grad_hidden")
    m = m[m["layer"] == 0]
    latest = m[m["step"] == m["step"].max()]
    k = {
        "timestep_profile": int(latest.loc[latest["value"] == 0, "t"].max()),
        "gradient_flow": int(m.loc[m["value"] == 0, "t"].max()),
    }
    for name, seen in flow_notes(page, ids["underflow"]).items():
        text = " ".join(seen["shown"])
        assert f"‖∂L/∂h_k‖ below float32 range at k ≤ {k[name]}" in text, (name, text)
        assert seen["grey"] == 1, name  # the profile's triangles, the heatmap's grey cells


@pytest.mark.parametrize("which", ["float64", "dead-relu"])
def test_no_note_where_values_are_kept_or_truly_zero(page, range_store, which):
    _, ids = range_store
    for name, seen in flow_notes(page, ids[which]).items():
        assert not any("range" in t for t in seen["shown"]), (name, seen["shown"])
        assert seen["grey"] == 0, name


def test_run_page_says_which_dtype_the_adjoint_ran_in(page, range_store):
    _, ids = range_store
    for which, shown in (("float64", True), ("underflow", False)):
        page.goto(f"{page.base}/run/{ids[which]}")
        page.wait_for_selector(".run-config")
        text = page.inner_text(".run-config")
        assert ("adjoint_dtype" in text and "float64" in text) == shown, text
        assert "float32" in text  # the run's dtype
