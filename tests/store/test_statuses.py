"""Statuses, claims, redo, delete and corruption: the store never shows half-written runs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from store_testlib import make_rows, write_run

from gradlab.store import RunExistsError


def test_second_writer_of_a_live_run_is_refused(store):
    w = store.create_run("r", {"seed": 0})
    with pytest.raises(RunExistsError, match=r"'r'.*'running'.*live process") as info:
        store.create_run("r", {"seed": 0}, overwrite=True)
    assert info.value.run_id == "r" and info.value.status == "running"
    df = store.runs()
    assert df.loc[0, "status"] == "running" and df.loc[0, "alive"]
    with pytest.raises(RunExistsError, match="alive"):
        store.delete("r")
    w.finish()
    assert store.runs().loc[0, "status"] == "complete"


def test_complete_run_is_never_overwritten(store):
    write_run(store, "r")
    for overwrite in (False, True):
        with pytest.raises(RunExistsError, match=r"'complete'.*delete it first"):
            store.create_run("r", {}, overwrite=overwrite)
    store.delete("r")
    assert "r" not in store and store.runs().empty
    write_run(store, "r")  # redo after delete
    assert store.run("r").status == "complete"


@pytest.mark.parametrize("status", ["failed", "diverged"])
def test_finished_but_not_complete_runs_need_overwrite(store, status):
    write_run(store, "r", status=status, steps=3)
    with pytest.raises(RunExistsError, match="overwrite=True"):
        store.create_run("r", {})
    with store.create_run("r", {"seed": 9}, overwrite=True) as w:
        w.log_metrics(make_rows(7))
    info = store.run("r")
    assert info.status == "complete" and info.config == {"seed": 9}
    assert info.metrics()["step"].unique().tolist() == [7]  # old rows are gone


def test_exception_in_context_marks_failed_and_reraises(store):
    with pytest.raises(ZeroDivisionError), store.create_run("r", {}) as w:
        w.log_metrics(make_rows(0))
        w.save_array("hidden_sample", 0, np.zeros(3))
        1 / 0  # noqa: B018
    info = store.run("r")
    assert info.status == "failed"
    assert "ZeroDivisionError" in info.meta["error"] and "Traceback" in info.meta["error"]
    assert len(info.metrics()) == len(make_rows(0))  # flushed before failing
    df = store.runs()
    assert df.loc[0, "status"] == "failed" and "ZeroDivisionError" in df.loc[0, "reason"]


def test_abandoned_writer_leaves_an_interrupted_run(store):
    w = store.create_run("r", {})
    w.log_metrics(make_rows(0))
    w.flush()
    w._lock.release()  # what the kernel does when the writer process dies
    row = store.runs().iloc[0]
    assert row["status"] == "interrupted" and not row["alive"] and "is gone" in row["reason"]
    assert len(store.metrics("r")) == len(make_rows(0))
    with pytest.raises(RunExistsError, match=r"is gone.*overwrite=True"):
        store.create_run("r", {})
    store.create_run("r", {}, overwrite=True).finish()
    assert store.run("r").status == "complete" and store.metrics("r").empty


def test_failed_create_leaves_no_folder(store):
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        store.create_run("r", {"f": object()})
    assert "r" not in store


def _corrupt(path, how):
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"this is not parquet at all" * 10)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "damaged-pages":  # magic and footer intact, data pages scrambled
        data = bytearray(path.read_bytes())
        for i in range(64, len(data) - 600):
            data[i] = (data[i] * 7 + 13) % 256
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "damaged-pages"])
def test_corrupt_metrics_do_not_break_other_runs(store, how):
    logged = {rid: write_run(store, rid, {"seed": i}, steps=10, T=20)
              for i, rid in enumerate(["a", "b", "c"])}  # fmt: skip
    _corrupt(store.root / "runs/run_id=b/metrics.parquet", how)
    # queries over everything still work and hold every other run's rows
    agg = store.query("SELECT run_id, count(*) AS n FROM metrics GROUP BY 1 ORDER BY 1")
    assert agg["run_id"].tolist() == ["a", "c"]
    assert agg["n"].tolist() == [len(logged["a"]), len(logged["c"])]
    assert set(store.metrics()["run_id"]) == {"a", "c"}
    df = store.runs().set_index("run_id")
    assert df.loc["b", "status"] == "corrupt" and "metrics.parquet" in df.loc["b", "reason"]
    assert (df.loc[["a", "c"], "status"] == "complete").all()
    assert store.metrics("b").empty
    assert store.run("b").status == "corrupt"
    # the corrupt run can be redone
    with store.create_run("b", {"seed": 1}, overwrite=True) as w:
        w.log_metrics(make_rows(0))
    assert store.runs().set_index("run_id").loc["b", "status"] == "complete"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"{not json", "not valid JSON", id="garbage"),
        pytest.param(b"", "not valid JSON", id="empty"),
        pytest.param(b"[1, 2]", "not a JSON object", id="not-object"),
        pytest.param(b'{"status": "complete"}', "config", id="missing-fields"),
        pytest.param(b'{"status": "weird", "config": {}}', "field 'status'", id="bad-status"),
        pytest.param(None, "run.json is missing", id="missing"),
    ],
)
def test_corrupt_run_json_is_listed_not_raised(store, content, reason):
    logged = write_run(store, "good", {"cell": "rnn", "seed": 1}, summary={"final_loss": 0.3})
    write_run(store, "bad", {"cell": "lstm", "seed": 2})
    path = store.root / "runs/run_id=bad/run.json"
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    df = store.runs().set_index("run_id")
    assert df.loc["bad", "status"] == "corrupt" and reason in df.loc["bad", "reason"]
    assert df.loc["good", "status"] == "complete" and df.loc["good", "final_loss"] == 0.3
    assert df.loc["good", "cell"] == "rnn"
    out = store.query("SELECT run_id, count(*) AS n FROM metrics JOIN runs USING (run_id) "
                      "WHERE status = 'complete' GROUP BY 1")  # fmt: skip
    assert out.values.tolist() == [["good", len(logged)]]
    assert store.run("bad").status == "corrupt"
    with pytest.raises(RunExistsError, match="corrupt"):
        store.create_run("bad", {})
    store.create_run("bad", {}, overwrite=True).finish()
    assert store.run("bad").status == "complete"


def test_run_json_naming_another_run_is_corrupt(store):
    write_run(store, "a")
    write_run(store, "b")
    path = store.root / "runs/run_id=b/run.json"
    meta = json.loads(path.read_text())
    meta["run_id"] = "a"
    path.write_text(json.dumps(meta))
    assert store.run("b").status == "corrupt"


def test_stray_files_are_ignored(store):
    write_run(store, "a")
    (store.root / "runs" / "notes.txt").write_text("hi")
    (store.root / "runs" / "run_id=bad.name").mkdir()
    os.makedirs(store.root / "runs" / ".trash-run_id=x-123")
    assert store.runs()["run_id"].tolist() == ["a"]


def test_no_temp_files_left_behind(store):
    write_run(store, "a")
    with store.create_run("b", {}) as w:
        w.save_array("x", 1, np.ones(2))
        w.log_metrics(make_rows(0))
    leftovers = [p for p in store.root.rglob(".*") if p.name not in (".lock", ".changed")]
    assert leftovers == []
