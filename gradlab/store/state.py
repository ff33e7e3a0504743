"""What a run folder's files say about the run: one classification for readers and writers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import files
from .schema import COMPLETE, CORRUPT, RUNNING, STATUSES

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
    metrics_paths: tuple[Path, ...] = ()
    """The files holding the run's metrics rows (``files.metrics_files``); () when unreadable."""
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
    """(parsed run.json or None, problem, flattened (config, summary))."""
    try:
        with open(path, "rb") as fh:
            meta = json.loads(fh.read())
    except FileNotFoundError:
        return None, MISSING_JSON, NO_FLAT
    except (OSError, ValueError) as exc:
        return None, f"run.json is not valid JSON: {exc}", NO_FLAT
    flat = NO_FLAT
    if isinstance(meta, dict):
        config, summary = meta.get("config"), meta.get("summary")
        flat = (
            flatten(config) if isinstance(config, dict) else {},
            flatten(summary) if isinstance(summary, dict) else {},
        )
    return meta, None, flat


def metrics_check(path: str) -> tuple[bool, str | None]:
    """(exists, problem) of a metrics file from the cheap look of files.parquet_problem."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return False, None
    return True, files.parquet_problem(path, size)


def classify(
    run_id: str,
    path: Path,
    loaded: JsonResult,
    check_metrics: Callable[[str], tuple[bool, str | None]],
    is_alive: Callable[[Path], bool],
) -> RunState:
    """The run's status from its run.json, its metrics files and its writer lock.

    corrupt: run.json missing/unreadable/not an object/without a valid status or config/naming
    another run; a metrics file damaged; or a complete run without metrics.parquet.
    running: ``alive`` says whether a writer holds the lock; a dead one gets a reason.
    """
    meta, problem, flat = loaded
    if meta is None:
        if problem == MISSING_JSON and is_alive(path):
            return RunState(run_id, path, RUNNING, True, "starting (run.json not yet written)")
        return RunState(run_id, path, CORRUPT, False, problem)
    if not isinstance(meta, dict):
        return RunState(run_id, path, CORRUPT, False, "run.json is not a JSON object")
    status = meta.get("status")
    if status not in STATUSES or status == CORRUPT:
        return RunState(run_id, path, CORRUPT, False, f"run.json has no valid status: {status!r}")
    if not isinstance(meta.get("config"), dict):
        return RunState(run_id, path, CORRUPT, False, "run.json has no config object", meta)
    if meta.get("run_id") != run_id:
        named = f"run.json names run {meta.get('run_id')!r}, not {run_id!r}"
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
    for _ in range(2):  # a file gone since it was listed was merged or compacted: list again
        listed = files.metrics_files(path)
        checks = [(p, *check_metrics(str(p))) for p in listed]
        if all(exists for _, exists, _ in checks):
            break
    for _, _, bad in checks:
        if bad is not None:
            reason = f"{bad} (run.json status: {status})"
            return RunState(run_id, path, CORRUPT, False, reason, meta, (), flat)
    metrics_paths = [p for p, exists, _ in checks if exists]
    if status == COMPLETE and metrics_paths != [path / files.METRICS_FILE]:
        reason = f"{files.METRICS_FILE} is missing"
        return RunState(run_id, path, CORRUPT, False, reason, meta, (), flat)
    return RunState(run_id, path, status, alive, reason, meta, tuple(metrics_paths), flat)
