"""The paper template and the store loader (no browser needed)."""

from __future__ import annotations

import pytest

from gradlab.arrays import STEP_JACOBIAN_SV
from gradlab.export import load_figure_data
from gradlab.export.template import FONTS, paper_dict, paper_figure, text_width_px, width_inches
from gradlab.figures import FIGURES, style
from gradlab.probes import GradCellProbe, GradHiddenProbe, SummaryProbe


@pytest.fixture(scope="module")
def profile(fig_store, cell_runs):
    data = load_figure_data(fig_store, "timestep_profile", run_ids=list(cell_runs.values()))
    return FIGURES["timestep_profile"].builder(data)


def test_widths():
    assert width_inches("single") == 3.25 and width_inches("double") == 6.75
    assert width_inches("4") == 4.0 and width_inches("3.5in") == 3.5 and width_inches(2) == 2.0
    for bad in ("wide", "0.1", 50):
        with pytest.raises(ValueError, match="width must be"):
            width_inches(bad)


def test_paper_template(profile):
    d, w, h = paper_dict(profile, "single", "serif")
    layout = d["layout"]
    assert w == 3.25 and 1.5 < h <= 6  # the plot, a legend above it and notes under it
    assert layout["width"] == pytest.approx(3.25 * 96) and layout["height"] == pytest.approx(h * 96)
    assert layout["title"]["text"] == ""
    assert layout["font"]["family"] == FONTS["serif"]
    assert layout["font"]["size"] == pytest.approx(8 * 96 / 72, abs=1e-3)  # 8 pt at print
    assert layout["yaxis"]["title"]["font"]["size"] == pytest.approx(9 * 96 / 72, abs=1e-3)
    assert layout["paper_bgcolor"] == layout["plot_bgcolor"] == "white"
    y = layout["yaxis"]
    assert y["type"] == "log" and y["exponentformat"] == "power" and y["dtick"] == 1
    assert y["linewidth"] <= 1 and y["showgrid"] is False
    assert layout["template"]["layout"]["xaxis"]["exponentformat"] == "power"
    # colours unchanged, lines thinner, legend groups dropped (so the legend flows in rows);
    # legendrank keeps the traces' order in the legend
    after_in_order = sorted(d["data"], key=lambda t: t["legendrank"])
    for before, after in zip(profile.data, after_in_order, strict=True):
        assert after["line"]["color"] == before.line.color
        assert after["line"]["width"] < (before.line.width or 2)
        assert "legendgroup" not in after
    assert {t.line.color for t in profile.data} >= set(style.RUN_COLORS[:3])  # one per run
    # the source figure is untouched
    assert profile.layout.title.text and profile.layout.width is None


def test_paper_figure_sans_double(profile):
    fig, w, _ = paper_figure(profile, "double", "sans")
    assert w == 6.75 and fig.layout.font.family == FONTS["sans"]
    with pytest.raises(ValueError, match="font must be one of"):
        paper_dict(profile, "single", "comic")


def test_loader_reads_only_what_the_figure_needs(fig_store, cell_runs):
    ids = [cell_runs["rnn"], cell_runs["lstm"]]
    data = load_figure_data(fig_store, "timestep_profile", run_ids=ids)
    assert set(data.metrics["probe"]) == {GradHiddenProbe.probe, SummaryProbe.probe}
    assert data.run_ids == ids
    data = load_figure_data(fig_store, "timestep_profile", run_ids=ids, quantity="grad_cell")
    assert set(data.metrics["probe"]) == {GradCellProbe.probe, SummaryProbe.probe}
    # a run-scope figure reads one run and one step of its arrays
    data = load_figure_data(fig_store, "singular_values", run_ids=ids)
    assert data.run_ids == [cell_runs["rnn"]]
    last = fig_store.run(cell_runs["rnn"]).array_steps(STEP_JACOBIAN_SV)[-1]
    assert list(data.arrays) == [(cell_runs["rnn"], STEP_JACOBIAN_SV, last)]
    data = load_figure_data(fig_store, "singular_values", run_ids=ids, run_id=cell_runs["lstm"])
    assert data.run_ids == [cell_runs["lstm"]]


def test_loader_sweep_order_and_errors(fig_store, cell_runs, tmp_path):
    data = load_figure_data(fig_store, "training", sweep="figtest-cells")
    assert data.run_ids == [cell_runs["rnn"], cell_runs["lstm"], cell_runs["gru"]]
    with pytest.raises(ValueError, match="sweeps in this store: figtest-cells, figtest-grid"):
        load_figure_data(fig_store, "training", sweep="nope")
    with pytest.raises(ValueError, match="unknown figure"):
        load_figure_data(fig_store, "nope")
    with pytest.raises(FileNotFoundError):
        load_figure_data(tmp_path / "nothing", "training")


def test_log_axes_get_readable_ticks():
    import numpy as np

    from gradlab.export.template import _log_ticks

    assert _log_ticks(np.array([1e-6, 0.3])) == {"dtick": 2, "tick0": 0}
    assert _log_ticks(np.array([1e-3, 0.5])) == {"dtick": 1, "tick0": 0}
    narrow = _log_ticks(np.array([0.3, 1.5]))
    assert narrow["tickvals"] == [0.3, 0.5, 1.0] and narrow["ticktext"] == ["0.3", "0.5", "1"]
    tiny = _log_ticks(np.array([2e-5, 8e-5]))
    assert tiny["ticktext"][0] == "2×10<sup>−5</sup>"


def test_fit_and_theory_lines_are_drawn_last_and_named_in_a_note(profile):
    d, _, _ = paper_dict(profile, "single")
    names = [t["name"] for t in d["data"]]
    overlay = [n.startswith(("fit:", "theory:")) for n in names]
    assert any(overlay) and overlay == sorted(overlay)  # all data first, then the overlays
    # at single width they leave the legend for a note under the plot, with their values
    assert not any(t.get("showlegend", True) for t, o in zip(d["data"], overlay, strict=True) if o)
    notes = [a for a in d["layout"]["annotations"] if a.get("name") == "paper-notes"]
    text = notes[0]["text"].replace("<br>", " ")
    assert text.startswith("Dotted: fit, dashed: theory.")
    for name in names:
        if name.startswith("fit:"):
            assert "fit " + name.split(": ", 1)[1] in text
    # at double width the legend is a column to the right of the plot, overlays included
    wide, _, _ = paper_dict(profile, "double")
    assert wide["layout"]["legend"]["orientation"] == "v"
    assert all(t.get("showlegend", True) for t in wide["data"])


def test_legend_names_drop_what_every_run_shares(profile):
    d, _, _ = paper_dict(profile, "double")
    runs = [t["name"] for t in d["data"] if t["name"].startswith(("rnn", "lstm", "gru"))]
    assert runs and not any("seq 10" in n for n in runs)  # every run has seq_len 10
    assert all("init" in n for n in runs)  # init differs between them, so it stays


def test_notes_under_the_plot_are_wrapped_onto_the_page(profile):
    for width in ("single", "double"):
        d, w, _ = paper_dict(profile, width)
        layout = d["layout"]
        notes = [a for a in layout["annotations"] if a.get("name") == "paper-notes"]
        assert len(notes) == 1 and notes[0]["y"] == 0 and notes[0]["yanchor"] == "top"
        assert all(a.get("y", 0.5) >= 0 for a in layout["annotations"])  # none off the page
        lines = notes[0]["text"].split("<br>")
        assert len(lines) > 3 and all(
            text_width_px(line, notes[0]["font"]["size"]) <= w * 96 - 64 for line in lines
        )
        assert layout["margin"]["b"] > len(lines) * notes[0]["font"]["size"]


def test_facets_share_an_axis_title_and_get_room_for_their_titles():
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("rnn", "lstm", "gru"))
    for col in (1, 2, 3):
        fig.add_heatmap(z=[[1, 2], [3, 4]], row=1, col=col, showscale=False)
        fig.update_xaxes(title_text="sequence length T", row=1, col=col)
        fig.update_yaxes(title_text="σ<sub>w</sub>", row=1, col=col)
    d, _, _ = paper_dict(fig, "double")
    layout = d["layout"]
    x_titles = [layout[k]["title"]["text"] for k in ("xaxis", "xaxis2", "xaxis3")]
    y_titles = [layout[k]["title"]["text"] for k in ("yaxis", "yaxis2", "yaxis3")]
    assert x_titles == ["", "sequence length T", ""]  # once, under the middle facet
    assert y_titles == ["σ<sub>w</sub>", "", ""]  # once, left
    assert layout["margin"]["t"] >= 12  # the facet titles sit above the plot


def test_an_explicit_small_height_still_leaves_the_plot_room(profile):
    d, _, h = paper_dict(profile, 2.0, height=1.5)
    margin = d["layout"]["margin"]
    assert h == 1.5 and margin["t"] + margin["b"] <= 0.6 * 1.5 * 96 + 1e-6


@pytest.mark.parametrize("width", ["single", "double"])
def test_long_notes_grow_the_figure_and_never_push_the_legend_onto_the_plot(width):
    """Four runs with a long theory note each (the demo's compare): the figure grows so the
    plot keeps its share; the legend stays above (or beside) the plot, never over it."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, cell in enumerate(("rnn", "lstm", "lstm", "gru")):
        fig.add_scatter(x=[0, 1, 2], y=[1, 0.1, 0.01], name=f"{cell} · b {i} · seed 0")
    note = "theory at step 0: driven mean field (σ_w = 0.577, σ_v = 0.0204, N = 32)"
    fig.add_annotation(text="<br>".join([note] * 6), xref="paper", yref="paper", y=-0.3)
    fig.update_yaxes(type="log")
    d, _, h = paper_dict(fig, width)
    layout, legend = d["layout"], d["layout"]["legend"]
    over_plot = (
        legend.get("yref") == "paper" and legend.get("y", 1.02) <= 1 and legend.get("x", 0) < 1
    )
    assert not over_plot, legend
    margin = layout["margin"]
    assert margin["t"] + margin["b"] <= (1 - 0.4) * h * 96 + 1e-6
