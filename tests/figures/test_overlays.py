"""Theory and fit overlays: exp(rate·lag) anchored at lag 0, the fitted rate in the legend,
and the χ = 1 line on σ_w × σ_b phase diagrams."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from gradlab import theory
from gradlab.figures import FIGURES, style
from gradlab.fits import decay_fit

FIT_NAME = re.compile(r"fit: −?\d+\.\d+ /step ± \d+\.\d+")
THEORY_NAME = re.compile(r"theory: −?\d+\.\d+ /step")


def role(trace) -> str | None:
    return ((trace.meta or {}).get("const") or {}).get("line")


def run_of(trace) -> str | None:
    return ((trace.meta or {}).get("const") or {}).get("run_id")


@pytest.fixture(scope="module")
def profile(figure_data, cell_runs):
    ids = [cell_runs[c] for c in ("rnn", "lstm", "gru")]
    return FIGURES["timestep_profile"].builder(figure_data(ids)), figure_data(ids)


def test_profile_theory_line_for_the_rnn_only(profile, cell_runs, fig_store):
    """Drawn against the step-0 recording (the figure shows the latest step), anchored at its
    lag 0; the note states the assumptions and why the gated cells have no line."""
    fig, _ = profile
    theory_lines = [t for t in fig.data if role(t) == "theory"]
    assert [run_of(t) for t in theory_lines] == [cell_runs["rnn"]]
    line = theory_lines[0]
    assert THEORY_NAME.fullmatch(line.name), line.name
    assert line.line.dash == style.THEORY_DASH
    config = fig_store.run(cell_runs["rnn"]).config
    rate = theory.theory_rate(config)
    assert rate is not None and rate < 0  # σ_w = 0.9: ordered phase
    x, y = np.asarray(line.x), np.asarray(line.y)
    initial = next(t for t in fig.data if run_of(t) == cell_runs["rnn"] and role(t) == "initial")
    step0 = fig_store.metrics(cell_runs["rnn"], probes="grad_hidden", names="norm")
    step0 = step0[(step0.step == 0) & (step0.layer == 0)].sort_values("t")
    np.testing.assert_allclose(np.asarray(initial.y), step0.value.to_numpy())
    anchor = step0.value.to_numpy()[-1]
    assert y[np.argmax(x)] == pytest.approx(anchor)  # anchored at lag 0 (k = T) of step 0
    lag = x.max() - x
    np.testing.assert_allclose(y, anchor * np.exp(rate * lag))
    notes = " ".join(a.text for a in fig.layout.annotations)
    prediction = theory.predict_rate(config)
    assert prediction.label in notes and "at initialisation" in notes
    for text in ("σ_w = 0.9", "σ_v = ", "σ_b = ", "N = "):
        assert text in prediction.label
    assert "no mean-field theory for LSTM" in notes and "no mean-field theory for GRU" in notes


def test_profile_at_step_0_draws_no_second_initial_line(figure_data, cell_runs):
    rid = cell_runs["rnn"]
    fig = FIGURES["timestep_profile"].builder(figure_data([rid]), step=0)
    assert [role(t) for t in fig.data].count("initial") == 0
    assert [role(t) for t in fig.data].count("theory") == 1


def test_profile_fit_line_matches_the_summary_fit(profile, cell_runs, fig_store):
    fig, _ = profile
    fits = [t for t in fig.data if role(t) == "fit"]
    assert {run_of(t) for t in fits} == set(cell_runs.values())
    for trace in fits:
        assert FIT_NAME.fullmatch(trace.name), trace.name
        assert trace.line.dash == style.FIT_DASH
        rid = run_of(trace)
        # The ‖∂L/∂h_k‖ profile's fit is the adjoint rate (decay_rate is the state Jacobian's).
        summary = fig_store.metrics(rid, probes="summary", names="adjoint_decay_rate")
        stored = summary.sort_values("step")["value"].iloc[-1]
        x, y = np.asarray(trace.x, float), np.log(np.asarray(trace.y, float))
        slope = -np.polyfit(x, y, 1)[0]  # x is the timestep: lag = T − k
        assert slope == pytest.approx(stored, rel=1e-4, abs=1e-6)
        assert f"{stored:.2f}".replace("-", "−") in trace.name or abs(stored) < 0.1


def test_jacobian_lag_theory_starts_at_one(figure_data, cell_runs):
    rid = cell_runs["rnn"]
    fig = FIGURES["jacobian_lag"].builder(figure_data([rid]))
    line = next(t for t in fig.data if role(t) == "theory")
    x, y = np.asarray(line.x), np.asarray(line.y)
    assert x[0] == 0 and y[0] == pytest.approx(1.0)
    rate = math.log(y[1] / y[0])
    assert rate == pytest.approx(theory.theory_rate(figure_data([rid]).run(rid)))
    data_trace = next(t for t in fig.data if role(t) is None)
    assert min(data_trace.x) == 1  # k = T−1 is lag 1
    assert fig.layout.xaxis.title.text == "lag T−k (steps)"


def test_no_theory_line_without_a_theory(figure_data, cell_runs):
    fig = FIGURES["jacobian_lag"].builder(figure_data([cell_runs["lstm"], cell_runs["gru"]]))
    assert not [t for t in fig.data if role(t) == "theory"]
    assert [t for t in fig.data if role(t) == "fit"]


def test_overlays_can_be_switched_off(figure_data, cell_runs):
    data = figure_data([cell_runs["rnn"]])
    fig = FIGURES["timestep_profile"].builder(data, fit=False, theory=False)
    assert [role(t) for t in fig.data] == [None]


def test_fit_decay_uses_gradlab_fits():
    from gradlab.figures._common import fit_by_lag

    lags = np.arange(10)
    values = 3.0 * np.exp(-0.3 * lags)
    fit = fit_by_lag(lags, values)
    assert fit.rate == pytest.approx(-0.3)
    assert fit.intercept == pytest.approx(math.log(3.0))
    assert fit.rate == pytest.approx(decay_fit(values[::-1]).rate)


def cell_values(heat) -> np.ndarray:
    """A phase-diagram heatmap's cell values (customdata is [value, n, run ids, ...] per cell)."""
    return np.array(heat.customdata, dtype=object)[..., 0].astype(float)


def test_phase_diagram_chi_line_is_the_critical_curve(figure_data, grid_runs):
    fig = FIGURES["phase_diagram"].builder(figure_data(grid_runs))
    chi = [t for t in fig.data if t.name and t.name.startswith("χ = 1")]
    assert len(chi) == 1
    sigma = np.asarray(chi[0].customdata, float)  # (σ_w, σ_b) of each point
    w, b = sigma[:, 0], sigma[:, 1]
    assert b.min() == pytest.approx(0.0) and b.max() == pytest.approx(0.3)
    assert w[0] == pytest.approx(1.0)  # tanh, σ_b = 0: σ_w* = 1 exactly
    assert np.all(np.diff(w) > 0)  # more bias needs more gain
    for i in (2, len(w) - 1):  # spot-check against the theory (each solve ~0.3 s)
        assert w[i] == pytest.approx(theory.critical_sigma_w("tanh", b[i]))
    # drawn on the category axes: σ_w 0.8 | 1.5 and σ_b 0 | 0.3 are cells 0 | 1, so a value
    # between two grid values sits between their cells in proportion
    np.testing.assert_allclose(np.asarray(chi[0].x, float), (w - 0.8) / 0.7)
    np.testing.assert_allclose(np.asarray(chi[0].y, float), b / 0.3)
    assert list(fig.layout.xaxis.ticktext) == ["0.8", "1.5"]
    # swapped axes draw the same curve transposed
    swapped = FIGURES["phase_diagram"].builder(figure_data(grid_runs), x="bias_scale", y="gain")
    line = next(t for t in swapped.data if t.name and t.name.startswith("χ = 1"))
    np.testing.assert_allclose(np.asarray(line.y, float), (w - 0.8) / 0.7)
    np.testing.assert_allclose(np.asarray(line.customdata, float), sigma)


def test_phase_diagram_colours(figure_data, grid_runs, cell_runs):
    data = figure_data(grid_runs)
    for color in ("decay_rate", "loss_ratio", "first_fraction"):
        fig = FIGURES["phase_diagram"].builder(data, color=color)
        heat = fig.data[0]
        values = cell_values(heat)
        assert np.isfinite(values).sum() == 4
        if color != "decay_rate":
            assert (values > 0).all()
            np.testing.assert_allclose(np.asarray(heat.z, float), np.log10(values))
    with pytest.raises(ValueError, match="color must be one of"):
        FIGURES["phase_diagram"].builder(data, color="nope")
    # cells sweep: no gain × bias grid, so no χ line; the auto axes pick what varies
    cells = figure_data([cell_runs[c] for c in ("rnn", "lstm", "gru")])
    fig = FIGURES["phase_diagram"].builder(cells)
    assert not [t for t in fig.data if t.name and t.name.startswith("χ")]
    options = fig.layout.meta["gradlab"]["options"]
    assert options["x"] == "gain" and options["y"] in ("init", "cell")


def test_a_reason_several_runs_share_is_noted_once():
    from gradlab.figures.theory_overlay import merged_notes

    notes = [
        "lstm · seed 0: no mean-field theory for LSTM (a gated cell)",
        "rnn · seed 0: theory at step 0: driven mean field (σ_w = 0.577)",
        "lstm · seed 1: no mean-field theory for LSTM (a gated cell)",
    ]
    assert merged_notes(notes) == [
        "no mean-field theory for LSTM (a gated cell): lstm · seed 0; lstm · seed 1",
        "rnn · seed 0: theory at step 0: driven mean field (σ_w = 0.577)",
    ]
    assert merged_notes(notes[1:2]) == notes[1:2]
