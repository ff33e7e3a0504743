"""What a run folder's files say about the run: one classification for readers and writers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import files
from .schema import (
    COMPLETE,
    CORRUPT,
    INTERRUPTED,
    RUNNING,
    parquet_schema_problem,
    run_record_problem,
)

Flat = tuple[dict[str, Any], dict[str, Any]]
JsonResult = tuple[Any, str | None, Flat]
NO_FLAT: Flat = ({}, {})
MISSING_JSON = "run.json is missing"


@dataclass(frozen=True)
class RunState:
    """One run folder as seen right now."""

    run_id: str
    path: Path
    status: str
    alive: bool
    reason: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    metrics_files: tuple[Path, ...] = ()
    """The files holding the run's metrics rows (``files.metrics_files``); () for corrupt runs."""
    flat: Flat = NO_FLAT
    """Flattened (config, summary) of run.json, dotted keys for nested dicts."""


def stat_key(st: os.stat_result) -> tuple[int, int, int]:
    """Cache key of a file version: inode, mtime (ns), size (os.replace gives a new inode)."""
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts → one level with dotted keys (``{"a": {"b": 1}}`` → ``{"a.b": 1}``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def load_run_json(path: str) -> JsonResult:
    """(parsed run.json or None, problem, flattened (config, summary)).

    The problem is the first of: missing, not JSON, or a field that is not what
    :class:`~gradlab.store.schema.RunRecord` says (each bad field is named). A parsed object
    is returned even when a field is bad, so its readable parts can still be shown.
    """
    try:
        with open(path, "rb") as fh:
            meta = json.loads(fh.read())
    except (FileNotFoundError, NotADirectoryError):
        return None, MISSING_JSON, NO_FLAT
    except OSError as exc:
        return None, f"run.json is unreadable: {exc}", NO_FLAT
    except ValueError as exc:
        return None, f"run.json is not valid JSON: {exc}", NO_FLAT
    if not isinstance(meta, dict):
        return None, "run.json is not a JSON object", NO_FLAT
    config, summary = meta.get("config"), meta.get("summary")
    flat = (
        flatten(config) if isinstance(config, dict) else {},
        flatten(summary) if isinstance(summary, dict) else {},
    )
    return meta, run_record_problem(meta), flat


def metrics_check(path: str) -> tuple[bool, str | None]:
    """(exists, why it is unreadable or None) for a metrics file, from its size, magic bytes
    and footer schema."""
    try:
        size = os.stat(path).st_size
    except (FileNotFoundError, NotADirectoryError):
        return False, None
    problem = files.parquet_problem(path, size) or parquet_schema_problem(path)
    if problem is not None and not os.path.exists(path):
        return False, None  # merged or compacted away while it was read: list again
    return True, problem


def link_problem(path: Path) -> str | None:
    """Why a run folder that is a symbolic link cannot be read (None: not a link, or fine)."""
    if not path.is_symlink():
        return None
    if not os.path.exists(path):
        return "the run folder is a symbolic link to a folder that does not exist"
    if not path.is_dir():
        return "the run folder is a symbolic link to something that is not a folder"
    return None


def classify(
    run_id: str,
    path: Path,
    loaded: JsonResult,
    check_metrics: Callable[[str], tuple[bool, str | None]],
    is_alive: Callable[[Path], bool],
) -> RunState:
    """The run's status from its run.json, its metrics files and its writer lock.

    corrupt: the folder is a broken symbolic link; run.json missing, unreadable, not an object,
    with a malformed field (see :class:`~gradlab.store.schema.RunRecord`) or naming another
    run; a metrics file damaged or of the wrong schema (``check_metrics`` gives whether it
    exists and its problem); or a complete run without metrics.parquet. A linked run folder is
    read through the link.
    running: a writer holds the lock (``alive``); interrupted: run.json says running but no
    process holds the lock (the writer was killed or exited without finishing), with a reason.
    """
    meta, problem, flat = loaded
    if meta is None:  # a broken link has no run.json either: say which it is
        broken_link = link_problem(path)
        if broken_link is not None:
            return RunState(run_id, path, CORRUPT, False, broken_link)
        if problem == MISSING_JSON and is_alive(path):
            return RunState(run_id, path, RUNNING, True, "starting (run.json not yet written)")
        return RunState(run_id, path, CORRUPT, False, problem)
    if problem is not None:
        return RunState(run_id, path, CORRUPT, False, problem, meta, (), flat)
    status = meta["status"]
    if meta["run_id"] != run_id:
        named = f"run.json names run {meta['run_id']!r}, not {run_id!r}"
        return RunState(run_id, path, CORRUPT, False, named, meta, (), flat)
    alive = status == RUNNING and is_alive(path)
    error = meta.get("error")
    reason = None if error is None else str(error)
    if status == RUNNING and not alive:
        writer = meta.get("writer") or {}
        reason = (
            f"writer (pid {writer.get('pid')} on {writer.get('hostname')}) is gone; "
            "redo with overwrite=True"
        )
        status = INTERRUPTED
    for _ in range(2):  # a file gone since it was listed was merged or compacted: list again
        listed = files.metrics_files(path)
        checks = [(p, *check_metrics(str(p))) for p in listed]
        if all(exists for _, exists, _ in checks):
            break
    for _, _, bad in checks:
        if bad is not None:
            reason = f"{bad} (run.json status: {meta['status']})"
            return RunState(run_id, path, CORRUPT, False, reason, meta, (), flat)
    metrics = [p for p, exists, _ in checks if exists]
    if status == COMPLETE and metrics != [path / files.METRICS_FILE]:
        reason = f"{files.METRICS_FILE} is missing"
        return RunState(run_id, path, CORRUPT, False, reason, meta, (), flat)
    return RunState(run_id, path, status, alive, reason, meta, tuple(metrics), flat)
