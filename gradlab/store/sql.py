"""DuckDB plumbing: the locked-down connection, the ``metrics`` relation over an explicit list
of Parquet files, filters as DuckDB parameters, and the read-only check of user SQL.

No value is ever spliced into SQL text: file lists and filter values travel as ``$name``
parameters.
"""

from __future__ import annotations

import operator
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from .errors import ReadOnlyQueryError
from .schema import METRIC_COLUMNS, PANDAS_DTYPES, empty_metrics_frame, metrics_table

_COLUMNS = ", ".join(("run_id", *METRIC_COLUMNS))
ORDER = "run_id, probe, name, layer NULLS FIRST, direction NULLS FIRST, step, t NULLS FIRST"
"""Row order of Store.metrics (files are written in this order, so sorting is cheap)."""
FILES_PARAM = "metrics_files"
"""The parameter (and, in :func:`create_metrics_view`, the variable) holding the file list."""
EMPTY_METRICS = (
    "SELECT NULL::VARCHAR AS run_id, NULL::BIGINT AS step, NULL::VARCHAR AS probe, "
    "NULL::VARCHAR AS name, NULL::BIGINT AS layer, NULL::BIGINT AS direction, "
    "NULL::BIGINT AS t, NULL::DOUBLE AS value WHERE false"
)
READ_ONLY_KINDS = ("SELECT",)
"""Statement types user SQL may have (DuckDB's parser: SELECT covers WITH, FROM, VALUES,
DESCRIBE, SUMMARIZE and SHOW)."""


def metrics_source(files: str) -> str:
    """``SELECT run_id, <schema columns>`` over the file list ``files`` (a SQL expression:
    a parameter or a variable, never a literal); run_id comes from each file's folder."""
    return (
        f"SELECT {_COLUMNS} FROM read_parquet({files}, hive_partitioning = true, "
        "hive_types = {'run_id': VARCHAR}, hive_types_autocast = false)"
    )


def connect(allowed: Sequence[str], threads: int | None = None) -> Any:
    """An in-memory DuckDB connection that can read exactly the files ``allowed`` and nothing
    else, loads no extension, spills to a private temp folder and cannot change its settings.

    DuckDB's ``allowed_paths`` would also let SQL write those files, so user SQL must pass
    :func:`check_read_only` first (the store does that before every query).
    """
    import duckdb

    con = duckdb.connect(":memory:")
    spill = os.path.join(tempfile.gettempdir(), f"gradlab-duckdb-{os.getpid()}")
    settings: list[tuple[str, dict[str, Any]]] = [
        ("SET parquet_metadata_cache = true", {}),
        ("SET autoinstall_known_extensions = false", {}),
        ("SET autoload_known_extensions = false", {}),
        ("SET temp_directory = $dir", {"dir": spill}),
        ("SET allowed_directories = []", {}),
        ("SET allowed_paths = $paths", {"paths": list(allowed)}),
        ("SET enable_external_access = false", {}),
    ]
    if threads is not None:
        settings.append(("SET threads = $n", {"n": operator.index(threads)}))
    settings.append(("SET lock_configuration = true", {}))
    for statement, params in settings:
        con.execute(statement, params)
    return con


def check_read_only(sql: str) -> None:
    """Refuse ``sql`` unless it is exactly one statement of a read-only type (SELECT).

    Parsed by DuckDB's own parser before anything runs: COPY, ATTACH, EXPORT, INSTALL/LOAD,
    CREATE, INSERT, PRAGMA, SET, CALL, EXPLAIN (``EXPLAIN ANALYZE`` runs its statement), ...
    raise :class:`ReadOnlyQueryError`; a syntax error raises DuckDB's ParserException.
    """
    import duckdb

    statements = duckdb.extract_statements(sql)
    if len(statements) != 1:
        raise ReadOnlyQueryError(
            f"store.query runs exactly one SELECT statement; got {len(statements)} statements"
        )
    kind = statements[0].type.name
    if kind not in READ_ONLY_KINDS:
        hint = (
            "; a PIVOT without a list of values is several statements: "
            "write PIVOT ... ON <column> IN (...)"
            if kind == "MULTI"
            else ""
        )
        raise ReadOnlyQueryError(
            f"store.query is read-only: {kind} statements are refused "
            f"(only SELECT, WITH ... SELECT, FROM, VALUES, DESCRIBE, SUMMARIZE and SHOW run){hint}"
        )


def create_metrics_view(cur: Any, paths: Sequence[Path]) -> None:
    """(Re)create the temp view ``metrics`` (``run_id`` + schema columns) over ``paths``.

    The file list is a connection variable set through a parameter; run_id comes from the
    ``run_id=<id>`` folder of each file.
    """
    if not paths:
        cur.execute(f"CREATE OR REPLACE TEMP VIEW metrics AS {EMPTY_METRICS}")
        return
    cur.execute(f"SET VARIABLE {FILES_PARAM} = ${FILES_PARAM}", {FILES_PARAM: as_strings(paths)})
    source = metrics_source(f"getvariable('{FILES_PARAM}')")
    cur.execute(f"CREATE OR REPLACE TEMP VIEW metrics AS {source}")


def metrics_select(where: list[str]) -> str:
    """``SELECT`` of the metrics of the files in parameter ``$metrics_files`` with the
    ``where`` clauses (from :func:`in_filter`), in the store's row order."""
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    source = metrics_source(f"${FILES_PARAM}")
    return f"SELECT * FROM ({source}){clause} ORDER BY {ORDER}"


def as_strings(paths: Iterable[Path]) -> list[str]:
    """Paths as the strings DuckDB is given (and allowed to read)."""
    return [str(p) for p in paths]


def as_list(values: Any) -> list[Any] | None:
    """None → None; a scalar → [scalar]; an iterable → list."""
    if values is None:
        return None
    if isinstance(values, str | bytes | int) or not isinstance(values, Iterable):
        return [values]
    return list(values)


def in_filter(column: str, values: Any, kind: type) -> tuple[str, dict[str, list[Any]]] | None:
    """``(clause, params)``: ``list_contains($<column>, <column>)`` and ``{column: values}``
    with the values checked (None: no filter). Ints must be ints (not bools), strings strings.

    DuckDB pushes the clause into the Parquet scan as ``<column> IN (...)``.
    """
    items = as_list(values)
    if items is None:
        return None
    if kind is int:
        checked: list[Any] = []
        for v in items:
            try:
                if isinstance(v, bool):
                    raise TypeError
                checked.append(operator.index(v))
            except TypeError:
                raise TypeError(f"{column} filter values must be ints, got {v!r}") from None
    else:
        for v in items:
            if not isinstance(v, str):
                raise TypeError(f"{column} filter values must be strings, got {v!r}")
        checked = items
    return f"list_contains(${column}, {column})", {column: checked}


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


def metrics_frame(rows: Sequence[Any], run_id: str) -> pd.DataFrame:
    """Metric rows of one run as ``Store.metrics`` returns them, without a store: `rows` are
    what ``RunWriter.log_metrics`` takes (each a DataFrame or dict of columns, checked the
    same way); the result has ``run_id`` and the schema's columns, the reader dtypes and
    `ORDER` (every null first)."""
    tables = [t for t in (metrics_table(r) for r in rows) if t.num_rows]
    if not tables:
        return empty_metrics_frame()
    table = pa.concat_tables(tables)
    table = table.add_column(0, "run_id", pa.array([str(run_id)] * table.num_rows, pa.string()))
    keys = [c.split()[0] for c in ORDER.split(", ")]
    frame = to_frame(table).sort_values(keys, na_position="first", kind="stable")
    return frame.reset_index(drop=True)
