"""Benchmark the compare page in Chromium: first figure and all figures of ``/compare`` with N runs.

Serves the dashboard of ``--store`` (default: a ``gradlab demo`` store; make one with
``gradlab demo --store PATH --no-dash``) on 127.0.0.1 in a thread, opens
``/compare?runs=<the first N runs>`` (N = ``--runs``, default 4) in headless Chromium and times,
from navigation: the first figure drawn, and every figure card drawn (each graph holds a figure
built by gradlab: its ``layout.meta.gradlab`` is set). Then the same page once more (warm caches)
and a switch of the side-by-side / overlaid toggle when the page has one.

    .venv/bin/python benchmarks/compare_page.py --store PATH [--runs 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: JS: how many graphs (dcc.Graph, ``.figure-graph``) hold a figure built by gradlab (not the
#: placeholder, drawn by plotly), of how many.
DRAWN = """() => {
    const g = Array.from(document.querySelectorAll('.figure-graph'));
    const built = (d) => {
        const p = d.classList.contains('js-plotly-plot') ? d : d.querySelector('.js-plotly-plot');
        return p && p.layout && p.layout.meta && p.layout.meta.gradlab;
    };
    return [g.filter(built).length, g.length];
}"""


def serve(root: Path) -> tuple[str, object]:
    """The dashboard of ``root`` on 127.0.0.1 (free port), in a thread: (url, shutdown)."""
    import logging

    from werkzeug.serving import make_server

    from dashboards.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    httpd = make_server("127.0.0.1", 0, create_app(str(root)).server, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_port}", httpd.shutdown


def load(page, url: str) -> tuple[float, float, int]:
    """(first figure drawn, all drawn, number of graphs) in seconds after ``page.goto(url)``."""
    t0 = time.perf_counter()
    page.goto(url)
    first = None
    while True:
        done, total = page.evaluate(DRAWN)
        now = time.perf_counter() - t0
        if first is None and done:
            first = now
        if total and done == total:
            return first, now, total
        if now > 120:
            raise TimeoutError(f"{done} of {total} graphs drawn after 120 s")
        page.wait_for_timeout(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a run store (e.g. of `gradlab demo`)")
    parser.add_argument("--runs", type=int, default=4, help="how many runs to compare")
    parser.add_argument("--repeat", type=int, default=3, help="warm loads to take the median of")
    parser.add_argument("--query", default="", help="more of the query, e.g. '&view=side'")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from gradlab.store import open_store

    runs = open_store(args.store).runs()
    ids = [str(r) for r in runs.loc[runs["status"] == "complete", "run_id"]][: args.runs]
    url, stop = serve(Path(args.store))
    target = f"{url}/compare?runs={','.join(ids)}{args.query}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        first, every, n = load(page, target)
        head = f"compare, {len(ids)} runs"
        print(f"{head}, cold: first figure {first:.2f} s, all {n} graphs {every:.2f} s")
        warm = [load(page, target) for _ in range(args.repeat)]
        print(
            f"compare, {len(ids)} runs, warm (median of {args.repeat}): first figure "
            f"{statistics.median(w[0] for w in warm):.2f} s, all {n} graphs "
            f"{statistics.median(w[1] for w in warm):.2f} s"
        )
        browser.close()
    stop()


if __name__ == "__main__":
    main()
