"""The runs page as a run browser, in a real headless Chromium: rows and progress of a sweep
started while the page is open, the search count, group-by mean ± std (checked against pandas
on the same store), the column chooser in the URL, tags and notes kept in the store.

Each test has its own small store (the session store stays untouched).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from test_dashboard_browser import TIMEOUT_MS, browser, context  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dash.development.base_component"),
]

REPO = Path(__file__).resolve().parents[2]
BASE = dict(
    task="adding",
    seq_len=8,
    hidden_size=4,
    steps=6,
    record_every=3,
    batch_size=4,
    probe_batch=4,
    hidden_samples=2,
    jacobian_samples=1,
    init="orthogonal",
    gain=0.9,
    sweep="grid",
)
#: The grid of the browsing store: two cells by three seeds.
GRID = [(cell, seed) for cell in ("rnn", "lstm") for seed in (0, 1, 2)]
#: A sweep started while the page is open. Each run is held after its first optimiser step
#: (the ``progress`` hook) until the file ``<gate>/<run_id>`` exists: the test sees it running
#: on the page, then lets it go, whatever the machine's speed.
SWEEP = textwrap.dedent(
    """
    import json, pathlib, sys, time
    from gradlab.config import RunConfig
    from gradlab.train import train

    root, base, gate = sys.argv[1], json.loads(sys.argv[2]), pathlib.Path(sys.argv[3])

    def held(run_id):
        def progress(done, total):
            while done == 1 and not (gate / run_id).exists():
                time.sleep(0.01)  # until the test has seen the run on the page
        return progress

    for seed in (10, 11):
        config = RunConfig.from_dict(
            {**base, "seed": seed, "sweep": "live", "steps": 40, "record_every": 20}
        )
        train(config, root, progress=held(config.run_id))
    """
)


#: Bounds the waits for a live run on the page (its first recording, then its end): generous,
#: for a loaded machine, where a run's first recording alone can take tens of seconds; a
#: failure bound, not a measurement.
LIVE_TIMEOUT_MS = 300_000

#: Whether a row of the runs table shows run ``arg[0]`` with progress ``<arg[1]> / 40``.
PROGRESS_SHOWN = r"""([id, done]) => Array.from(document.querySelectorAll('#runs-table tr')).some(
    tr => tr.innerText.includes(id) && new RegExp('(^|\\s)' + done + ' / 40').test(tr.innerText))"""
#: Whether a row of the runs table shows run ``id`` as running.
RUNNING_SHOWN = """(id) => Array.from(document.querySelectorAll('#runs-table tr')).some(
    tr => tr.innerText.includes(id) && tr.innerText.includes('running'))"""


def _serve(root: str) -> Iterator[str]:
    from werkzeug.serving import make_server

    from dashboards.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    httpd = make_server("127.0.0.1", 0, create_app(root).server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def grid_store(tmp_path_factory) -> str:
    """Six complete runs: rnn and lstm, seeds 0-2."""
    from gradlab.train import train

    root = tmp_path_factory.mktemp("browse") / "store"
    for cell, seed in GRID:
        train({**BASE, "cell": cell, "seed": seed}, root)
    return str(root)


@pytest.fixture(scope="module")
def grid_server(grid_store) -> Iterator[str]:
    yield from _serve(grid_store)


def _page(context, base: str):  # noqa: F811
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.base = base
    pg.errors = errors
    return pg


@pytest.fixture
def page(context, grid_server):  # noqa: F811
    pg = _page(context, grid_server)
    yield pg
    pg.close()
    assert pg.errors == [], pg.errors


def _query(pg) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(pg.url).query).items()}


def _rows(pg) -> list[str]:
    """Run ids of the runs table's rows on this page."""
    return pg.eval_on_selector_all(
        "#runs-table td[data-dash-column=run_id]", "cells => cells.map(c => c.innerText.trim())"
    )


def test_search_narrows_the_count(page):
    page.goto(page.base + "/")
    page.wait_for_selector("#runs-table")
    assert page.inner_text("#runs-count") == "6 runs"
    page.fill("#runs-search", "lstm")
    page.wait_for_function(
        "() => (document.getElementById('runs-count') || {}).innerText === '3 of 6 runs'"
    )
    page.wait_for_function(
        "() => document.querySelectorAll('#runs-table td[data-dash-column=run_id]').length === 3"
    )
    page.fill("#runs-search", "lstm seed=2")
    page.wait_for_function(
        "() => (document.getElementById('runs-count') || {}).innerText === '1 of 6 runs'"
    )
    page.wait_for_function("() => new URL(location.href).searchParams.get('q') === 'lstm seed=2'")
    page.click("#runs-select-all")
    page.wait_for_function(
        "() => document.getElementById('runs-selection').innerText === '1 selected'"
    )


def test_group_by_cell_shows_mean_and_std_over_seeds(page, grid_store):
    from gradlab.store import open_store

    frame = open_store(grid_store, fsync=False).runs()
    page.goto(page.base + "/?group=cell")
    page.wait_for_selector("#runs-groups td[data-dash-column=n]")
    cells = page.eval_on_selector_all(
        "#runs-groups tr:has(td)",
        """rows => rows.map(r => Object.fromEntries(Array.from(r.querySelectorAll('td'))
            .map(td => [td.getAttribute('data-dash-column'), td.innerText.trim()])))""",
    )
    groups = {row["cell"]: row for row in cells if row.get("cell")}
    assert set(groups) == {"rnn", "lstm"}
    stats = frame.groupby("cell")["final_loss"].agg(["mean", "std", "count"])
    for cell, row in groups.items():
        assert int(row["n"]) == stats.loc[cell, "count"] == 3
        mean, std = (float(x) for x in row["final_loss"].split(" ± "))
        assert mean == pytest.approx(stats.loc[cell, "mean"], rel=1e-3)
        assert std == pytest.approx(stats.loc[cell, "std"], rel=2e-2)
    # a click on a group lists its three runs under it
    page.click("#runs-groups td[data-dash-column=_open] >> nth=0")
    page.wait_for_function(
        "() => document.querySelectorAll('#runs-groups td[data-dash-column=run_id]').length >= 3"
    )
    shown = page.eval_on_selector_all(
        "#runs-groups td[data-dash-column=run_id]", "cs => cs.map(c => c.innerText.trim())"
    )
    first = cells[0]["cell"]
    assert set(s for s in shown if s) == set(frame.loc[frame["cell"] == first, "run_id"])


def test_column_chooser_is_kept_in_the_url(page):
    page.goto(page.base + "/")
    page.wait_for_selector("#runs-table")
    assert page.locator("#runs-table th[data-dash-column=seed]").count() > 0
    page.goto(page.base + "/?cols=cell,seed,final_loss")
    page.wait_for_selector("#runs-table")
    headers = page.eval_on_selector_all(
        "#runs-table th[data-dash-column]",
        "hs => Array.from(new Set(hs.map(h => h.getAttribute('data-dash-column'))))",
    )
    assert set(headers) == {"run_id", "cell", "seed", "final_loss"}
    # removing a column in the chooser hides it and writes the URL
    page.click("#runs-columns")
    page.get_by_role("option", name="seed", exact=True).click()
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => new URL(location.href).searchParams.get('cols') === 'cell,final_loss'"
    )
    assert page.locator("#runs-table th[data-dash-column=seed]").count() == 0


def test_tags_and_notes_round_trip(page, grid_store):
    from gradlab.store import open_store

    store = open_store(grid_store, fsync=False)
    target = store.runs().sort_values("run_id")["run_id"].iloc[0]
    page.goto(f"{page.base}/?q={target}")
    page.wait_for_function(
        "() => (document.getElementById('runs-count') || {}).innerText === '1 of 6 runs'"
    )
    page.click("#runs-select-all")
    page.fill("#runs-tags", "best, check-lr")
    page.click("#runs-tag-add")
    page.wait_for_selector("#runs-table td[data-dash-column=tags]:has-text('best, check-lr')")
    page.fill("#runs-note", "loss plateaus after step 3")
    page.click("#runs-note-save")
    page.wait_for_selector("#runs-table td[data-dash-column=note]:has-text('plateaus')")
    note = store.annotations()[target]
    assert (note.tags, note.note) == (("best", "check-lr"), "loss plateaus after step 3")
    # found by the search, shown on the run page (by a prefix of its id)
    page.goto(f"{page.base}/?q=plateaus")
    page.wait_for_function(
        "() => (document.getElementById('runs-count') || {}).innerText === '1 of 6 runs'"
    )
    page.goto(f"{page.base}/run/{target[:8]}")
    page.wait_for_selector("#run-annotations .run-note")
    assert "loss plateaus after step 3" in page.inner_text("#run-annotations")
    assert target in page.inner_text("h2")
    store.annotate(target, tags=[], note="")


def test_a_sweep_started_with_the_page_open_adds_rows_and_progress(context, tmp_path):  # noqa: F811
    from gradlab.store import open_store
    from gradlab.train import train

    root = tmp_path / "store"
    train({**BASE, "cell": "rnn", "seed": 0}, root)
    store = open_store(root, fsync=False)
    for base in _serve(str(root)):
        pg = _page(context, base)
        pg.goto(base + "/")
        pg.wait_for_selector("#runs-table")
        assert pg.inner_text("#runs-count") == "1 run"
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        script, gate = tmp_path / "sweep.py", tmp_path / "gate"
        script.write_text(SWEEP)
        gate.mkdir()
        args = [str(script), str(root), json.dumps({**BASE, "cell": "rnn"}), str(gate)]
        proc = subprocess.Popen([sys.executable, *args], env=env)
        try:
            seen: list[str] = []
            while len(seen) < 2:
                new = [r for r in _live(store) if r not in seen]
                if not new:
                    assert proc.poll() in (None, 0)
                    time.sleep(0.05)  # polls the store for the sweep's next run
                    continue
                run_id = new[0]
                seen.append(run_id)
                first_write = time.monotonic()
                # while the run is held: its row, running, with "k / 40"
                pg.wait_for_function(
                    PROGRESS_SHOWN, arg=[run_id, "[0-9]+"], timeout=LIVE_TIMEOUT_MS
                )
                pg.wait_for_function(RUNNING_SHOWN, arg=run_id)
                row_s = time.monotonic() - first_write
                # let it go: its progress moves on to the end without a reload
                (gate / run_id).touch()
                pg.wait_for_function(PROGRESS_SHOWN, arg=[run_id, "40"], timeout=LIVE_TIMEOUT_MS)
                moved_s = time.monotonic() - first_write
                print(f"run {run_id}: row with progress {row_s:.2f} s, moved on {moved_s:.2f} s")
            assert proc.wait(timeout=300) == 0
            pg.wait_for_function(
                "() => (document.getElementById('runs-count') || {}).innerText === '3 runs'"
            )
            pg.wait_for_function(
                "() => Array.from(document.querySelectorAll(PROGRESS_CELLS))"
                ".filter(td => td.innerText.trim() === '40 / 40').length === 2".replace(
                    "PROGRESS_CELLS", repr("#runs-table td[data-dash-column=progress]")
                )
            )
        finally:
            if proc.poll() is None:
                proc.kill()
        pg.close()
        assert pg.errors == [], pg.errors


def _live(store) -> list[str]:
    """Ids of the runs of the "live" sweep written so far, oldest first."""
    frame = store.runs()
    if "sweep" not in frame:
        return []
    return frame.loc[frame["sweep"] == "live"].sort_values("created")["run_id"].tolist()
