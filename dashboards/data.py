"""The dashboard's one door to the run store (the only module that imports ``gradlab.store``).

Every reader takes the store root first (an absolute folder, as ``str``); pages get it from
:func:`current_root`, which reads the Flask config of the app serving the request, so an app only
ever reads the store it was created with (nothing in a URL names a folder).

Caching: ``functools.lru_cache`` keyed on the root, the run id and the store's change tokens
(``Store.signature()`` for the runs table, ``Store.run_signature(id)`` for one run's metrics and
arrays), so a run that is rewritten is read again and nothing stale is served. This module
knows no file or folder of the store: it reads through ``gradlab.store``'s public API only.
The caches are per process and only memoise what is on disk: several workers each keep their
own and agree.
Cached frames and arrays are shared between callers: treat them as read-only (pandas 3 copies on
write, arrays are flagged read-only).

Errors a user can cause (a malformed or unknown run id, a corrupt run) raise :class:`DataError`
with a message fit for the page; nothing here unpickles or evaluates what it reads. No text a
page shows names an absolute filesystem path: :func:`public_text` makes store paths
store-relative (the reasons of ``runs()`` and ``run_problem`` go through it here, error text in
``pages/_common``'s messages and error figures).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gradlab.config import RunConfig
from gradlab.store import (
    AmbiguousRunIdError,
    RunInfo,
    Store,
    empty_metrics_frame,
    open_store,
    validate_id,
)

__all__ = [
    "STORE_KEY",
    "DataError",
    "annotate",
    "annotations",
    "array",
    "array_names",
    "array_steps",
    "check_run_id",
    "counterparts",
    "current_root",
    "grid_axes",
    "metrics",
    "parse_run_ids",
    "public_text",
    "recorded_steps",
    "resolve_root",
    "resolve_run_id",
    "run",
    "run_row",
    "run_summaries",
    "run_version",
    "runs",
    "series",
    "series_extent",
    "signature",
    "sweep_axes",
    "sweep_runs",
    "sweeps",
]

#: Key of the store folder in the Flask app's config.
STORE_KEY = "GRADLAB_STORE"

#: Config columns that say which model a run trains; a counterpart differs in these.
CELL_COLUMNS = ("cell", "activation", "forget_bias", "update_bias")
#: Config columns a counterpart must share.
SAME_TASK_COLUMNS = ("sweep", "task", "seq_len", "seed")
#: Columns of ``runs()`` that can be grid axes: the RunConfig fields (``sweep`` names the grid).
CONFIG_AXES = frozenset(f.name for f in dataclasses.fields(RunConfig)) - {"sweep"}
#: How long (s) the runs table may be reused while some run is still being written.
LIVE_TTL = 5.0
#: How long (s) one look at the store's change signature is reused.
SIGNATURE_TTL = 1.0


class DataError(Exception):
    """Something a user asked for that the store cannot give; the message is for the page."""


# ----------------------------------------------------------------------------- the store
def resolve_root(path: str | os.PathLike[str]) -> str:
    """The absolute store folder for ``path`` (created, empty, if it does not exist)."""
    root = Path(path).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"store path {str(root)!r} is a file, not a folder")
    return str(root)


def current_root() -> str:
    """The store folder of the app serving the current request."""
    import flask

    return flask.current_app.config[STORE_KEY]


@lru_cache(maxsize=8)
def _store(root: str) -> Store:
    return open_store(root, fsync=False)


# ----------------------------------------------------------------------------- page text
#: An absolute POSIX path in running text: a "/" that does not continue a word, a relative path,
#: a URL or a formula, then characters up to a blank, a quote, a bracket or a separator.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:)\]}*+…-])/[^\s'\"`,;:()\[\]{}<>|*?]+")


@lru_cache(maxsize=1)
def _code_bases() -> tuple[str, ...]:
    """Folders code is imported from, longest first: sys.path (site-packages, the stdlib) and
    the folder of every top-level package loaded (an editable install is on no sys.path)."""
    bases = {os.path.normpath(p) for p in (*sys.path, sys.prefix, sys.base_prefix) if p}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if "." not in name and isinstance(file, str):
            folder = os.path.dirname(os.path.abspath(file))
            bases.add(os.path.dirname(folder) if file.endswith("__init__.py") else folder)
    bases = {b for b in bases if os.path.isabs(b) and b != os.sep}
    return tuple(sorted(bases, key=len, reverse=True))


def public_text(text: Any, root: str | None = None) -> str:
    """``text`` fit for a page: no absolute filesystem path in it.

    A path in the store folder ``root`` (by default the store of the app serving the request)
    becomes store-relative (a run's file as ``<store>/…/<file>``; the folder itself its name),
    a path of installed code is shown from its sys.path folder (``torch/nn/modules/module.py``),
    any other absolute path as ``…/`` and its last name. DuckDB, pyarrow and tracebacks name files
    by absolute path; the pages show what went wrong without where the server keeps its files.
    """
    out = str(text)
    if root is None:
        import flask

        root = current_root() if flask.has_app_context() else None
    if root:
        name = os.path.basename(os.path.normpath(root))

        def in_store(match: re.Match[str]) -> str:  # "<root>/x" -> "x", "<root>" -> its name
            return "" if match.group(1) else name

        for folder in sorted({os.path.normpath(root), os.path.realpath(root)}, key=len)[::-1]:
            if folder != os.sep:
                pattern = rf"(?<![\w.~/-]){re.escape(folder)}(?:(/)|(?=[^\w.-]|$))"
                out = re.sub(pattern, in_store, out)
    bases = _code_bases()

    def shown(match: re.Match[str]) -> str:
        path = match.group(0)
        for base in bases:
            if path.startswith(base + os.sep):
                return path[len(base) + 1 :]
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return f"…/{last}" if last else "…"

    return _ABSOLUTE_PATH.sub(shown, out)


# ----------------------------------------------------------------------------- run ids
def check_run_id(value: Any) -> str:
    """``value`` if it is a well-formed run id, else DataError (no path-like ids reach disk)."""
    try:
        return validate_id(value)
    except ValueError:
        shown = str(value)[:80]
        raise DataError(
            f"{shown!r} is not a run id: run ids are 1-128 letters, digits, '-' or '_' "
            "(no paths, dots or slashes)."
        ) from None


def parse_run_ids(text: str | Sequence[str] | None) -> tuple[list[str], list[str]]:
    """Split ``"a,b,c"`` (or a list of such) into (well-formed unique ids, messages); while an
    app serves a request, a unique prefix of a run id becomes that id (:func:`resolve_run_id`)."""
    if text is None:
        return [], []
    import flask

    root = current_root() if flask.has_app_context() else None
    parts = [text] if isinstance(text, str) else list(text)
    ids: list[str] = []
    problems: list[str] = []
    for part in parts:
        for item in str(part).split(","):
            item = item.strip()
            if not item:
                continue
            try:
                run_id = check_run_id(item)
                if root is not None:
                    run_id = resolve_run_id(root, run_id)
            except DataError as exc:
                problems.append(str(exc))
                continue
            if run_id not in ids:
                ids.append(run_id)
    return ids, problems


# ----------------------------------------------------------------------------- runs table
def _runs_signature(root: str) -> str:
    """``Store.signature()``, looked at most every SIGNATURE_TTL seconds (one page load asks
    many times)."""
    return _runs_signature_at(root, int(time.monotonic() / SIGNATURE_TTL))


@lru_cache(maxsize=8)
def _runs_signature_at(root: str, _tick: int) -> str:
    return _store(root).signature()


@lru_cache(maxsize=8)
def _runs_cached(root: str, signature: str, live_bucket: int) -> pd.DataFrame:
    frame = _store(root).runs()
    frame["reason"] = frame["reason"].map(lambda r: public_text(r, root), na_action="ignore")
    if "final_loss" in frame and "baseline_loss" in frame:
        final = pd.to_numeric(frame["final_loss"], errors="coerce")
        base = pd.to_numeric(frame["baseline_loss"], errors="coerce")
        frame["loss_ratio"] = (final / base.where(base != 0)).astype("float64")
    return frame


def runs(root: str) -> pd.DataFrame:
    """``store.runs()`` (one row per run, config and summary columns) plus ``loss_ratio``
    (final / baseline loss). Re-read when the store's signature changes, and every few
    seconds while a run is being written (its writer may die without touching a file)."""
    signature = _runs_signature(root)
    frame = _runs_cached(root, signature, 0)
    if (frame["status"] == "running").any():
        frame = _runs_cached(root, signature, int(time.monotonic() // LIVE_TTL) + 1)
    return frame


def run_row(root: str, run_id: str) -> dict[str, Any]:
    """One run's row of :func:`runs` as a dict (DataError if there is no such run)."""
    run_id = check_run_id(run_id)
    frame = runs(root)
    rows = frame[frame["run_id"] == run_id]
    if rows.empty:  # a run made since the signature was last looked at (SIGNATURE_TTL)
        frame = _runs_cached(root, _store(root).signature(), 0)
        rows = frame[frame["run_id"] == run_id]
    if rows.empty:
        raise DataError(f"There is no run {run_id!r} in this store.")
    return {k: _plain(v) for k, v in rows.iloc[0].items()}


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (NaN/NA → None, numpy → Python)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def sweeps(root: str) -> list[str]:
    """Names of the sweeps in the store (non-empty ``sweep`` config values), sorted."""
    frame = runs(root)
    if "sweep" not in frame:
        return []
    names = frame["sweep"].dropna().astype(str)
    return sorted(n for n in names.unique() if n)


def sweep_runs(root: str, name: str) -> pd.DataFrame:
    """The rows of :func:`runs` whose ``sweep`` is ``name`` (empty frame if none)."""
    frame = runs(root)
    if "sweep" not in frame:
        return frame.iloc[0:0]
    return frame[frame["sweep"].astype(str) == str(name)]


def grid_axes(frame: pd.DataFrame) -> list[str]:
    """Config columns that take more than one value in ``frame`` (a sweep's grid axes)."""
    axes = []
    for col in frame.columns:
        if col not in CONFIG_AXES:
            continue
        values = frame[col]
        if values.dtype == object:
            values = values.map(_hashable)
        if values.nunique(dropna=False) > 1:
            axes.append(col)
    return axes


def sweep_axes(root: str, name: str) -> list[str]:
    """:func:`grid_axes` of sweep ``name`` (cached while the store does not change)."""
    return list(_sweep_axes(root, _runs_signature(root), str(name)))


@lru_cache(maxsize=32)
def _sweep_axes(root: str, signature: str, name: str) -> tuple[str, ...]:
    return tuple(grid_axes(sweep_runs(root, name)))


def _hashable(value: Any) -> Any:
    if isinstance(value, list | dict):
        return repr(value)
    return value


def _equal(values: pd.Series, target: Any) -> pd.Series:
    """Boolean mask of ``values`` equal to ``target`` (numbers within 1e-9, None matches NA)."""
    target = _plain(target)
    if target is None:
        return values.isna()
    if isinstance(target, int | float) and not isinstance(target, bool):
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        return pd.Series(
            np.isclose(numbers.to_numpy(), float(target), rtol=1e-9, atol=0.0), index=values.index
        )
    return values.map(_hashable) == _hashable(target)


def counterparts(root: str, run_id: str) -> list[dict[str, Any]]:
    """Runs of the same sweep, task, seq_len and seed as ``run_id`` but another cell.

    Of each other cell, the runs that match the most other grid values are kept (a grid that
    varies gain for the RNN but not the LSTM still finds the LSTM). Each item: run_id, cell,
    status.
    """
    me = run_row(root, run_id)
    if not me.get("sweep"):
        return []
    frame = sweep_runs(root, me["sweep"])
    if "cell" not in frame:
        return []
    keep = frame["cell"] != me.get("cell")
    for col in SAME_TASK_COLUMNS:
        if col in frame:
            keep &= _equal(frame[col], me.get(col))
    others = frame[keep]
    if others.empty:
        return []
    axes = [a for a in sweep_axes(root, me["sweep"]) if a not in CELL_COLUMNS]
    score = pd.Series(0, index=others.index)
    for col in axes:
        if col not in SAME_TASK_COLUMNS:
            score += _equal(others[col], me.get(col)).astype(int)
    others = others.assign(_score=score)
    best = others.groupby("cell")["_score"].transform("max")
    chosen = others[others["_score"] == best].sort_values(["cell", "run_id"])
    return [
        {"run_id": r, "cell": c, "status": s}
        for r, c, s in zip(chosen["run_id"], chosen["cell"], chosen["status"], strict=True)
    ]


# ----------------------------------------------------------------------------- sweep summaries
_FIRST_FRACTION_SQL = """
WITH g AS (
    SELECT run_id, step, t, value FROM metrics
    WHERE probe = 'grad_hidden' AND name = 'norm' AND t IS NOT NULL
      AND coalesce(layer, 0) = 0 AND coalesce(direction, 0) = 0 AND run_id IN ({ids})
),
last AS (SELECT run_id, max(step) AS step FROM g GROUP BY run_id),
h AS (SELECT g.* FROM g JOIN last USING (run_id, step))
SELECT run_id, arg_min(value, t) / nullif(arg_max(value, t), 0) AS first_fraction
FROM h GROUP BY run_id
"""


@lru_cache(maxsize=16)
def _first_fraction(root: str, signature: str, run_ids: tuple[str, ...]) -> pd.Series:
    if not run_ids:
        return pd.Series(dtype="float64")
    ids = ", ".join("'" + validate_id(r) + "'" for r in run_ids)
    frame = _store(root).query(_FIRST_FRACTION_SQL.format(ids=ids))
    return frame.set_index("run_id")["first_fraction"].astype("float64")


def run_summaries(root: str, run_ids: Sequence[str], names: Iterable[str]) -> pd.DataFrame:
    """Per-run summaries, one row per run id (NaN where missing): ``decay_rate`` (the state
    decay rate of the latest recording, from its summary), ``loss_ratio`` (final / baseline loss)
    and ``first_fraction`` (‖∂L/∂h_0‖ / ‖∂L/∂h_T‖ at the latest recorded step, one SQL query
    over the runs)."""
    frame = runs(root).set_index("run_id")
    ids = [r for r in run_ids if r in frame.index]
    out = pd.DataFrame(index=pd.Index(ids, name="run_id"))
    for name in names:
        if name == "first_fraction":
            values = _first_fraction(root, _runs_signature(root), tuple(sorted(ids)))
            out[name] = values.reindex(out.index).astype("float64")
        elif name in frame:
            out[name] = pd.to_numeric(frame.loc[ids, name], errors="coerce").astype("float64")
        else:
            out[name] = np.nan
    return out.reset_index()


# ----------------------------------------------------------------------------- one run
def run(root: str, run_id: str) -> RunInfo:
    """The store's RunInfo of ``run_id``; DataError for a malformed or unknown id."""
    run_id = check_run_id(run_id)
    try:
        return _store(root).run(run_id)
    except KeyError:
        raise DataError(f"There is no run {run_id!r} in this store.") from None
    except ValueError as exc:  # pragma: no cover - check_run_id already refused it
        raise DataError(str(exc)) from None


def run_problem(root: str, run_id: str) -> str | None:
    """Why ``run_id`` has nothing to show (unknown, malformed, corrupt), or None."""
    try:
        info = run(root, run_id)
    except DataError as exc:
        return str(exc)
    if info.status == "corrupt":
        return f"Run {run_id!r} is corrupt: {public_text(info.reason, root)}"
    return None


@lru_cache(maxsize=48)
def _run_metrics(root: str, run_id: str, signature: str) -> dict[tuple[str, str], pd.DataFrame]:
    """One run's metrics split by (probe, name); read once per version of its files."""
    frame = _store(root).metrics([run_id])
    return {k: g.reset_index(drop=True) for k, g in frame.groupby(["probe", "name"], sort=False)}


def _run_metrics_for(root: str, run_id: str) -> dict[tuple[str, str], pd.DataFrame]:
    info = run(root, run_id)
    if info.status == "corrupt":
        return {}
    return _run_metrics(root, info.run_id, _run_signature(root, info.run_id))


def _run_signature(root: str, run_id: str) -> str:
    try:
        return _store(root).run_signature(run_id)
    except KeyError:
        raise DataError(f"There is no run {run_id!r} in this store.") from None


def metrics(
    root: str,
    run_ids: Iterable[str],
    probes: Iterable[tuple[str, Iterable[str] | None]] | None = None,
) -> pd.DataFrame:
    """The long metrics table (``run_id`` + store schema) of ``run_ids``.

    ``probes``: ``(probe, names)`` pairs (names None: all of the probe's series), as a
    ``FigureSpec.probes`` lists them; None: everything.
    """
    wanted = None
    if probes is not None:
        wanted = [(p, None if n is None else set(n)) for p, n in probes]
    parts = []
    for run_id in run_ids:
        for (probe, name), frame in _run_metrics_for(root, run_id).items():
            if wanted is None or any(
                probe == p and (names is None or name in names) for p, names in wanted
            ):
                parts.append(frame)
    if not parts:
        return empty_metrics_frame()
    return pd.concat(parts, ignore_index=True)


def series(root: str, run_id: str) -> set[tuple[str, str]]:
    """The (probe, name) series the run has rows of."""
    return set(_run_metrics_for(root, run_id))


# ----------------------------------------------------------------------------- live runs
def run_version(root: str, run_id: str) -> tuple[str, str]:
    """(status, change token) of one run, read now (no cache): a page of a running run polls
    it to learn that new recordings landed. The token is ``Store.run_signature``: a few stats."""
    info = run(root, run_id)
    return info.status, _run_signature(root, info.run_id)


def series_extent(root: str, run_id: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(probe, name) → (rows, last step) of each series of the run: what a figure of those
    series draws changes exactly when these do."""
    return {
        key: (len(frame), int(frame["step"].max()) if len(frame) else -1)
        for key, frame in _run_metrics_for(root, run_id).items()
    }


def array_names(root: str, run_id: str) -> list[str]:
    """Names of the run's saved arrays."""
    return run(root, run_id).array_names()


def recorded_steps(root: str, run_id: str) -> list[int]:
    """Training steps at which the run was recorded (probes other than ``train``), sorted."""
    steps: set[int] = set()
    for (probe, _), frame in _run_metrics_for(root, run_id).items():
        if probe != "train":
            steps.update(int(s) for s in frame["step"].unique())
    return sorted(steps)


def array_steps(root: str, run_id: str, name: str) -> list[int]:
    """Steps at which array ``name`` of the run was saved ([] if none)."""
    try:
        return run(root, run_id).array_steps(name)
    except ValueError as exc:
        raise DataError(str(exc)) from None


@lru_cache(maxsize=128)
def _array(root: str, run_id: str, name: str, step: int, signature: str) -> np.ndarray:
    """One array chunk, read once per version of the run's files (KeyError: not saved)."""
    out = _store(root).run(run_id).array(name, step)
    out.flags.writeable = False
    return out


def array(root: str, run_id: str, name: str, step: int) -> np.ndarray | None:
    """Array ``name`` of the run at ``step`` (read-only), or None if it was not saved."""
    info = run(root, run_id)
    try:
        validate_id(name, "array name")
    except ValueError as exc:
        raise DataError(str(exc)) from None
    try:
        return _array(root, info.run_id, name, int(step), _run_signature(root, info.run_id))
    except KeyError:
        return None


def nearest(steps: Sequence[int], step: int | None) -> int | None:
    """The element of sorted ``steps`` closest to ``step`` (the last one when step is None)."""
    if not steps:
        return None
    if step is None:
        return int(steps[-1])
    i = int(np.searchsorted(np.asarray(steps), step))
    candidates = [steps[j] for j in (i - 1, i) if 0 <= j < len(steps)]
    return int(min(candidates, key=lambda s: (abs(s - step), s)))


# ------------------------------------------------------------------------ prefixes, tags, notes
def resolve_run_id(root: str, value: Any) -> str:
    """The run id ``value`` names: itself, or the one run id it is a prefix of (``/run/9c5b``).

    DataError for a malformed id or a prefix of several runs (the message lists them); an id
    that matches nothing is returned as it is (the page then says there is no such run).
    """
    run_id = check_run_id(value)
    try:
        return _store(root).resolve_id(run_id)
    except KeyError:
        return run_id
    except AmbiguousRunIdError as exc:
        raise DataError(f"{exc}.") from None


def signature(root: str) -> str:
    """The store's change token (looked at most every SIGNATURE_TTL seconds): pages poll it."""
    return _runs_signature(root)


@lru_cache(maxsize=8)
def _annotations(root: str, signature: str) -> dict[str, tuple[tuple[str, ...], str]]:
    return {k: (a.tags, a.note) for k, a in _store(root).annotations().items()}


def annotations(root: str) -> dict[str, tuple[tuple[str, ...], str]]:  # type: ignore[no-redef]
    """run id → (tags, note) of every annotated run (re-read when the store changes)."""
    return _annotations(root, _runs_signature(root))


def annotate(
    root: str,
    run_ids: Sequence[str],
    *,
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
    note: str | None = None,
) -> None:
    """Edit the tags / note of ``run_ids`` in the store (DataError for a bad tag or run); the
    next :func:`annotations` and :func:`signature` see the change."""
    store = _store(root)
    try:
        for run_id in run_ids:
            store.annotate(
                check_run_id(run_id), add_tags=add_tags, remove_tags=remove_tags, note=note
            )
    except KeyError:
        raise DataError("A ticked run is no longer in the store.") from None
    except ValueError as exc:
        raise DataError(str(exc)) from None
    finally:
        _runs_signature_at.cache_clear()
