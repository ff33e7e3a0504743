"""Writer → files → readers: exact round trips, dtypes, filters, arrays, runs() columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_testlib import make_rows, write_run

from gradlab.store import METRICS_SCHEMA, RunInfo, open_store, run_id_for
from gradlab.store.schema import PANDAS_DTYPES, SORT_KEYS

KEYS = ["run_id", *SORT_KEYS]


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(KEYS, na_position="first").reset_index(drop=True)


def test_metrics_round_trip_exactly(store):
    logged = write_run(store, "r1", steps=4)
    got = store.metrics(run_ids="r1")
    assert list(got.columns) == ["run_id", *METRICS_SCHEMA.names]
    assert {c: str(t) for c, t in got.dtypes.items()} == {
        c: str(pd.Series([], dtype=d).dtype) for c, d in PANDAS_DTYPES.items()
    }
    want = logged.assign(run_id="r1")[got.columns].astype(PANDAS_DTYPES)
    pd.testing.assert_frame_equal(got, _canonical(want))  # rows come back in canonical order
    assert got["t"].isna().sum() == 4 * 2  # the train scalars
    # the file itself has exactly the schema
    assert pq.read_schema(store.root / "runs/run_id=r1/metrics.parquet").equals(METRICS_SCHEMA)


def test_numeric_looking_ids_stay_strings(store):
    write_run(store, "000123", steps=1)
    got = store.metrics(run_ids=["000123"])
    assert set(got["run_id"]) == {"000123"}
    assert store.query("SELECT DISTINCT run_id FROM metrics")["run_id"].tolist() == ["000123"]


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param(
            {"step": 2, "probe": "train", "name": ["loss", "clipped"], "value": [0.25, 1]},
            id="dict-scalars-broadcast",
        ),
        pytest.param(
            pd.DataFrame(
                {
                    "step": [2, 2],
                    "probe": "train",
                    "name": ["loss", "clipped"],
                    "t": [np.nan, np.nan],
                    "value": [0.25, 1.0],
                }
            ),
            id="dataframe-float-nan-t",
        ),
        pytest.param(
            pa.table(
                {
                    "step": [2, 2],
                    "probe": ["train"] * 2,
                    "name": ["loss", "clipped"],
                    "value": [0.25, 1.0],
                }
            ),
            id="arrow-table",
        ),
    ],
)
def test_log_metrics_accepts_several_forms(store, rows):
    with store.create_run("r", {"seed": 0}) as w:
        w.log_metrics(rows)
    got = store.metrics("r")
    assert got[["step", "probe", "name", "value"]].values.tolist() == [
        [2, "train", "clipped", 1.0],
        [2, "train", "loss", 0.25],
    ]
    assert got[["layer", "direction", "t"]].isna().all().all()


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        pytest.param(
            {"step": [1], "probe": "p", "name": "n", "value": [1], "x": [1]},
            "unknown metrics columns",
            id="extra-column",
        ),
        pytest.param({"step": [1], "probe": "p", "value": [1]}, "lack required", id="missing"),
        pytest.param(
            {"step": [1], "probe": "p", "name": "n", "t": [1.5], "value": [1]},
            "truncated",
            id="fractional-t",
        ),
        pytest.param(
            {"step": [None], "probe": "p", "name": "n", "value": [1]},
            "must not contain nulls",
            id="null-step",
        ),
        pytest.param(
            {"step": [1], "probe": "p", "name": "n", "direction": [2], "value": [1]},
            "direction",
            id="bad-direction",
        ),
        pytest.param(
            {"step": 1, "probe": "p", "name": "n", "value": 1.0}, "list-like", id="all-scalars"
        ),
    ],
)
def test_bad_rows_are_refused(store, rows, match):
    with store.create_run("r", {}) as w, pytest.raises(ValueError, match=match):
        w.log_metrics(rows)


def test_nan_values_survive(store):
    with store.create_run("r", {}) as w:
        w.log_metrics({"step": [0, 1], "probe": "train", "name": "loss", "value": [1.0, np.nan]})
        w.finish("diverged", summary={"final_loss": float("nan")})
    got = store.metrics("r")
    assert np.isnan(got["value"].iloc[1])
    info = store.run("r")
    assert info.status == "diverged" and np.isnan(info.summary["final_loss"])


def test_flush_is_incremental_and_visible(store):
    w = store.create_run("r", {"seed": 1})
    w.log_metrics(make_rows(0))
    assert store.metrics("r").empty  # nothing flushed yet
    w.flush()
    assert len(store.metrics("r")) == len(make_rows(0))
    w.log_metrics(make_rows(1))
    w.flush()
    assert sorted(store.metrics("r")["step"].unique()) == [0, 1]
    w.finish()
    assert store.run("r").status == "complete"


def test_filters(store):
    write_run(store, "a", steps=3, T=5)
    write_run(store, "b", steps=3, T=5)
    df = store.metrics(probes="contribution", names=["weight_hh"], steps=[0, 2], t=range(2, 4))
    assert set(df["run_id"]) == {"a", "b"}
    assert set(df["probe"]) == {"contribution"}
    assert set(df["step"]) == {0, 2} and set(df["t"]) == {2, 3}
    assert len(df) == 2 * 2 * 2
    assert store.metrics(run_ids=[], probes="train").empty
    assert store.metrics(probes=[]).empty
    with pytest.raises(KeyError, match="no run 'zzz'"):
        store.metrics(run_ids=["a", "zzz"])
    with pytest.raises(ValueError, match="invalid run_id"):
        store.metrics(run_ids=["../a"])
    with pytest.raises(TypeError):
        store.metrics(steps=["1; DROP TABLE x"])
    # quotes in a string filter are data, not SQL
    assert store.metrics(probes=["x' OR '1'='1"]).empty


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param({}, id="all"),
        pytest.param(
            {"probes": ["train", "contribution"], "steps": range(0, 30, 2)}, id="IN-lists"
        ),
    ],
)
def test_metrics_order_over_runs(store, filters):
    for rid in ("b", "a", "c"):
        write_run(store, rid, steps=30)
    got = store.metrics(**filters)
    assert len(got) and got["run_id"].unique().tolist() == ["a", "b", "c"]
    pd.testing.assert_frame_equal(got, _canonical(got))


def test_arrays_one_step_at_a_time(store):
    spectra = {s: np.linspace(0, 1, 8).astype(np.float32) * (s + 1) for s in (0, 10, 20)}
    with store.create_run("r", {}) as w:
        for step, arr in spectra.items():
            path = w.save_array("step_jacobian_sv", step, arr)
            assert path.name == f"step={step}.npy"
        w.save_array("hidden_sample", 10, np.zeros((3, 2, 4)))
        with pytest.raises(TypeError, match="never pickles"):
            w.save_array("bad", 0, np.array([{"a": 1}], dtype=object))
        with pytest.raises(ValueError, match="invalid array name"):
            w.save_array("../x", 0, np.zeros(1))
        with pytest.raises(ValueError, match="step"):
            w.save_array("x", -1, np.zeros(1))
    info = store.run("r")
    assert info.array_names() == ["hidden_sample", "step_jacobian_sv"]
    assert info.array_steps("step_jacobian_sv") == [0, 10, 20]
    assert info.array_steps("nothing") == []
    for step, arr in spectra.items():
        got = info.array("step_jacobian_sv", step)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, arr)
    assert info.array("hidden_sample", 10).shape == (3, 2, 4)
    with pytest.raises(KeyError, match="steps: \\[0, 10, 20\\]"):
        info.array("step_jacobian_sv", 5)
    with pytest.raises(ValueError):
        info.array("../../etc", 0)


def test_run_json_contents(store):
    config = {"cell": "gru", "seed": 7, "optimizer": {"name": "adam", "lr": 1e-3}}
    rid = run_id_for(config)
    with store.create_run(rid, config, meta={"sweep": "fig3"}) as w:
        running = json.loads((w.path / "run.json").read_text())
        assert running["status"] == "running"
        assert running["writer"]["pid"] > 0 and running["writer"]["hostname"]
        w.log_metrics(make_rows(0))
        w.finish(summary={"final_loss": 0.1, "baseline_loss": 0.7, "steps_done": 100})
    info = store.run(rid)
    assert isinstance(info, RunInfo)
    meta = info.meta
    assert meta["run_id"] == rid and meta["config"] == config and meta["seed"] == 7
    assert meta["sweep"] == "fig3"
    assert {"python", "numpy", "pandas"} <= set(meta["versions"])
    assert "git_commit" in meta
    assert meta["finished"] >= meta["created"] and meta["duration_s"] >= 0
    assert info.config == config and info.summary["baseline_loss"] == 0.7
    assert info.metrics(probes="train")["name"].tolist() == ["grad_norm", "loss"]
    with pytest.raises(ValueError, match="reserved"):
        store.create_run("other", {}, meta={"status": "complete"})


def test_runs_table_columns(store):
    write_run(
        store,
        "a",
        {"cell": "rnn", "seed": 0, "init": {"gain": 1.5}},
        summary={"final_loss": 0.2, "baseline_loss": 1.0, "steps_done": 3, "best": 0.1},
    )
    write_run(store, "b", {"cell": "lstm", "seed": 1, "status": "x"}, status="failed")
    df = store.runs()
    assert df["run_id"].tolist() == ["a", "b"]
    assert list(df.columns[:7]) == [
        "run_id",
        "status",
        "alive",
        "reason",
        "created",
        "finished",
        "duration_s",
    ]
    assert {
        "cell",
        "seed",
        "init.gain",
        "config.status",
        "final_loss",
        "baseline_loss",
        "steps_done",
        "best",
    } <= set(df.columns)
    a, b = df.iloc[0], df.iloc[1]
    assert a["status"] == "complete" and b["status"] == "failed"
    assert a["init.gain"] == 1.5 and np.isnan(b["init.gain"])
    assert b["config.status"] == "x"
    assert not df["alive"].any() and df["alive"].dtype == bool
    assert str(df["created"].dtype).startswith("datetime64") and df["duration_s"].notna().all()


def test_query_with_runs_and_params(store):
    for i, cell in enumerate(["rnn", "lstm", "rnn"]):
        write_run(store, f"r{i}", {"cell": cell, "seed": i, "tags": ["a", i]}, steps=2, T=4)
    out = store.query(
        """
        SELECT r.cell, m.t, avg(m.value) AS mean_norm, count(*) AS n
        FROM metrics m JOIN runs r USING (run_id)
        WHERE m.probe = $probe AND m.name = 'weight_hh'
        GROUP BY ALL ORDER BY r.cell, m.t
        """,
        probe="contribution",
    )
    assert out["cell"].tolist() == ["lstm"] * 4 + ["rnn"] * 4
    assert out["n"].tolist() == [2] * 4 + [4] * 4
    m = store.metrics(probes="contribution")
    runs = store.runs()[["run_id", "cell"]]
    want = m.merge(runs).groupby(["cell", "t"])["value"].mean().to_numpy()
    np.testing.assert_allclose(out["mean_norm"].to_numpy(), want)


def test_empty_store(tmp_path):
    store = open_store(tmp_path / "new")
    assert (tmp_path / "new" / "runs").is_dir()
    assert store.runs().empty and "status" in store.runs().columns
    assert store.metrics().empty and store.metrics().columns[0] == "run_id"
    assert store.query("SELECT count(*) AS n FROM metrics")["n"].tolist() == [0]
    with pytest.raises(KeyError, match="no run"):
        store.run("missing")


def test_finished_writer_is_read_only(store):
    w = store.create_run("r", {})
    w.finish()
    with pytest.raises(RuntimeError, match="read-only"):
        w.log_metrics(make_rows(0))
    with pytest.raises(ValueError, match="status must be"):
        store.create_run("q", {}).finish("done")


def test_runs_view_with_mixed_config_types(store):
    write_run(store, "a", {"x": 1, "sizes": [32, 32], "opt": {"lr": 0.1}}, steps=1)
    write_run(store, "b", {"x": "wide", "sizes": None, "opt": {"lr": 1}}, steps=1)
    write_run(store, "c", {"flag": True}, steps=1)
    out = store.query('SELECT run_id, x, sizes, "opt.lr", flag FROM runs ORDER BY run_id')
    assert out["run_id"].tolist() == ["a", "b", "c"]
    assert out["x"].tolist()[:2] == ["1", '"wide"']  # mixed types fall back to JSON text
    assert out["opt.lr"].tolist()[:2] == [0.1, 1.0]


def test_add_config_adds_missing_keys_readers_see_while_running(store):
    writer = store.create_run("grow", {"lr": 0.1, "cell": "gru"})
    added = writer.add_config({"cell": "lstm", "hidden_size": 8, "ratio": np.float64(0.5)})
    assert added == {"hidden_size": 8, "ratio": 0.5}  # the config's own "cell" wins
    live = store.run("grow")
    assert live.status == "running"
    assert live.config == {"lr": 0.1, "cell": "gru", "hidden_size": 8, "ratio": 0.5}
    assert writer.add_config({"lr": 1.0}) == {}
    writer.finish()
    assert store.run("grow").config == live.config
    with pytest.raises(RuntimeError, match="finished"):
        writer.add_config({"seed": 1})
