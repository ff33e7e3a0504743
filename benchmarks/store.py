"""Benchmark the run store's readers on a realistic sweep-sized store.

Builds (into a temp dir, or ``--dir``) a store of ``--runs`` complete runs (default 1,000), each
with ``--steps`` recorded steps (200) of a ``--T``-step sequence (100). Each recorded step has the
series a gradient-flow run records most:

* ``train`` / ``loss``, ``grad_norm``, ``clipped``     3 rows (t null)
* ``grad_hidden`` / ``norm``                          T+1 rows (t = 0..T)
* ``contribution`` / ``weight_hh``, ``weight_ih``      2·T rows (t = 1..T)
* ``step_jacobian`` / ``spectral``                    T rows (t = 1..T)

= 4·T + 4 = 404 rows per step, 80,800 per run, 80.8 M rows for the default store (about 0.7 GB of
zstd Parquet). Files are generated with pyarrow through the store's own writers (same layout,
row order and Parquet settings as RunWriter), without fsync.

Then times (median of ``--repeat``) ``store.runs()``, ``store.metrics(run_ids=[one])`` and an
aggregate over all runs (mean contribution norm per t per cell type) via ``store.query`` and
prints them against the targets 0.3 s, 50 ms and 1 s.

First it prints the write cost of one run recorded ``--recordings`` times (10, 100, 1000): a
RunWriter logs one recorded step's 404 rows and flushes, as ``train`` does, then finishes; the
cost per recording (flushes + finish) at 1000 must be within 2x of that at 10 (each flush writes
only its own rows; the old whole-file rewrite grew with the square of the recordings). Wall and
CPU seconds, median of ``--write-repeat`` runs, with fsync as the store does by default.

    .venv/bin/python benchmarks/store.py [--dir PATH] [--runs 1000] [--steps 200] [--T 100]
                                         [--recordings 10 100 1000] [--writes-only]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

from gradlab.store import METRICS_SCHEMA, open_store, run_id_for
from gradlab.store import files as store_files
from gradlab.store.provenance import versions, writer_info
from gradlab.store.schema import sort_metrics
from gradlab.store.writer import FORMAT_VERSION, now_iso

CELLS = ("rnn", "lstm", "gru")
AGGREGATE_SQL = """
SELECT r.cell, m.t, avg(m.value) AS mean_norm, count(*) AS n
FROM metrics AS m JOIN runs AS r USING (run_id)
WHERE m.probe = 'contribution' AND m.name = 'weight_hh'
GROUP BY r.cell, m.t
ORDER BY r.cell, m.t
"""


def configs(n: int, T: int) -> list[dict]:
    """n distinct run configs of a sweep grid (cell x hidden x gain x lr x seed)."""
    # seed varies slowest, cell fastest: any prefix of the grid mixes all cell types
    grid = itertools.product(
        range(100), (1e-3, 1e-2), (0.5, 0.9, 1.0, 1.1, 1.5), (32, 64, 128), CELLS
    )
    out = []
    for seed, lr, gain, hidden, cell in itertools.islice(grid, n):
        out.append(
            {
                "task": "copy",
                "cell": cell,
                "activation": "tanh" if cell == "rnn" else None,
                "hidden_size": hidden,
                "T": T,
                "init": {"scheme": "orthogonal", "gain": gain},
                "optimizer": {"name": "adam", "lr": lr},
                "seed": seed,
            }
        )
    return out


def run_table(rng: np.random.Generator, steps: int, T: int, stride: int) -> pa.Table:
    """One run's metrics rows (see the module docstring for the mix)."""
    step_ids = np.arange(steps, dtype=np.int64) * stride
    rate = rng.uniform(0.02, 0.2)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in METRICS_SCHEMA.names}

    def add(probe: str, name: str, ts: np.ndarray | None, values: np.ndarray, layered: bool):
        n_t = 1 if ts is None else len(ts)
        cols["step"].append(np.repeat(step_ids, n_t))
        cols["probe"].append(np.full(steps * n_t, probe, dtype=object))
        cols["name"].append(np.full(steps * n_t, name, dtype=object))
        layer = np.zeros(steps * n_t) if layered else np.full(steps * n_t, np.nan)
        cols["layer"].append(layer)
        cols["direction"].append(layer.copy())
        cols["t"].append(np.full(steps * n_t, np.nan) if ts is None else np.tile(ts, steps))
        cols["value"].append(values.reshape(-1))

    loss = np.exp(-np.linspace(0, 3, steps)) + rng.normal(0, 0.01, steps)
    add("train", "loss", None, loss, False)
    add("train", "grad_norm", None, rng.lognormal(0, 0.5, steps), False)
    add("train", "clipped", None, (rng.random(steps) < 0.1).astype(float), False)
    t_all = np.arange(T + 1, dtype=np.int64)
    decay = np.exp(-rate * (T - t_all))[None, :] * rng.lognormal(0, 0.1, (steps, T + 1))
    add("grad_hidden", "norm", t_all, decay, True)
    t1 = t_all[1:]
    add("contribution", "weight_hh", t1, decay[:, 1:] * rng.lognormal(0, 0.2, (steps, T)), True)
    add("contribution", "weight_ih", t1, decay[:, 1:] * rng.lognormal(0, 0.2, (steps, T)), True)
    add("step_jacobian", "spectral", t1, rng.lognormal(-0.05, 0.1, (steps, T)), True)
    arrays = []
    for field in METRICS_SCHEMA:
        data = np.concatenate(cols[field.name])
        arrays.append(pa.array(data, type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=METRICS_SCHEMA)


def write_run(args: tuple[str, dict, int, int, int]) -> int:
    """Write one complete run folder; returns its row count."""
    root, config, steps, T, index = args
    run_id = run_id_for(config)
    path = store_files.run_dir(Path(root), run_id)
    path.mkdir(parents=True, exist_ok=True)
    table = sort_metrics(run_table(np.random.default_rng(index), steps, T, stride=10))
    store_files.write_parquet(path / store_files.METRICS_FILE, table, fsync=False)
    loss = table.filter(pa.compute.equal(table["name"], "loss"))["value"].to_numpy()
    record = {
        "format": FORMAT_VERSION,
        "run_id": run_id,
        "status": "complete",
        "config": config,
        "seed": config["seed"],
        "created": now_iso(),
        "finished": now_iso(),
        "duration_s": 12.5,
        "summary": {
            "final_loss": float(loss[-1]),
            "baseline_loss": float(loss[0]),
            "steps_done": steps * 10,
        },
        "error": None,
        "versions": versions(),
        "git_commit": None,
        "writer": writer_info(),
    }
    store_files.write_json(path / store_files.RUN_JSON, record, fsync=False)
    return table.num_rows


def build(root: Path, runs: int, steps: int, T: int) -> int:
    """Build the store; returns the total row count."""
    jobs = [(str(root), c, steps, T, i) for i, c in enumerate(configs(runs, T))]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return sum(pool.map(write_run, jobs, chunksize=16))


def timed(fn, repeat: int) -> tuple[float, float, float, object]:
    """(first call, median wall, median CPU of the next ``repeat`` calls) in s, last result.

    CPU time is the process's (all DuckDB threads), a load-independent check on wall time.
    """
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return first, statistics.median(walls), statistics.median(cpus), result


def write_cost(root: Path, recordings: int, T: int, fsync: bool) -> dict[str, float]:
    """Seconds (wall, and this process's CPU) to write one run recorded ``recordings`` times."""
    store = open_store(root, fsync=fsync)
    rng = np.random.default_rng(recordings)
    rows = [
        run_table(rng, 1, T, 1).set_column(0, "step", pa.array(np.full(4 * T + 4, i, np.int64)))
        for i in range(recordings)
    ]
    t0 = time.perf_counter()
    writer = store.create_run(f"write-cost-{recordings}-{uuid.uuid4().hex[:8]}", {"T": T})
    t1, c1 = time.perf_counter(), time.process_time()
    for table in rows:
        writer.log_metrics(table)
        writer.flush()
    t2 = time.perf_counter()
    writer.finish()
    t3, c3 = time.perf_counter(), time.process_time()
    return {
        "create": t1 - t0,
        "flushes": t2 - t1,
        "finish": t3 - t2,
        "per_recording": (t3 - t1) / recordings,
        "cpu_per_recording": (c3 - c1) / recordings,
    }


def live_read_cost(root: Path, recordings: int, T: int) -> tuple[float, float]:
    """Seconds of ``store.metrics(run)`` on a run flushed ``recordings`` times, before and after
    ``finish`` (its part files, then the one compacted file); fresh store objects, no fsync."""
    store = open_store(root, fsync=False)
    writer = store.create_run(f"live-read-{recordings}-{uuid.uuid4().hex[:8]}", {"T": T})
    rng = np.random.default_rng(recordings)
    for i in range(recordings):
        table = run_table(rng, 1, T, 1)
        writer.log_metrics(table.set_column(0, "step", pa.array(np.full(4 * T + 4, i))))
        writer.flush()
    seconds = []
    for finish in (False, True):
        if finish:
            writer.finish()
        reader = open_store(root, fsync=False)
        reader.metrics(writer.run_id)  # DuckDB start-up
        t0 = time.perf_counter()
        rows = reader.metrics(writer.run_id)
        seconds.append(time.perf_counter() - t0)
        assert len(rows) == recordings * (4 * T + 4)
    return seconds[0], seconds[1]


def report_write_cost(root: Path, counts: list[int], T: int, repeat: int, fsync: bool) -> None:
    """Print the write cost table (medians of ``repeat`` runs per count) and the 2x check."""
    print(
        f"write cost of one run, {4 * T + 4} rows per recording (T={T}), fsync "
        f"{'on' if fsync else 'off'}, median of {repeat}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'recordings':>10s} {'create':>9s} {'flushes':>9s} {'finish':>9s} "
        f"{'per rec.':>9s} {'cpu/rec.':>9s}"
    )
    per: dict[int, float] = {}
    cpu: dict[int, float] = {}
    write_cost(root, 2, T, fsync)  # warm-up: imports, first Parquet writer
    for n in counts:
        runs = [write_cost(root, n, T, fsync) for _ in range(repeat)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        per[n], cpu[n] = med["per_recording"], med["cpu_per_recording"]
        print(
            f"{n:10d} {med['create'] * 1e3:7.1f}ms {med['flushes']:8.3f}s {med['finish']:8.3f}s "
            f"{per[n] * 1e3:7.2f}ms {cpu[n] * 1e3:7.2f}ms"
        )
    live, done = live_read_cost(root, max(counts), T)
    print(
        f"store.metrics(run) at {max(counts)} recordings: {live * 1e3:.1f} ms over its part "
        f"files while running, {done * 1e3:.1f} ms over metrics.parquet once finished"
    )
    lo, hi = min(counts), max(counts)
    ratio, cpu_ratio = per[hi] / per[lo], cpu[hi] / cpu[lo]
    verdict = "ok" if ratio <= 2 else "SLOW"
    print(
        f"per-recording cost at {hi} / at {lo}: {ratio:.2f}x wall, {cpu_ratio:.2f}x cpu "
        f"(target <= 2x)  {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, help="store folder (kept); default: a temp dir")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: one per core)")
    parser.add_argument("--recordings", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--write-repeat", type=int, default=3)
    parser.add_argument("--no-fsync", action="store_true", help="write cost without fsync")
    parser.add_argument("--writes-only", action="store_true", help="skip the reader benchmark")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gradlab-write-bench-") as scratch:
        report_write_cost(
            Path(scratch), args.recordings, args.T, args.write_repeat, not args.no_fsync
        )
    if args.writes_only:
        return

    tmp = None
    root = args.dir
    if root is None:
        tmp = tempfile.mkdtemp(prefix="gradlab-store-bench-")
        root = Path(tmp)
    try:
        store = open_store(root, fsync=False)
        existing = len(store.run_ids())
        if existing < args.runs:
            t0 = time.perf_counter()
            rows = build(root, args.runs, args.steps, args.T)
            size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
            print(
                f"built {args.runs} runs x {args.steps} steps x T={args.T}: {rows:,} rows, "
                f"{size / 2**20:.0f} MiB in {time.perf_counter() - t0:.1f} s"
            )
        else:
            print(f"reusing {existing} runs in {root}")
        one = store.run_ids()[len(store.run_ids()) // 2]

        # cold store caches (the OS page cache may be warm)
        fresh = open_store(root, fsync=False, threads=args.threads)
        results = [
            ("store.runs()", lambda: fresh.runs(), 0.3),
            ("store.metrics(run_ids=[one])", lambda: fresh.metrics(run_ids=[one]), 0.05),
            ("aggregate via store.query", lambda: fresh.query(AGGREGATE_SQL), 1.0),
        ]
        load = os.getloadavg()[0]
        print(
            f"{os.cpu_count()} CPUs, load average {load:.1f}, "
            f"DuckDB threads {args.threads or 'all'}"
        )
        print(f"{'operation':30s} {'first':>9s} {'median':>9s} {'cpu':>9s} {'target':>8s}  rows")
        for label, fn, target in results:
            first, median, cpu, out = timed(fn, args.repeat)
            ok = "ok" if median <= target else "SLOW"
            print(
                f"{label:30s} {first * 1e3:7.1f}ms {median * 1e3:7.1f}ms {cpu * 1e3:7.1f}ms "
                f"{target * 1e3:6.0f}ms  {len(out):,}  {ok}"
            )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
