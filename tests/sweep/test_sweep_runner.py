"""run_sweep on real executors (a process pool, a dask LocalCluster) with the real trainer.

Runs are tiny (hidden_size 4, seq_len 5, 3 steps). The process pool's forkserver is started
once per test session, so only the first sweep here pays for warming it up.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sweep_helpers import FAILING_INCLUDE, FAILING_MESSAGE, FAILING_PLUGIN, run_dirs

from gradlab.store import open_store
from gradlab.sweep import SweepError, load_spec, make_executor, plan_sweep, run_sweep

FOUR = 'cell = ["rnn", "lstm"]\nseed = [0, 1]'


def statuses(store: Path) -> dict[str, str]:
    runs = open_store(store).runs()
    return dict(zip(runs["run_id"], runs["status"], strict=True))


def test_process_pool_sweep_completes_and_resume_skips(make_spec, tmp_path, capsys):
    spec = load_spec(make_spec("pool", FOUR))
    store = tmp_path / "store"
    result = run_sweep(spec, store, workers=2, progress=False)
    assert (result.total, result.complete, result.failed, result.skipped) == (4, 4, 0, 0)
    assert result.ok and result.exit_code == 0 and result.run_s > 0
    ids = sorted(c.run_id for c in spec.configs)
    assert statuses(store) == dict.fromkeys(ids, "complete")
    out = capsys.readouterr().out
    assert out.count(" complete ") == 4  # one line per finished run (not a terminal)
    assert "sweep pool done: 4 runs: 4 complete, 0 diverged, 0 failed, 0 skipped" in out
    # Same spec again: nothing to do, nothing rewritten.
    before = {i: (store / "runs" / f"run_id={i}" / "run.json").stat().st_mtime_ns for i in ids}
    again = run_sweep(spec, store, workers=2, progress=False)
    assert (again.complete, again.skipped, again.exit_code) == (0, 4, 0)
    after = {i: (store / "runs" / f"run_id={i}" / "run.json").stat().st_mtime_ns for i in ids}
    assert before == after and run_dirs(store) == ids


def test_dask_local_cluster_sweep_completes(make_spec, tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = load_spec(make_spec("dasky", FOUR))
    store = tmp_path / "store"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        result = run_sweep(spec, store, dask_address=cluster.scheduler_address, progress=False)
    assert (result.complete, result.failed) == (4, 0)
    assert statuses(store) == dict.fromkeys((c.run_id for c in spec.configs), "complete")


def test_bad_executor_settings_are_clear_errors():
    pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(SweepError, match="cannot connect to the dask scheduler"):
            make_executor(dask_address="tcp://127.0.0.1:9")
    with pytest.raises(SweepError, match="workers must be >= 1"):
        make_executor(workers=0)
    with pytest.raises(SweepError, match="needs a scheduler address"):
        make_executor("dask")


def test_a_failing_run_is_failed_and_the_others_complete(make_spec, tmp_path):
    spec = load_spec(
        make_spec("failing", "seed = [0, 1]", extra=FAILING_INCLUDE), plugins=(FAILING_PLUGIN,)
    )
    store = tmp_path / "store"
    result = run_sweep(spec, store, workers=2, progress=False)
    assert (result.complete, result.failed, result.exit_code) == (2, 1, 1)
    assert not result.ok
    good = [c.run_id for c in spec.configs[:2]]
    bad = spec.configs[2].run_id
    assert [r for r, _ in result.failures] == [bad]
    assert FAILING_MESSAGE in result.failures[0][1]
    assert statuses(store) == {good[0]: "complete", good[1]: "complete", bad: "failed"}
    # The traceback is kept in run.json (the store's reason).
    reason = open_store(store).run(bad).reason
    assert "Traceback" in reason and FAILING_MESSAGE in reason
    # Resume: complete runs are skipped, the failed one redone (and fails again), no duplicate.
    plan = {p.run_id: p.action for p in plan_sweep(spec, store)}
    assert plan == {good[0]: "skip", good[1]: "skip", bad: "redo"}
    again = run_sweep(spec, store, workers=2, progress=False)
    assert (again.complete, again.failed, again.skipped) == (0, 1, 2)
    assert run_dirs(store) == sorted([*good, bad])


def test_any_executor_and_a_train_fn_that_raises_before_it_writes(make_spec, tmp_path):
    """A caller's Executor (threads here) and train function (in-process, so no pickling):
    a train_fn that raises before creating its run still leaves a failed run with the error."""
    from concurrent.futures import ThreadPoolExecutor

    from gradlab.train import train

    def train_or_refuse(config, store, *, overwrite=False, progress=None):
        if config.seed == 1:
            raise RuntimeError("refused before writing anything")
        return train(config, store, overwrite=overwrite, progress=progress)

    spec = load_spec(make_spec("custom", "seed = [0, 1, 2]"))
    store = tmp_path / "store"
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = run_sweep(spec, store, executor=pool, train_fn=train_or_refuse, progress=False)
        assert not pool._shutdown  # a caller's executor is left running
    assert (result.complete, result.failed, result.exit_code) == (2, 1, 1)
    refused = spec.configs[1].run_id
    assert result.failures == [(refused, "RuntimeError: refused before writing anything")]
    info = open_store(store).run(refused)
    assert info.status == "failed" and "refused before writing anything" in info.reason
    assert info.config["seed"] == 1


def _set_status(store: Path, run_id: str, status: str) -> None:
    path = store / "runs" / f"run_id={run_id}" / "run.json"
    meta = json.loads(path.read_text())
    meta["status"] = status
    path.write_text(json.dumps(meta))


def test_resume_redoes_failed_corrupt_and_abandoned_runs_and_skips_busy_ones(make_spec, tmp_path):
    spec = load_spec(make_spec("resume", "seed = [0, 1, 2, 3, 4, 5]"))
    ids = [c.run_id for c in spec.configs]
    store = tmp_path / "store"
    assert run_sweep(spec, store, workers=2, progress=False).complete == 6
    # Leave the store as crashes and other sweeps would: a failed run, a corrupt run.json, a
    # "running" run whose writer is gone (its lock is free), a diverged run (a result: kept),
    # and a run that a live writer (this process) holds.
    _set_status(store, ids[0], "failed")
    (store / "runs" / f"run_id={ids[1]}" / "run.json").write_text("{ not json")
    _set_status(store, ids[2], "running")
    _set_status(store, ids[3], "diverged")
    s = open_store(store)
    s.delete(ids[4])
    writer = s.create_run(ids[4], spec.configs[4].to_dict())
    try:
        assert statuses(store)[ids[1]] == "corrupt"
        plan = {p.run_id: p.action for p in plan_sweep(spec, store)}
        assert plan == dict(zip(ids, ["redo", "redo", "redo", "skip", "busy", "skip"], strict=True))
        result = run_sweep(spec, store, workers=2, progress=False)
        assert (result.complete, result.skipped, result.failed) == (3, 3, 0)
        assert any("another process is writing" in n for n in result.notes)
        assert statuses(store) == dict(
            zip(ids, ["complete", "complete", "complete", "diverged", "running", "complete"],
                strict=True)
        )  # fmt: skip
    finally:
        writer.finish("complete")
    assert run_dirs(store) == sorted(ids)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal(make_spec, tmp_path):
    spec = load_spec(
        make_spec("bar", "seed = [0, 1]", extra=FAILING_INCLUDE), plugins=(FAILING_PLUGIN,)
    )
    out = FakeTerminal()
    result = run_sweep(spec, tmp_path / "store", workers=2, progress=True, out=out)
    text = out.getvalue()
    assert (result.complete, result.failed) == (2, 1)
    assert "runs/min" in text and "3/3" in text and "1 failed" in text
    # Failed runs still get their own line above the bar; the summary ends the output.
    assert f"{spec.configs[2].run_id} failed" in text
    assert "sweep bar done: 3 runs: 2 complete, 0 diverged, 1 failed, 0 skipped" in text
