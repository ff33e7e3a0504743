"""The schemas of a run's files: the metrics table every run shares (and conversion of rows
into it) and the fields of run.json (validated one by one, so a malformed field names itself).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

METRICS_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("step", pa.int64(), nullable=False),
        pa.field("probe", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("layer", pa.int64()),
        pa.field("direction", pa.int64()),
        pa.field("t", pa.int64()),
        pa.field("value", pa.float64()),
    ]
)
"""``step, probe, name, layer, direction, t, value``; layer/direction/t are nullable."""

METRIC_COLUMNS: tuple[str, ...] = tuple(METRICS_SCHEMA.names)
OPTIONAL_COLUMNS = frozenset({"layer", "direction", "t"})
SORT_KEYS = ("probe", "name", "layer", "direction", "step", "t")
"""Row order inside metrics.parquet and of ``Store.metrics`` (after ``run_id``)."""

RUNNING = "running"
COMPLETE = "complete"
FAILED = "failed"
DIVERGED = "diverged"
CORRUPT = "corrupt"
INTERRUPTED = "interrupted"
FINAL_STATUSES = (COMPLETE, FAILED, DIVERGED)
STATUSES = (RUNNING, *FINAL_STATUSES, INTERRUPTED, CORRUPT)
"""Every status a reader reports. A writer writes ``running`` and then one of FINAL_STATUSES;
readers add ``interrupted`` (run.json says ``running`` but no live process holds the run's lock:
the writer was killed or exited without finishing) and ``corrupt``."""

# pandas dtypes of the metrics columns as returned by the readers.
PANDAS_DTYPES: dict[str, Any] = {
    "run_id": "str",
    "step": "int64",
    "probe": "str",
    "name": "str",
    "layer": "Int64",
    "direction": "Int64",
    "t": "Int64",
    "value": "float64",
}


def _column(values: Any, field: pa.Field, n: int | None) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        try:
            return values.cast(field.type) if values.type != field.type else values
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"metrics column {field.name!r}: {exc}") from exc
    if values is None or np.isscalar(values):
        if n is None:
            raise ValueError("metrics rows need at least one list-like column")
        values = [values] * n
    if not isinstance(values, pd.Series | pd.Index):
        values = pd.Series(values, dtype=object if field.name in ("probe", "name") else None)
    if field.name == "value" and values.dtype.kind in "iufb":
        # NaN stays NaN (a diverged loss is data); only None/NA become null.
        return pa.array(values.to_numpy(np.float64), type=pa.float64())
    try:
        return pa.Array.from_pandas(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"metrics column {field.name!r}: {exc}") from exc


def metrics_table(rows: Any) -> pa.Table:
    """Convert rows (DataFrame, dict of columns or pyarrow Table) to a METRICS_SCHEMA table.

    ``layer``, ``direction`` and ``t`` may be omitted (null); scalar columns are broadcast to the
    length of the list-like ones; NaN in integer columns becomes null. Unknown columns, nulls in
    ``step``/``probe``/``name`` and directions other than 0/1 raise ValueError.
    """
    if isinstance(rows, pa.Table):
        columns: Mapping[str, Any] = {name: rows.column(name) for name in rows.column_names}
    elif isinstance(rows, pd.DataFrame):
        columns = {str(name): rows[name] for name in rows.columns}
    elif isinstance(rows, Mapping):
        columns = rows
    else:
        raise TypeError(
            f"metrics rows must be a DataFrame, a dict of columns or a pyarrow Table, "
            f"got {type(rows).__name__}"
        )
    unknown = set(columns) - set(METRIC_COLUMNS)
    if unknown:
        raise ValueError(f"unknown metrics columns {sorted(unknown)}; schema is {METRIC_COLUMNS}")
    missing = [c for c in METRIC_COLUMNS if c not in columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"metrics rows lack required columns {missing}")
    n = None
    for values in columns.values():
        if not (np.isscalar(values) or values is None):
            n = len(values)
            break
    arrays = []
    for field in METRICS_SCHEMA:
        values = columns.get(field.name)
        arrays.append(_column(values, field, n))
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        raise ValueError(f"metrics columns have different lengths: {sorted(lengths)}")
    for name in ("step", "probe", "name"):
        if arrays[METRIC_COLUMNS.index(name)].null_count:
            raise ValueError(f"metrics column {name!r} must not contain nulls")
    direction = arrays[METRIC_COLUMNS.index("direction")]
    if direction.null_count < len(direction):
        bad = pc.and_(pc.not_equal(direction, 0), pc.not_equal(direction, 1))
        if pc.any(bad).as_py():
            raise ValueError("metrics column 'direction' must be 0 (forward), 1 (reverse) or null")
    return pa.Table.from_arrays(arrays, schema=METRICS_SCHEMA)


def sort_metrics(table: pa.Table) -> pa.Table:
    """Rows in the canonical order (SORT_KEYS, nulls first)."""
    if table.num_rows < 2:
        return table
    keys = [(k, "ascending", "at_start") for k in SORT_KEYS]
    return table.take(pc.sort_indices(table, sort_keys=keys))


def empty_metrics_frame(with_run_id: bool = True) -> pd.DataFrame:
    """An empty DataFrame with the metrics columns and reader dtypes."""
    cols = (("run_id",) if with_run_id else ()) + METRIC_COLUMNS
    return pd.DataFrame({c: pd.Series([], dtype=PANDAS_DTYPES[c]) for c in cols})


def schema_mismatch(schema: pa.Schema) -> str | None:
    """Why a Parquet file's schema is not METRICS_SCHEMA (None when it is)."""
    got = [(f.name, f.type) for f in schema]
    want = [(f.name, f.type) for f in METRICS_SCHEMA]
    if got == want:
        return None
    return f"schema {[f'{n}:{t}' for n, t in got]} is not {[f'{n}:{t}' for n, t in want]}"


def parquet_schema_problem(path: Path | str) -> str | None:
    """Why the Parquet file at ``path`` does not hold METRICS_SCHEMA (None when it does).

    Reads the footer only (a fraction of a millisecond): a valid Parquet file with other
    columns or types is refused before any query scans it.
    """
    name = Path(path).name
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for damaged footers
        return f"{name} unreadable: {exc}"
    mismatch = schema_mismatch(schema)
    return f"{name} has the wrong {mismatch}" if mismatch else None


# ------------------------------------------------------------------------------- run.json
def _iso_datetime(text: str) -> str:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"must be an ISO-8601 date and time, got {text[:40]!r}") from None
    return text


def _finite(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a finite number >= 0, got {value!r}")
    return value


IsoDatetime = Annotated[str, AfterValidator(_iso_datetime)]
Seconds = Annotated[float, AfterValidator(_finite)]


class WriterRecord(BaseModel):
    """run.json ``writer``: the process that claimed the run."""

    model_config = ConfigDict(strict=True, extra="allow")

    pid: int = Field(ge=0)
    hostname: str


class RunRecord(BaseModel):
    """The fields of run.json (``meta`` keys a writer adds are allowed and not checked).

    Strict: JSON types must match exactly (``"1"`` is not an int, a string is not an object).
    Required: ``run_id``, ``status``, ``config``; the others may be missing or null where the
    writer writes null.
    """

    model_config = ConfigDict(strict=True, extra="allow")

    format: int | None = Field(default=None, ge=1)
    run_id: str
    status: Literal["running", "complete", "failed", "diverged"]
    config: dict[str, Any]
    seed: Any = None
    created: IsoDatetime | None = None
    finished: IsoDatetime | None = None
    duration_s: Seconds | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    writer: WriterRecord | None = None


def run_record_problem(meta: Any) -> str | None:
    """Why ``meta`` (parsed run.json) is not a valid run record, naming each bad field.

    None when every field is valid. Values are quoted short (at most 40 characters).
    """
    if not isinstance(meta, dict):
        return "run.json is not a JSON object"
    try:
        RunRecord.model_validate(meta)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            field = ".".join(str(part) for part in error["loc"]) or "<root>"
            text = f"field {field!r}: {error['msg'].removeprefix('Value error, ')}"
            if error["type"] not in ("missing", "value_error"):
                got = repr(error.get("input"))
                text += f" (got {got[:40]}{'...' if len(got) > 40 else ''})"
            problems.append(text)
        return "run.json is malformed: " + "; ".join(problems)
    return None
