"""Store.signature / Store.run_signature: the change tokens the dashboard's caches key on.

Every write made through the store changes them, writes to one run leave the other runs'
tokens alone, and runs added or rewritten outside the store (a copy, a hand edit) are noticed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

import numpy as np
import pytest
from store_testlib import make_rows

from gradlab.store import Store


@pytest.fixture
def two_runs(store: Store) -> Store:
    for run_id in ("a", "b"):
        with store.create_run(run_id, {"seed": 0}) as w:
            w.log_metrics(make_rows(0))
            w.save_array("x", 0, np.zeros(3))
    return store


def test_signature_is_stable_while_nothing_is_written(two_runs):
    assert two_runs.signature() == two_runs.signature()
    assert two_runs.run_signature("a") == two_runs.run_signature("a")
    two_runs.runs(), two_runs.metrics(), two_runs.run("a").array("x", 0)  # readers write nothing
    assert two_runs.signature() == two_runs.signature()


def _flush(store: Store) -> None:
    w = store.create_run("c", {"seed": 1})
    w.log_metrics(make_rows(0))
    w.flush()


WRITES: dict[str, Callable[[Store], None]] = {
    "create": lambda s: s.create_run("c", {"seed": 1}).finish(),
    "flush": _flush,
    "delete": lambda s: s.delete("b"),
    "overwrite-failed": lambda s: (
        s.create_run("c", {"seed": 1}).finish("failed"),
        s.create_run("c", {"seed": 1}, overwrite=True).finish(),
    ),
}


@pytest.mark.parametrize("write", list(WRITES.values()), ids=list(WRITES))
def test_every_write_changes_the_store_signature(two_runs, write):
    before = two_runs.signature()
    write(two_runs)
    assert two_runs.signature() != before


def test_each_step_of_a_writer_changes_both_signatures_of_its_run_only(store):
    with store.create_run("other", {"seed": 9}) as w:
        w.log_metrics(make_rows(0))
    other = store.run_signature("other")
    w = store.create_run("live", {"seed": 0})
    seen = [(store.signature(), store.run_signature("live"))]
    for action in (
        lambda: w.save_array("hidden", 0, np.ones((2, 2))),
        lambda: w.save_array("hidden", 1, np.ones((2, 2))),
        lambda: w.save_array("hidden", 1, np.zeros((2, 2))),  # same chunk, rewritten
        lambda: (w.log_metrics(make_rows(0)), w.flush()),
        lambda: (w.log_metrics(make_rows(1)), w.flush()),
        lambda: w.finish(),
    ):
        action()
        now = (store.signature(), store.run_signature("live"))
        assert now[0] not in [s for s, _ in seen], "store signature did not change"
        seen.append(now)
    # The run's own token changes with its files: every metrics flush and finish, and any new
    # array chunk; the other run's token is untouched by all of it.
    assert len({r for _, r in seen}) >= 5
    assert store.run_signature("other") == other


def test_runs_copied_in_from_outside_are_noticed(two_runs, tmp_path):
    before = two_runs.signature()
    other = Store(tmp_path / "elsewhere")
    with other.create_run("z", {"seed": 3}) as w:
        w.log_metrics(make_rows(0))
    src = other.root / "runs"
    for entry in os.scandir(src):
        if entry.is_dir():
            shutil.copytree(entry.path, two_runs.root / "runs" / entry.name)
    assert "z" in two_runs
    assert two_runs.signature() != before


def test_a_hand_rewritten_metrics_file_changes_the_run_signature(two_runs):
    info = two_runs.run("a")
    before = two_runs.run_signature("a")
    (metrics,) = [p for p in info.path.iterdir() if p.suffix == ".parquet"]
    metrics.write_bytes(metrics.read_bytes()[:-1] + b"\0")  # in place: same inode
    later = time.time() + 5
    os.utime(metrics, (later, later))
    assert two_runs.run_signature("a") != before


def test_run_signature_of_an_unknown_run_is_a_key_error(store):
    with pytest.raises(KeyError, match="no run 'nope'"):
        store.run_signature("nope")
    with pytest.raises(ValueError):
        store.run_signature("../up")
