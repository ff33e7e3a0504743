"""The run lock: filelock's exclusive flock for writers; a read-only shared-flock probe for
readers."""

from __future__ import annotations

import os
import threading
import time

import pytest
from filelock import FileLock

from gradlab.store import RunExistsError
from gradlab.store import files as store_files
from gradlab.store.lock import RunLock, lock_held


def _listing(path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in path.iterdir()}


def test_one_holder_at_a_time_within_one_process(tmp_path):
    run = tmp_path / "runs" / "run_id=r"
    first = RunLock.try_acquire(run)
    assert first is not None and first.held and lock_held(run)
    assert RunLock.try_acquire(run, wait_s=0.05) is None
    first.release()
    first.release()  # idempotent
    assert not first.held and not lock_held(run)
    second = RunLock.try_acquire(run, wait_s=0.05)
    assert second is not None and lock_held(run)
    second.release()


def test_the_probe_writes_nothing(tmp_path):
    missing = tmp_path / "runs" / "run_id=gone"
    assert not lock_held(missing)
    assert not missing.exists()  # a reader never makes a folder or a lock file
    run = tmp_path / "runs" / "run_id=r"
    lock = RunLock.try_acquire(run)
    before = _listing(run)
    (run / store_files.LOCK_FILE).chmod(0o444)  # read access is all the probe needs
    try:
        assert lock_held(run)
        lock.release()
        assert not lock_held(run)
    finally:
        (run / store_files.LOCK_FILE).chmod(0o644)
    assert _listing(run) == before


def test_a_filelock_held_elsewhere_is_a_live_writer(store):
    """The store's lock is plain filelock: anyone holding it keeps writers out."""
    path = store_files.run_dir(store.root, "r")
    path.mkdir(parents=True)
    other = FileLock(path / store_files.LOCK_FILE, thread_local=False)
    other.acquire()
    try:
        with pytest.raises(RunExistsError, match="live process"):
            store.create_run("r", {"seed": 0})
        row = store.runs().iloc[0]
        assert row["status"] == "running" and row["alive"]  # claimed, run.json not yet written
        with pytest.raises(RunExistsError, match="alive"):
            store.delete("r")
    finally:
        other.release()
    assert not store.runs().iloc[0]["alive"]
    with store.create_run("r", {"seed": 0}) as writer:
        assert writer.status == "running" and store.runs().iloc[0]["alive"]
    assert store.run("r").status == "complete" and not store.run("r").alive


def test_a_folder_deleted_while_a_writer_waits_is_made_again(store):
    """Store.delete holds the lock while it removes the folder; a writer waiting meanwhile then
    claims a fresh folder, never the deleted lock file."""
    path = store_files.run_dir(store.root, "r")
    held = RunLock.try_acquire(path)
    waiter: list[RunLock | None] = []
    thread = threading.Thread(target=lambda: waiter.append(RunLock.try_acquire(path, wait_s=30)))
    thread.start()
    time.sleep(0.1)  # the waiter polls meanwhile (any interleaving must end the same way)
    store_files.remove_tree(path)
    held.release()
    thread.join()
    (claimed,) = waiter
    assert claimed is not None
    assert lock_held(path)  # the lock file now at the path is the one held, not the deleted one
    assert os.listdir(path) == [store_files.LOCK_FILE]
    claimed.release()
