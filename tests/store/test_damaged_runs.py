"""One bad run never breaks the store: a malformed run.json field, a symbolic-link run folder and
a valid Parquet file of the wrong schema each make that run ``corrupt`` (with a reason that names
the run, not an absolute path) while runs(), metrics(), query() and run() keep working for all
the others. The cases are issue 15's reproducers, on real files and real DuckDB.
"""

from __future__ import annotations

import json
import os
import typing

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_testlib import write_run

from gradlab.store import STATUSES, Store, open_store
from gradlab.store.schema import RunRecord, run_record_problem

GOOD = ("a", "c")


@pytest.fixture
def three(store: Store) -> dict:
    """Runs a, b, c (complete); returns the rows each logged."""
    return {rid: write_run(store, rid, {"cell": "rnn", "seed": i}, steps=3, T=4)
            for i, rid in enumerate(["a", "b", "c"])}  # fmt: skip


def assert_others_unaffected(store: Store, logged: dict, bad: str) -> None:
    """Every reader works; the good runs are complete with all their rows; ``bad`` is corrupt
    with a reason free of absolute paths and contributes no rows."""
    df = store.runs().set_index("run_id")
    assert (df.loc[list(GOOD), "status"] == "complete").all()
    assert df.loc[bad, "status"] == "corrupt"
    reason = df.loc[bad, "reason"]
    assert reason and str(store.root.parent) not in reason
    agg = store.query("SELECT run_id, count(*) AS n FROM metrics GROUP BY 1 ORDER BY 1")
    assert agg.values.tolist() == [[rid, len(logged[rid])] for rid in GOOD]
    joined = store.query(
        "SELECT r.status, count(*) AS n FROM metrics m JOIN runs r USING (run_id) GROUP BY 1"
    )
    assert joined.values.tolist() == [["complete", sum(len(logged[r]) for r in GOOD)]]
    assert sorted(store.metrics()["run_id"].unique()) == list(GOOD)
    for rid in GOOD:
        assert len(store.metrics(rid)) == len(logged[rid])
        assert store.run(rid).status == "complete"
    assert store.metrics(bad).empty
    info = store.run(bad)
    assert info.status == "corrupt" and info.reason == reason
    assert isinstance(info.config, dict) and isinstance(info.summary, dict)


# ------------------------------------------------------------------------- run.json fields
@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        pytest.param("writer", "pid 1", "field 'writer'", id="writer-as-string"),
        pytest.param("writer", {"pid": "1", "hostname": "h"}, "field 'writer.pid'", id="pid-text"),
        pytest.param("config", ["cell", "rnn"], "field 'config'", id="config-as-list"),
        pytest.param("summary", "done", "field 'summary'", id="summary-as-string"),
        pytest.param("created", "yesterday", "field 'created'", id="created-not-iso"),
        pytest.param("finished", 1700000000, "field 'finished'", id="finished-as-number"),
        pytest.param("duration_s", -3.0, "field 'duration_s'", id="negative-duration"),
        pytest.param("duration_s", "12 s", "field 'duration_s'", id="duration-as-text"),
        pytest.param("error", {"msg": "x"}, "field 'error'", id="error-as-object"),
        pytest.param("versions", {"torch": 2}, "field 'versions.torch'", id="version-number"),
        pytest.param("git_commit", 123, "field 'git_commit'", id="commit-as-number"),
        pytest.param("format", "1", "field 'format'", id="format-as-text"),
        pytest.param("run_id", 7, "field 'run_id'", id="run-id-as-number"),
        pytest.param("status", "corrupt", "field 'status'", id="status-corrupt-on-disk"),
    ],
)
def test_malformed_run_json_field_isolates_its_run(store, three, field, value, reason):
    path = store.root / "runs/run_id=b/run.json"
    meta = json.loads(path.read_text())
    meta[field] = value
    path.write_text(json.dumps(meta))
    assert_others_unaffected(store, three, "b")
    assert reason in store.run("b").reason


def test_malformed_run_json_names_every_bad_field(store, three):
    path = store.root / "runs/run_id=b/run.json"
    meta = json.loads(path.read_text())
    meta.update(writer="pid 1", summary=[], duration_s=None)
    path.write_text(json.dumps(meta))
    reason = store.run("b").reason
    assert "field 'writer'" in reason and "field 'summary'" in reason
    assert "duration_s" not in reason  # null is allowed where the writer writes null


def test_running_run_with_malformed_writer_is_corrupt_not_a_crash(store, three):
    """The old reader called writer.get(...) on a string for a dead running run."""
    path = store.root / "runs/run_id=b/run.json"
    meta = json.loads(path.read_text())
    meta.update(status="running", writer="pid 1")
    path.write_text(json.dumps(meta))
    assert_others_unaffected(store, three, "b")


def test_every_run_the_writer_writes_validates(store):
    write_run(store, "done", {"cell": "gru", "seed": 3, "nested": {"lr": 0.1}})
    w = store.create_run("live", {"seed": None})
    try:
        for rid in ("done", "live"):
            meta = json.loads((store.root / f"runs/run_id={rid}/run.json").read_text())
            assert run_record_problem(meta) is None
    finally:
        w.finish("failed", error="stopped by the test")
    meta = json.loads((store.root / "runs/run_id=live/run.json").read_text())
    assert run_record_problem(meta) is None


def test_statuses_on_disk_are_the_stores_statuses_but_the_readers_own():
    on_disk = typing.get_args(RunRecord.model_fields["status"].annotation)
    assert set(on_disk) == set(STATUSES) - {"corrupt", "interrupted"}


# ------------------------------------------------------------------------- symbolic links
def _link(store: Store, name: str, target) -> None:
    os.symlink(target, store.root / "runs" / f"run_id={name}")


def test_linked_run_folder_is_read_through_the_link(tmp_path, store, three):
    other = open_store(tmp_path / "other", fsync=False)
    logged_x = write_run(other, "x", {"cell": "lstm", "seed": 9}, steps=2, T=3)
    _link(store, "x", other.root / "runs/run_id=x")
    df = store.runs().set_index("run_id")
    assert df.loc["x", "status"] == "complete" and df.loc["x", "cell"] == "lstm"
    assert len(store.metrics("x")) == len(logged_x)
    agg = store.query("SELECT run_id, count(*) AS n FROM metrics GROUP BY 1 ORDER BY 1")
    assert agg.values.tolist() == [[r, len(three[r])] for r in ("a", "b", "c")] + [
        ["x", len(logged_x)]
    ]
    # deleting the linked run removes the link, never the other store's files
    store.delete("x")
    assert "x" not in store and other.run("x").status == "complete"


@pytest.mark.parametrize(
    ("make_target", "reason"),
    [
        pytest.param(lambda tmp: tmp / "nowhere", "does not exist", id="dangling"),
        pytest.param(lambda tmp: _file(tmp / "a-file"), "not a folder", id="to-a-file"),
        pytest.param(lambda tmp: _folder(tmp / "empty"), "run.json is missing", id="to-a-non-run"),
        pytest.param(lambda tmp: _other_run(tmp, "y"), "names run 'y'", id="to-another-run-id"),
    ],
)
def test_linked_run_folder_that_is_not_this_run_is_corrupt(tmp_path, store, three, make_target,
                                                           reason):  # fmt: skip
    _link(store, "z", make_target(tmp_path))
    df = store.runs().set_index("run_id")
    assert (df.loc[["a", "b", "c"], "status"] == "complete").all()
    assert df.loc["z", "status"] == "corrupt" and reason in df.loc["z", "reason"]
    assert str(tmp_path) not in df.loc["z", "reason"]
    agg = store.query("SELECT run_id, count(*) AS n FROM metrics GROUP BY 1 ORDER BY 1")
    assert agg.values.tolist() == [[r, len(three[r])] for r in ("a", "b", "c")]
    assert sorted(store.metrics()["run_id"].unique()) == ["a", "b", "c"]
    assert store.metrics("z").empty and store.run("z").status == "corrupt"
    assert "z" in store and store.run_signature("z")


def _file(path):
    path.write_text("not a folder")
    return path


def _folder(path):
    path.mkdir()
    return path


def _other_run(tmp, run_id):
    other = open_store(tmp / "elsewhere", fsync=False)
    write_run(other, run_id, steps=1, T=2)
    return other.root / "runs" / f"run_id={run_id}"


# ------------------------------------------------------------------------- wrong schema
def _metrics_like(**changes) -> pa.Table:
    """One row with the metrics columns, some replaced (a value of None drops the column)."""
    columns = {"step": [0], "probe": ["train"], "name": ["loss"], "layer": [0],
               "direction": [0], "t": [1], "value": [1.0]}  # fmt: skip
    columns.update(changes)
    return pa.table({k: v for k, v in columns.items() if v is not None})


@pytest.mark.parametrize(
    "table",
    [
        pytest.param(pa.table({"x": [1, 2]}), id="other-columns"),
        pytest.param(_metrics_like(layer=None, direction=None, t=None), id="missing-columns"),
        pytest.param(_metrics_like(step=["0"]), id="step-as-text"),
        pytest.param(_metrics_like(value=pa.array([1.0], pa.float32())), id="value-float32"),
        pytest.param(
            _metrics_like().select(["probe", "step", "name", "layer", "direction", "t", "value"]),
            id="columns-reordered",
        ),
        pytest.param(_metrics_like(extra=[1]), id="extra-column"),
    ],
)
def test_wrong_schema_parquet_is_quarantined_like_a_truncated_one(store, three, table):
    path = store.root / "runs/run_id=b/metrics.parquet"
    pq.write_table(table, path)
    assert pq.ParquetFile(path).metadata.num_rows == table.num_rows  # a valid Parquet file
    assert_others_unaffected(store, three, "b")
    assert "wrong schema" in store.run("b").reason


@pytest.mark.parametrize("how", ["truncated", "damaged-pages"])
def test_reasons_of_damaged_files_name_the_run_not_the_path(store, three, how):
    path = store.root / "runs/run_id=b/metrics.parquet"
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    else:
        for i in range(64, len(data) - 600):
            data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    assert_others_unaffected(store, three, "b")


def test_run_json_that_is_a_folder_is_corrupt(store, three):
    path = store.root / "runs/run_id=b/run.json"
    path.unlink()
    path.mkdir()
    assert_others_unaffected(store, three, "b")
    assert "run.json is unreadable" in store.run("b").reason
