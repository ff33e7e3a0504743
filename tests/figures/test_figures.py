"""Every figure builder on real runs: data for the right runs, Unicode labels, log axes,
figure_table == the plotted data, "no data" annotations instead of errors."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from store_cases import figure_run_ids

import gradlab.figures as figures
from gradlab.arrays import ARRAYS
from gradlab.cells import cell_names
from gradlab.figures import FIGURES, FigureData, figure_table, is_empty, style
from gradlab.figures.quantities import QUANTITIES
from gradlab.probes import PROBES, TrainProbe

REPO = Path(__file__).resolve().parents[2]
LOG_Y = {"timestep_profile", "jacobian_lag", "step_jacobian", "singular_values", "cell_vs_hidden"}
MATHJAX = re.compile(r"\$|\\\(|\\frac|\\partial")


@pytest.fixture(scope="module")
def built(figure_data, fig_store, cell_runs, grid_runs):
    """name → (figure, run ids, data) for every figure of the registry, built once from the
    runs of the test store that have what it draws."""
    out = {}
    for name, spec in FIGURES.items():
        ids = figure_run_ids(spec, fig_store, cell_runs, grid_runs)
        data = figure_data(ids)
        out[name] = (spec.builder(data), ids, data)
    return out


def texts(fig) -> list[str]:
    """Every title, axis title, colour-bar title, legend name and annotation of a figure."""
    d = fig.to_dict()
    layout = d["layout"]
    out = [str((layout.get("title") or {}).get("text", ""))]
    for key, value in layout.items():
        if key.startswith(("xaxis", "yaxis")):
            out.append(str((value.get("title") or {}).get("text", "")))
    out += [str(a.get("text", "")) for a in layout.get("annotations", [])]
    for t in d["data"]:
        out.append(str(t.get("name", "")))
        out.append(str(((t.get("colorbar") or {}).get("title") or {}).get("text", "")))
    cbar = (layout.get("coloraxis") or {}).get("colorbar") or {}
    out.append(str((cbar.get("title") or {}).get("text", "")))
    return [s for s in out if s]


# ------------------------------------------------------------------------------ registry
def readme_figure_table() -> list[tuple[str, str]]:
    """(figure, scope) rows of the README's table of figures, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Figures\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \| (\w+) \|", section, flags=re.MULTILINE)


def test_readme_lists_the_registry_in_order():
    assert readme_figure_table() == [(s.name, s.scope) for s in FIGURES.values()]


@pytest.mark.parametrize("name", list(FIGURES))
def test_spec_names_probes_by_class_constants(name):
    spec = FIGURES[name]
    assert spec.name == name and spec.title and spec.description
    assert spec.scope in figures.SCOPES
    known = {cls.probe: cls.names for cls in PROBES.values()} | {TrainProbe.probe: TrainProbe.names}
    for probe, names in (*spec.probes, *spec.probes_for()):
        assert probe in known, probe
        assert set(names) <= set(known[probe]), (probe, names)
    assert set(spec.arrays) <= set(ARRAYS)
    assert set(spec.probes_for()) <= set(spec.probes) or spec.requires is not None
    assert callable(spec.builder) and spec.options


def test_probes_fetch_real_rows(fig_store, cell_runs):
    """`store.metrics(ids, probes=probe, names=names)` returns rows for what a spec lists."""
    ids = list(cell_runs.values())
    for probe, names in FIGURES["timestep_profile"].probes_for():
        rows = fig_store.metrics(ids, probes=probe, names=list(names))
        assert len(rows), probe


def test_figures_package_does_not_import_the_store():
    root = Path(figures.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
            elif isinstance(node, ast.Import):
                mod = ",".join(a.name for a in node.names)
            else:
                continue
            assert "gradlab.store" not in mod and "dashboards" not in mod, (path.name, mod)
            assert "gradlab.export" not in mod, (path.name, mod)


def test_palette_is_okabe_ito():
    colors = style.cell_colors()
    assert set(colors) == set(cell_names())
    assert set(colors.values()) <= set(style.OKABE_ITO.values())
    assert len(set(colors.values())) == len(colors)


# ------------------------------------------------------------------------------ builders
@pytest.mark.parametrize("name", list(FIGURES))
def test_builder_draws_the_runs(built, name):
    fig, ids, _ = built[name]
    assert not is_empty(fig)
    assert len(fig.data) > 0
    meta = fig.layout.meta["gradlab"]
    assert meta["figure"] == name
    assert set(meta["run_ids"]) <= set(ids) and meta["run_ids"]
    if FIGURES[name].scope in ("runs", "sweep"):
        assert set(meta["run_ids"]) == set(ids)
    table = figure_table(fig)
    if "run_id" in table.columns:
        assert set(table["run_id"].dropna()) <= set(ids)


@pytest.mark.parametrize("name", list(FIGURES))
def test_labels_are_unicode_without_mathjax(built, name):
    fig, _, _ = built[name]
    all_text = texts(fig)
    assert all_text
    for text in all_text:
        assert not MATHJAX.search(text), text
    axis_titles = " ".join(all_text)
    if name in ("gradient_flow", "timestep_profile", "cell_vs_hidden"):
        assert "‖∂L/∂h<sub>k</sub>‖" in axis_titles
    if name == "jacobian_lag":
        assert "lag T−k" in axis_titles and "‖∂s<sub>T</sub>/∂s<sub>k</sub>‖" in axis_titles
    if name in ("gradient_flow", "training"):
        assert "training step" in axis_titles
    if name == "phase_diagram":
        assert "σ<sub>w</sub>" in axis_titles and "σ<sub>b</sub>" in axis_titles
        assert any(t.name and t.name.startswith("χ = 1") for t in fig.data)


@pytest.mark.parametrize("name", sorted(LOG_Y))
def test_log_y_where_promised(built, name):
    fig, _, _ = built[name]
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.template.layout.yaxis.exponentformat == "power"


def test_log_colour_and_log_gradient_axis(built):
    flow, _, _ = built["gradient_flow"]
    heat = flow.data[0]
    raw = np.asarray(heat.customdata, dtype=float)
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float), np.log10(raw))
    assert heat.colorbar.ticktext
    assert all(t in ("1", "10") or "10<sup>" in t for t in heat.colorbar.ticktext)
    training, _, _ = built["training"]
    assert training.layout.yaxis2.type == "log"  # gradient norm
    assert training.layout.yaxis.type == "log"  # loss (default scale)


def test_runs_labelled(built):
    fig, _, data = built["timestep_profile"]
    lines = [t for t in fig.data if (t.meta or {}).get("const", {}).get("line") is None]
    assert len(lines) == 3
    for trace in lines:
        cell = data.cell(trace.meta["const"]["run_id"])
        assert re.fullmatch(rf"{cell} · .*seq 10 · seed 0", trace.name), trace.name


def test_same_cell_runs_are_labelled_by_what_differs(figure_data, grid_runs):
    fig = FIGURES["timestep_profile"].builder(figure_data(grid_runs), fit=False, theory=False)
    assert len(fig.data) == 4
    assert all("σ<sub>w</sub>" in t.name and "σ<sub>b</sub>" in t.name for t in fig.data)


# ------------------------------------------------------------------------------ tables
@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_table_is_the_plotted_data(built, name):
    fig, _, _ = built[name]
    table = figure_table(fig)
    expected = 0
    for trace in fig.data:
        if trace.type == "heatmap":
            src = trace.customdata if (trace.meta or {}).get("z_source") else trace.z
            src = np.array(src, dtype=object)
            src = src[..., 0] if src.ndim == 3 else src  # [value, n, run ids, ...] per cell
            expected += int(np.isfinite(src.astype(float)).sum())
        else:
            expected += len(trace.y)
    assert len(table) == expected
    assert "trace" in table.columns
    assert not any("<" in str(t) for t in table["trace"].unique())


def test_profile_table_matches_the_store(built, fig_store, cell_runs):
    fig, _, _ = built["timestep_profile"]
    table = figure_table(fig)
    assert {"trace", "run_id", "step", "t", "value"} <= set(table.columns)
    for rid in cell_runs.values():
        mine = table[(table["run_id"] == rid) & table["line"].isna()].sort_values("t")
        step = int(mine["step"].iloc[0])
        store_rows = fig_store.metrics(rid, probes="grad_hidden", names="norm", steps=step)
        store_rows = store_rows[store_rows["layer"] == 0].sort_values("t")
        assert step == int(fig_store.metrics(rid, probes="grad_hidden")["step"].max())
        np.testing.assert_array_equal(mine["t"].to_numpy(), store_rows["t"].to_numpy())
        np.testing.assert_allclose(mine["value"].to_numpy(), store_rows["value"].to_numpy())


def test_gradient_flow_table_matches_the_store(built, fig_store):
    fig, (run_id,), _ = built["gradient_flow"]
    table = figure_table(fig)
    assert list(table.columns) == ["trace", "run_id", "t", "step", "value"]
    rows = fig_store.metrics(run_id, probes="grad_hidden", names="norm")
    merged = rows.merge(table, on=["t", "step"], suffixes=("_store", "_fig"))
    assert len(merged) == len(rows) == len(table)
    np.testing.assert_allclose(merged["value_fig"], merged["value_store"])


def test_phase_diagram_table_holds_decay_rates(built, fig_store, grid_runs):
    fig, _, _ = built["phase_diagram"]
    table = figure_table(fig)
    cells = table[table["trace"] == "all runs"]
    assert len(cells) == 4
    for rid in grid_runs:
        run = fig_store.run(rid)
        rate = fig_store.metrics(rid, probes="summary", names="decay_rate")
        rate = rate.sort_values("step")["value"].iloc[-1]
        hit = cells[
            np.isclose(cells["gain"], run.config["gain"])
            & np.isclose(cells["bias_scale"], run.config["bias_scale"])
        ]
        assert float(hit["decay_rate"].iloc[0]) == pytest.approx(rate)


def test_figure_table_survives_a_json_round_trip(built):
    import plotly.io as pio

    fig, _, _ = built["gradient_flow"]
    again = pio.from_json(fig.to_json())
    pd.testing.assert_frame_equal(figure_table(again), figure_table(fig), check_dtype=False)


# ------------------------------------------------------------------------------ no data
@pytest.mark.parametrize("name", list(FIGURES))
def test_empty_input_gives_an_annotation(name):
    fig = FIGURES[name].builder(FigureData())
    assert is_empty(fig)
    assert len(fig.data) == 0
    assert fig.layout.annotations[0].text.startswith("no data")
    assert figure_table(fig).empty


@pytest.mark.parametrize(
    ("name", "cell", "options", "message"),
    [
        ("gates", "rnn", {}, "no data: this run has no gate values (vanilla RNN)"),
        ("cell_vs_hidden", "gru", {}, "only LSTMs have c_k"),
        ("timestep_profile", "rnn", {"quantity": "grad_cell"}, "only LSTMs have a cell state"),
        ("gradient_flow", "gru", {"quantity": "grad_cell"}, "cell-state gradient"),
        ("singular_values", "rnn", {"step": 12345}, "no step-Jacobian spectra"),
        ("hidden_trajectory", "rnn", {"sample": 99}, "sample 99 not saved"),
        ("phase_diagram", "rnn", {"x": "no_such_key"}, "no config key 'no_such_key'"),
    ],
)
def test_missing_quantity_gives_an_annotation(figure_data, cell_runs, name, cell, options, message):
    fig = FIGURES[name].builder(figure_data([cell_runs[cell]]), **options)
    assert is_empty(fig)
    assert message in fig.layout.annotations[0].text


def test_metrics_only_data_still_draws(figure_data, cell_runs):
    """FigureData without a runs table (metrics alone) draws, labelled by run id."""
    full = figure_data([cell_runs["lstm"]])
    fig = FIGURES["timestep_profile"].builder(FigureData(metrics=full.metrics))
    assert not is_empty(fig)
    assert fig.data[0].name == cell_runs["lstm"]


def test_unknown_quantity_is_a_clear_error(figure_data, cell_runs):
    with pytest.raises(ValueError, match="unknown quantity 'nope'"):
        FIGURES["timestep_profile"].builder(figure_data([cell_runs["rnn"]]), quantity="nope")
    assert "contribution:weight_hh" in QUANTITIES
