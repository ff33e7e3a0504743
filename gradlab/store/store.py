"""The store: one folder of runs; the reader side (runs table, metrics, SQL) and the entry points.

Readers never trust what is on disk: a run.json that is not JSON or has a malformed field, a
metrics file that is truncated, garbage or of another schema, a run folder that is a broken
symbolic link, or a writer that died is reported (``status`` ``corrupt`` or ``interrupted``) and
skipped, never raised from a query over other runs. Reasons name the run, not absolute paths.

SQL runs on a DuckDB connection that can read exactly the metrics files it is given and nothing
else; user SQL must be one SELECT statement (checked by DuckDB's parser before it runs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from . import annotations as _annotations
from . import files
from . import sql as _sql
from .annotations import Annotation
from .errors import AmbiguousRunIdError, RunExistsError
from .ids import validate_id
from .info import RunInfo
from .lock import RunLock, lock_held
from .schema import RUNNING, empty_metrics_frame, parquet_schema_problem
from .state import MISSING_JSON, NO_FLAT, JsonResult, RunState, classify, load_run_json, stat_key
from .writer import RunWriter, create_run

#: The shortest run-id prefix that :meth:`Store.resolve_id` expands (as git's short hashes).
MIN_PREFIX = 4
BASE_COLUMNS = ("run_id", "status", "alive", "reason", "created", "finished", "duration_s")
_RUN_JSON = os.sep + files.RUN_JSON


def _arrow_column(values: pd.Series) -> pa.Array:
    try:
        return pa.Array.from_pandas(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.array(
            [None if v is None or v is pd.NA else json.dumps(files.jsonable(v)) for v in values],
            type=pa.string(),
        )


def _text(value: Any) -> str | None:
    """``value`` if it is a string, else None (run.json times of a corrupt run may be junk)."""
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    """``value`` if it is a JSON number, else None."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _stat_id(st: os.stat_result) -> tuple[int, int]:
    return (st.st_ino, st.st_mtime_ns)


def _digest(*parts: Any) -> str:
    """A short hex digest of ``repr(parts)`` (stable across processes, unlike ``hash``)."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


#: How often a metrics scan is tried before giving up (see `Store._duckdb`).
_SCAN_ATTEMPTS = 32


def _may_be_a_file(exc: Exception, paths: list[Path]) -> bool:
    """Whether a DuckDB error may come from a damaged file rather than from the SQL."""
    import duckdb

    message = str(exc)
    if _sql.mentioned_paths(message, paths):
        return True
    if type(exc) in (duckdb.Error, duckdb.IOException, duckdb.InternalException):
        return True
    return any(word in message for word in ("arquet", "hrift", "magic", "footer", "decompress"))


class Store:
    """A folder of runs (``<root>/runs/run_id=<id>/``). Make one with :func:`open_store`.

    Safe to share between threads; several processes may read and write the same folder.
    """

    def __init__(
        self, path: str | os.PathLike[str], fsync: bool = True, threads: int | None = None
    ) -> None:
        self.root = Path(path).absolute()
        self.fsync = fsync
        self.threads = threads
        (self.root / files.RUNS_DIR).mkdir(parents=True, exist_ok=True)
        self._json_cache: dict[str, tuple[tuple[int, int, int], Any]] = {}
        self._pq_cache: dict[str, tuple[tuple[int, int, int], str | None]] = {}
        self._verified: dict[str, tuple[int, int, int]] = {}  # fully decoded fine
        self._cache_lock = threading.Lock()
        self._con: Any = None
        self._con_allowed: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ---------------------------------------------------------------- writer side
    def create_run(
        self,
        run_id: str,
        config: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
        *,
        overwrite: bool = False,
    ) -> RunWriter:
        """Claim ``run_id`` and return its writer (run.json written with status ``running``).

        Raises RunExistsError if the run is ``complete`` or has a live writer, or if it exists
        in any other state (failed, diverged, corrupt, interrupted) and
        ``overwrite`` is False; with ``overwrite=True`` those are wiped and redone. ``meta`` keys
        are added to run.json's top level.
        """
        return create_run(self.root, run_id, config, meta, overwrite=overwrite, fsync=self.fsync)

    def delete(self, run_id: str) -> None:
        """Remove a run folder (any status but a live writer's: that raises RunExistsError).

        A run folder that is a symbolic link loses the link only; what it points to is kept.
        """
        path = self._existing_dir(run_id)
        if path.is_symlink():
            path.unlink()
            files.bump_change_token(self.root)
            return
        lock = RunLock.try_acquire(path)
        if lock is None:
            raise RunExistsError(run_id, RUNNING, "its writer is alive; cannot delete it")
        try:
            files.remove_tree(path)
            files.bump_change_token(self.root)
        finally:
            lock.release()

    # ---------------------------------------------------------------- run states
    def _existing_dir(self, run_id: str) -> Path:
        validate_id(run_id)
        path = files.run_dir(self.root, run_id)
        if not (path.is_dir() or path.is_symlink()):
            raise KeyError(f"no run {run_id!r} in store {str(self.root)!r}")
        return path

    def run_ids(self) -> list[str]:
        """Ids of every run folder (symbolic links to folders included, broken ones too), sorted."""
        ids = []
        n = len(files.RUN_PREFIX)
        with os.scandir(self.root / files.RUNS_DIR) as it:
            for entry in it:
                if entry.name.startswith(files.RUN_PREFIX) and (
                    entry.is_dir() or entry.is_symlink()
                ):
                    run_id = entry.name[n:]
                    try:
                        ids.append(validate_id(run_id))
                    except ValueError:
                        continue
        return sorted(ids)

    def resolve_id(self, text: str) -> str:
        """The run id ``text`` names: itself when such a run exists, else the one run id it
        starts (``"9c5b"`` → ``"9c5b0e7a1f2d"``); a prefix has at least MIN_PREFIX characters.

        KeyError when no run matches; AmbiguousRunIdError (its ``candidates``) when several do;
        ValueError for a malformed id.
        """
        validate_id(text)
        if text in self:
            return text
        if len(text) < MIN_PREFIX:
            raise KeyError(f"no run {text!r} in store {str(self.root)!r}")
        found = [i for i in self.run_ids() if i.startswith(text)]
        if len(found) == 1:
            return found[0]
        if found:
            raise AmbiguousRunIdError(text, found)
        raise KeyError(f"no run {text!r} in store {str(self.root)!r}")

    # ---------------------------------------------------------------- tags and notes
    def annotations(self) -> dict[str, Annotation]:
        """run id → :class:`Annotation` (tags, note) of every annotated run; one small read."""
        return _annotations.read_annotations(self.root)

    def annotate(
        self,
        run_id: str,
        *,
        tags: Any = None,
        add_tags: Any = (),
        remove_tags: Any = (),
        note: str | None = None,
    ) -> Annotation:
        """Set a run's tags (``tags`` replaces them, ``add_tags`` / ``remove_tags`` edit them)
        and/or its note (``""`` clears it); returns the run's annotation now.

        Atomic and safe with concurrent writers in other processes (a file lock around
        read-edit-write); never touches the run's own files. KeyError for an unknown run;
        ValueError for a tag that is not a string or holds a comma.
        """
        self._existing_dir(run_id)
        return _annotations.annotate(
            self.root,
            run_id,
            tags=tags,
            add_tags=add_tags,
            remove_tags=remove_tags,
            note=note,
            fsync=self.fsync,
        )

    def signature(self) -> str:
        """A token that changes whenever the store's contents may have changed; equal tokens
        mean nothing was written. Cheap enough to poll every second on 1,000 runs.

        Built from the change token every writer replaces after each write (exact, however
        close two writes are) and the ``(inode, mtime)`` of the runs folder and of each run
        folder (catches runs added, removed or rewritten by other means: a copy, rsync,
        a hand edit). Cost: one small read, one scandir and one stat per run folder; no file
        inside a run folder is opened. A writer that dies changes no file: see ``alive`` in
        :meth:`runs`.
        """
        runs_dir = self.root / files.RUNS_DIR
        parts: list[Any] = [files.read_change_token(self.root)]
        try:
            parts.append(_stat_id(os.stat(runs_dir)))
            with os.scandir(runs_dir) as it:
                for entry in it:
                    if entry.name.startswith(files.RUN_PREFIX):
                        try:
                            parts.append((entry.name, *_stat_id(entry.stat())))
                        except FileNotFoundError:
                            continue
        except FileNotFoundError:
            parts.append(None)
        return _digest(sorted(parts[2:]), parts[:2])

    def run_signature(self, run_id: str) -> str:
        """A token of one run's files (run.json, metrics, arrays): it changes when any of them
        is rewritten, so a cache keyed on it never serves an older version. A handful of stats.

        KeyError for an unknown run.
        """
        path = self._existing_dir(run_id)
        keys: list[Any] = []
        for child in (path, path / files.RUN_JSON, *files.metrics_files(path)):
            try:
                keys.append((child.name, *stat_key(os.stat(child))))
            except (FileNotFoundError, NotADirectoryError):
                keys.append(None)
        arrays = path / files.ARRAYS_DIR
        try:
            keys.append(stat_key(os.stat(arrays)))
            with os.scandir(arrays) as it:
                names = sorted((e.name, *stat_key(e.stat())) for e in it if e.is_dir())
            keys.append(names)
        except (FileNotFoundError, NotADirectoryError):
            keys.append(None)
        return _digest(keys)

    def __contains__(self, run_id: object) -> bool:
        if not isinstance(run_id, str):
            return False
        path = files.run_dir(self.root, validate_id(run_id))
        return path.is_dir() or path.is_symlink()

    def _relative(self, text: str) -> str:
        """``text`` with the store's absolute paths replaced by run names (``run <id>/...``)."""
        runs = str(self.root / files.RUNS_DIR) + os.sep
        return text.replace(runs + files.RUN_PREFIX, "run ").replace(str(self.root), "<store>")

    def _read_json(self, path: str) -> JsonResult:
        """load_run_json, cached by the file's inode/mtime/size."""
        try:
            key = stat_key(os.stat(path))
        except (FileNotFoundError, NotADirectoryError):
            return None, MISSING_JSON, NO_FLAT
        cached = self._json_cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        result = load_run_json(path)
        with self._cache_lock:
            self._json_cache[path] = (key, result)
        return result

    def _check_metrics(self, path: str) -> tuple[bool, str | None]:
        """(exists, why it cannot be read or None) for a metrics file (size, magic bytes,
        footer schema), cached by inode/mtime/size."""
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False, None
        key = stat_key(st)
        cached = self._pq_cache.get(path)
        if cached is not None and cached[0] == key:
            return True, cached[1]
        problem = files.parquet_problem(path, st.st_size) or parquet_schema_problem(path)
        if problem is not None and not os.path.exists(path):
            return False, None  # merged or compacted away while it was read: list again
        if problem is not None:
            problem = self._relative(problem)
        with self._cache_lock:
            self._pq_cache[path] = (key, problem)
        return True, problem

    def _mark_bad(self, path: Path, problem: str) -> None:
        try:
            key = stat_key(os.stat(path))
        except FileNotFoundError:
            return
        with self._cache_lock:
            self._pq_cache[str(path)] = (key, self._relative(problem))

    def _prune(self, run_dirs: set[str]) -> None:
        """Forget cached files of run folders that are gone."""
        with self._cache_lock:
            for cache in (self._json_cache, self._pq_cache, self._verified):
                for key in [k for k in cache if os.path.dirname(k) not in run_dirs]:
                    del cache[key]

    def _state(self, run_id: str, path: Path | None = None) -> RunState:
        path = path or self._existing_dir(run_id)
        loaded = self._read_json(str(path) + _RUN_JSON)
        state = classify(run_id, path, loaded, self._check_metrics, lock_held)
        if state.reason is not None and str(self.root) in state.reason:
            state = dataclasses.replace(state, reason=self._relative(state.reason))
        return state

    def _states(self, run_ids: Any = None) -> list[RunState]:
        if run_ids is None:
            states = [self._state(i, files.run_dir(self.root, i)) for i in self.run_ids()]
            self._prune({str(s.path) for s in states})
            return states
        ids = _sql.as_list(run_ids) or []
        return [self._state(validate_id(i)) for i in ids]

    # ---------------------------------------------------------------- readers
    def run(self, run_id: str) -> RunInfo:
        """One run: config, status, summary, run.json (``meta``), metrics and arrays."""
        return RunInfo(self, self._state(run_id))

    def runs(self) -> pd.DataFrame:
        """One row per run folder, sorted by run_id.

        Columns: ``run_id``, ``status`` (running | complete | failed | diverged | interrupted |
        corrupt; ``interrupted``: run.json says running but its writer is gone), ``alive`` (a
        writer holds the run's lock now), ``reason`` (error text, why it is corrupt, or whose
        writer is gone),
        ``created``, ``finished`` (UTC datetimes), ``duration_s``; then every config field
        (nested dicts flattened with dots: ``init.gain``) and every summary field
        (``final_loss``, ``baseline_loss``, ``steps_done``, ...). A config key that clashes
        with the columns above is prefixed ``config.``, a summary key that clashes with those
        or with a config column ``summary.``. run.json files are cached by inode/mtime/size.
        """
        return self._runs_frame(self._states())

    def _runs_frame(self, states: list[RunState]) -> pd.DataFrame:
        n = len(states)
        data: dict[str, list[Any]] = {
            "run_id": [s.run_id for s in states],
            "status": [s.status for s in states],
            "alive": [s.alive for s in states],
            "reason": [s.reason for s in states],
            "created": [_text(s.meta.get("created")) for s in states],
            "finished": [_text(s.meta.get("finished")) for s in states],
            "duration_s": [_number(s.meta.get("duration_s")) for s in states],
        }
        extra: dict[str, list[Any]] = {}
        for which, prefix in ((0, "config."), (1, "summary.")):
            cols: dict[str, list[Any]] = {}
            for i, s in enumerate(states):
                for key, value in s.flat[which].items():
                    col = cols.get(key)
                    if col is None:
                        col = cols[key] = [None] * n
                    col[i] = value
            for key, values in cols.items():
                name = f"{prefix}{key}" if key in data or key in extra else key
                extra[name] = values
        df = pd.DataFrame({**data, **extra})
        df["alive"] = df["alive"].astype(bool)
        df["duration_s"] = pd.to_numeric(df["duration_s"], errors="coerce").astype("float64")
        for column in ("created", "finished"):
            df[column] = pd.to_datetime(df[column], utc=True, format="ISO8601", errors="coerce")
        for column in ("run_id", "status", "reason"):
            df[column] = df[column].astype("str")
        return df

    def _cursor(self, paths: list[Path]) -> Any:
        """A cursor of a DuckDB connection allowed to read ``paths`` (see ``sql.connect``).

        One connection is kept (its Parquet metadata cache makes repeated queries fast) and
        replaced by one that also allows the new paths when a query needs a file it may not
        read; files of the old one that still exist stay allowed, so readers of different runs
        share it.
        """
        wanted = _sql.as_strings(paths)
        with self._cache_lock:
            if self._con is None or not self._con_allowed.issuperset(wanted):
                allowed = set(wanted) | {p for p in self._con_allowed if os.path.exists(p)}
                self._con = _sql.connect(sorted(allowed), self.threads)
                self._con_allowed = frozenset(allowed)
            return self._con.cursor()

    def _duckdb(
        self,
        states_fn: Callable[[], list[RunState]],
        run: Callable[[Any, list[RunState], list[Path]], pd.DataFrame],
    ) -> pd.DataFrame:
        """Run a DuckDB job over the readable metrics files; quarantine files that fail.

        A scan error that is not the query's own fault (parser, binder, catalog, conversion,
        ...) makes the store decode the suspect files with pyarrow, mark the damaged ones
        corrupt (runs() reports them) and run the job again without them.
        """
        import duckdb

        own_fault = (
            duckdb.ParserException,
            duckdb.BinderException,
            duckdb.CatalogException,
            duckdb.ConversionException,
            duckdb.OutOfRangeException,
            duckdb.NotImplementedException,
            duckdb.InterruptException,
            duckdb.OutOfMemoryException,
            duckdb.PermissionException,
        )
        # each try lists the files again: a writer streaming flushes may merge a listed part
        # away before the scan opens it, so a reader racing it can need several
        for _ in range(_SCAN_ATTEMPTS):
            states = states_fn()
            paths = [p for s in states for p in s.metrics_files]
            cur = self._cursor(paths)
            try:
                return run(cur, states, paths)
            except own_fault as exc:
                # a listed part merged or compacted away meanwhile reads as a (disabled) glob
                gone = not all(os.path.exists(p) for p in paths)
                if isinstance(exc, duckdb.PermissionException) and gone:
                    continue  # list again
                raise self._without_paths(exc) from None
            except duckdb.Error as exc:
                if not _may_be_a_file(exc, paths) or not self._quarantine(str(exc), paths):
                    raise self._without_paths(exc) from None
            finally:
                cur.close()
        raise RuntimeError("metrics query kept failing on damaged files")  # pragma: no cover

    def _without_paths(self, exc: Exception) -> Exception:
        """``exc`` itself, or one of its type whose text names runs instead of absolute paths."""
        message = str(exc)
        if str(self.root) not in message:
            return exc
        try:
            return type(exc)(self._relative(message))
        except Exception:  # an exception type that takes other arguments
            return exc

    def _quarantine(self, message: str, paths: list[Path]) -> bool:
        """Decode the files behind a failed scan; mark the damaged ones; whether any was."""
        named = _sql.mentioned_paths(message, paths)
        for group in (named, paths):
            found = False
            for path in group:
                try:
                    key = stat_key(os.stat(path))
                except FileNotFoundError:  # merged or compacted since it was listed: list again
                    found = True
                    continue
                if self._verified.get(str(path)) == key:
                    continue
                problem = files.parquet_readable(path)
                if problem is None:
                    self._verified[str(path)] = key
                else:
                    self._mark_bad(path, problem)
                    found = True
            if found:
                return True
        return False

    def metrics(
        self,
        run_ids: str | list[str] | None = None,
        probes: str | list[str] | None = None,
        names: str | list[str] | None = None,
        steps: int | list[int] | range | None = None,
        t: int | list[int] | range | None = None,
    ) -> pd.DataFrame:
        """Long metrics table (``run_id`` + schema columns) of the given runs (all by default).

        Filters take a value or a list. Runs without readable metrics (corrupt, or running and
        not yet flushed) add no rows; an unknown run id raises KeyError. Rows are ordered by
        run_id, probe, name, layer, direction, step, t.
        """
        filters = [
            f
            for f in (
                _sql.in_filter("probe", probes, str),
                _sql.in_filter("name", names, str),
                _sql.in_filter("step", steps, int),
                _sql.in_filter("t", t, int),
            )
            if f is not None
        ]
        query = _sql.metrics_select([clause for clause, _ in filters])
        params = {k: v for _, values in filters for k, v in values.items()}

        def run(cur: Any, states: list[RunState], paths: list[Path]) -> pd.DataFrame:
            if not paths:
                return empty_metrics_frame()
            params[_sql.FILES_PARAM] = _sql.as_strings(paths)
            return _sql.to_frame(cur.sql(query, params=params).to_arrow_table())

        return self._duckdb(lambda: self._states(run_ids), run)

    def query(self, sql: str, **params: Any) -> pd.DataFrame:
        """Run DuckDB SQL with views ``metrics`` (every readable run, with run_id) and ``runs``.

        Named parameters are DuckDB's ``$name``: ``store.query("... WHERE t = $t", t=5)``.
        Read-only: ``sql`` must be one SELECT statement (WITH, FROM, VALUES, DESCRIBE, SUMMARIZE
        and SHOW are SELECTs); anything else (COPY, ATTACH, EXPORT, INSTALL, LOAD, CREATE,
        INSERT, PRAGMA, SET, ...) raises ReadOnlyQueryError before it runs. The connection can
        read the runs' metrics files and nothing else.
        """
        _sql.check_read_only(sql)

        def run(cur: Any, states: list[RunState], paths: list[Path]) -> pd.DataFrame:
            frame = self._runs_frame(states)
            arrow = pa.Table.from_arrays(
                [_arrow_column(frame[c]) for c in frame.columns], names=list(frame.columns)
            )
            cur.register("runs", arrow)
            _sql.create_metrics_view(cur, paths)
            result = cur.execute(sql, params) if params else cur.execute(sql)
            return result.df()

        return self._duckdb(self._states, run)


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether the folder ``path`` holds a run store (one :func:`open_store` made)."""
    return (Path(path) / files.RUNS_DIR).is_dir()


def open_store(
    path: str | os.PathLike[str], *, fsync: bool = True, threads: int | None = None
) -> Store:
    """Create (if needed) and open the run store in folder ``path``.

    ``fsync=False`` skips fsync on writes (faster; for tests and scratch stores).
    ``threads`` caps DuckDB's worker threads (default: one per core).
    """
    return Store(path, fsync=fsync, threads=threads)
