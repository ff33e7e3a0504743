"""Real processes: a writer killed with SIGKILL, concurrent writers, one run id claimed twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gradlab.store import RunExistsError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX flock and signals")

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import importlib.util, sys, time, types

    # Load gradlab.store without running gradlab/__init__ (it imports torch: seconds per process).
    spec = importlib.util.find_spec("gradlab")
    pkg = types.ModuleType("gradlab")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["gradlab"] = pkg

    import numpy as np
    from gradlab.store import RunExistsError, open_store

    root, run_id, mode, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = open_store(root, fsync=False)
    try:
        w = store.create_run(run_id, {"run": run_id, "seed": 1})
    except RunExistsError as exc:
        print("exists", exc.status, flush=True)
        sys.exit(0)
    for step in range(steps):
        w.log_metrics({"step": step, "probe": "train", "name": "loss",
                       "value": [len(run_id) * 100 + step]})
        w.save_array("spectrum", step, np.full(4, step, dtype=np.float32))
        w.flush()
    print("ready", flush=True)
    if mode == "hang":
        sys.stdin.read()  # holds the run open until the test kills this process
    elif mode == "hold":
        time.sleep(0.5)
    w.finish(summary={"steps_done": steps})
    print("wrote", flush=True)
    """
)


def _spawn(tmp_path: Path, root: Path, run_id: str, mode: str, steps: int) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    if not script.exists():
        script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [sys.executable, str(script), str(root), run_id, mode, str(steps)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_mid_run_leaves_a_dead_running_run(store, tmp_path):
    proc = _spawn(tmp_path, store.root, "victim", "hang", 3)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        row = store.runs().iloc[0]
        assert row["status"] == "running" and row["alive"]
        with pytest.raises(RunExistsError, match="live process"):  # same id, other process
            store.create_run("victim", {}, overwrite=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    row = store.runs().iloc[0]
    assert row["status"] == "interrupted" and not row["alive"]
    assert f"pid {proc.pid}" in row["reason"]
    # the store stays usable: the flushed rows are readable, arrays too
    assert store.metrics("victim")["step"].tolist() == [0, 1, 2]
    assert store.run("victim").array_steps("spectrum") == [0, 1, 2]
    assert store.query("SELECT count(*) AS n FROM metrics")["n"].tolist() == [3]
    with pytest.raises(RunExistsError, match="overwrite=True"):
        store.create_run("victim", {})
    with store.create_run("victim", {"redo": True}, overwrite=True) as w:
        w.log_metrics({"step": [9], "probe": "train", "name": "loss", "value": [0.0]})
    info = store.run("victim")
    assert info.status == "complete" and info.config == {"redo": True}
    assert info.metrics()["step"].tolist() == [9] and info.array_steps("spectrum") == []


def test_concurrent_writers(store, tmp_path):
    """Three processes at once: two runs written side by side, and one id claimed twice."""
    ids = ["left", "right-1"]
    procs = [(rid, _spawn(tmp_path, store.root, rid, "hold", 4)) for rid in ("left", *ids)]
    outcomes: dict[str, list[list[str]]] = {rid: [] for rid in ids}
    for rid, proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        outcomes[rid].append(out.split())
    assert outcomes["right-1"] == [["ready", "wrote"]]
    wrote, refused = sorted(outcomes["left"], key=lambda o: o[0] == "exists")
    assert wrote == ["ready", "wrote"], outcomes  # exactly one writer of "left"...
    assert refused[0] == "exists" and refused[1] in ("running", "complete"), outcomes
    df = store.runs().set_index("run_id")
    assert (df["status"] == "complete").all() and (df["steps_done"] == 4).all()
    for rid in ids:  # ...and each run holds its own data
        m = store.metrics(rid)
        assert m["step"].tolist() == list(range(4))
        assert m["value"].tolist() == [len(rid) * 100 + s for s in range(4)]
        assert store.run(rid).array("spectrum", 3).tolist() == [3.0] * 4
    assert sorted(store.metrics()["run_id"].unique()) == ids


def test_writer_lock_is_released_when_the_writer_object_dies(store):
    w = store.create_run("r", {})
    del w
    deadline = time.monotonic() + 2
    while store.runs().iloc[0]["alive"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not store.runs().iloc[0]["alive"]
