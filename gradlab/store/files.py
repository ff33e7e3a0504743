"""On-disk layout of a store and the atomic file writes / cheap validity checks it relies on.

Layout::

    <root>/runs/.changed                        change token: replaced on every write
    <root>/runs/run_id=<id>/run.json
                           /metrics.parquet    all the run's rows, written by finish
                           /metrics-<a>-<b>.parquet
                                               rows of flushes a..b of a run not yet finished
                           /arrays/<name>/step=<step>.npy
                           /.lock              (flock-ed by the live writer)

Every write goes to a hidden temp file in the same folder, is fsync-ed and then os.replace-d into
place, so a reader sees either the old file or the new one, never half of one. Which files hold a
run's metrics rows (each row in exactly one) is decided by :func:`metrics_files` alone.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import struct
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

RUNS_DIR = "runs"
RUN_PREFIX = "run_id="
RUN_JSON = "run.json"
METRICS_FILE = "metrics.parquet"
ARRAYS_DIR = "arrays"
LOCK_FILE = ".lock"
CHANGE_TOKEN = ".changed"
STEP_FILE_RE = re.compile(r"^step=(\d+)\.npy$")
METRICS_PART_RE = re.compile(r"^metrics-(\d{8})-(\d{8})\.parquet$")
"""A part file: the rows of flushes ``first..last`` (numbered from 0) of a run not yet finished."""
_LISTING_ATTEMPTS = 4
PARQUET_MAGIC = b"PAR1"
ROW_GROUP_ROWS = 256 * 1024


def run_dir(root: Path, run_id: str) -> Path:
    """Folder of one run (the id must already be validated)."""
    return root / RUNS_DIR / f"{RUN_PREFIX}{run_id}"


def root_of(run_path: Path) -> Path:
    """The store root of a run folder (inverse of :func:`run_dir`)."""
    return run_path.parent.parent


def array_path(run_path: Path, name: str, step: int) -> Path:
    """Path of one array chunk: ``arrays/<name>/step=<step>.npy``."""
    return run_path / ARRAYS_DIR / name / f"step={step}.npy"


def metrics_part_path(run_path: Path, first: int, last: int) -> Path:
    """Path of the part file holding flushes ``first..last`` (inclusive)."""
    return run_path / f"metrics-{first:08d}-{last:08d}.parquet"


def _parts(names: list[str]) -> list[tuple[int, int, str]]:
    """(first, last, name) of each part file among ``names``, by first flush."""
    found = []
    for name in names:
        m = METRICS_PART_RE.match(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), name))
    return sorted(found, key=lambda p: (p[0], -p[1]))


def _outermost(parts: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The parts not covered by another one (a merged part covers the parts it was made of)."""
    kept: list[tuple[int, int, str]] = []
    for part in parts:  # sorted by first, widest first
        if kept and part[1] <= kept[-1][1]:
            continue
        kept.append(part)
    return kept


def metrics_files(run_path: Path) -> list[Path]:
    """The files holding a run's metrics rows, each row in exactly one; [] before the first flush.

    The compacted ``metrics.parquet`` when it exists (it holds every row: the writer's
    ``finish`` publishes it before deleting the parts); else the part files not covered by a
    wider merged part, in flush order. Safe against a writer that merges or compacts meanwhile:
    a listing with a hole in the flush numbers, or naming a part that has gone, is made again
    (the writer publishes a merged file before it deletes its inputs, lowest first). Every
    reader of metrics (DuckDB views, ``Store.metrics``, run states, change signatures) goes
    through this function.
    """
    compacted = run_path / METRICS_FILE
    chosen: list[Path] = []
    for _ in range(_LISTING_ATTEMPTS):
        if compacted.exists():
            return [compacted]
        try:
            names = os.listdir(run_path)
        except (FileNotFoundError, NotADirectoryError):
            return []
        if METRICS_FILE in names or compacted.exists():
            return [compacted]
        parts = _outermost(_parts(names))
        chosen = [run_path / name for _, _, name in parts]
        whole = all(b[0] == a[1] + 1 for a, b in itertools.pairwise(parts))
        if (not parts or parts[0][0] == 0) and whole and all(p.exists() for p in chosen):
            return chosen
    return chosen  # flush numbers missing for good (files deleted by hand): what is there


def metrics_part_files(run_path: Path) -> list[Path]:
    """Every part file in a run folder (covered ones too), by first flush."""
    try:
        names = os.listdir(run_path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [run_path / name for _, _, name in _parts(names)]


def bump_change_token(root: Path) -> None:
    """Replace ``runs/.changed`` with fresh random text (never fsync-ed: it only keys caches).

    Every writer calls this after each write, so a reader that compares the token's text sees
    any write made through the store, however close in time (file mtimes are coarser).
    """
    path = root / RUNS_DIR / CHANGE_TOKEN
    tmp = _temp_path(path)
    tmp.write_text(uuid.uuid4().hex, encoding="ascii")
    _publish(tmp, path, fsync=False)


def read_change_token(root: Path) -> str:
    """The current text of ``runs/.changed`` ("" before the first write)."""
    try:
        return (root / RUNS_DIR / CHANGE_TOKEN).read_text(encoding="ascii")
    except (FileNotFoundError, UnicodeDecodeError):
        return ""


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")


def _publish(tmp: Path, path: Path, fsync: bool) -> None:
    try:
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """A copy of ``value`` made of JSON types (tuples → lists, numpy scalars/arrays → Python)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-serialisable")


def write_json(path: Path, data: Mapping[str, Any], fsync: bool = True) -> None:
    """Write ``data`` as indented JSON atomically (NaN/Infinity allowed, as Python's json)."""
    tmp = _temp_path(path)
    text = json.dumps(jsonable(data), indent=2, sort_keys=False)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.write("\n")
    _publish(tmp, path, fsync)


def _series_bounds(table: pa.Table) -> list[int]:
    """Row offsets where (probe, name) changes (the table is sorted by probe, name first)."""
    n = table.num_rows
    if n < 2:
        return [0, n]
    key = pc.binary_join_element_wise(table["probe"], table["name"], "\x1f")
    changed = pc.not_equal(key.slice(1), key.slice(0, n - 1))
    cuts = (pc.indices_nonzero(changed).to_numpy() + 1).tolist()
    return [0, *cuts, n]


def write_parquet(path: Path, table: pa.Table, fsync: bool = True) -> None:
    """Write a (sorted) metrics table to Parquet atomically.

    One row group per (probe, name) series (split above 256 Ki rows), so a query for one series
    skips the others by their row-group statistics; dictionary-encoded probe/name/layer/
    direction, delta-encoded step and t, plain float64 values, snappy (the fastest to scan of
    the codecs measured; zstd is ~15% smaller and ~30% slower to scan).
    """
    tmp = _temp_path(path)
    bounds = _series_bounds(table)
    try:
        with pq.ParquetWriter(
            tmp,
            table.schema,
            compression="snappy",
            use_dictionary=["probe", "name", "layer", "direction"],
            column_encoding={"step": "DELTA_BINARY_PACKED", "t": "DELTA_BINARY_PACKED"},
            write_statistics=True,
        ) as writer:
            for start, stop in itertools.pairwise(bounds):
                writer.write_table(table.slice(start, stop - start), row_group_size=ROW_GROUP_ROWS)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _publish(tmp, path, fsync)


def write_array(path: Path, array: np.ndarray, fsync: bool = True) -> None:
    """Write one array as .npy atomically (no pickles: object arrays are refused)."""
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise TypeError("object arrays cannot be stored (the store never pickles)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    _publish(tmp, path, fsync)


def read_array(path: Path) -> np.ndarray:
    """Load one .npy chunk (allow_pickle=False)."""
    return np.load(path, allow_pickle=False)


def parquet_problem(path: Path | str, size: int) -> str | None:
    """Why ``path`` is not a readable Parquet file, from a cheap look (None when it looks fine).

    Checks the size, the leading and trailing magic bytes and the footer length: that catches
    truncated and garbage files. Damaged pages or a wrong schema are caught when a query fails
    (see :func:`parquet_readable`).
    """
    name = Path(path).name
    if size < 12:
        return f"{name} is truncated ({size} bytes)"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(-8, os.SEEK_END)
            tail = fh.read(8)
    except OSError as exc:
        return f"{name} unreadable: {exc.strerror or type(exc).__name__}"
    if head != PARQUET_MAGIC or tail[4:] != PARQUET_MAGIC:
        return f"{name} is not a Parquet file (magic bytes missing: truncated or garbage)"
    (footer_len,) = struct.unpack("<I", tail[:4])
    if footer_len + 12 > size:
        return f"{name} footer length {footer_len} exceeds the file size {size}"
    return None


def parquet_readable(path: Path | str) -> str | None:
    """Decode the whole file and check its schema; the problem if any (slow, rare path)."""
    from .schema import schema_mismatch

    name = Path(path).name
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        return f"{name} unreadable: {exc}"
    mismatch = schema_mismatch(table.schema)
    if mismatch:
        return f"{name} has the wrong {mismatch}"
    return None


def remove_tree(path: Path) -> None:
    """Delete a run folder: rename it out of the way first, then remove it."""
    trash = path.parent / f".trash-{path.name}-{uuid.uuid4().hex[:8]}"
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def clear_dir(path: Path, keep: tuple[str, ...] = (LOCK_FILE,)) -> None:
    """Remove everything in ``path`` except the names in ``keep``."""
    for entry in os.scandir(path):
        if entry.name in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
