"""Sweeps stopped from outside: kill -9 mid-way and Ctrl-C, then resumed.

The sweep runs as a user would start it (``python -m gradlab sweep``, a real process pool), with
one difference: its runs are held at a gate after their first step (``sweep_helpers.gated_train``),
so the test knows which run is in flight and decides when it may finish. Every wait is for an
event (a barrier file a run creates, a line the sweep prints, a status in the store); deadlines
only bound a failure, and no outcome depends on how fast the machine is.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sweep_helpers import FAILING_PLUGIN, gate_dir, run_dirs

from gradlab.cli import main
from gradlab.store import open_store
from gradlab.sweep import load_spec, run_sweep

pytestmark = pytest.mark.slow

HELPERS = str(Path(__file__).resolve().parent)

# Tiny runs: the gate, not their length, keeps a run in flight.
BASE = """
[base]
hidden_size = 4
seq_len = 5
steps = 3
batch_size = 8
probe_batch = 4
"""

#: ``python -m gradlab sweep ARGS`` whose runs use ``sweep_helpers.gated_train``: the command
#: line, its process pool, Ctrl-C handling and exit code as a user gets them. Started as from a
#: terminal, with Python's own SIGINT handler, whatever the test run inherited: a suite started
#: in the background of a non-interactive shell (``cmd &``, as CI scripts do) runs with SIGINT
#: and SIGQUIT ignored, the sweep inherits that and rightly ignores the test's Ctrl-C (it did:
#: "no answer to Ctrl-C within 300 s" under load, SigIgn 0x1006 in /proc for both processes).
GATED_CLI = f"""
import faulthandler, functools, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's Ctrl-C reaches it
faulthandler.register(signal.SIGUSR1, all_threads=True)  # a failed wait asks for its stacks
sys.path.insert(0, {HELPERS!r})
import gradlab.sweep
gradlab.sweep.run_sweep = functools.partial(
    gradlab.sweep.run_sweep, train_fn="sweep_helpers:gated_train"
)
from gradlab.cli import main
raise SystemExit(main(sys.argv[1:]))
"""

#: Bounds a wait that should end in seconds, generous for a loaded machine (a failure, not a
#: measurement).
DEADLINE_S = 300.0


def start_sweep(spec: Path, store: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", GATED_CLI, "sweep", str(spec), "--store", str(store)]
    cmd += ["--workers", "1", "--no-progress"]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for(
    what: str,
    ready: Callable[[], bool],
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> None:
    """Poll until ``ready()``; fails if ``proc`` ends first or after DEADLINE_S. A sweep still
    running at the deadline is asked for every thread's stack (SIGUSR1, see GATED_CLI), and the
    failure shows the end of its ``log`` with them."""
    deadline = time.monotonic() + DEADLINE_S
    while not ready():
        if proc is not None:
            assert proc.poll() is None, f"the sweep ended (exit {proc.returncode}) before {what}"
        if time.monotonic() >= deadline:
            pytest.fail(f"no {what} within {DEADLINE_S:.0f} s{_stacks(proc, log)}")
        time.sleep(0.02)


def _stacks(proc: subprocess.Popen | None, log: Path | None) -> str:
    """The end of a stuck sweep's log after it has dumped its threads' stacks (or "")."""
    if proc is None or log is None or proc.poll() is not None:
        return ""
    proc.send_signal(signal.SIGUSR1)
    limit = time.monotonic() + 30  # the dump is a diagnostic of a failure already decided
    while "most recent call first" not in log.read_text() and time.monotonic() < limit:
        time.sleep(0.05)
    signals = f"{_signal_state(proc.pid)}\nthe test's: {_signal_state(os.getpid())}"
    return f"; the sweep's log and its threads' stacks:\n{log.read_text()[-8000:]}\n{signals}"


def _catches(pid: int, signum: int) -> bool | None:
    """Whether process ``pid`` has a handler for ``signum`` (/proc's SigCgt; None without /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M)[1], 16)
    return bool(caught >> (signum - 1) & 1)


def _signal_state(pid: int) -> str:
    """The kernel's view of a process's signals, thread by thread (/proc): pending, blocked,
    ignored and caught masks (SIGINT is bit 1: 0x2) — whether a Ctrl-C could reach Python."""
    lines = []
    for status in sorted(Path(f"/proc/{pid}/task").glob("*/status")):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        keys = ("Name", "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
        lines.append(" ".join(f"{k}={fields.get(k, '?').strip()}" for k in keys))
    return f"signal masks of pid {pid}'s threads (/proc):\n" + "\n".join(lines)


def started(store: Path) -> list[str]:
    """Ids of the runs held at the gate so far (or let through it)."""
    gate = gate_dir(store)
    return sorted(p.name.removesuffix(".started") for p in gate.glob("*.started"))


def wait_no_live_writer(store: Path) -> None:
    def none_alive() -> bool:
        return not open_store(store).runs()["alive"].any()

    wait_for("exit of the killed sweep's worker", none_alive)


def test_killed_sweep_resumes_with_every_run_complete_once(make_spec, tmp_path, capsys):
    spec_path = make_spec(
        "killed",
        "seed = [0, 1, 2, 3]",
        base=f"plugins = [{FAILING_PLUGIN!r}]\n{BASE}",
        extra='[[include]]\nseed = 9\nactivation = "failing"\n',
    )
    spec = load_spec(spec_path)
    good = sorted(c.run_id for c in spec.configs[:4])
    bad = spec.configs[4].run_id
    store = tmp_path / "store"
    proc = start_sweep(spec_path, store, tmp_path / "first.log")
    try:
        # One worker: the first run finishes once let through, then the second is held.
        wait_for("first run at the gate", lambda: len(started(store)) == 1, proc)
        (first,) = started(store)
        (gate_dir(store) / f"{first}.go").touch()
        wait_for("second run at the gate", lambda: len(started(store)) == 2, proc)
        (held,) = set(started(store)) - {first}
        runs = open_store(store).runs().set_index("run_id")
        assert runs.loc[first, "status"] == "complete"
        assert runs.loc[held, "status"] == "running" and runs.loc[held, "alive"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE_S)
    assert proc.returncode == -signal.SIGKILL
    # The worker notices its parent is gone and exits: no orphan keeps writing.
    wait_no_live_writer(store)
    before = open_store(store).runs().set_index("run_id")["status"].to_dict()
    assert before == {first: "complete", held: "interrupted"}

    # Run it again (the CLI's entry point, in-process, the plain train function): everything
    # left is done, the failing run fails, and the exit code says so.
    assert main(["sweep", str(spec_path), "--store", str(store), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "1 failed, 1 skipped" in out
    assert "[4/4]" in out  # the three good runs left (the interrupted one redone) and the bad one
    after = open_store(store).runs().set_index("run_id")["status"].to_dict()
    assert run_dirs(store) == sorted([*good, bad])  # one folder per run, none twice
    assert {r: after[r] for r in good} == dict.fromkeys(good, "complete")
    assert after[bad] == "failed"


def test_ctrl_c_lets_runs_in_flight_finish_and_exits_130(make_spec, tmp_path):
    spec_path = make_spec("interrupted", "seed = [0, 1, 2, 3, 4, 5]", base=BASE)
    ids = sorted(c.run_id for c in load_spec(spec_path).configs)
    store = tmp_path / "store"
    log = tmp_path / "sweep.log"
    proc = start_sweep(spec_path, store, log)
    try:
        # Every run submitted (the sweep says so) and the first one held in flight.
        wait_for(
            "run in flight",
            lambda: "running 6 run(s)" in log.read_text() and len(started(store)) == 1,
            proc,
            log,
        )
        (in_flight,) = started(store)
        runs = open_store(store).runs()
        assert runs["run_id"].tolist() == [in_flight]
        assert runs["status"].tolist() == ["running"] and runs["alive"].all()
        # a Ctrl-C can reach it (not ignored, as a sweep started with `&` from a script is)
        assert _catches(proc.pid, signal.SIGINT) is not False, _signal_state(proc.pid)
        proc.send_signal(signal.SIGINT)
        # The sweep has cancelled what had not started; only then may the held run finish.
        answered = lambda: "interrupted: waiting for" in log.read_text()  # noqa: E731
        wait_for("answer to Ctrl-C", answered, proc, log)
        (gate_dir(store) / "all.go").touch()
        assert proc.wait(timeout=DEADLINE_S) == 130
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    out = log.read_text()
    # The runs in flight: the one at the gate and those the pool had queued for its worker.
    waited = int(re.search(r"waiting for the (\d+) run\(s\) in flight", out)[1])
    not_run = int(re.search(r"(\d+) not run", out)[1])
    assert waited + not_run == len(ids) and not_run >= 1, out
    runs = open_store(store).runs()
    assert not runs["alive"].any()
    # What was in flight finished; what had not started did not.
    assert set(runs["status"]) == {"complete"}
    assert in_flight in set(runs["run_id"]) and len(runs) == waited
    result = run_sweep(spec_path, store, workers=2, progress=False)
    assert (result.skipped, result.complete, result.failed) == (len(runs), len(ids) - len(runs), 0)
    assert run_dirs(store) == ids
    assert set(open_store(store).runs()["status"]) == {"complete"}


def test_a_ctrl_c_is_raised_only_where_the_sweep_looks_for_it():
    """While a sweep runs, SIGINT is counted and raised as KeyboardInterrupt at its checks
    (between waits), once per press, never inside a lock; the handler is restored after."""
    from gradlab.sweep.runner import _CtrlC

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _CtrlC() as ctrl_c:
            assert ctrl_c.installed
            ctrl_c.check()  # nothing pressed: nothing raised
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.monotonic() + DEADLINE_S
            while ctrl_c.presses < 2:  # Python runs the handler at its next check of signals
                assert time.monotonic() < deadline, "the SIGINTs never reached the handler"
                time.sleep(0.01)
            for _ in range(2):  # two presses: two KeyboardInterrupts, one at each check
                with pytest.raises(KeyboardInterrupt):
                    ctrl_c.check()
            ctrl_c.check()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # an ignored SIGINT stays ignored
        with _CtrlC() as ctrl_c:
            assert not ctrl_c.installed
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
