"""Start-up time of the ``gradlab`` command: ``--help``, ``--version``, ``runs`` and ``show``.

Each command runs as a user runs it, in a fresh interpreter (``python -m gradlab ...``), against
a small real store (``--runs`` tiny runs trained with ``gradlab.train`` into a temporary folder,
or ``--store DIR``). The commands are run in turns, ``--repeat`` times each, and the median
wall time is printed in seconds and as a ratio to ``python -c pass`` (the interpreter's own
start-up), with the machine's core count and load average. Target: ``--help`` <= 0.5 s.
Exits 1 if the target is missed.

``--write`` puts the measurement into the README's ``<!-- cli-startup -->`` line.

    .venv/bin/python benchmarks/cli.py [--repeat 9] [--runs 24] [--store DIR] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
STARTUP = re.compile(r"(<!-- cli-startup -->).*?(<!-- /cli-startup -->)", re.DOTALL)
HELP_TARGET_S = 0.5


def _fill(store: Path, runs: int) -> None:
    """``runs`` tiny complete runs of one sweep (distinct seeds, two cells)."""
    from gradlab.train import train

    base = dict(task="adding", seq_len=5, hidden_size=4, steps=3, batch_size=8, probe_batch=4)
    for i in range(runs):
        train({**base, "cell": ("rnn", "gru")[i % 2], "seed": i, "sweep": "bench"}, store)


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(argv)} exited {done.returncode}: {done.stderr}")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="runs of each command (median)")
    parser.add_argument("--runs", type=int, default=24, help="runs in the temporary store")
    parser.add_argument("--store", help="time `runs` and `show` on this store instead")
    parser.add_argument("--write", action="store_true", help="write the result into the README")
    args = parser.parse_args(argv)

    temp = None if args.store else tempfile.mkdtemp(prefix="cli-bench-")
    store = Path(args.store) if args.store else Path(str(temp), "store")
    try:
        if temp is not None:
            _fill(store, args.runs)
        from gradlab.store import open_store

        run_ids = open_store(store, fsync=False).run_ids()
        if not run_ids:
            print(f"error: no runs in {store}")
            return 2
        gradlab = [sys.executable, "-m", "gradlab"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "gradlab --help": [*gradlab, "--help"],
            "gradlab --version": [*gradlab, "--version"],
            "gradlab runs": [*gradlab, "runs", "--store", str(store)],
            "gradlab show RUN_ID": [*gradlab, "show", run_ids[0], "--store", str(store)],
        }
        load = os.getloadavg()[0]
        walls: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):  # in turns, so a burst of load hits every command alike
            for name, command in commands.items():
                walls[name].append(_time(command))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    median = {name: statistics.median(w) for name, w in walls.items()}
    base = median["python -c pass"]
    cores = os.cpu_count()
    print(
        f"median of {args.repeat} fresh processes each; {len(run_ids)} runs in the store; "
        f"{cores} cores, 1-minute load average {load:.2f}"
    )
    print(f"{'command':<22}{'median s':>10}{'x python':>10}{'min s':>8}{'max s':>8}")
    for name, w in walls.items():
        ratio = median[name] / base
        print(f"{name:<22}{median[name]:>10.3f}{ratio:>10.1f}{min(w):>8.3f}{max(w):>8.3f}")
    ok = median["gradlab --help"] <= HELP_TARGET_S
    verdict = "PASS" if ok else "FAIL"
    print(f"gradlab --help {median['gradlab --help']:.2f} s <= {HELP_TARGET_S} s: {verdict}")

    if args.write:
        day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")

        def quoted(name: str) -> str:
            return f"{median[name]:.2f} s ({median[name] / base:.0f}× `python -c pass`)"

        line = (
            f"Measured by `python benchmarks/cli.py` on {day} (median of {args.repeat} fresh "
            f"processes, {cores} cores, 1-minute load average {load:.1f}): `gradlab --help` "
            f"{quoted('gradlab --help')}, `--version` {quoted('gradlab --version')}, "
            f"`gradlab runs` over {len(run_ids)} runs {quoted('gradlab runs')}, `gradlab show` "
            f"{quoted('gradlab show RUN_ID')}; `python -c pass` itself {base:.2f} s."
        )
        readme, n = STARTUP.subn(
            lambda m: f"{m.group(1)}{line}{m.group(2)}", README.read_text("utf-8")
        )
        if n != 1:
            print("error: the README has no <!-- cli-startup --> ... <!-- /cli-startup --> line")
            return 2
        README.write_text(readme, encoding="utf-8")
        print(f"wrote {README}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
