"""Store.query cannot write: every write form is refused before it runs, the store stays
byte-identical, and the connection reads the runs' metrics files and nothing else.

Each write form is one the adversarial probe of issue 15 used on the old sandbox (DuckDB's
``allowed_directories`` granted write to runs/): forged metrics, a replaced run.json, a run's
files deleted by ``PARTITION_BY ... OVERWRITE``, files created by ATTACH / EXPORT / COPY.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from store_testlib import write_run

from gradlab.store import ReadOnlyQueryError, Store, sql

RUN_IDS = ("a", "b", "c")
SUMMARY_SQL = "SELECT run_id, count(*) AS n, sum(value) AS total FROM metrics GROUP BY 1 ORDER BY 1"


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: relative path → sha256 of a file, "dir" or "link -> target"."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = f"link -> {os.readlink(path)}"
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def filled(store: Store) -> Store:
    for i, run_id in enumerate(RUN_IDS):
        write_run(store, run_id, {"cell": "rnn", "seed": i}, steps=3, T=4)
    return store


FORGED = "SELECT 0::BIGINT AS step, 'train' AS probe, 'loss' AS name, 999.0 AS value"
WRITE_FORMS = [  # "<runs>" stands for the store's runs folder
    pytest.param(f"COPY ({FORGED}) TO '<runs>/run_id=a/metrics.parquet'", id="copy-forge"),
    pytest.param(
        f"COPY ({FORGED}) TO '<runs>/run_id=a/metrics.parquet' (FORMAT parquet, USE_TMP_FILE 0)",
        id="copy-forge-in-place",
    ),
    pytest.param(
        """COPY (SELECT '{"run_id": "a", "status": "complete", "config": {}}' AS j) """
        "TO '<runs>/run_id=a/run.json' (FORMAT csv, HEADER false, QUOTE '')",
        id="copy-replace-run-json",
    ),
    pytest.param(
        "COPY (SELECT 1 AS x) TO '<runs>/run_id=a' (FORMAT parquet, PARTITION_BY (x), OVERWRITE)",
        id="copy-partition-overwrite",
    ),
    pytest.param("COPY (SELECT 1 AS x) TO '<runs>/new.csv'", id="copy-new-file"),
    pytest.param("ATTACH '<runs>/evil.duckdb' AS evil", id="attach"),
    pytest.param("EXPORT DATABASE '<runs>/exported'", id="export-database"),
    pytest.param("INSTALL httpfs", id="install"),
    pytest.param("LOAD httpfs", id="load"),
    pytest.param("CREATE TABLE t AS SELECT * FROM metrics", id="create"),
    pytest.param("INSERT INTO runs VALUES ('x')", id="insert"),
    pytest.param("PRAGMA enable_profiling", id="pragma"),
    pytest.param("SET enable_external_access = true", id="set-unlock"),
    pytest.param("CALL pragma_version()", id="call"),
    pytest.param("EXPLAIN ANALYZE COPY (SELECT 1) TO '<runs>/x.csv'", id="explain-analyze"),
    pytest.param("SELECT 1; COPY (SELECT 1) TO '<runs>/x.csv'", id="select-then-copy"),
    pytest.param("SELECT * FROM query('COPY (SELECT 1) TO ''<runs>/x.csv''')", id="nested-copy"),
]


@pytest.mark.parametrize("statement", WRITE_FORMS)
def test_every_write_form_is_refused_and_the_store_is_unchanged(filled, statement):
    statement = statement.replace("<runs>", str(filled.root / "runs"))
    before_files = snapshot(filled.root)
    before = filled.query(SUMMARY_SQL)
    with pytest.raises((ReadOnlyQueryError, duckdb.ParserException)):
        filled.query(statement)
    assert snapshot(filled.root) == before_files
    pd.testing.assert_frame_equal(filled.query(SUMMARY_SQL), before)
    assert (filled.runs()["status"] == "complete").all()


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        pytest.param("COPY (SELECT 1) TO 'x.csv'", "COPY", id="copy"),
        pytest.param("ATTACH 'x.db'", "ATTACH", id="attach"),
        pytest.param("EXPORT DATABASE 'd'", "EXPORT", id="export"),
        pytest.param("CREATE VIEW v AS SELECT 1", "CREATE", id="create"),
    ],
)
def test_refusal_names_the_statement_type(filled, statement, kind):
    with pytest.raises(ReadOnlyQueryError, match=rf"read-only: {kind} statements are refused"):
        filled.query(statement)


@pytest.mark.parametrize("sql", ["", "  ;  ", "SELECT 1; SELECT 2"], ids=["empty", "blank", "two"])
def test_exactly_one_statement(filled, sql):
    with pytest.raises(ReadOnlyQueryError, match="exactly one SELECT statement"):
        filled.query(sql)


def test_pivot_without_in_list_is_several_statements(filled):
    """DuckDB makes a dynamic PIVOT a CREATE TYPE + SELECT: refused, with the way out."""
    with pytest.raises(ReadOnlyQueryError, match=r"MULTI.*IN \(\.\.\.\)"):
        filled.query("PIVOT runs ON status USING count(*)")


@pytest.mark.parametrize(
    ("sql", "rows"),
    [
        pytest.param("SELECT count(DISTINCT run_id) AS n FROM metrics", 1, id="select"),
        pytest.param("WITH m AS (SELECT * FROM metrics) SELECT count(*) FROM m", 1, id="with"),
        pytest.param("FROM runs", 3, id="from-first"),
        pytest.param("VALUES (1), (2)", 2, id="values"),
        pytest.param("DESCRIBE metrics", 8, id="describe"),
        pytest.param("SUMMARIZE SELECT value FROM metrics", 1, id="summarize"),
        pytest.param("SHOW TABLES", 2, id="show-tables"),
        pytest.param(
            "PIVOT (SELECT status FROM runs) ON status IN ('complete', 'failed')",
            1,
            id="pivot-in-list",
        ),
    ],
)
def test_read_only_forms_run(filled, sql, rows):
    before = snapshot(filled.root)
    assert len(filled.query(sql)) == rows
    assert snapshot(filled.root) == before


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/etc/passwd", id="outside-the-store"),
        pytest.param("{runs}/run_id=a/run.json", id="run-json"),
        pytest.param("{runs}/.changed", id="change-token"),
        pytest.param("{runs}/run_id=*/metrics.parquet", id="glob-of-the-store"),
    ],
)
def test_only_the_metrics_files_are_readable(filled, target):
    path = target.format(runs=filled.root / "runs")
    with pytest.raises(duckdb.PermissionException):
        filled.query(f"SELECT * FROM read_text('{path}')")
    # and the view still reads every run's metrics files
    assert filled.query(SUMMARY_SQL)["run_id"].tolist() == list(RUN_IDS)


def test_the_connection_reads_its_files_only_and_cannot_unlock_itself(filled):
    """Below the statement check (defence in depth): ``sql.connect`` opens the files it is
    given and nothing else, loads no extension and keeps its settings locked."""
    allowed = filled.root / "runs/run_id=a/metrics.parquet"
    con = sql.connect([str(allowed)])
    assert con.execute("SELECT count(*) FROM read_parquet($f)", {"f": str(allowed)}).fetchone()
    for other in ("run_id=b/metrics.parquet", "run_id=a/run.json"):
        with pytest.raises(duckdb.PermissionException):
            con.execute("SELECT * FROM read_blob($f)", {"f": str(filled.root / "runs" / other)})
    for setting in ("enable_external_access = true", "allowed_directories = ['/']"):
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute(f"SET {setting}")
    with pytest.raises(duckdb.Error):
        con.execute("LOAD httpfs")


def test_named_parameters_still_bind(filled):
    out = filled.query("SELECT DISTINCT run_id FROM metrics WHERE run_id = $id", id="b")
    assert out["run_id"].tolist() == ["b"]


@pytest.mark.parametrize(
    "folder",
    ["it's a store", 'quote"and space', "semi;colon -- dash"],
    ids=["apostrophe", "dquote", "sql-ish"],
)
def test_store_paths_travel_as_parameters(tmp_path, folder):
    """No path or filter value is spliced into SQL text: quotes in either are just text."""
    store = Store(tmp_path / folder, fsync=False)
    logged = write_run(store, "a", steps=2, T=3)
    assert len(store.metrics()) == len(logged)
    assert store.query("SELECT count(*) AS n FROM metrics")["n"].item() == len(logged)
    assert store.metrics(probes="it's", names=["x'); DROP TABLE metrics; --"]).empty
    assert len(store.metrics(probes=["train"], steps=[0, 1])) == 4


README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLES = {
    "COPY": "COPY (SELECT 1) TO '<runs>/x.csv'",
    "ATTACH": "ATTACH '<runs>/x.duckdb'",
    "EXPORT": "EXPORT DATABASE '<runs>/exported'",
    "INSTALL": "INSTALL httpfs",
    "LOAD": "LOAD httpfs",
    "CREATE": "CREATE TEMP TABLE t AS SELECT 1",
    "INSERT": "INSERT INTO runs VALUES ('x')",
    "PRAGMA": "PRAGMA threads = 1",
    "SET": "SET threads = 1",
    "CALL": "CALL pragma_version()",
    "EXPLAIN": "EXPLAIN SELECT 1",
    "WITH": "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
    "FROM": "FROM runs",
    "VALUES": "VALUES (1)",
    "DESCRIBE": "DESCRIBE runs",
    "SUMMARIZE": "SUMMARIZE runs",
    "SHOW": "SHOW TABLES",
    "PIVOT": "PIVOT (SELECT status FROM runs) ON status IN ('complete')",
}


def _readme_kinds(pattern: str) -> list[str]:
    text = " ".join(README.read_text("utf-8").split())
    match = re.search(pattern, text)
    assert match, pattern
    return re.findall(r"\b[A-Z]{3,}\b", match.group(1))


def test_readme_states_the_sandbox_truthfully(filled):
    """Every statement the README says is refused is refused; every form it says runs runs."""
    refused = _readme_kinds(r"so (COPY.*?) raise `ReadOnlyQueryError`")
    allowed = _readme_kinds(r"\((WITH, FROM.*?) are SELECTs\)")
    assert len(refused) >= 10 and len(allowed) >= 6
    runs = str(filled.root / "runs")
    before = snapshot(filled.root)
    for kind in refused:
        with pytest.raises(ReadOnlyQueryError, match="read-only"):
            filled.query(EXAMPLES[kind].replace("<runs>", runs))
    for kind in allowed:
        assert len(filled.query(EXAMPLES[kind])) >= 1, kind
    assert snapshot(filled.root) == before


@pytest.mark.parametrize(
    ("filters", "error"),
    [
        pytest.param({"steps": ["1"]}, "step filter values must be ints", id="step-text"),
        pytest.param({"steps": [True]}, "step filter values must be ints", id="step-bool"),
        pytest.param({"t": 1.5}, "t filter values must be ints", id="t-float"),
        pytest.param({"probes": [1]}, "probe filter values must be strings", id="probe-int"),
        pytest.param({"names": [None]}, "name filter values must be strings", id="name-none"),
    ],
)
def test_filter_values_are_checked_before_duckdb(filled, filters, error):
    with pytest.raises(TypeError, match=error):
        filled.metrics(**filters)


@pytest.mark.parametrize(
    ("filters", "rows"),
    [
        pytest.param({"steps": []}, 0, id="empty-list"),
        pytest.param({"steps": [2**70]}, 0, id="beyond-int64"),
        pytest.param({"steps": range(1, 3), "probes": "train"}, 2 * 2 * 3, id="range-and-scalar"),
        pytest.param({"t": [0], "names": ("norm",)}, 3 * 3, id="t-zero"),
    ],
)
def test_filter_values_bind_as_parameters(filled, filters, rows):
    assert len(filled.metrics(**filters)) == rows
