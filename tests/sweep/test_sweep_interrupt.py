"""Sweeps stopped from outside: kill -9 mid-way and Ctrl-C, then resumed.

The sweep runs as a user would start it (``python -m gradlab sweep``, a real process pool);
the store is watched until at least one run is complete and another is in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import FAILING_PLUGIN, run_dirs

from gradlab.cli import main
from gradlab.store import open_store
from gradlab.sweep import load_spec, run_sweep

pytestmark = pytest.mark.slow

# Runs of about a second each, so the sweep can be caught mid-way.
SLOWER_BASE = """
[base]
hidden_size = 4
seq_len = 5
steps = 40
record_every = 10
batch_size = 8
probe_batch = 4
"""


def start_sweep(spec: Path, store: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gradlab", "sweep", str(spec), "--store", str(store)]
    cmd += ["--workers", "1", "--no-progress"]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_until_midway(proc: subprocess.Popen, store: Path, timeout: float = 120.0) -> None:
    """Until the store has >= 1 complete run and >= 1 run with a live writer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        if (store / "runs").is_dir():
            runs = open_store(store).runs()
            done = (runs["status"] == "complete").sum()
            live = ((runs["status"] == "running") & runs["alive"]).sum()
            if done >= 1 and live >= 1:
                return
        time.sleep(0.02)
    raise AssertionError("the sweep never had a complete run and a run in flight")


def wait_no_live_writer(store: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while open_store(store).runs()["alive"].any():
        assert time.monotonic() < deadline, "a worker outlived its killed sweep"
        time.sleep(0.05)


def test_killed_sweep_resumes_with_every_run_complete_once(make_spec, tmp_path, capsys):
    spec_path = make_spec(
        "killed",
        "seed = [0, 1, 2, 3]",
        base=f"plugins = [{FAILING_PLUGIN!r}]\n{SLOWER_BASE}",
        extra='[[include]]\nseed = 9\nactivation = "failing"\n',
    )
    spec = load_spec(spec_path)
    good = sorted(c.run_id for c in spec.configs[:4])
    bad = spec.configs[4].run_id
    store = tmp_path / "store"
    proc = start_sweep(spec_path, store, tmp_path / "first.log")
    try:
        wait_until_midway(proc, store)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # The worker notices its parent is gone and exits: no orphan keeps writing.
    wait_no_live_writer(store)
    before = open_store(store).runs().set_index("run_id")["status"].to_dict()
    assert "interrupted" in before.values() and "complete" in before.values()
    done_before = {r for r, s in before.items() if s == "complete"}

    # Run it again (the CLI's entry point, in-process): everything left is done, the failing
    # run fails, and the exit code says so.
    assert main(["sweep", str(spec_path), "--store", str(store), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"1 failed, {len(done_before)} skipped" in out
    todo = len(good) + 1 - len(done_before)
    assert f"[{todo}/{todo}]" in out
    after = open_store(store).runs().set_index("run_id")["status"].to_dict()
    assert run_dirs(store) == sorted([*good, bad])  # one folder per run, none twice
    assert {r: after[r] for r in good} == dict.fromkeys(good, "complete")
    assert after[bad] == "failed"


def test_ctrl_c_lets_runs_in_flight_finish_and_exits_130(make_spec, tmp_path):
    spec_path = make_spec("interrupted", "seed = [0, 1, 2, 3, 4, 5]", base=SLOWER_BASE)
    ids = sorted(c.run_id for c in load_spec(spec_path).configs)
    store = tmp_path / "store"
    log = tmp_path / "sweep.log"
    proc = start_sweep(spec_path, store, log)
    try:
        wait_until_midway(proc, store)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    out = log.read_text()
    assert "interrupted" in out and "not run" in out
    runs = open_store(store).runs()
    assert not runs["alive"].any()
    # What was in flight finished; what had not started did not.
    assert set(runs["status"]) == {"complete"}
    assert 1 <= len(runs) < len(ids)
    result = run_sweep(spec_path, store, workers=2, progress=False)
    assert (result.skipped, result.complete, result.failed) == (len(runs), len(ids) - len(runs), 0)
    assert run_dirs(store) == ids
    assert set(open_store(store).runs()["status"]) == {"complete"}
