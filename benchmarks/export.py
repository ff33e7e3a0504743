"""Benchmark static export: 20 figures in one call against one figure (target: <= 3x).

Trains (into a temp dir, or ``--dir``; reused when it already holds the runs) a small real store:
an rnn, an lstm and a gru on the adding task (``--T`` steps, 32 hidden units, ``--steps``
optimiser steps, a recording every 10), with `gradlab.train.train`. Then, with no browser
running before each measurement (so every call pays Chromium's start, as a fresh
``gradlab export`` does), times (median of ``--repeat``):

* one:   ``export("timestep_profile", ...)``: load from the store, build, render one file;
* batch: ``export_many([...20 figures...])``: every figure kind, run-scope ones for each cell
  type, in one call (one browser, one render batch);
* stock: the same batch with kaleido's own behaviour (reload the page after every figure),
  to show what gradlab's tab reuse saves;

each call starting Chromium in the background while it reads the store and builds figures.
Then, with the browser already warm, the same single figure and batch again.

    .venv/bin/python benchmarks/export.py [--dir PATH] [--format pdf] [--repeat 3] [--T 50]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradlab.config import RunConfig
from gradlab.export import close_default_renderer, export, export_many, find_browser
from gradlab.export.render import Renderer
from gradlab.store import open_store

SWEEP = "bench-export"
TARGET = 3.0


def build_store(path: Path, T: int, steps: int) -> list[str]:
    """Train the three runs into `path` (skipping those already there); their ids."""
    from gradlab.train import train

    store = open_store(path, fsync=False)
    ids = []
    for cell in ("rnn", "lstm", "gru"):
        config = RunConfig(
            cell=cell,
            seq_len=T,
            hidden_size=32,
            steps=steps,
            record_every=10,
            clip=1.0,
            init="gaussian" if cell == "rnn" else "default",
            gain=0.95 if cell == "rnn" else 1.0,
            sweep=SWEEP,
        )
        if config.run_id not in store:
            t0 = time.perf_counter()
            train(config, store)
            print(f"  trained {cell} in {time.perf_counter() - t0:.1f} s")
        ids.append(config.run_id)
    return ids


def batch_items(ids: list[str], out: Path, fmt: str) -> list[tuple[str, list[str], Path]]:
    """20 (figure, runs, path): the overlay figures over all three runs, the run figures for
    each cell type where they apply, the phase diagram of the sweep."""
    _, lstm, gru = ids
    items = [
        ("timestep_profile", ids),
        ("jacobian_lag", ids),
        ("saturation", ids),
        ("training", ids),
        ("phase_diagram", ids),
        ("gates", [lstm]),
        ("gates", [gru]),
        ("cell_vs_hidden", [lstm]),
    ]
    for name in ("gradient_flow", "step_jacobian", "singular_values", "hidden_trajectory"):
        items += [(name, [rid]) for rid in ids]
    assert len(items) == 20, len(items)
    return [
        (name, run_ids, out / f"{i:02d}-{name}.{fmt}") for i, (name, run_ids) in enumerate(items)
    ]


def time_one(store: Path, ids: list[str], out: Path, fmt: str) -> float:
    close_default_renderer()
    t0 = time.perf_counter()
    export("timestep_profile", out / f"one.{fmt}", store=store, run_ids=ids)
    return time.perf_counter() - t0


def time_batch(
    store: Path,
    ids: list[str],
    out: Path,
    fmt: str,
    renderer: Renderer | None = None,
    cold: bool = True,
    start: bool = False,
) -> float:
    """export_many over the 20 items, each figure built by name from the store. `cold`: close
    the shared browser first, so the call starts its own; `start`: start `renderer` in the
    background while the figures build, as export_many does with the shared one."""
    from gradlab.export.data import load_figure_data
    from gradlab.figures import FIGURES

    if cold:
        close_default_renderer()
    t0 = time.perf_counter()
    if renderer is not None and start:
        pool = ThreadPoolExecutor(max_workers=1)
        renderer = pool.submit(renderer.start)
        pool.shutdown(wait=False)
    figs = []
    for name, run_ids, path in batch_items(ids, out, fmt):
        spec = FIGURES[name]
        opts = {"run_id": run_ids[0]} if spec.scope == "run" else {}
        figs.append((spec.builder(load_figure_data(store, name, run_ids, **opts), **opts), path))
    export_many(figs, store=store, renderer=renderer)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="store folder (kept; reused if trained)")
    parser.add_argument("--format", default="pdf", choices=("pdf", "svg", "png"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--T", type=int, default=50, help="sequence length")
    parser.add_argument("--steps", type=int, default=100, help="optimiser steps per run")
    args = parser.parse_args()
    if find_browser() is None:
        raise SystemExit("no Chrome/Chromium: apt-get install chromium, or set BROWSER_PATH")
    tmp = Path(tempfile.mkdtemp(prefix="gradlab-export-bench-"))
    store = args.dir or tmp / "store"
    out = tmp / "out"
    out.mkdir()
    try:
        print(f"store {store} (T={args.T}, {args.steps} steps, 3 runs)")
        ids = build_store(store, args.T, args.steps)
        fmt = args.format
        time_one(store, ids, out, fmt)  # warm imports, caches and the OS file cache
        ones, batches, stocks = [], [], []
        for _ in range(args.repeat):
            ones.append(time_one(store, ids, out, fmt))
            batches.append(time_batch(store, ids, out, fmt))
            stock = Renderer(reload_every=1)
            try:
                stocks.append(time_batch(store, ids, out, fmt, renderer=stock, start=True))
            finally:
                stock.close()
        one, batch, stock = (statistics.median(x) for x in (ones, batches, stocks))
        # warm browser: the marginal cost of a figure
        export("timestep_profile", out / f"warm.{fmt}", store=store, run_ids=ids)
        t0 = time.perf_counter()
        export("timestep_profile", out / f"warm.{fmt}", store=store, run_ids=ids)
        warm_one = time.perf_counter() - t0
        warm_batch = time_batch(store, ids, out, fmt, cold=False)
        close_default_renderer()
        ratio = batch / one
        print()
        print(f"format {fmt}, median of {args.repeat}, browser started inside each timed call")
        print(f"  1 figure,  one call:                  {one:6.2f} s")
        print(
            f"  20 figures, one call:                 {batch:6.2f} s   ({batch / 20:.2f} s/figure)"
        )
        print(f"  20 figures, stock kaleido reloads:    {stock:6.2f} s")
        print(f"  20 separate calls (20 x 1 figure):   ~{20 * one:6.2f} s   (each starts Chromium)")
        print("warm browser (already started):")
        print(f"  1 figure:                             {warm_one:6.2f} s")
        print(f"  20 figures:                           {warm_batch:6.2f} s")
        verdict = "OK" if ratio <= TARGET else "MISSED"
        print(f"ratio 20 / 1 = {ratio:.2f}x (target <= {TARGET:.0f}x): {verdict}")
    finally:
        close_default_renderer()
        shutil.rmtree(tmp / "out", ignore_errors=True)
        if args.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
