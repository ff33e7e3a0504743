"""Bounds before work: a spec's run count from its axis lengths (refused past max_runs before a
run is built), the per-run memory estimate, dead workers, and workers that die with the sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sweep_helpers import run_dirs

import gradlab.sweep.spec as spec_module
from gradlab.cli import main
from gradlab.config import RunConfig
from gradlab.store import open_store
from gradlab.sweep import DEFAULT_MAX_RUNS, SpecError, load_spec, run_sweep
from gradlab.sweep.memory import format_bytes, run_memory_bytes

# 10 × 10 × 10 × 10 × 10 × 10 = 10**6 runs.
MILLION = "\n".join(f"{k} = {list(range(1, 11))}" for k in ("seed", "truncate", "jacobian_samples"))
MILLION += "\n" + "\n".join(
    f"{k} = {[round(0.1 * i, 1) for i in range(1, 11)]}" for k in ("gain", "bias_scale", "lr")
)


@pytest.fixture
def count_built(monkeypatch):
    """How many RunConfigs the spec module builds (each one a run enumerated)."""
    built = [0]
    original = RunConfig.from_dict.__func__

    def counting(cls, values, source="config"):
        built[0] += 1
        return original(cls, values, source)

    monkeypatch.setattr(spec_module.RunConfig, "from_dict", classmethod(counting))
    return built


def test_a_million_run_grid_is_refused_with_its_count_before_any_run_is_built(
    make_spec, count_built
):
    path = make_spec("million", MILLION)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "1000000 runs at scale demo (10 seed × 10 truncate × 10 jacobian_samples" in message
    assert f"more than max_runs = {DEFAULT_MAX_RUNS}" in message
    assert "--max-runs 1000000" in message
    assert count_built[0] == 0


@pytest.mark.parametrize(
    ("max_runs", "ok"), [(5, False), (6, True), (None, True)], ids=["5-refused", "6-ok", "none"]
)
def test_max_runs_counts_grid_and_includes(make_spec, max_runs, ok):
    path = make_spec(
        "counted",
        "seed = [0, 1]\ncell = ['rnn', 'lstm']",
        extra="[[include]]\nseed = 7\n[[include]]\nseed = 8\n",
    )
    if ok:
        assert len(load_spec(path, max_runs=max_runs)) == 6
    else:
        with pytest.raises(SpecError, match=r"6 runs at scale demo \(2 seed × 2 cell \+ 2 from"):
            load_spec(path, max_runs=max_runs)


def test_a_huge_full_scale_is_checked_value_by_value_at_demo_scale(make_spec, count_built):
    full = "[full]\n" + MILLION.replace("seed = ", "hidden_samples = ")
    path = make_spec("big-full", "seed = [0, 1]", extra=full)
    assert len(load_spec(path)) == 2
    # The demo's 2 runs, then at full scale [base] and each value alone: 2 seeds, 6 axes of 10.
    assert count_built[0] == 2 + (1 + 2 + 6 * 10)
    with pytest.raises(SpecError, match="2000000 runs at scale full"):
        load_spec(path, scale="full")
    bad = make_spec("bad-full", "seed = [0, 1]", extra=full.replace("[1, 2,", "[-1, 2,", 1))
    with pytest.raises(SpecError, match=r"\(scale full\) \[grid\] hidden_samples = -1"):
        load_spec(bad)


def test_cli_refuses_a_million_runs_before_importing_torch(make_spec):
    """The count comes from the raw TOML's axis lengths, so the refusal needs no torch (whose
    import alone takes seconds): a fresh interpreter exits 2 with torch never imported."""
    million = make_spec("million", MILLION)
    code = (
        "import sys\n"
        "from gradlab.cli import main\n"
        f"status = main(['sweep', {str(million)!r}, '--dry-run'])\n"
        "assert status == 2, status\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "1000000 runs" in result.stderr and "nothing was built" in result.stderr


def test_cli_dry_run_refuses_a_million_runs_and_max_runs_lets_a_grid_through(
    make_spec, tmp_path, capsys
):
    store = tmp_path / "store"
    million = make_spec("million", MILLION)
    assert main(["sweep", str(million), "--store", str(store), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "1000000 runs" in err and "--max-runs 1000000" in err
    three = make_spec("three", "seed = [0, 1, 2]")
    assert main(["sweep", str(three), "--store", str(store), "--dry-run", "--max-runs", "2"]) == 2
    assert "3 runs at scale demo" in capsys.readouterr().err
    assert main(["sweep", str(three), "--store", str(store), "--dry-run", "--max-runs", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["run_id", "action", "seed", "memory"]
    for config, line in zip(load_spec(three).configs, out[2:5], strict=True):
        size = format_bytes(run_memory_bytes(config))
        assert line.split() == [config.run_id, "run", str(config.seed), *size.split()]
    assert out[5].startswith("memory: a lower bound") and not store.exists()


@pytest.mark.parametrize(
    ("change", "factor"),
    [
        ({"seq_len": 100}, (1.9, 2.0)),  # every T-sized tensor doubles; parameters do not
        ({"dtype": "float64"}, (2.0, 2.0)),
        ({"cell": "lstm"}, (1.6, 4.0)),  # 4 gates + 2 states vs 1 + 1; adjoint 2 states
        ({"batch_size": 64, "probe_batch": 64}, (2.0, 4.0)),
    ],
    ids=["twice-T", "float64", "lstm", "twice-batches"],
)
def test_memory_estimate_grows_with_the_config(change, factor):
    base = RunConfig(seq_len=50, hidden_size=64)
    ratio = run_memory_bytes(base.replace(**change)) / run_memory_bytes(base)
    assert factor[0] <= ratio <= factor[1], ratio


def test_memory_estimate_of_a_small_rnn_by_hand():
    config = RunConfig(seq_len=10, hidden_size=8, batch_size=4, probe_batch=2)
    # params 4·1·1·8·(2·8+2)·4, graph 10·4·1·2·8·4, trace 11·2·1·2·8·4, adjoint 2·11·2·1·(8+2)·4
    expected = 4 * 8 * 18 * 4 + 10 * 4 * 2 * 8 * 4 + 11 * 2 * 2 * 8 * 4 + 2 * 11 * 2 * 10 * 4
    assert run_memory_bytes(config) == expected
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(100) == "100 B"


def test_a_worker_that_dies_leaves_its_run_failed_with_the_reason(make_spec, tmp_path):
    spec = load_spec(make_spec("dies", "seed = [0, 1, 2]"))
    store = tmp_path / "store"
    # Seed 2 failed in an earlier sweep: it is to be redone, and its old record must not be
    # mistaken for a run the broken pool had started.
    old = open_store(store).create_run(spec.configs[2].run_id, spec.configs[2].to_dict())
    old.finish("failed", error="an earlier failure")
    result = run_sweep(
        spec, store, workers=1, progress=False, train_fn="sweep_helpers:train_or_die"
    )
    ids = {c.seed: c.run_id for c in spec.configs}
    runs = open_store(store).runs().set_index("run_id")
    assert runs.loc[ids[1], "status"] == "failed"
    reason = runs.loc[ids[1], "reason"]
    assert "the worker process running it died" in reason and "SIGKILL" in reason
    # The runs before and after it are complete: the one not yet started went to a new pool.
    assert {runs.loc[ids[s], "status"] for s in (0, 2)} == {"complete"}
    assert (result.complete, result.failed) == (2, 1)
    assert "SIGKILL" in result.failures[0][1]
    assert run_dirs(store) == sorted(ids.values())


SWEEP_SCRIPT = """
import sys
sys.path.insert(0, {helpers!r})
from gradlab.sweep import run_sweep
run_sweep({spec!r}, {store!r}, workers=2, progress=False, train_fn="sweep_helpers:hold_the_gil")
"""


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state, ppid, ...), None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _cpu_ticks(pid: int) -> int:
    """CPU time (clock ticks, user + system) process ``pid`` has used so far."""
    stat = _stat(pid)
    assert stat is not None, f"worker {pid} is gone"
    return int(stat[11]) + int(stat[12])  # fields 14 and 15: utime, stime


#: Bounds a wait that should end in seconds, generous for a loaded machine (a failure bound).
DEADLINE_S = 300.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guard needs Linux")
def test_killed_sweep_leaves_no_live_worker_even_one_holding_the_gil(make_spec, tmp_path):
    spec = make_spec("held", "seed = [0, 1]")
    store = tmp_path / "store"
    script = SWEEP_SCRIPT.format(
        helpers=str(Path(__file__).parent), spec=str(spec), store=str(store)
    )
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    pids_dir = tmp_path / "pids"
    try:
        while not pids_dir.is_dir() or len(list(pids_dir.iterdir())) < 2:
            assert proc.poll() is None, "the sweep ended before its workers were stuck"
            time.sleep(0.05)
        workers = [int(p.name) for p in pids_dir.iterdir()]
        # Each worker wrote its pid just before sum(range(10**18)): CPU time it uses from now
        # on is spent inside that one C call, with the GIL held.
        ticks = {pid: _cpu_ticks(pid) for pid in workers}
        deadline = time.monotonic() + DEADLINE_S
        while any(_cpu_ticks(pid) < ticks[pid] + 5 for pid in workers):
            assert time.monotonic() < deadline, "the workers never got into their C call"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # The guard kills each worker as soon as it sees the sweep gone; the deadline only bounds a
    # failure (without the guard the workers would run for centuries).
    deadline = time.monotonic() + DEADLINE_S
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them running if the test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], f"workers outlived their killed sweep by {DEADLINE_S:.0f} s"
