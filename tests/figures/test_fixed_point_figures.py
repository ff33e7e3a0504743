"""The fixed-point figures on the real runs of `fig_store`: what they draw is the store's rows and
arrays (rates beside the measured decay, eigenvalues of the visited points, trajectories in
their principal components), titles and notes come from the data, and a run without fixed
points says so."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gradlab.arrays import FIXED_POINT_EIGENVALUES, FIXED_POINT_STATES, HIDDEN_SAMPLE
from gradlab.figures import FIGURES, FigureData, figure_table, is_empty
from gradlab.figures._fixed_points import points_at
from gradlab.figures.fixed_point_pca import principal_axes
from gradlab.probes import FixedPointProbe, SummaryProbe
from gradlab.probes.fixed_points import STABILITY

PROBE = FixedPointProbe.probe
NAMES = ("fixed_point_rates", "fixed_point_spectrum", "fixed_point_pca")


def rows(data: FigureData, run_id: str, probe: str, name: str) -> pd.Series:
    """step → value of a per-step scalar, layer 0 forward."""
    frame = data.select(run_id, probe, name)
    frame = frame[frame["t"].isna()]
    return frame.set_index("step")["value"]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_fig_store_run_has_points_to_draw(figure_data, cell_runs, cell):
    data = figure_data([cell_runs[cell]])
    for name in NAMES:
        fig = FIGURES[name].builder(data)
        assert not is_empty(fig), (name, fig.layout.annotations)


def test_rates_are_the_stored_rates_beside_the_measured_decay(figure_data, cell_runs):
    ids = list(cell_runs.values())
    data = figure_data(ids)
    table = figure_table(FIGURES["fixed_point_rates"].builder(data))
    assert set(table["run_id"]) == set(ids)
    for rid in ids:
        for series, probe, name in (
            ("ln|λ_max|", PROBE, "rate"),
            ("decay rate", SummaryProbe.probe, "decay_rate"),
            ("λ_1", PROBE, "lyapunov"),
        ):
            drawn = table[(table["run_id"] == rid) & (table["series"] == series)]
            stored = rows(data, rid, probe, name)
            assert list(drawn["step"]) == list(stored.index)
            np.testing.assert_allclose(drawn["rate"], stored.to_numpy())
            if name == "rate":  # beside it, how far the visited points are from the states
                distance = rows(data, rid, PROBE, "distance").to_numpy()
                np.testing.assert_allclose(drawn["distance"], distance)
    tau = figure_table(FIGURES["fixed_point_rates"].builder(data, quantity="tau"))
    rate = tau["rate_per_step"].to_numpy()
    expected = np.where(rate < 0, -1 / rate, np.nan)
    np.testing.assert_allclose(tau["tau"].to_numpy(), expected, equal_nan=True)


def test_rates_notes_state_the_stored_change(figure_data, cell_runs):
    rid = cell_runs["gru"]
    data = figure_data([rid])
    fig = FIGURES["fixed_point_rates"].builder(data)
    notes = " ".join(a.text for a in fig.layout.annotations)
    stored = rows(data, rid, PROBE, "rate").dropna()
    first = f"{stored.iloc[0]:.3g}".replace("-", "−")
    last = f"{stored.iloc[-1]:.3g}".replace("-", "−")
    assert f"ln|λ_max|: {first} → {last} /step" in notes


@pytest.mark.parametrize("points", ["visited", "all"])
def test_spectrum_draws_the_saved_eigenvalues_of_the_chosen_points(figure_data, cell_runs, points):
    rid = cell_runs["lstm"]
    data = figure_data([rid])
    fig = FIGURES["fixed_point_spectrum"].builder(data, points=points)
    table = figure_table(fig)
    step = data.array_steps(rid, FIXED_POINT_EIGENVALUES)[-1]
    assert set(table["step"]) == {step}
    pairs = data.arrays[(rid, FIXED_POINT_EIGENVALUES, step)]
    visits = data.select(rid, PROBE, "visits", step=step)["value"].to_numpy()
    chosen = np.flatnonzero(visits > 0) if points == "visited" else np.arange(len(pairs))
    assert sorted(set(table["point"].astype(int))) == chosen.tolist()
    for p in chosen:
        mine = table[table["point"] == p].sort_values("index")
        np.testing.assert_allclose(mine["real"], pairs[p, :, 0])
        np.testing.assert_allclose(mine["imag"], pairs[p, :, 1])
    top = np.hypot(pairs[chosen, 0, 0], pairs[chosen, 0, 1]).max()
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert f"slowest |λ| = {top:.4g}" in notes
    assert f"training step {step}" in fig.layout.title.text


@pytest.mark.parametrize("components", [2, 3])
def test_pca_projects_trajectories_and_points_on_the_top_components(
    figure_data, cell_runs, components
):
    rid = cell_runs["lstm"]
    data = figure_data([rid])
    fig = FIGURES["fixed_point_pca"].builder(data, components=components)
    assert {t.type for t in fig.data} == ({"scatter"} if components == 2 else {"scatter3d"})
    step = data.array_steps(rid, FIXED_POINT_STATES)[-1]
    h = data.arrays[(rid, HIDDEN_SAMPLE, step)].astype(np.float64)  # (T+1, n, N)
    flat = h.reshape(-1, h.shape[-1])
    # the top principal axes by the covariance's eigenvectors (independent of the SVD used)
    values, vectors = np.linalg.eigh(np.cov(flat.T, bias=True))
    top = vectors[:, ::-1][:, :components].T
    mean, axes, share = principal_axes(flat, components)
    np.testing.assert_allclose(np.abs(axes @ top.T), np.eye(components), atol=1e-6)
    np.testing.assert_allclose(share, values[::-1][:components] / values.sum(), rtol=1e-6)
    table = figure_table(fig)
    traj = table[table["trace"].str.startswith("trajectories")]
    assert len(traj) == flat.shape[0]
    by_sample = ((h - mean) @ axes[0]).T.reshape(-1)  # trace b, then t = 0..T
    np.testing.assert_allclose(traj["pc1"].to_numpy(), by_sample)
    states = data.arrays[(rid, FIXED_POINT_STATES, step)]
    classes = [STABILITY[int(c)] for c in data.select(rid, PROBE, "stability", step=step)["value"]]
    marks = table[table["kind"].notna()]
    assert len(marks) == len(states)
    for kind in set(classes):
        assert (marks["kind"] == kind).sum() == classes.count(kind)
    expected = (states[:, : h.shape[-1]] - mean) @ axes[0]
    np.testing.assert_allclose(
        marks.sort_values("point")["pc1"].to_numpy(), expected, rtol=1e-6, atol=1e-9
    )
    assert f"{100 * share[0]:.0f}% of variance" in fig.layout.xaxis.title.text


def test_points_at_reads_rows_and_arrays_of_one_step(figure_data, cell_runs):
    rid = cell_runs["gru"]
    data = figure_data([rid])
    steps = data.array_steps(rid, FIXED_POINT_STATES)
    assert steps == data.steps(rid, PROBE, "rate")  # every search saved its points
    found = points_at(data, rid, steps[0])
    assert found is not None and found.step == steps[0]
    assert found.states.shape[0] == found.count == len(found.classes)
    assert found.eigenvalues.shape == found.states.shape
    assert points_at(data, rid, 12345) is None


@pytest.mark.parametrize("name", NAMES)
def test_a_run_without_fixed_points_says_so(figure_data, cell_runs, name):
    full = figure_data([cell_runs["gru"]])
    metrics = full.metrics[full.metrics["probe"] != PROBE]
    arrays = {k: v for k, v in full.arrays.items() if not k[1].startswith("fixed_point")}
    data = FigureData(metrics=metrics, runs=full.runs, arrays=arrays)
    fig = FIGURES[name].builder(data)
    assert is_empty(fig)
    assert "fixed_points probe" in fig.layout.annotations[0].text
    spec = FIGURES[name]
    series = set(zip(metrics["probe"], metrics["name"], strict=True))
    assert not spec.has_data(series, {k[1] for k in arrays})  # pages leave the figure out


def test_bad_options_are_clear_errors(figure_data, cell_runs):
    data = figure_data([cell_runs["gru"]])
    with pytest.raises(ValueError, match="components must be 2 or 3"):
        FIGURES["fixed_point_pca"].builder(data, components=4)
    with pytest.raises(ValueError, match="points must be one of"):
        FIGURES["fixed_point_spectrum"].builder(data, points="some")
    with pytest.raises(ValueError, match="quantity must be one of"):
        FIGURES["fixed_point_rates"].builder(data, quantity="nope")
    assert math.isfinite(rows(data, cell_runs["gru"], PROBE, "lyapunov").iloc[0])
