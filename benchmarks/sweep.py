"""Benchmark sweeps: parallel speed-up and the scheduling overhead per run.

1. Speed-up. A sweep of ``--runs`` (24) small runs (tanh RNN / LSTM / GRU, hidden 32,
   seq_len 50, 100 steps) with ``workers=2`` vs ``workers=1``, each into a fresh store with a
   fresh process pool: wall-time ratio, target <= 0.6.
2. Overhead. A sweep of ``--runs`` no-op-sized runs (hidden 2, seq_len 2, 1 step) with one
   worker: (wall time - sum of the time spent inside train) / runs, target <= 50 ms. Measured
   with a fresh pool (what ``gradlab sweep`` pays, worker start-up included) and with a pool
   that is already up (the per-run cost of scheduling alone).

The forkserver that forks the workers (and preloads torch and the trainer once per process) is
started before anything is timed; its start-up, a one-off of a few seconds per ``gradlab sweep``
command, is reported on its own.

    .venv/bin/python benchmarks/sweep.py [--runs 24] [--repeat 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

from gradlab.sweep import parse_spec, process_pool, run_sweep


def spec(name: str, base: dict, runs: int):
    cells = ["rnn", "lstm", "gru"]
    per_cell = -(-runs // len(cells))
    data = {"name": name, "base": base, "grid": {"cell": cells, "seed": list(range(per_cell))}}
    full = parse_spec(data, source=name)
    return dataclasses.replace(full, configs=full.configs[:runs])


SMALL = dict(hidden_size=32, seq_len=50, steps=100, record_every=25, batch_size=32)
NOOP = dict(hidden_size=2, seq_len=2, steps=1, batch_size=1, probe_batch=1, hidden_samples=1)


def timed(sweep, store: Path, **kwargs) -> tuple[float, float]:
    t0 = time.perf_counter()
    result = run_sweep(sweep, store, progress=False, out=open(os.devnull, "w"), **kwargs)
    wall = time.perf_counter() - t0
    assert result.complete == len(sweep.configs), result
    return wall, result.run_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=2, help="speed-up sweeps per worker count")
    args = parser.parse_args()
    n = args.runs
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        timed(spec("warmup", NOOP, 1), root / "warmup", workers=1)
        startup = time.perf_counter() - t0
        print(f"forkserver + first worker start-up (once per process): {startup:.2f} s")

        small = spec("small", SMALL, n)
        walls: dict[int, list[float]] = {1: [], 2: []}
        inside: dict[int, list[float]] = {1: [], 2: []}
        for rep in range(args.repeat):  # interleaved, so a burst of load hits both
            for workers in (1, 2):
                wall, run_s = timed(small, root / f"w{workers}-{rep}", workers=workers)
                walls[workers].append(wall)
                inside[workers].append(run_s / n)
        w1, w2 = min(walls[1]), min(walls[2])
        print(f"\n{n} small runs, best of {args.repeat} (fresh store and pool each time):")
        for workers in (1, 2):
            times = ", ".join(f"{w:.2f}" for w in walls[workers])
            mean_in = min(inside[workers])
            print(
                f"  workers={workers}: {min(walls[workers]):6.2f} s  [{times}]  "
                f"mean {mean_in:.2f} s/run inside train"
            )
        print(f"  ratio {w2 / w1:.2f}   (target <= 0.6)")

        noop = spec("noop", NOOP, n)
        wall, in_train = timed(noop, root / "cold", workers=1)
        cold = (wall - in_train) / n
        pool = process_pool(1)
        try:
            timed(spec("warm-up-pool", NOOP, 1), root / "prewarm", executor=pool)
            wall_w, inside_w = timed(noop, root / "warm", executor=pool)
        finally:
            pool.shutdown()
        warm = (wall_w - inside_w) / n
        pool2 = process_pool(2)
        try:
            timed(spec("warm-up-pool2", NOOP, 2), root / "prewarm2", executor=pool2)
            wall_2, inside_2 = timed(noop, root / "warm2", executor=pool2)
        finally:
            pool2.shutdown()
        both = (2 * wall_2 - inside_2) / n
        print(f"\n{n} no-op-sized runs (mean {in_train / n * 1000:.0f} ms in train):")
        print(f"  fresh pool, 1 worker:  {wall:5.2f} s wall, overhead {cold * 1000:5.1f} ms/run")
        print(f"  pool up,    1 worker:  {wall_w:5.2f} s wall, overhead {warm * 1000:5.1f} ms/run")
        print(
            f"  pool up,    2 workers: {wall_2:5.2f} s wall, "
            f"idle worker time {both * 1000:5.1f} ms/run"
        )
        print("  (target <= 50 ms/run)")
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
