"""One exclusive lock per run (``filelock``): held by the live writer, freed by the kernel when it
dies; and the read-only probe readers use to tell a live writer from a dead one.

filelock takes an exclusive ``flock`` on ``<run dir>/.lock``. It has no way to ask whether some
other process holds a lock short of taking it, and taking it writes (it creates the lock file and
any missing folders) and briefly shuts out a writer, so :func:`lock_held` probes the same
``flock`` with a momentary shared lock on a read-only descriptor instead.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .files import LOCK_FILE

if TYPE_CHECKING:
    from filelock import BaseFileLock

POLL_S = 0.01


class RunLock:
    """A run's writer lock, held from :meth:`try_acquire` until :meth:`release` or garbage."""

    def __init__(self, path: Path, lock: BaseFileLock) -> None:
        self.path = path
        self._lock: BaseFileLock | None = lock

    @classmethod
    def try_acquire(cls, run_path: Path, wait_s: float = 0.25) -> RunLock | None:
        """Create the run folder if needed and take its lock; None if another process holds it.

        Readers probe the lock with a momentary shared flock, so a held lock is retried for up
        to ``wait_s`` seconds before it counts as taken. A lock file deleted while we waited (the
        folder was removed) is never locked by mistake: filelock checks the locked file is still
        linked, and a folder gone meanwhile is made again.
        """
        from filelock import FileLock, Timeout  # writers only: readers never import filelock

        lock_path = run_path / LOCK_FILE
        deadline = time.monotonic() + wait_s
        while True:
            run_path.mkdir(parents=True, exist_ok=True)
            # no soft (marker file) fallback: liveness relies on the kernel dropping a dead flock
            lock = FileLock(lock_path, thread_local=False, fallback_to_soft=False)
            try:
                lock.acquire(timeout=max(0.0, deadline - time.monotonic()), poll_interval=POLL_S)
            except Timeout:
                return None
            except FileNotFoundError:  # the folder was removed while we waited: make it again
                continue
            return cls(lock_path, lock)

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._lock is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release(force=True)

    def __del__(self) -> None:
        self.release()


def lock_held(run_path: Path) -> bool:
    """Whether some live process holds the run's writer lock (probes with a shared flock).

    Read-only: opens an existing lock file for reading and never creates one.
    """
    try:
        fd = os.open(run_path / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
