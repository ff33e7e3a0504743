"""DuckDB plumbing: the ``metrics`` relation over a list of Parquet files, and filters."""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from .schema import METRIC_COLUMNS, PANDAS_DTYPES

_COLUMNS = ", ".join(("run_id", *METRIC_COLUMNS))
ORDER_BY = "run_id, probe, name, layer NULLS FIRST, direction NULLS FIRST, step, t NULLS FIRST"
ORDER = "run_id, probe, name, layer NULLS FIRST, direction NULLS FIRST, step, t NULLS FIRST"
"""Row order of Store.metrics (files are written in this order, so sorting is cheap)."""
EMPTY_METRICS = (
    "SELECT NULL::VARCHAR AS run_id, NULL::BIGINT AS step, NULL::VARCHAR AS probe, "
    "NULL::VARCHAR AS name, NULL::BIGINT AS layer, NULL::BIGINT AS direction, "
    "NULL::BIGINT AS t, NULL::DOUBLE AS value WHERE false"
)


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def metrics_source(paths: list[Path]) -> str:
    """``SELECT run_id, <schema columns>`` over the given metrics files (run_id from the folder)."""
    if not paths:
        return EMPTY_METRICS
    file_list = ", ".join(quote(str(p)) for p in paths)
    return (
        f"SELECT {_COLUMNS} FROM read_parquet([{file_list}], hive_partitioning = true, "
        "hive_types = {'run_id': VARCHAR}, hive_types_autocast = false)"
    )


def as_list(values: Any) -> list[Any] | None:
    """None → None; a scalar → [scalar]; an iterable → list."""
    if values is None:
        return None
    if isinstance(values, str | bytes | int) or not isinstance(values, Iterable):
        return [values]
    return list(values)


def in_filter(column: str, values: Any, kind: type) -> str | None:
    """``column IN (...)`` with safely rendered literals (ints via int(), strings quoted)."""
    items = as_list(values)
    if items is None:
        return None
    if not items:
        return "false"
    if kind is int:
        rendered = []
        for v in items:
            try:
                if isinstance(v, bool):
                    raise TypeError
                rendered.append(str(operator.index(v)))
            except TypeError:
                raise TypeError(f"{column} filter values must be ints, got {v!r}") from None
    else:
        for v in items:
            if not isinstance(v, str):
                raise TypeError(f"{column} filter values must be strings, got {v!r}")
        rendered = [quote(v) for v in items]
    return f"{column} IN ({', '.join(rendered)})"


def mentioned_paths(message: str, paths: list[Path]) -> list[Path]:
    """The paths among ``paths`` that an error message names."""
    found = []
    for p in paths:
        s = str(p)
        if s in message or re.escape(s) in message:
            found.append(p)
    return found


_INT64_NULLABLE = {pa.int64(): pd.Int64Dtype()}.get


def to_frame(table: pa.Table) -> pd.DataFrame:
    """Metrics rows as pandas with the reader dtypes (nullable Int64 for layer/direction/t)."""
    df = table.to_pandas(types_mapper=_INT64_NULLABLE)
    return df.astype({c: PANDAS_DTYPES[c] for c in df.columns if c in PANDAS_DTYPES})
