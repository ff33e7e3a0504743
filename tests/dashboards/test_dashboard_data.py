"""dashboards.data: the store door — runs table, ids, metrics, arrays, caches, summaries."""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path

import numpy as np
import pytest

from dashboards import data

DASHBOARDS = Path(data.__file__).parent


def test_runs_lists_every_run_with_status_and_reason(real_store):
    frame = data.runs(real_store.root)
    assert set(real_store.ids.values()) | {real_store.failed, real_store.corrupt} == set(
        frame["run_id"]
    )
    status = dict(zip(frame["run_id"], frame["status"], strict=True))
    assert status[real_store.failed] == "failed"
    assert status[real_store.corrupt] == "corrupt"
    reason = dict(zip(frame["run_id"], frame["reason"], strict=True))
    assert "boom" in reason[real_store.failed]
    assert "JSON" in reason[real_store.corrupt]
    ok = frame[frame["status"] == "complete"]
    assert np.allclose(ok["loss_ratio"], ok["final_loss"] / ok["baseline_loss"])


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "a.b", "..", "x" * 200, None, 5])
def test_path_like_and_malformed_ids_are_refused(real_store, bad):
    with pytest.raises(data.DataError, match="not a run id"):
        data.check_run_id(bad)
    with pytest.raises(data.DataError):
        data.run(real_store.root, bad)


def test_unknown_and_corrupt_runs_are_problems_not_errors(real_store):
    assert "no run" in data.run_problem(real_store.root, "nope")
    assert "corrupt" in data.run_problem(real_store.root, real_store.corrupt)
    assert data.run_problem(real_store.root, real_store.failed) is None
    assert data.run_problem(real_store.root, real_store.ids[("rnn", 0.9)]) is None


def test_parse_run_ids_splits_dedupes_and_reports():
    ids, problems = data.parse_run_ids(["a,b", " b ,c,,../x"])
    assert ids == ["a", "b", "c"]
    assert len(problems) == 1 and "../x" in problems[0]
    assert data.parse_run_ids(None) == ([], [])


def test_counterparts_share_sweep_task_seq_len_seed_and_gain(real_store):
    rnn = real_store.ids[("rnn", 1.5)]
    found = data.counterparts(real_store.root, rnn)
    assert {(c["cell"], c["run_id"]) for c in found} == {
        ("lstm", real_store.ids[("lstm", 1.5)]),
        ("gru", real_store.ids[("gru", 1.5)]),
    }
    assert data.counterparts(real_store.root, real_store.failed) == []


def test_sweeps_and_axes(real_store):
    assert data.sweeps(real_store.root) == ["broken", "tiny"]
    assert set(data.sweep_axes(real_store.root, "tiny")) == {"cell", "gain"}
    assert len(data.sweep_runs(real_store.root, "tiny")) == 6
    assert data.sweep_runs(real_store.root, "nope").empty


def test_metrics_filter_and_steps(real_store):
    rid = real_store.ids[("lstm", 0.9)]
    frame = data.metrics(real_store.root, [rid], [("grad_hidden", ("norm",)), ("gates", None)])
    assert set(frame["probe"]) == {"grad_hidden", "gates"}
    assert set(frame[frame["probe"] == "gates"]["name"]) == {"i", "f", "g", "o"}
    assert set(frame["run_id"]) == {rid}
    assert data.recorded_steps(real_store.root, rid) == [0, 3, 5]
    assert ("grad_cell", "norm") in data.series(real_store.root, rid)
    assert ("grad_cell", "norm") not in data.series(real_store.root, real_store.ids[("gru", 0.9)])
    assert data.metrics(real_store.root, [real_store.corrupt]).empty


def test_metrics_cache_rereads_a_rewritten_file(real_store, tmp_path):
    import shutil

    src = Path(real_store.root) / "runs" / f"run_id={real_store.ids[('rnn', 0.9)]}"
    root = tmp_path / "copy"
    dst = root / "runs" / src.name
    shutil.copytree(src, dst)
    run_id = real_store.ids[("rnn", 0.9)]
    first = data.metrics(str(root), [run_id], [("train", None)])
    again = data.metrics(str(root), [run_id], [("train", None)])
    assert len(first) == len(again)
    # cached: the second read comes from memory, not DuckDB
    assert data._run_metrics.cache_info().hits >= 1

    import pyarrow.parquet as pq

    table = pq.read_table(dst / "metrics.parquet")
    pq.write_table(table.slice(0, 10), dst / "metrics.parquet")
    later = time.time() + 5
    os.utime(dst / "metrics.parquet", (later, later))
    assert len(data.metrics(str(root), [run_id])) == 10


def test_arrays_are_read_only_and_missing_is_none(real_store):
    rid = real_store.ids[("rnn", 0.9)]
    steps = data.array_steps(real_store.root, rid, "hidden_sample")
    assert steps == [0, 3, 5]
    arr = data.array(real_store.root, rid, "hidden_sample", 3)
    assert arr.shape == (9, 2, 4)
    assert not arr.flags.writeable
    assert data.array(real_store.root, rid, "hidden_sample", 4) is None
    with pytest.raises(data.DataError):
        data.array(real_store.root, rid, "../x", 3)
    assert data.nearest(steps, 4) == 3
    assert data.nearest(steps, None) == 5
    assert data.nearest([], 4) is None


def test_run_summaries(real_store):
    ids = [real_store.ids[(c, 0.9)] for c in ("rnn", "lstm")]
    out = data.run_summaries(
        real_store.root, [*ids, "unknown"], ["decay_rate", "loss_ratio", "first_fraction"]
    )
    assert list(out["run_id"]) == ids
    assert np.isfinite(out[["decay_rate", "loss_ratio", "first_fraction"]].to_numpy()).all()
    rows = data.metrics(real_store.root, [ids[0]], [("grad_hidden", ("norm",))])
    last = rows[rows["step"] == rows["step"].max()].sort_values("t")
    expected = last["value"].iloc[0] / last["value"].iloc[-1]
    assert out["first_fraction"].iloc[0] == pytest.approx(expected)


def test_empty_and_missing_store(tmp_path):
    root = data.resolve_root(tmp_path / "new")
    assert data.runs(root).empty
    assert data.sweeps(root) == []
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(NotADirectoryError):
        data.resolve_root(file)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_data_py_imports_the_store_and_nothing_unpickles():
    for path in DASHBOARDS.rglob("*.py"):
        imports = _imports(path)
        text = path.read_text(encoding="utf-8")
        if path.name != "data.py":
            assert not any(i.startswith("gradlab.store") for i in imports), path
        assert "pickle" not in imports and "eval(" not in text and "exec(" not in text, path
        assert "allow_pickle=True" not in text, path


def test_writes_through_the_store_are_seen_at_once(tmp_path, monkeypatch):
    """The caches key on Store.signature / run_signature: a new run, a metrics flush and a new
    array chunk show on the next read (the signature is looked at on every call here)."""
    from gradlab.store import open_store

    monkeypatch.setattr(data, "SIGNATURE_TTL", 1e-9)
    root = data.resolve_root(tmp_path / "live")
    store = open_store(root, fsync=False)
    assert data.runs(root).empty
    writer = store.create_run("live", {"cell": "rnn", "seed": 0})
    assert list(data.runs(root)["status"]) == ["running"]
    rows = {"step": 0, "probe": "grad_hidden", "name": "norm", "t": [0, 1], "value": [1.0, 2.0]}
    writer.log_metrics(rows)
    assert data.metrics(root, ["live"]).empty  # logged, not yet flushed
    writer.flush()
    assert list(data.metrics(root, ["live"])["value"]) == [1.0, 2.0]
    assert data.array(root, "live", "hidden_sample", 0) is None
    writer.save_array("hidden_sample", 0, np.ones((2, 1, 3)))
    assert data.array(root, "live", "hidden_sample", 0).shape == (2, 1, 3)
    writer.log_metrics({**rows, "step": 1})
    writer.finish()
    assert data.recorded_steps(root, "live") == [0, 1]
    assert list(data.runs(root)["status"]) == ["complete"]
