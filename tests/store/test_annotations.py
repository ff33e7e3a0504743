"""Tags and notes per run (``Store.annotate`` / ``annotations``), id prefixes (``resolve_id``)
and a live run's progress in its summary (``RunWriter.note_progress``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from store_testlib import write_run

from gradlab.store import AmbiguousRunIdError, Annotation

REPO = Path(__file__).resolve().parents[2]

TAGGER = textwrap.dedent(
    """
    import importlib.util, sys, types

    spec = importlib.util.find_spec("gradlab")  # gradlab.store without torch
    pkg = types.ModuleType("gradlab")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["gradlab"] = pkg
    from gradlab.store import open_store

    root, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = open_store(root, fsync=False)
    for i in range(n):
        store.annotate("a", add_tags=[f"{name}{i}"])
        store.annotate("b", note=f"{name} {i}")
    """
)


def test_tags_and_note_round_trip(store):
    write_run(store, "a")
    write_run(store, "b")
    assert store.annotations() == {}
    store.annotate("a", add_tags=["keep", " baseline "], note="lr too high?")
    store.annotate("a", add_tags=["keep"], remove_tags=["baseline"])
    store.annotate("b", tags=["x"])
    assert store.annotations() == {
        "a": Annotation(("keep",), "lr too high?"),
        "b": Annotation(("x",), ""),
    }
    store.annotate("b", tags=[], note="")  # nothing left: the entry goes
    assert set(store.annotations()) == {"a"}
    assert store.runs()["run_id"].tolist() == ["a", "b"]  # the runs are untouched


def test_annotating_changes_the_signature_but_not_the_run(store):
    write_run(store, "a")
    before, run_before = store.signature(), store.run_signature("a")
    store.annotate("a", note="n")
    assert store.signature() != before
    assert store.run_signature("a") == run_before


@pytest.mark.parametrize(
    "kwargs, error",
    [
        pytest.param({"add_tags": ["a,b"]}, ValueError, id="comma-in-tag"),
        pytest.param({"add_tags": [3]}, ValueError, id="tag-not-text"),
        pytest.param({"note": 3}, ValueError, id="note-not-text"),
    ],
)
def test_bad_annotations_raise(store, kwargs, error):
    write_run(store, "a")
    with pytest.raises(error):
        store.annotate("a", **kwargs)


def test_unknown_run_cannot_be_annotated(store):
    with pytest.raises(KeyError):
        store.annotate("nope", note="x")


@pytest.mark.parametrize(
    "text", ["{ not json", '{"runs": [1, 2]}', '{"runs": {"a": {"tags": "x"}}}'], ids=str
)
def test_a_damaged_annotations_file_reads_as_none(store, text):
    write_run(store, "a")
    store.annotate("a", note="n")
    (store.root / "runs" / ".annotations.json").write_text(text)
    assert store.annotations() == {}
    store.annotate("a", note="again")  # and writing starts over
    assert store.annotations()["a"].note == "again"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX flock")
def test_two_processes_annotating_at_once_lose_nothing(store, tmp_path):
    write_run(store, "a")
    write_run(store, "b")
    script = tmp_path / "tagger.py"
    script.write_text(TAGGER)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    n = 40
    procs = [
        subprocess.Popen([sys.executable, str(script), str(store.root), name, str(n)], env=env)
        for name in ("p", "q")
    ]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    got = store.annotations()
    assert set(got["a"].tags) == {f"{name}{i}" for name in "pq" for i in range(n)}
    assert got["b"].note in {f"p {n - 1}", f"q {n - 1}"}


def test_prefixes_resolve_when_unique(store):
    for run_id in ("9c5b0e", "9c5bff", "a1b2c3", "a1b2"):
        write_run(store, run_id)
    assert store.resolve_id("a1b2c") == "a1b2c3"
    assert store.resolve_id("a1b2") == "a1b2"  # an exact id wins over longer ones it starts
    assert store.resolve_id("9c5b0") == "9c5b0e"
    with pytest.raises(AmbiguousRunIdError) as info:
        store.resolve_id("9c5b")
    assert info.value.candidates == ["9c5b0e", "9c5bff"]
    assert "9c5b0e, 9c5bff" in str(info.value)
    for unknown in ("ffff", "9c5"):  # no run; a prefix shorter than 4 characters
        with pytest.raises(KeyError):
            store.resolve_id(unknown)
    with pytest.raises(ValueError):
        store.resolve_id("../x")


def test_a_live_run_shows_its_progress(store):
    writer = store.create_run("live", {"steps": 10})
    writer.note_progress({"steps_done": 4, "final_loss": 0.25})
    row = store.runs().set_index("run_id").loc["live"]
    assert (row["status"], row["steps_done"], row["final_loss"]) == ("running", 4, 0.25)
    writer.finish(summary={"steps_done": 10})
    row = store.runs().set_index("run_id").loc["live"]
    assert (row["status"], row["steps_done"]) == ("complete", 10)
    assert "final_loss" not in store.runs() or row.isna()["final_loss"]
