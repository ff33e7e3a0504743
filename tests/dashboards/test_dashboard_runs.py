"""The runs page's pieces without a browser: search, default order, default columns, group-by
(against pandas), live refresh keeping the selection, progress of a running run, tags and notes,
run-id prefixes in the dashboard."""

from __future__ import annotations

from contextvars import copy_context
from typing import Any

import pandas as pd
import pytest
from dash import no_update
from dash._callback_context import context_value
from dash._utils import AttributeDict

from dashboards import data


def triggered(prop_id: str, fn, *args):
    """Run a callback as if ``prop_id`` fired."""

    def run():
        context_value.set(AttributeDict(triggered_inputs=[{"prop_id": prop_id, "value": 1}]))
        return fn(*args)

    return copy_context().run(run)


@pytest.fixture
def page(dash_app):
    return dash_app.pages.runs


def _records(page, root: str) -> list[dict[str, Any]]:
    frame, _total = page.table_frame(root, "")
    return page.table_rows(frame)[0]


@pytest.mark.parametrize(
    "search, expected",
    [
        pytest.param("lstm", {("lstm", 0.9), ("lstm", 1.5)}, id="word"),
        pytest.param("LSTM gain=1.5", {("lstm", 1.5)}, id="word-and-column"),
        pytest.param("cell=gru", {("gru", 0.9), ("gru", 1.5)}, id="column"),
        pytest.param("tiny gain=0.9 orthogonal", {(c, 0.9) for c in ("rnn", "lstm", "gru")}),
        pytest.param("nothing-like-this", set(), id="no-match"),
    ],
)
def test_search_matches_every_word(page, real_store, request_ctx, search, expected):
    frame, total = page.table_frame(real_store.root, search)
    assert total == 8
    names = {v: k for k, v in real_store.ids.items()}
    assert {names[r] for r in frame["run_id"]} == expected


def test_search_finds_tags_and_notes(page, make_app, tmp_path, real_store):
    import shutil

    root = shutil.copytree(real_store.root, tmp_path / "store")
    app = make_app(str(root))
    rnn = real_store.ids[("rnn", 0.9)]
    with app.app.server.test_request_context("/"):
        data.annotate(str(root), [rnn], add_tags=["keeper"], note="Loss plateaus early")
        for words in ("keeper", "plateaus", "tags=keeper"):
            frame, _ = app.pages.runs.table_frame(str(root), words)
            assert frame["run_id"].tolist() == [rnn], words
            assert (frame["tags"].iloc[0], frame["note"].iloc[0]) == (
                "keeper",
                "Loss plateaus early",
            )


def test_default_order_is_sweep_then_the_grid_axes(page, real_store, request_ctx):
    frame, _ = page.table_frame(real_store.root, "")
    tiny = frame[frame["sweep"] == "tiny"]
    keys = list(zip(tiny["cell"], tiny["gain"], strict=True))
    assert keys == sorted(keys)  # cell, then gain: the grid's axes in table order
    sweeps = frame["sweep"].tolist()
    assert sweeps == sorted(sweeps, key=page._sort_key)  # missing (the corrupt run) last
    assert frame["run_id"].iloc[-1] == real_store.corrupt


def test_default_columns_hide_what_never_varies(page, real_store, request_ctx):
    frame, _ = page.table_frame(real_store.root, "")
    hidden = page.hidden_columns(frame, None)
    for col in ("task", "seq_len", "hidden_size", "seed", "init", "baseline_loss"):
        assert col in hidden  # one value in the whole store, or hidden by default
    for col in ("cell", "gain", "status", "progress", "final_loss", "theory_rate", "reason"):
        assert col not in hidden
    assert "lr" in hidden and "lr" in {c for c, _ in page._columns(frame)}
    assert "activation" not in hidden  # it differs with the cell  # chooser has it
    chosen = page.hidden_columns(frame, "cell,seed")
    assert "seed" not in chosen and "cell" not in chosen and "gain" in chosen
    assert "run_id" not in chosen


def test_group_by_gives_n_and_mean_std_as_pandas(page, real_store, request_ctx):
    records = _records(page, real_store.root)
    rows, columns = page.group_table(records, ["cell"], [])
    frame = data.runs(real_store.root)
    expected = frame.groupby("cell", dropna=False)["final_loss"].agg(["mean", "std", "count"])
    assert [c["id"] for c in columns][:4] == ["_open", "cell", "n", "run_id"]
    by_cell = {r["cell"]: r for r in rows}
    for cell in ("rnn", "lstm", "gru"):
        row = by_cell[cell]
        mean, std = (float(x) for x in row["final_loss"].split(" ± "))
        n = int((frame["cell"] == cell).sum())
        assert row["n"] == n
        assert mean == pytest.approx(expected.loc[cell, "mean"], rel=1e-3)
        assert std == pytest.approx(expected.loc[cell, "std"], rel=5e-3)
    # expanded: the group's runs follow its row
    gid = by_cell["lstm"]["id"]
    rows, _ = page.group_table(records, ["cell"], [gid])
    at = [r["id"] for r in rows].index(gid)
    members = {r["run_id"] for r in rows[at + 1 : at + 3]}
    assert members == {real_store.ids[("lstm", g)] for g in (0.9, 1.5)}
    assert page.group_table(records, [], []) == ([], [])


@pytest.mark.parametrize(
    "values, text",
    [
        ([1.0, 2.0, 3.0], "2 ± 1"),
        ([0.5], "0.5"),
        ([None, float("nan")], ""),
        ([2, None, 4], "3 ± 1.41"),
    ],
    ids=["three", "one", "none", "missing-skipped"],
)
def test_mean_std_text(page, values, text):
    assert page.mean_std_text(pd.Series(values, dtype="float64")) == text


def test_a_running_run_shows_progress_and_refresh_keeps_the_selection(make_app, tmp_path):
    from gradlab.store import open_store

    root = tmp_path / "store"
    store = open_store(root, fsync=False)
    for name in ("b-done", "c-done"):
        store.create_run(name, {"cell": "rnn", "steps": 10}).finish(summary={"steps_done": 10})
    app = make_app(str(root))
    page = app.pages.runs
    with app.app.server.test_request_context("/"):
        rows = _records(page, str(root))
        sig = data.signature(str(root))
        assert [r["id"] for r in rows] == ["b-done", "c-done"]
        assert [r["progress"] for r in rows] == ["10 / 10", "10 / 10"]
        # nothing changed: the poll sends nothing
        out = triggered("runs-live.n_intervals", page.refresh, 1, "", 0, rows, [1], sig)
        assert out == (no_update,) * 7
        writer = store.create_run("a-live", {"cell": "lstm", "steps": 40})
        writer.note_progress({"steps_done": 12, "final_loss": 0.3, "decay_rate": -0.2})
        data._runs_signature_at.cache_clear()
        records, ticked, _tips, styles, total, new_sig, interval = triggered(
            "runs-live.n_intervals", page.refresh, 2, "", 0, rows, [1], sig
        )
        assert total == 3 and new_sig != sig and interval == page.LIVE_MS
        by_id = {r["id"]: r for r in records}
        live = by_id["a-live"]
        assert (live["status"], live["progress"], live["final_loss"]) == ("running", "12 / 40", 0.3)
        assert live["decay_rate"] == -0.2
        assert [records[i]["id"] for i in ticked] == ["c-done"]  # the same run stays ticked
        bars = [s for s in styles if s.get("if", {}).get("column_id") == "progress"]
        assert len(bars) == 1 and "30.0%" in bars[0]["background"]
        writer.finish(summary={"steps_done": 40})
        data._runs_signature_at.cache_clear()
        *_, interval = triggered(
            "runs-live.n_intervals", page.refresh, 3, "", 0, records, [], new_sig
        )
        assert interval == page.IDLE_MS  # nothing running: the slow look


def test_count_select_all_and_annotate_callbacks(make_app, tmp_path):
    from gradlab.store import open_store

    root = tmp_path / "store"
    store = open_store(root, fsync=False)
    for name in ("x1", "x2", "y1"):
        store.create_run(name, {"cell": "rnn"}).finish()
    page = make_app(str(root)).pages.runs
    assert page.count([{}], 3) == "1 of 3 runs" and page.count(None, 3) == "3 runs"
    assert page.count_text(1, 1) == "1 run"
    assert triggered("runs-select-all.n_clicks", page.select_all, 1, None, [2, 0]) == [2, 0]
    assert triggered("runs-select-none.n_clicks", page.select_all, 1, 1, [2, 0]) == []
    rows = [{"id": "x1"}, {"id": "x2"}, {"id": "y1"}]
    with make_app(str(root)).app.server.test_request_context("/"):
        n, text = triggered(
            "runs-tag-add.n_clicks", page.annotate, 1, None, None, "a, b", "", [0, 2], rows, 0
        )
        assert (n, text) == (1, "tagged 2 run(s)")
        triggered("runs-note-save.n_clicks", page.annotate, 1, None, 1, "", "why?", [2], rows, 1)
        triggered("runs-tag-remove.n_clicks", page.annotate, 1, 1, None, "a", "", [2], rows, 2)
        _, text = triggered(
            "runs-tag-add.n_clicks", page.annotate, 2, None, None, "x,", "", [], rows, 3
        )
        assert text.startswith("tick runs")
    notes = store.annotations()
    assert (notes["x1"].tags, notes["y1"].tags, notes["y1"].note) == (("a", "b"), ("b",), "why?")


def test_run_id_prefixes_resolve_in_the_dashboard(dash_app, real_store, request_ctx):
    rid = real_store.ids[("gru", 1.5)]
    others = [r for r in data.runs(real_store.root)["run_id"] if r != rid]
    n = next(n for n in range(4, 13) if not any(o.startswith(rid[:n]) for o in others))
    assert data.resolve_run_id(real_store.root, rid[:n]) == rid
    assert data.parse_run_ids(f"{rid[:n]},{rid}") == ([rid], [])
    assert data.resolve_run_id(real_store.root, "zzzz") == "zzzz"  # the page says: no such run
    assert data.resolve_run_id(real_store.root, rid[:3]) == rid[:3]  # too short to expand
    layout = dash_app.pages.run.layout(run_id=rid[:n])
    assert rid in str(layout)


def test_an_empty_store_page_reloads_when_the_first_run_lands(make_app, tmp_path):
    from gradlab.store import open_store

    root = tmp_path / "store"
    app = make_app(str(root))
    with app.app.server.test_request_context("/"):
        sig = data.signature(str(root))
        assert app.pages.runs.first_run(1, sig) is no_update
        open_store(root, fsync=False).create_run("first", {"cell": "rnn"}).finish()
        data._runs_signature_at.cache_clear()
        assert app.pages.runs.first_run(2, sig) == "/"
