"""Per-run colours (`_common.run_styles`, `style.run_style`) and the `color_by` option, on the
real runs of the figure store: each run its own colour-blind-safe colour, the same in every
figure of one run list; fit, theory and baseline lines in their run's colour."""

from __future__ import annotations

import inspect

import pytest

from gradlab.figures import FIGURES, FigureData, style
from gradlab.figures._common import run_styles

#: Figures that draw run-coloured lines (heatmaps and the gates figure colour other things).
COLOURED = (
    "timestep_profile",
    "jacobian_lag",
    "saturation",
    "training",
    "cell_vs_hidden",
    "singular_values",
    "step_jacobian",
)
RUNS_FIGURES = ("timestep_profile", "jacobian_lag", "saturation", "training")


def run_lines(fig) -> dict[str, str]:
    """run id → colour of the run's own line (not its fit / theory / level lines)."""
    out = {}
    for t in fig.data:
        const = (t.meta or {}).get("const", {})
        if const.get("line") is None and const.get("name") not in ("baseline_loss", "clip"):
            out.setdefault(const.get("run_id"), t.line.color)
    out.pop(None, None)
    return out


def test_run_style_cycles_colours_then_dashes():
    first = [style.run_style(k) for k in range(len(style.RUN_COLORS))]
    assert len({c for c, _, _ in first}) == 7 and {d for _, d, _ in first} == {"solid"}
    assert set(style.RUN_COLORS) <= set(style.OKABE_ITO.values())
    assert style.OKABE_ITO["yellow"] not in style.RUN_COLORS  # too pale on white
    colour, dash, _ = style.run_style(7)
    assert colour == style.RUN_COLORS[0] and dash == style.RUN_DASHES[1]
    assert len({style.run_style(k)[:2] for k in range(12)}) == 12  # compare's MAX_RUNS


def test_each_run_its_own_colour_in_every_figure(figure_data, grid_runs):
    """Four runs of one cell: four colours, in run-list order, the same in every figure."""
    data = figure_data(grid_runs)
    expected = {rid: style.RUN_COLORS[k] for k, rid in enumerate(grid_runs)}
    assert {r: s.color for r, s in run_styles(data, grid_runs).items()} == expected
    for name in RUNS_FIGURES:
        fig = FIGURES[name].builder(data, run_ids=grid_runs)
        assert run_lines(fig) == expected, name
    # a run keeps its colour while it keeps its place in the list
    styles = run_styles(data, grid_runs[:2])
    assert [s.color for s in styles.values()] == list(style.RUN_COLORS[:2])


def test_fit_and_theory_lines_take_their_runs_colour(figure_data, cell_runs):
    ids = list(cell_runs.values())
    fig = FIGURES["timestep_profile"].builder(figure_data(ids), step=0)
    own = run_lines(fig)
    assert len(set(own.values())) == 3
    kinds = set()
    for t in fig.data:
        const = (t.meta or {}).get("const", {})
        if const.get("line") in ("fit", "theory"):
            kinds.add(const["line"])
            assert t.line.color == own[const["run_id"]]
    assert kinds == {"fit", "theory"}


def test_color_by_cell_reproduces_the_cell_colours(figure_data, cell_runs, grid_runs):
    ids = list(cell_runs.values())
    data = figure_data(ids)
    for name in ("timestep_profile", "training"):
        fig = FIGURES[name].builder(data, color_by="cell")
        assert run_lines(fig) == {r: style.cell_color(data.cell(r)) for r in ids}, name
        assert fig.layout.legend.title.text == "colour: cell"
        assert fig.layout.meta["gradlab"]["options"]["color_by"] == "cell"
    lstm = cell_runs["lstm"]
    for name in ("cell_vs_hidden", "singular_values", "step_jacobian"):
        fig = FIGURES[name].builder(figure_data([lstm]), color_by="cell")
        lstm_colour = {style.cell_color("lstm"), style.shade(style.cell_color("lstm"), 1.0)}
        assert lstm_colour & {t.line.color for t in fig.data}, name  # step_jacobian: shades
    # runs of one cell: one colour, told apart by dash and marker
    fig = FIGURES["timestep_profile"].builder(
        figure_data(grid_runs), fit=False, theory=False, color_by="cell"
    )
    assert {t.line.color for t in fig.data} == {style.cell_color("rnn")}
    assert len({t.line.dash for t in fig.data}) == len({t.marker.symbol for t in fig.data}) == 4


def test_color_by_a_config_key_colours_its_values(figure_data, grid_runs):
    data = figure_data(grid_runs)
    fig = FIGURES["timestep_profile"].builder(data, fit=False, theory=False, color_by="gain")
    by_gain: dict[float, set[str]] = {}
    for t in fig.data:
        gain = data.run(t.meta["const"]["run_id"])["gain"]
        by_gain.setdefault(gain, set()).add(t.line.color)
        assert t.name.startswith(f"σ<sub>w</sub> {gain:g} · rnn"), t.name  # the value leads
    assert sorted(by_gain) == [0.8, 1.5]
    assert by_gain == {0.8: {style.RUN_COLORS[0]}, 1.5: {style.RUN_COLORS[1]}}
    assert fig.layout.legend.title.text == "colour: σ<sub>w</sub>"
    assert len({(t.line.color, t.line.dash) for t in fig.data}) == 4
    with pytest.raises(ValueError, match=r"color_by must be a key of the runs .*gain.*'gian'"):
        FIGURES["timestep_profile"].builder(data, color_by="gian")


def test_training_baselines_per_run_and_merged(figure_data, grid_runs):
    data = figure_data(grid_runs)
    fig = FIGURES["training"].builder(data)
    shared = [t for t in fig.data if t.meta["const"].get("name") == "baseline_loss"]
    # the four runs share the adding task's baseline: one line, said to be theirs
    assert len(shared) == 1 and shared[0].name.endswith(", all runs")
    # four different baselines: four lines, each in its run's colour with its own dash
    runs = data.runs.copy()
    runs["baseline_loss"] = [0.1, 0.2, 0.3, 0.4]
    fig = FIGURES["training"].builder(FigureData(metrics=data.metrics, runs=runs))
    own = run_lines(fig)
    base = [t for t in fig.data if t.meta["const"].get("name") == "baseline_loss"]
    assert len(base) == 4
    assert {t.meta["const"]["run_id"]: t.line.color for t in base} == own
    assert len({t.line.dash for t in base}) == 4 and "solid" not in {t.line.dash for t in base}


@pytest.mark.parametrize("name", COLOURED)
def test_color_by_is_an_option(name):
    spec = FIGURES[name]
    assert "color_by" in spec.options
    assert "color_by" in inspect.signature(spec.builder).parameters
