"""The demo's story, measured: run the demo sweep as ``gradlab demo`` does and check every claim.

Runs ``experiments/vanishing-vs-lstm.toml`` with ``gradlab.cli.run_demo`` (the same spec and the
same local process pool, one worker per CPU) into a fresh temporary store, without the
dashboard, then prints per claim of ``gradlab.story.check`` the measured figure, the threshold
and PASS/FAIL, and the sweep's wall time (claim: <= 180 s) with the machine's core count and
load average. Exits 1 if any claim fails.

``--write`` also puts the measured story into the spec's ``description`` and the README's demo
block and timing line (tests/test_story.py checks that they match what the demo measures).

    .venv/bin/python benchmarks/demo_story.py [--workers N] [--store DIR] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from gradlab import story
from gradlab.cli import demo_spec_path, run_demo
from gradlab.store import open_store
from gradlab.sweep import load_spec
from gradlab.sweep.executors import available_cpus

README = Path(__file__).resolve().parent.parent / "README.md"
TIMING = re.compile(r"(<!-- demo-timing -->).*?(<!-- /demo-timing -->)", re.DOTALL)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    parser.add_argument("--store", help="store folder (default: a fresh temporary one)")
    parser.add_argument(
        "--write", action="store_true", help="write the story into the spec and the README"
    )
    args = parser.parse_args(argv)

    spec_path = demo_spec_path()
    spec = load_spec(spec_path)
    temp = None if args.store else tempfile.mkdtemp(prefix="demo-story-")
    store_path = Path(args.store or temp)
    try:
        if args.store and (store_path / "runs").is_dir() and any((store_path / "runs").iterdir()):
            print(f"error: {store_path} is not empty; the benchmark times a fresh sweep")
            return 2
        cores = available_cpus()
        load_before = _load()
        start = time.perf_counter()
        result = run_demo(store_path, workers=args.workers, progress=False)
        wall = time.perf_counter() - start
        load_after = _load()
        if not result.ok or result.complete != len(spec):
            print(f"error: the sweep did not complete every run ({result})")
            return 1
        measures = story.measure(spec, open_store(store_path, fsync=False))
        claims = [*story.check(measures), story.wall_claim(wall)]
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    workers = args.workers or cores
    print(f"demo sweep {spec.name}: {len(spec)} runs on {workers} worker(s), {cores} core(s)")
    print(
        f"wall time {wall:.1f} s; load average (1 / 5 / 15 min) {load_before} before, "
        f"{load_after} after"
    )
    print()
    for claim in claims:
        print(claim.line())
    print()
    print("description:", story.render_description(measures))
    print()
    print(story.render_readme(measures))
    failed = sum(not c.passed for c in claims)
    print()
    print(
        f"{len(claims) - failed} of {len(claims)} claims PASS"
        + (f", {failed} FAIL" if failed else "")
    )

    if args.write:
        text = spec_path.read_text(encoding="utf-8")
        spec_path.write_text(
            story.replace_description(text, story.render_description(measures)), encoding="utf-8"
        )
        readme = story.replace_readme_block(
            README.read_text(encoding="utf-8"), story.render_readme(measures)
        )
        day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        timing = (
            f"Measured by `python benchmarks/demo_story.py` on {day}: the sweep took "
            f"{wall:.0f} s wall on {workers} workers, {cores} cores (1-minute load average "
            f"{load_before.split(' / ')[0]} when it started)."
        )
        readme, n = TIMING.subn(lambda m: f"{m.group(1)}{timing}{m.group(2)}", readme)
        if n != 1:
            print("error: the README has no <!-- demo-timing --> ... <!-- /demo-timing --> line")
            return 2
        README.write_text(readme, encoding="utf-8")
        print(f"wrote {spec_path} and {README}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
