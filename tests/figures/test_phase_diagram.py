"""The phase diagram on a sweep with more varying keys than axes (store_cases.PHASE_SWEEP:
cell × task × seq_len 5/10/20/30, the RNN at two seeds): equal category cells with their values
printed, every unshown key a facet or fixed (never averaged), run ids per cell, mixed types."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from store_cases import PHASE_SEQ_LENS, PHASE_SWEEP, PHASE_TASKS

from gradlab.export.data import load_figure_data
from gradlab.figures import FIGURES, FigureData, figure_table
from gradlab.figures.phase_diagram import category, parse_fix, positions

SPEC = FIGURES["phase_diagram"]
SEQ_TEXT = [str(t) for t in PHASE_SEQ_LENS]


@pytest.fixture(scope="module")
def data(phase_store) -> FigureData:
    """Every run of the sweep, read as `gradlab export --sweep` reads them."""
    return load_figure_data(phase_store, "phase_diagram", sweep=PHASE_SWEEP)


@pytest.fixture(scope="module")
def runs(phase_store) -> pd.DataFrame:
    frame = phase_store.runs()
    return frame[frame["sweep"] == PHASE_SWEEP].set_index("run_id", drop=False)


def heatmaps(fig) -> list:
    return [t for t in fig.data if t.type == "heatmap"]


def cells(heat) -> list[dict]:
    """Every cell of a heatmap: its value, n, run ids, x and y texts, printed text."""
    custom = np.array(heat.customdata, dtype=object)
    out = []
    for i in range(custom.shape[0]):
        for k in range(custom.shape[1]):
            value, n, ids, xt, yt = custom[i, k, :5]
            out.append(
                dict(
                    value=value,
                    n=n,
                    ids=[r for r in ids.split(",") if r],
                    x=xt,
                    y=yt,
                    text=heat.text[i][k],
                )
            )
    return out


def annotations(fig, name: str) -> list[str]:
    return [a.text for a in fig.layout.annotations if a.name == name]


def x_titles(fig) -> list[str]:
    layout = fig.to_dict()["layout"]
    return [
        str((v.get("title") or {}).get("text"))
        for k, v in layout.items()
        if k.startswith("xaxis") and (v.get("title") or {}).get("text")
    ]


# ------------------------------------------------------------------------------ categories
def test_grid_values_are_equal_cells_with_their_value_printed(data):
    fig = SPEC.builder(data, x="seq_len", y="cell", fix="task:adding")
    (heat,) = heatmaps(fig)
    assert list(heat.x) == [0, 1, 2, 3]  # 5, 10, 20, 30: four equal columns in grid order
    assert list(fig.layout.xaxis.ticktext) == SEQ_TEXT
    assert list(fig.layout.xaxis.range) == [-0.5, 3.5]
    assert list(fig.layout.yaxis.ticktext) == ["gru", "lstm", "rnn"]
    assert heat.texttemplate == "%{text}"
    for cell in cells(heat):
        assert cell["n"] >= 1 and cell["text"] not in ("", "–")
        assert float(cell["text"].replace("−", "-")) == pytest.approx(cell["value"], rel=0.05)
    assert "%{customdata[6]}" in heat.hovertemplate and "n = %{customdata[1]}" in heat.hovertemplate


def test_category_merges_types_and_orders_numbers():
    assert category(50) == category("50") == category(50.0) == category(" 50 ") == "50"
    assert category(None) == category(float("nan")) == "none"
    assert category(0.8) == "0.8" and category("adding") == "adding" and category(True) == "true"
    np.testing.assert_allclose(positions([0.8, 1.15, 1.5, 1.85], [0.8, 1.5]), [0, 0.5, 1, 1.5])
    assert parse_fix("task:adding,seq_len:10") == {"task": "adding", "seq_len": "10"}
    assert parse_fix(["task=adding", "seq_len:10.0"]) == {"task": "adding", "seq_len": "10"}
    assert parse_fix({"seq_len": 10}) == {"seq_len": "10"} and parse_fix(None) == {}
    with pytest.raises(ValueError, match="key:value"):
        parse_fix("task")


# ------------------------------------------------------------------------------ fix / facet
def test_an_unshown_key_is_fixed_and_named_not_averaged(data, runs):
    """x = seq_len, y = cell leaves task: the figure shows ONE task and says which."""
    fig = SPEC.builder(data, x="seq_len", y="cell")
    assert fig.layout.meta["gradlab"]["options"]["fix"] == {"task": PHASE_TASKS[0]}
    (note,) = annotations(fig, "phase-note")
    assert f"task = {PHASE_TASKS[0]}" in note and "defaults:" in note
    (heat,) = heatmaps(fig)
    for cell in cells(heat):
        chosen = runs.loc[cell["ids"]]
        assert set(chosen["task"]) == {PHASE_TASKS[0]}, cell
        assert set(chosen["cell"]) == {cell["y"]} and set(chosen["seq_len"]) == {int(cell["x"])}
        # only seeds averaged: the RNN cells hold seeds 0 and 1, the others one run
        assert sorted(chosen["seed"]) == ([0, 1] if cell["y"] == "rnn" else [0])
        assert cell["n"] == len(chosen)
        assert cell["value"] == pytest.approx(chosen["decay_rate"].mean())
    assert fig.layout.meta["gradlab"]["run_ids"] == [
        r for r in data.run_ids if runs.loc[r, "task"] == PHASE_TASKS[0]
    ]
    assert "mean of 1–2 seeds" in note


@pytest.mark.parametrize(
    "fix", ["task:identity", ["task:identity"], {"task": "identity"}], ids=["text", "list", "map"]
)
def test_fix_picks_the_value(data, runs, fix):
    fig = SPEC.builder(data, x="seq_len", y="cell", fix=fix)
    (note,) = annotations(fig, "phase-note")
    assert "fixed: task = identity" in note and "defaults" not in note
    ids = [r for c in cells(heatmaps(fig)[0]) for r in c["ids"]]
    assert len(ids) == 16 and set(runs.loc[ids, "task"]) == {"identity"}


def test_facets_have_one_title_each_and_one_x_title(data, runs):
    fig = SPEC.builder(data, x="seq_len", y="cell", facet="task")
    heats = heatmaps(fig)
    assert [h.name for h in heats] == [f"task = {t}" for t in PHASE_TASKS]
    assert annotations(fig, "facet-title") == [f"task = {t}" for t in PHASE_TASKS]
    assert x_titles(fig) == ["sequence length T"]
    for heat, task in zip(heats, PHASE_TASKS, strict=True):
        ids = [r for c in cells(heat) for r in c["ids"]]
        assert set(runs.loc[ids, "task"]) == {task}
    table = figure_table(fig)
    assert {"trace", "task", "seq_len", "cell", "decay_rate", "n", "run_ids"} <= set(table.columns)
    assert len(table) == 2 * 3 * 4 and table["seq_len"].dtype.kind in "iu"
    # the default facet is the cell when several vary: three panels, tasks fixed
    auto = SPEC.builder(data, x="seq_len", y="task")
    assert annotations(auto, "facet-title") == ["gru", "lstm", "rnn"]
    assert x_titles(auto) == ["sequence length T"]


def test_fixed_keys_and_n_are_in_the_table(data):
    fig = SPEC.builder(
        data, x="seq_len", y="task", facet="none", fix="cell:rnn", color="loss_ratio"
    )
    table = figure_table(fig)
    assert set(table["cell"]) == {"rnn"} and set(table["n"]) == {2}
    assert sorted(set(table["seq_len"])) == list(PHASE_SEQ_LENS)
    (note,) = annotations(fig, "phase-note")
    assert note.startswith("mean of 2 seeds") and "fixed: cell = rnn" in note
    ticks = list(fig.layout.coloraxis.colorbar.ticktext)
    assert ticks and not any(t.endswith("×1") for t in ticks)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(x="seq_len", y="cell", fix="tsk:adding"), "unknown fix key 'tsk'; keys to fix: task"),
        (dict(x="seq_len", y="cell", fix="task:copy"), "task takes adding, identity"),
        (dict(x="seq_len", y="cell", fix="cell:rnn"), "fix 'cell': it is the y axis"),
        (dict(x="seq_len", y="cell", facet="nope"), "config key of these runs (task)"),
    ],
    ids=["unknown-key", "unknown-value", "shown-key", "unknown-facet"],
)
def test_bad_fix_or_facet_names_the_valid_ones(data, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SPEC.builder(data, **options)


def test_defaults_fix_every_unshown_key_explicitly(data):
    assert SPEC.default_options(data) == {"x": "seq_len", "y": "task", "facet": "cell"}
    # a hand-edited learning rate on half the runs: lr becomes y, the task is fixed by name
    rows = data.runs.copy()
    rows["lr"] = [0.01 if i % 2 else 0.001 for i in range(len(rows))]
    edited = FigureData(metrics=data.metrics, runs=rows)
    options = SPEC.default_options(edited)
    assert options == {"x": "seq_len", "y": "lr", "facet": "cell", "fix": {"task": "adding"}}
    fig = SPEC.builder(edited, **options)
    assert fig.layout.meta["gradlab"]["options"]["fix"] == {"task": "adding"}
    assert "fixed: task = adding" in annotations(fig, "phase-note")[0]


# ------------------------------------------------------------------------------ mixed types
def test_mixed_type_axis_still_draws(data, runs):
    """A run config edited by hand: seq_len "10" (text) in one run, missing in another."""
    rows = data.runs.copy().astype({"seq_len": object})
    adding = rows["task"] == "adding"
    text_run = rows.index[adding & (rows["seq_len"] == 10)][0]
    none_run = rows.index[adding & (rows["seq_len"] == 30)][0]
    rows.loc[text_run, "seq_len"] = "10"
    rows.loc[none_run, "seq_len"] = None
    fig = SPEC.builder(
        FigureData(metrics=data.metrics, runs=rows), x="seq_len", y="cell", fix="task:adding"
    )
    heat = heatmaps(fig)[0]
    assert list(fig.layout.xaxis.ticktext) == [*SEQ_TEXT, "none"]
    by_run = {r: c for c in cells(heat) for r in c["ids"]}
    assert by_run[rows.loc[text_run, "run_id"]]["x"] == "10"
    assert by_run[rows.loc[none_run, "run_id"]]["x"] == "none"
    assert len(by_run) == 16
    table = figure_table(fig)
    assert {"none", 10} <= set(table["seq_len"])


def test_a_key_tied_to_the_facet_is_not_fixed(data):
    """init gaussian for every RNN, default for the gated cells (as in the demo sweep): faceted by
    cell, each panel holds one init, so nothing is fixed and no panel is dropped; in one panel
    both are fixed, and fixing init fixes the cell with it."""
    rows = data.runs.copy()
    rows["init"] = ["gaussian" if c == "rnn" else "default" for c in rows["cell"]]
    edited = FigureData(metrics=data.metrics, runs=rows)
    fig = SPEC.builder(edited, x="seq_len", y="task")
    assert [h.name for h in heatmaps(fig)] == ["gru", "lstm", "rnn"]
    assert fig.layout.meta["gradlab"]["options"]["fix"] is None
    single = SPEC.builder(edited, x="seq_len", y="task", facet="none")  # defaults, both named
    assert single.layout.meta["gradlab"]["options"]["fix"] == {"init": "default", "cell": "gru"}
    single = SPEC.builder(edited, x="seq_len", y="task", facet="none", fix="init:gaussian")
    assert single.layout.meta["gradlab"]["options"]["fix"] == {"init": "gaussian"}
    assert {c["y"] for c in cells(heatmaps(single)[0])} == set(PHASE_TASKS)
    assert all(len(c["ids"]) == 2 for c in cells(heatmaps(single)[0]))  # the RNN's two seeds
