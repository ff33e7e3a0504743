"""The writer side: claim a run, buffer its metrics, write arrays, finish it."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa

from . import files
from .errors import RunExistsError
from .ids import validate_id
from .lock import RunLock
from .provenance import git_commit, versions, writer_info
from .schema import (
    COMPLETE,
    CORRUPT,
    FINAL_STATUSES,
    INTERRUPTED,
    METRICS_SCHEMA,
    RUNNING,
    metrics_table,
    sort_metrics,
)
from .state import MISSING_JSON, classify, load_run_json, metrics_check

FORMAT_VERSION = 1
RESERVED_KEYS = frozenset(
    {
        "format",
        "run_id",
        "status",
        "config",
        "seed",
        "created",
        "finished",
        "duration_s",
        "summary",
        "error",
        "versions",
        "git_commit",
        "writer",
    }
)


def now_iso() -> str:
    """The current UTC time as ISO-8601 text."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _existing_status(run_path: Path, run_id: str) -> tuple[str | None, str]:
    """(status, why) of an existing run folder, for a writer that holds its lock.

    Same classification as the readers (``state.classify``), plus a full decode of a complete
    run's metrics; (None, "") for a folder holding nothing but the lock file.
    """
    state = classify(
        run_id,
        run_path,
        load_run_json(str(run_path / files.RUN_JSON)),
        metrics_check,
        lambda _: False,  # we hold the lock: any previous writer is gone
    )
    if state.status == CORRUPT and state.reason == MISSING_JSON:
        if all(e.name == files.LOCK_FILE for e in run_path.iterdir()):
            return None, ""
    if state.status == COMPLETE:
        for path in state.metrics_files:
            problem = files.parquet_readable(path)
            if problem is not None:
                return CORRUPT, problem
    return state.status, state.reason or ""


def create_run(
    root: Path,
    run_id: str,
    config: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    fsync: bool = True,
) -> RunWriter:
    """Claim ``run_id`` under ``root`` and write its run.json with status ``running``.

    See :meth:`gradlab.store.Store.create_run`.
    """
    validate_id(run_id)
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    config = files.jsonable(config)
    extra = files.jsonable(dict(meta or {}))
    clash = RESERVED_KEYS & set(extra)
    if clash:
        raise ValueError(f"meta keys {sorted(clash)} are reserved by run.json")
    json.dumps(extra)  # fail before touching the disk

    run_path = files.run_dir(root, run_id)
    existed = run_path.exists()
    lock = RunLock.try_acquire(run_path)
    if lock is None:
        live_status, _ = _peek_status(run_path)
        raise RunExistsError(run_id, live_status, "it is being written by a live process")
    try:
        status, why = _existing_status(run_path, run_id)
        if status == COMPLETE:
            raise RunExistsError(run_id, status, "delete it first to redo it")
        if status is not None:
            if not overwrite:
                detail = {INTERRUPTED: "its writer is gone; ", CORRUPT: f"{why}; "}.get(status, "")
                raise RunExistsError(run_id, status, f"{detail}pass overwrite=True to redo it")
            files.clear_dir(run_path)
        record = {
            "format": FORMAT_VERSION,
            "run_id": run_id,
            "status": RUNNING,
            "config": config,
            "seed": config.get("seed"),
            "created": now_iso(),
            "finished": None,
            "duration_s": None,
            "summary": {},
            "error": None,
            "versions": versions(),
            "git_commit": git_commit(),
            "writer": writer_info(),
            **extra,
        }
        files.write_json(run_path / files.RUN_JSON, record, fsync=fsync)
        files.bump_change_token(root)
    except BaseException:
        try:
            if not existed:  # still holding the lock, so nobody else is in there
                files.remove_tree(run_path)
        finally:
            lock.release()
        raise
    return RunWriter(run_path, record, lock, fsync=fsync)


def _sorted(tables: list[pa.Table]) -> pa.Table:
    """Metric tables as one table in file order (``sort_metrics``); empty for no tables."""
    if not tables:
        return METRICS_SCHEMA.empty_table()
    return sort_metrics(pa.concat_tables(tables).combine_chunks())


def _peek_status(run_path: Path) -> tuple[str, str]:
    try:
        meta = json.loads((run_path / files.RUN_JSON).read_text(encoding="utf-8"))
        return str(meta.get("status", RUNNING)), ""
    except (OSError, ValueError, AttributeError):
        return RUNNING, ""


class RunWriter:
    """Writes one run. Made by :meth:`Store.create_run`; holds the run's lock until finished.

    Metrics are buffered by :meth:`log_metrics` and written by :meth:`flush`: each flush writes
    only its own rows, to a new part file, never rewriting earlier ones. Every ``MERGE_FANIN``
    parts of one size are merged into one, so readers of a live or killed run open few files
    (at most 7 per size: 28 below 4,096 flushes) while each row is rewritten only about
    log_8(flushes) times; :meth:`finish` compacts them all into metrics.parquet. The flushed
    rows stay in memory until then (for the merges). Use as a context manager: leaving the block
    normally finishes the run as ``complete``; an exception finishes it as ``failed`` with the
    traceback and re-raises.
    """

    MERGE_FANIN = 8
    """How many parts of one size are merged into one."""

    def __init__(self, path: Path, record: dict[str, Any], lock: RunLock, fsync: bool) -> None:
        self.path = path
        self.run_id: str = record["run_id"]
        self._record = record
        self._lock = lock
        self._fsync = fsync
        self._t0 = time.monotonic()
        # ((first, last) flush, rows) of each part on disk not merged into a wider one
        self._parts: list[tuple[tuple[int, int], pa.Table]] = []
        self._flushes = 0
        self._pending: list[pa.Table] = []
        self._closed = False

    @property
    def config(self) -> dict[str, Any]:
        """The run's config as stored in run.json."""
        return self._record["config"]

    @property
    def status(self) -> str:
        """``running`` until finished, then the final status."""
        return self._record["status"]

    def add_config(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Add the keys of `values` that the config lacks (its own keys win) and rewrite
        run.json now, so readers see them while the run is live; returns the keys added."""
        self._check_open()
        added = {k: v for k, v in files.jsonable(dict(values)).items() if k not in self.config}
        if added:
            self.config.update(added)
            files.write_json(self.path / files.RUN_JSON, self._record, fsync=self._fsync)
            files.bump_change_token(files.root_of(self.path))
        return added

    def note_progress(self, summary: Mapping[str, Any]) -> None:
        """Replace the summary in run.json while the run is live (e.g. ``steps_done``, the loss
        so far, the latest decay rate), so readers can show progress; atomic, a small file.
        :meth:`finish` writes the final summary over it."""
        self._check_open()
        self._record["summary"] = files.jsonable(dict(summary))
        files.write_json(self.path / files.RUN_JSON, self._record, fsync=self._fsync)
        files.bump_change_token(files.root_of(self.path))

    @property
    def closed(self) -> bool:
        """Whether :meth:`finish` has run."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"run {self.run_id!r} is finished ({self.status}); it is read-only")

    def log_metrics(self, rows: Any) -> None:
        """Buffer long metric rows (DataFrame or dict of columns; see ``METRICS_SCHEMA``)."""
        self._check_open()
        table = metrics_table(rows)
        if table.num_rows:
            self._pending.append(table)

    @property
    def pending_rows(self) -> int:
        """Rows logged but not yet flushed."""
        return sum(t.num_rows for t in self._pending)

    def save_array(self, name: str, step: int, array: np.ndarray) -> Path:
        """Write ``arrays/<name>/step=<step>.npy`` atomically; returns its path."""
        self._check_open()
        validate_id(name, "array name")
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}")
        path = files.array_path(self.path, name, int(step))
        files.write_array(path, array, fsync=self._fsync)
        files.bump_change_token(files.root_of(self.path))
        return path

    def flush(self) -> None:
        """Write the metric rows logged since the last flush to a new part file (atomic)."""
        self._check_open()
        if not self._pending:
            return
        table = _sorted(self._pending)
        n = self._flushes
        files.write_parquet(files.metrics_part_path(self.path, n, n), table, fsync=self._fsync)
        self._flushes += 1
        self._pending = []
        self._parts.append(((n, n), table))
        self._merge_tail()
        files.bump_change_token(files.root_of(self.path))

    def _merge_tail(self) -> None:
        """Merge the last MERGE_FANIN parts while they have one size (a base-8 counter)."""
        k = self.MERGE_FANIN
        while len(self._parts) >= k:
            tail = self._parts[-k:]
            size = tail[0][0][1] - tail[0][0][0]
            if any(last - first != size for (first, last), _ in tail):
                return
            first, last = tail[0][0][0], tail[-1][0][1]
            table = _sorted([t for _, t in tail])
            files.write_parquet(files.metrics_part_path(self.path, first, last), table, self._fsync)
            for (a, b), _ in tail:  # lowest first: see files.metrics_files
                files.metrics_part_path(self.path, a, b).unlink()
            self._parts[-k:] = [((first, last), table)]

    def _compact(self) -> None:
        """Write every row (parts and pending) to metrics.parquet, then delete the parts."""
        table = _sorted([t for _, t in self._parts] + self._pending)
        files.write_parquet(self.path / files.METRICS_FILE, table, fsync=self._fsync)
        self._pending = []
        self._parts = []
        for path in files.metrics_part_files(self.path):
            path.unlink(missing_ok=True)
        files.bump_change_token(files.root_of(self.path))

    def finish(
        self,
        status: str = COMPLETE,
        summary: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Compact the metrics into metrics.parquet, write the final run.json (status, timings,
        summary, error), release the lock.

        ``status`` is ``complete``, ``failed`` or ``diverged``. run.json is written last, so a
        run is only ever ``complete`` once all its files are in place.
        """
        self._check_open()
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, got {status!r}")
        summary = files.jsonable(dict(summary or {}))
        try:
            try:
                self._compact()
            except Exception as exc:
                status = "failed"
                error = (error + "\n" if error else "") + f"writing metrics failed: {exc!r}"
                raise
            finally:
                self._record.update(
                    status=status,
                    finished=now_iso(),
                    duration_s=round(time.monotonic() - self._t0, 6),
                    summary=summary,
                    error=error,
                )
                files.write_json(self.path / files.RUN_JSON, self._record, fsync=self._fsync)
                files.bump_change_token(files.root_of(self.path))
        finally:
            self._closed = True
            self._lock.release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._closed:
            return
        if exc is None:
            self.finish(COMPLETE)
        else:
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            self.finish("failed", error=text)

    def __repr__(self) -> str:
        return f"RunWriter({self.run_id!r}, status={self.status!r}, path={str(self.path)!r})"
