"""What a run records about where it ran: package versions, git commit, pid and host."""

from __future__ import annotations

import functools
import os
import platform
import socket
from importlib import metadata
from pathlib import Path

_PACKAGES = ("torch", "numpy", "pandas", "pyarrow", "duckdb", "gradlab")


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Python and installed package versions (read from metadata, nothing is imported)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _read_ref(git_dir: Path, ref: str) -> str | None:
    loose = git_dir / ref
    if loose.is_file():
        return loose.read_text().strip() or None
    packed = git_dir / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit gradlab's source checkout is at, read from .git files (None if unknown)."""
    try:
        here = Path(__file__).resolve()
        for parent in here.parents:
            dot_git = parent / ".git"
            if dot_git.is_file():  # worktree / submodule: "gitdir: <path>"
                text = dot_git.read_text().strip()
                if not text.startswith("gitdir:"):
                    return None
                dot_git = (parent / text.split(":", 1)[1].strip()).resolve()
            if dot_git.is_dir():
                head = (dot_git / "HEAD").read_text().strip()
                if head.startswith("ref:"):
                    ref = head.split(":", 1)[1].strip()
                    commit = _read_ref(dot_git, ref)
                    if commit is None and (dot_git / "commondir").is_file():
                        common = (dot_git / (dot_git / "commondir").read_text().strip()).resolve()
                        commit = _read_ref(common, ref)
                    return commit
                return head or None
    except OSError:
        return None
    return None


def writer_info() -> dict[str, object]:
    """pid and hostname of the current process."""
    return {"pid": os.getpid(), "hostname": socket.gethostname()}
