"""Benchmark the dashboard on a 1,000-run store: first page loads and figure-update server time.

Builds (into a temp dir, or ``--dir``; reused when it already holds enough runs) a store of
``--runs`` runs of one sweep ("bench": cell × gain × seq_len × seed, a few failed / diverged),
each with every probe the trainer writes at ``--steps`` recorded steps, written directly with
pyarrow through the store's own file writers (same layout and Parquet settings as RunWriter).
Arrays (``hidden_sample``, ``step_jacobian_sv``) are written for the runs that are opened.

Then serves the app (werkzeug, in a thread, on 127.0.0.1) and measures

* server side: the Runs page layout, a Run page layout, and every figure callback of the Run
  page (median of ``--repeat``, cold first call reported apart), plus the compare and sweep
  figures — the time the server spends per figure update;
* in the browser (Playwright + Chromium, if ``--browser`` is given or /usr/bin/chromium exists):
  the first load of ``/`` and of a run page, until every graph on the page has drawn its traces;
  and the round trip of one figure update (moving the step slider).

Targets: first page load <= 2 s, figure update <= 300 ms server time.

    .venv/bin/python benchmarks/dashboard.py [--dir PATH] [--runs 1000] [--steps 40] [--no-browser]

``--demo [STORE]``: the speed targets of a first visit on the DEMO store instead (default
./runs; ``bash tools/demo.sh --no-dash`` makes it, ``--demo build`` runs the demo sweep into a
temp store): with the dashboard warm (served, kaleido started in the background as ``gradlab
dash`` does, one run page visited), Chromium times, from navigation, the first and the last
figure drawn of each run's page and of the demo's compare view, and the first PNG download
(click → file). Targets: first figure <= 1.0 s, all figures <= 2.5 s, first PNG <= 1.5 s.

    .venv/bin/python benchmarks/dashboard.py --demo [./runs | build]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa

from gradlab.config import RunConfig
from gradlab.fits import SUMMARY_KEYS
from gradlab.store import METRICS_SCHEMA, open_store
from gradlab.store import files as store_files
from gradlab.store.provenance import versions, writer_info
from gradlab.store.schema import sort_metrics
from gradlab.store.writer import FORMAT_VERSION, now_iso

CELLS = ("rnn", "lstm", "gru")
GAINS = (0.5, 0.8, 1.0, 1.2, 1.5)
SEQ_LENS = (25, 50, 100)
HIDDEN = 32
GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ()}
SUMMARY = SUMMARY_KEYS  # the summary probe's names, as the trainer writes them
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def configs(n: int, steps: int) -> list[RunConfig]:
    """n run configs of one sweep grid (seed × seq_len × gain × cell)."""
    grid = itertools.product(range(1000), SEQ_LENS, GAINS, CELLS)
    out = []
    for seed, seq_len, gain, cell in itertools.islice(grid, n):
        out.append(
            RunConfig(
                task="adding",
                seq_len=seq_len,
                cell=cell,
                hidden_size=HIDDEN,
                init="gaussian" if cell == "rnn" else "default",
                gain=gain,
                seed=seed,
                steps=steps * 10,
                record_every=10,
                sweep="bench",
            )
        )
    return out


def run_table(rng: np.random.Generator, config: RunConfig, steps: int) -> pa.Table:
    """Synthetic rows for every probe the trainer writes (same probes, names and t ranges)."""
    T = config.seq_len
    rec_steps = np.arange(steps, dtype=np.int64) * 10
    cols: dict[str, list[np.ndarray]] = {k: [] for k in METRICS_SCHEMA.names}
    rate = {"rnn": 0.15, "gru": 0.04, "lstm": 0.02}[config.cell] * config.gain

    def add(probe, name, ts, values, step_ids=rec_steps, layered=True):
        n_t = 1 if ts is None else len(ts)
        m = len(step_ids)
        cols["step"].append(np.repeat(step_ids, n_t))
        cols["probe"].append(np.full(m * n_t, probe, dtype=object))
        cols["name"].append(np.full(m * n_t, name, dtype=object))
        layer = np.zeros(m * n_t) if layered else np.full(m * n_t, np.nan)
        cols["layer"].append(layer)
        cols["direction"].append(layer.copy())
        cols["t"].append(np.full(m * n_t, np.nan) if ts is None else np.tile(ts, m))
        cols["value"].append(np.asarray(values, dtype=np.float64).reshape(-1))

    train_steps = np.arange(steps * 10, dtype=np.int64)
    loss = (
        0.2 + np.exp(-np.linspace(0, 3, len(train_steps))) + rng.normal(0, 0.01, len(train_steps))
    )
    add("train", "loss", None, loss, train_steps, False)
    add("train", "grad_norm", None, rng.lognormal(0, 0.5, len(train_steps)), train_steps, False)
    add("train", "clipped", None, np.zeros(len(train_steps)), train_steps, False)
    t0 = np.arange(T + 1, dtype=np.int64)
    t1 = t0[1:]
    decay = np.exp(-rate * (T - t0))[None, :] * rng.lognormal(0, 0.1, (steps, T + 1))
    add("grad_hidden", "norm", t0, decay)
    if config.cell == "lstm":
        add("grad_cell", "norm", t0, decay * 1.5)
    for name in ("weight_hh", "weight_ih", "bias_hh", "bias_ih"):
        add("contribution", name, t1, decay[:, 1:] * rng.lognormal(0, 0.2, (steps, T)))
    add("step_jacobian", "fro", t1, rng.lognormal(0.5, 0.1, (steps, T)))
    add("step_jacobian", "spectral", t1, rng.lognormal(-0.05, 0.1, (steps, T)))
    add("jacobian", "spectral", t0[:-1], np.exp(-rate * (T - t0[:-1]))[None, :].repeat(steps, 0))
    for name in ("mean_abs", "saturation", "dead"):
        add("hidden", name, t0, rng.uniform(0, 1, (steps, T + 1)))
    for gate in GATES[config.cell]:
        add("gates", gate, t1, rng.uniform(0, 1, (steps, T)))
    for name in SUMMARY:
        value = -rate if name == "decay_rate" else rng.uniform(0, 1)
        add("summary", name, None, np.full(steps, value), layered=False)
    arrays = []
    for field in METRICS_SCHEMA:
        data = np.concatenate(cols[field.name])
        arrays.append(pa.array(data, type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=METRICS_SCHEMA)


def write_run(job: tuple[str, RunConfig, int, int, bool]) -> str:
    """Write one run folder (complete; every 97th failed, every 89th diverged)."""
    root, config, steps, index, with_arrays = job
    rng = np.random.default_rng(index)
    run_id = config.run_id
    path = store_files.run_dir(Path(root), run_id)
    path.mkdir(parents=True, exist_ok=True)
    status, error = "complete", None
    if index % 97 == 13:
        status, error = "failed", "RuntimeError: synthetic failure for the benchmark"
    elif index % 89 == 7:
        status, error = "diverged", "diverged: loss nan and gradient norm inf at step 120"
    table = sort_metrics(run_table(rng, config, steps))
    store_files.write_parquet(path / store_files.METRICS_FILE, table, fsync=False)
    if with_arrays:
        T, S = config.seq_len, HIDDEN * (2 if config.cell == "lstm" else 1)
        for step in range(0, steps * 10, 10):
            hidden = np.tanh(rng.normal(0, 1, (T + 1, 4, HIDDEN))).astype(np.float32)
            sv = np.sort(rng.lognormal(-0.5, 0.5, (T, S)), axis=1)[:, ::-1].astype(np.float32)
            store_files.write_array(
                store_files.array_path(path, "hidden_sample", step), hidden, False
            )
            store_files.write_array(
                store_files.array_path(path, "step_jacobian_sv", step), sv, False
            )
    loss = table.filter(pa.compute.equal(table["name"], "loss"))["value"].to_numpy()
    rate = {"rnn": 0.15, "gru": 0.04, "lstm": 0.02}[config.cell] * config.gain
    record = {
        "format": FORMAT_VERSION,
        "run_id": run_id,
        "status": status,
        "config": config.to_dict(),
        "seed": config.seed,
        "created": now_iso(),
        "finished": now_iso(),
        "duration_s": 12.5,
        "summary": {
            "final_loss": float(loss[-10:].mean()),
            "baseline_loss": 0.1667,
            "steps_done": steps * 10,
            "final_grad_norm": 1.0,
            "decay_rate": -rate,
            "theory_rate": float("nan"),
        },
        "error": error,
        "versions": versions(),
        "git_commit": None,
        "writer": writer_info(),
        "task": {"name": "adding", "seq_len": config.seq_len},
        "record_steps": list(range(0, steps * 10, 10)),
    }
    store_files.write_json(path / store_files.RUN_JSON, record, fsync=False)
    return run_id


def build(root: Path, runs: int, steps: int, with_arrays: set[int]) -> list[str]:
    """Write the store; returns the run ids in grid order."""
    jobs = [(str(root), c, steps, i, i in with_arrays) for i, c in enumerate(configs(runs, steps))]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(write_run, jobs, chunksize=16))


def timed(fn, repeat: int) -> tuple[float, float]:
    """(first call, median of the next ``repeat`` calls), in seconds."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


# ----------------------------------------------------------------------------- measurements
def serve(root: Path) -> tuple[str, object, object]:
    """Start the dashboard of ``root`` on 127.0.0.1 (free port) in a thread: (url, app, stop)."""
    import logging

    from werkzeug.serving import make_server

    from dashboards.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app(root)
    httpd = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{httpd.server_port}", app, httpd.shutdown


ALL_DRAWN = """(n) => {
    const g = Array.from(document.querySelectorAll('.js-plotly-plot'));
    return g.length >= n && g.every(d => d.data && d.data.length > 0);
}"""


def browser_times(url: str, run_id: str, n_graphs: int, compare: list[str]) -> list[tuple]:
    """First loads (navigation → everything drawn) and one figure update, in Chromium."""
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        server_ms: list[float] = []

        def on_response(response):
            if "_dash-update-component" in response.url:
                t = response.request.timing
                server_ms.append(t["responseStart"] - t["requestStart"])

        page.on("response", on_response)
        t0 = time.perf_counter()
        page.goto(url + "/")
        page.wait_for_selector("#runs-table td")
        out.append(("first load of / (1,000-row table)", time.perf_counter() - t0, 2.0))
        t0 = time.perf_counter()
        page.goto(f"{url}/run/{run_id}")
        page.wait_for_function(ALL_DRAWN, arg=n_graphs)
        out.append((f"first load of /run/<id> ({n_graphs} figures)", time.perf_counter() - t0, 2.0))
        t0 = time.perf_counter()
        page.reload()
        page.wait_for_function(ALL_DRAWN, arg=n_graphs)
        out.append(("reload of /run/<id> (warm caches)", time.perf_counter() - t0, 2.0))
        server_ms.clear()
        t0 = time.perf_counter()
        page.locator("#run-scale input[value=linear]").check()
        page.wait_for_function(
            """() => {
                const g = document.querySelector('#run-fig-timestep_profile .js-plotly-plot');
                return g && g.layout.yaxis.type === 'linear';
            }"""
        )
        out.append(("scale change → redrawn in the browser", time.perf_counter() - t0, None))
        page.wait_for_timeout(500)
        if server_ms:
            out.append(("  slowest of its requests, server side", max(server_ms) / 1e3, 0.3))
        t0 = time.perf_counter()
        page.goto(f"{url}/compare?runs={','.join(compare)}")
        page.wait_for_function(ALL_DRAWN, arg=4)
        out.append(("first load of /compare (3 runs)", time.perf_counter() - t0, 2.0))
        t0 = time.perf_counter()
        page.goto(f"{url}/sweep/bench")
        page.wait_for_function(ALL_DRAWN, arg=1)
        out.append(("first load of /sweep/bench (1,000 runs)", time.perf_counter() - t0, 2.0))
        browser.close()
    return out


def server_times(app, root: Path, run_id: str, compare: list[str], repeat: int) -> list[tuple]:
    """In-process times of the layouts and of every figure callback: (label, first, median)."""
    from dashboards import data
    from dashboards.app import page_module

    runs_page, run_page = page_module("runs"), page_module("run")
    compare_page, sweep_page = page_module("compare"), page_module("sweep")
    out = []
    with app.server.test_request_context("/"):
        out.append(("layout /", *timed(runs_page.layout, repeat), 2.0))
        out.append(
            ("layout /run/<id>", *timed(lambda: run_page.layout(run_id=run_id), repeat), 2.0)
        )
        steps = data.recorded_steps(str(root), run_id)
        values = {
            "step": steps[len(steps) // 2],
            "quantity": "grad_hidden",
            "norm": "spectral",
            "scale": "log",
            "layer": "0:0",
        }
        for spec in run_page.SPECS:
            if spec.name not in run_page.FIGURE_CALLBACKS:
                continue
            cb = run_page.FIGURE_CALLBACKS[spec.name]
            args = [values[n] for n in run_page.uses(spec)]
            fn = partial(cb, run_id, *args)
            out.append((f"run figure {spec.name}", *timed(fn, repeat), 0.3))
        for spec in compare_page.SPECS:
            cb = compare_page.FIGURE_CALLBACKS[spec.name]
            vals = {"step": "latest", "quantity": "grad_hidden", "scale": "log"}
            args = [vals[n] for n in compare_page.uses(spec)]
            fn = partial(cb, compare, *args)
            out.append((f"compare figure {spec.name} (3 runs)", *timed(fn, repeat), 0.3))
        out.append(
            ("layout /sweep/bench", *timed(lambda: sweep_page.layout(name="bench"), repeat), 2.0)
        )
        for color in ("decay_rate", "loss_ratio", "first_fraction"):
            fn = partial(sweep_page.update_phase_diagram, "bench", "gain", "seq_len", color)
            out.append((f"phase diagram {color} (1,000 runs)", *timed(fn, repeat), 0.3))
    return out


# ----------------------------------------------------------------------------- demo store
#: Targets of a first visit on the demo store (seconds).
FIRST_FIGURE_S, ALL_FIGURES_S, FIRST_PNG_S = 1.0, 2.5, 1.5
#: Records (performance.now(), ms from navigation) when each figure of the page is first drawn:
#: a graph with plotly's SVG and either traces or a message (a no-data figure), not the
#: empty placeholder a card shows until its callback answers.
DRAWN_RECORDER = """
window.__drawn = {};
setInterval(() => {
  for (const g of document.querySelectorAll('.page .js-plotly-plot')) {
    const key = (g.closest('[id]') || g).id;
    if (key in window.__drawn || !g._fullLayout || !g.querySelector('.main-svg')) continue;
    if ((g.data && g.data.length) || (g.layout.annotations || []).length)
      window.__drawn[key] = performance.now();
  }
}, 5);
"""
ALL_RECORDED = """() => {
  const n = document.querySelectorAll('.page .figure-graph').length;
  return n > 0 && Object.keys(window.__drawn).length >= n;
}"""


def first_visit(page, url: str) -> tuple[float, float, int]:
    """(first figure, all figures, number of figures) of one page load, in seconds."""
    page.goto(url)
    page.wait_for_function(ALL_RECORDED, timeout=60_000)
    drawn = list(page.evaluate("() => window.__drawn").values())
    return min(drawn) / 1e3, max(drawn) / 1e3, len(drawn)


def demo_times(url: str, run_ids: list[str], compare: str) -> list[tuple[str, float, float]]:
    """(label, seconds, target) of first visits and the first PNG download, in Chromium."""
    from playwright.sync_api import sync_playwright

    out: list[tuple[str, float, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1400, "height": 900}
        )
        page = context.new_page()
        page.add_init_script(DRAWN_RECORDER)
        first_visit(page, f"{url}/run/{run_ids[0]}")  # warm: code imported, plotly.js cached
        firsts, alls = [], []
        for run_id in run_ids[1:]:
            first, every, n = first_visit(page, f"{url}/run/{run_id}")
            firsts.append(first)
            alls.append(every)
            print(f"  /run/{run_id}: first figure {first:.2f} s, all {n} {every:.2f} s")
        for label, values in (("first figure", firsts), ("all figures", alls)):
            target = FIRST_FIGURE_S if label == "first figure" else ALL_FIGURES_S
            out.append((f"run page, {label} (median)", statistics.median(values), target))
            out.append((f"run page, {label} (slowest)", max(values), target))
        first, every, n = first_visit(page, url + compare)
        print(f"  {compare}: first figure {first:.2f} s, all {n} {every:.2f} s")
        out.append(("compare page, first figure", first, FIRST_FIGURE_S))
        out.append(("compare page, all figures", every, ALL_FIGURES_S))
        page.goto(f"{url}/run/{run_ids[0]}")
        page.wait_for_function(ALL_RECORDED, timeout=60_000)
        button = page.locator("#run-card-timestep_profile button", has_text="PNG")
        t0 = time.perf_counter()
        with page.expect_download(timeout=60_000) as download:
            button.click()
        download.value.path()
        out.append(("first PNG download (click → file)", time.perf_counter() - t0, FIRST_PNG_S))
        browser.close()
    return out


def demo_main(where: str) -> None:
    """The first-visit timings on the demo store ``where`` (a folder, or "build")."""
    from dashboards.app import warm_exports
    from gradlab.cli import demo_spec_path, run_demo
    from gradlab.story import compare_path, measure
    from gradlab.sweep import load_spec

    tmp = None
    root = Path(where)
    if where == "build":
        tmp = tempfile.mkdtemp(prefix="gradlab-demo-bench-")
        root = Path(tmp)
        t0 = time.perf_counter()
        run_demo(root, progress=False)
        print(f"built the demo store in {time.perf_counter() - t0:.0f} s")
    try:
        store = open_store(root, fsync=False)
        runs = store.runs()
        run_ids = list(runs.loc[runs["status"] == "complete", "run_id"])
        if len(run_ids) < 2:
            raise SystemExit(f"{root} holds {len(run_ids)} complete runs: make the demo first")
        try:
            compare = compare_path(measure(load_spec(demo_spec_path()), store))
        except (KeyError, ValueError):  # not the whole demo: compare its first three runs
            compare = f"/compare?runs={','.join(run_ids[:3])}"
        t0 = time.perf_counter()
        url, _app, stop = serve(root)
        warm_exports()  # as `gradlab dash` does at start-up
        print(
            f"dashboard of {len(run_ids)} runs ({root}) served in {time.perf_counter() - t0:.1f} s"
        )
        try:
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"first visits (Chromium, {os.cpu_count()} CPUs, load {load}, warm server):")
            rows = demo_times(url, run_ids, compare)
        finally:
            stop()
        print(f"{'':2s}{'measure':44s} {'time':>8s} {'target':>8s}")
        for label, seconds, target in rows:
            ok = "met" if seconds <= target else "NOT MET"
            print(f"  {label:44s} {seconds:7.2f}s {target:7.1f}s  {ok}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, help="store folder (kept); default: a temp dir")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=40, help="recorded steps per run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium timings")
    parser.add_argument(
        "--demo",
        nargs="?",
        const="runs",
        metavar="STORE",
        help="first-visit targets on the demo store (a folder, default ./runs; 'build': make it)",
    )
    args = parser.parse_args()
    if args.demo is not None:
        demo_main(args.demo)
        return

    tmp = None
    root = args.dir
    if root is None:
        tmp = tempfile.mkdtemp(prefix="gradlab-dash-bench-")
        root = Path(tmp)
    try:
        store = open_store(root, fsync=False)
        cfgs = configs(args.runs, args.steps)
        # the opened runs: an RNN in the middle of the grid and its LSTM / GRU counterparts
        middle = (len(cfgs) // 2) // 3 * 3
        opened = {middle, middle + 1, middle + 2}
        if len(store.run_ids()) < args.runs:
            t0 = time.perf_counter()
            build(root, args.runs, args.steps, opened)
            size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
            print(
                f"built {args.runs} runs x {args.steps} recorded steps: "
                f"{size / 2**20:.0f} MiB in {time.perf_counter() - t0:.1f} s"
            )
        else:
            print(f"reusing the {len(store.run_ids())} runs in {root}")
        ids = [cfgs[i].run_id for i in sorted(opened)]
        run_id = ids[0]
        url, app, stop = serve(root)
        try:
            rows = []
            if not args.no_browser and os.path.exists(CHROMIUM):
                print("browser (Chromium, cold server caches first):")
                for label, seconds, target in browser_times(url, run_id, 8, ids):
                    ok = "" if target is None else ("ok" if seconds <= target else "SLOW")
                    goal = "" if target is None else f"{target * 1e3:6.0f}ms"
                    print(f"  {label:48s} {seconds * 1e3:8.0f}ms {goal:>8s}  {ok}")
            print(f"server (in process; first call, then median of the next {args.repeat}):")
            rows = server_times(app, root, run_id, ids, args.repeat)
            for label, first, median, target in rows:
                ok = "ok" if median <= target else "SLOW"
                print(
                    f"  {label:48s} {first * 1e3:8.1f}ms {median * 1e3:8.1f}ms "
                    f"{target * 1e3:6.0f}ms  {ok}"
                )
        finally:
            stop()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
