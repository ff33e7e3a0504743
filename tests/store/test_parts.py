"""Append-only metrics: each flush writes one part file, parts merge 8 at a time, ``finish``
compacts them into metrics.parquet, and every reader sees the same rows either way."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from store_testlib import make_rows, write_run

from gradlab.store import METRICS_SCHEMA, RunWriter
from gradlab.store import files as store_files
from gradlab.store.schema import sort_metrics

REPO = Path(__file__).resolve().parents[2]
K = RunWriter.MERGE_FANIN
AGGREGATE = (
    "SELECT run_id, probe, name, t, count(*) AS n, sum(value) AS total "
    "FROM metrics GROUP BY ALL ORDER BY ALL"
)
EVERY_ROW = "SELECT * FROM metrics ORDER BY run_id, probe, name, layer, direction, step, t"


def _spans(path: Path) -> list[tuple[int, int]]:
    """(first, last) flush of each part file on disk, by first flush."""
    spans = []
    for p in store_files.metrics_part_files(path):
        first, last = store_files.METRICS_PART_RE.match(p.name).groups()
        spans.append((int(first), int(last)))
    return spans


def _base8_spans(n: int) -> list[tuple[int, int]]:
    """The parts after ``n`` flushes: one per base-8 digit unit, largest first."""
    spans, start = [], 0
    for size in sorted((K**e for e in range(8)), reverse=True):
        while n - start >= size:
            spans.append((start, start + size - 1))
            start += size
    return spans


def _flushed_rows(writer, flushes: int, offset: int = 0) -> pd.DataFrame:
    rows = []
    for step in range(offset, offset + flushes):
        r = make_rows(step, T=3, seed=1)
        writer.log_metrics(r)
        writer.flush()
        rows.append(r)
    return pd.concat(rows, ignore_index=True)


def test_each_flush_writes_one_part_of_its_own_rows_and_finish_compacts(store):
    writer = store.create_run("r", {"seed": 0})
    logged = []
    for step in range(3):
        rows = make_rows(step, T=4)
        writer.log_metrics(rows)
        writer.flush()
        writer.flush()  # nothing pending: no empty part
        logged.append(rows)
        assert _spans(writer.path) == [(s, s) for s in range(step + 1)]
        part = pq.read_table(store_files.metrics_part_path(writer.path, step, step))
        assert part.schema.equals(METRICS_SCHEMA)
        assert part.column("step").to_pylist() == [step] * len(rows)  # this flush's rows only
    assert not (writer.path / store_files.METRICS_FILE).exists()
    writer.finish()
    assert _spans(writer.path) == []  # parts deleted once compacted
    assert store_files.metrics_files(writer.path) == [writer.path / store_files.METRICS_FILE]
    compacted = pq.read_table(writer.path / store_files.METRICS_FILE)
    every = sort_metrics(pq.read_table(writer.path / store_files.METRICS_FILE))
    assert compacted.equals(every)  # written sorted
    assert compacted.num_rows == sum(len(r) for r in logged)


@pytest.mark.parametrize("flushes", [1, K - 1, K, K + 3, K * K - 1, K * K + K + 2])
def test_parts_of_one_size_merge_eight_at_a_time(store, flushes):
    writer = store.create_run("r", {"seed": 0})
    logged = _flushed_rows(writer, flushes)
    assert _spans(writer.path) == _base8_spans(flushes)  # merged inputs are deleted
    assert len(store.metrics("r")) == len(logged)
    assert sorted(store.metrics("r")["step"].unique()) == list(range(flushes))
    writer.finish()
    assert _spans(writer.path) == [] and len(store.metrics("r")) == len(logged)


def _reads(store) -> dict[str, pd.DataFrame]:
    """What each reader gives for the store's runs."""
    runs = store.runs().set_index("run_id")
    return {
        "metrics": store.metrics(),
        "metrics(run_ids=live)": store.metrics(run_ids="live"),
        "metrics(filtered)": store.metrics(probes="contribution", steps=[2, 9], t=[1, 2]),
        "RunInfo.metrics": store.run("live").metrics(names="loss"),
        "query(every row)": store.query(EVERY_ROW),
        "query(aggregate)": store.query(AGGREGATE),
        "query(join runs)": store.query(
            "SELECT r.seed, count(*) AS n FROM metrics m JOIN runs r USING (run_id) "
            "GROUP BY ALL ORDER BY ALL"
        ),
        "runs(seed)": runs[["seed"]],
    }


def test_readers_equal_before_and_after_compaction(store):
    write_run(store, "done", {"seed": 1}, steps=4, T=3)
    writer = store.create_run("live", {"seed": 2})
    _flushed_rows(writer, K + 3)  # one merged part and three single ones
    assert len(store_files.metrics_files(writer.path)) == 4
    before = _reads(store)
    writer.finish()
    assert store_files.metrics_files(writer.path) == [writer.path / store_files.METRICS_FILE]
    after = _reads(store)
    for name, frame in before.items():
        assert len(frame), name
        pd.testing.assert_frame_equal(frame, after[name], obj=name)


def test_a_part_and_the_merged_part_that_covers_it_are_read_once(store):
    """A writer killed between publishing a merged part and deleting its inputs."""
    writer = store.create_run("r", {"seed": 0})
    logged = _flushed_rows(writer, K)
    assert _spans(writer.path) == [(0, K - 1)]
    for step in range(K):  # the inputs, back as they were
        table = sort_metrics(pq.read_table(store_files.metrics_part_path(writer.path, 0, K - 1)))
        one = table.filter(pc.equal(table["step"], step))
        store_files.write_parquet(store_files.metrics_part_path(writer.path, step, step), one)
    assert len(_spans(writer.path)) == K + 1
    assert store_files.metrics_files(writer.path) == [
        store_files.metrics_part_path(writer.path, 0, K - 1)
    ]
    assert len(store.metrics("r")) == len(logged)
    assert store.query("SELECT count(*) AS n FROM metrics")["n"].tolist() == [len(logged)]
    writer.finish()
    assert _spans(writer.path) == [] and len(store.metrics("r")) == len(logged)


def test_compacted_file_wins_over_parts_left_beside_it(store):
    """A writer killed between writing metrics.parquet and deleting the parts."""
    writer = store.create_run("r", {"seed": 0})
    logged = _flushed_rows(writer, 3)
    parts = {p: p.read_bytes() for p in store_files.metrics_part_files(writer.path)}
    writer.finish()
    for path, data in parts.items():
        path.write_bytes(data)
    assert store_files.metrics_files(writer.path) == [writer.path / store_files.METRICS_FILE]
    assert store.run("r").status == "complete"
    assert len(store.metrics("r")) == len(logged)


def test_run_signature_changes_with_every_flush_and_the_compaction(store):
    writer = store.create_run("r", {"seed": 0})
    seen = {store.run_signature("r")}
    for flushes in range(1, K + 2):
        _flushed_rows(writer, 1, offset=flushes)
        seen.add(store.run_signature("r"))
        assert len(seen) == flushes + 1
    writer.finish()
    seen.add(store.run_signature("r"))
    assert len(seen) == K + 3
    assert store.run_signature("r") == store.run_signature("r")  # stable when nothing changes


@pytest.mark.parametrize("how", ["truncated", "garbage", "damaged-pages"])
def test_a_damaged_part_quarantines_its_run_only(store, how):
    logged = write_run(store, "done", {"seed": 1}, steps=3, T=3)
    writer = store.create_run("live", {"seed": 2})
    _flushed_rows(writer, K + 2)
    victim = store_files.metrics_part_path(writer.path, K, K)
    data = victim.read_bytes()
    if how == "truncated":
        victim.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        victim.write_bytes(b"not parquet" * 20)
    else:  # magic bytes and footer intact, every data page scrambled
        (footer,) = struct.unpack("<I", data[-8:-4])
        damaged = bytearray(data)
        for i in range(4, len(data) - 8 - footer):
            damaged[i] = (damaged[i] * 7 + 13) % 256
        victim.write_bytes(bytes(damaged))
    assert len(store.metrics()) == len(logged)  # reads every column of every file
    assert store.query("SELECT DISTINCT run_id FROM metrics")["run_id"].tolist() == ["done"]
    runs = store.runs().set_index("run_id")
    assert runs.loc["live", "status"] == "corrupt"
    assert victim.name in runs.loc["live", "reason"]
    assert str(writer.path) not in runs.loc["live", "reason"]
    assert runs.loc["done", "status"] == "complete"
    writer._lock.release()


WRITER = textwrap.dedent(
    """
    import importlib.util, sys, types

    # Load gradlab.store without running gradlab/__init__ (it imports torch: seconds per process).
    spec = importlib.util.find_spec("gradlab")
    pkg = types.ModuleType("gradlab")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["gradlab"] = pkg

    from gradlab.store import open_store

    root, flushes = sys.argv[1], int(sys.argv[2])
    w = open_store(root, fsync=False).create_run("victim", {"seed": 1})
    for step in range(flushes):
        w.log_metrics({"step": step, "probe": "train", "name": "loss", "value": [step / 2]})
        w.flush()
    print("ready", flush=True)
    sys.stdin.read()  # holds the run open until the test kills this process
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_kill_9_mid_run_leaves_parts_that_readers_read(store, tmp_path):
    flushes = K + 5
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store.root), str(flushes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    run = store.run("victim")
    assert run.status == "interrupted" and not run.alive
    assert _spans(run.path) == _base8_spans(flushes)
    assert not (run.path / store_files.METRICS_FILE).exists()
    metrics = run.metrics()
    assert metrics["step"].tolist() == list(range(flushes))
    assert metrics["value"].tolist() == [s / 2 for s in range(flushes)]
    n = store.query("SELECT count(*) AS n FROM metrics WHERE run_id = 'victim'")["n"]
    assert n.tolist() == [flushes]
    with store.create_run("victim", {"seed": 2}, overwrite=True) as writer:  # redo clears parts
        assert _spans(writer.path) == []
        writer.log_metrics({"step": [0], "probe": "train", "name": "loss", "value": [1.0]})
    assert store.metrics("victim")["value"].tolist() == [1.0]


STREAMER = textwrap.dedent(
    """
    import importlib.util, pathlib, sys, time, types

    spec = importlib.util.find_spec("gradlab")
    pkg = types.ModuleType("gradlab")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["gradlab"] = pkg

    from gradlab.store import open_store

    root, flushes, go = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
    with open_store(root, fsync=False).create_run("streamed", {"seed": 1}) as w:
        for step in range(flushes):
            w.log_metrics({"step": step, "probe": "train", "name": "loss", "value": [1.0]})
            w.flush()
            while step + 1 == flushes // 2 and not go.exists():
                time.sleep(0.01)  # half way: wait until a reader has seen part of the run
    """
)


def test_readers_racing_a_writer_see_a_growing_prefix_of_the_flushes(store, tmp_path):
    """Merges and the compaction delete files readers may have just listed: every read still
    gives flushes 0..k-1 exactly once, k never shrinks, and nothing raises. The writer waits
    half way until a read has seen part of the run (a file the reader creates), so the reads
    cover a run being written whatever the machine's speed."""
    flushes = K**3 + K + 1
    go = tmp_path / "go"
    script = tmp_path / "streamer.py"
    script.write_text(STREAMER)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store.root), str(flushes), str(go)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen = [0]
    try:
        ended = False
        while not ended:
            ended = proc.poll() is not None  # one more read after the writer is done
            if "streamed" not in store:
                continue
            steps = store.metrics("streamed")["step"].tolist()
            assert steps == list(range(len(steps)))
            counted = store.query("SELECT count(*) AS n FROM metrics")["n"].tolist()
            assert counted[0] >= len(steps)
            assert len(steps) >= seen[-1]
            seen.append(len(steps))
            if steps:
                go.touch()
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert seen[-1] == flushes and store.run("streamed").status == "complete"
    assert len(set(seen)) > 2  # read while it was being written, not only before and after
