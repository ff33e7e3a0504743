"""One exclusive flock per run: held by the live writer, released by the kernel when it dies."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from .files import LOCK_FILE


class RunLock:
    """An exclusive ``flock`` on ``<run dir>/.lock`` held for a writer's lifetime."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, run_path: Path, wait_s: float = 0.25) -> RunLock | None:
        """Create the run folder if needed and take its lock; None if another process holds it.

        Readers probe the lock with a momentary shared flock, so a held lock is retried for up
        to ``wait_s`` seconds before it counts as taken. The lock file's inode is re-checked after
        locking, so a folder deleted meanwhile is never locked by mistake.
        """
        lock_path = run_path / LOCK_FILE
        deadline = time.monotonic() + wait_s
        while True:
            run_path.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.01)
                continue
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the folder was deleted/replaced between open and flock
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            return cls(lock_path, fd)

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __del__(self) -> None:
        self.release()


def lock_held(run_path: Path) -> bool:
    """Whether some live process holds the run's writer lock (probes with a shared flock)."""
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
