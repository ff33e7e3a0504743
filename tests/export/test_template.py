"""The paper template and the store loader (no browser needed)."""

from __future__ import annotations

import pytest

from gradlab.arrays import STEP_JACOBIAN_SV
from gradlab.export import load_figure_data
from gradlab.export.template import FONTS, paper_dict, paper_figure, width_inches
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
    assert w == 3.25 and 1.5 < h < 5
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
    # colours unchanged, lines thinner, legend groups dropped (so the legend flows in rows)
    for before, after in zip(profile.data, d["data"], strict=True):
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
