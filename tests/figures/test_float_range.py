"""Values outside the recording dtype's range (underflow to 0, overflow to Inf) are marked on
the figures, from real runs (tests/conftest.py's `range_store`): the rule that tells underflow
from a true zero, the profile's markers and note, the heatmap's grey cells, and no mark where
a float64 adjoint keeps the values or a dead relu network has true zeros."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradlab.export import load_figure_data
from gradlab.figures import FIGURES, figure_table
from gradlab.figures._common import describe_positions, out_of_range, underflow_level
from gradlab.figures.quantities import get_quantity

TINY32 = float(np.finfo(np.float32).tiny)


# ------------------------------------------------------------------------------ the rule
@pytest.mark.parametrize(
    ("values", "below"),
    [
        ([0.0, 0.0, 3e-44, 1e-30, 1e-10, 1.0], [1, 1, 0, 0, 0, 0]),
        ([0.0, 0.0, 0.0, 0.0, 0.0, 0.4], [0, 0, 0, 0, 0, 0]),
        ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0, 0, 0, 0, 0, 0]),
        ([0.0, 2e-20, 0.0, 1e-3, 0.0, 0.2], [1, 0, 0, 0, 0, 0]),
        ([0.0, math.nan, 1e-25, 1e-12, 1e-6, 0.3], [1, 0, 0, 0, 0, 0]),
        ([0.0, 1.0, 2.0, 3.0, 4.0, 0.0], [0, 0, 0, 0, 0, 0]),
    ],
    ids=[
        "decay-to-zero",
        "dead-after-normal",
        "all-zero",
        "zero-after-normal-value",
        "nan-skipped",
        "zero-at-the-loss",
    ],
)
def test_underflow_rule(values, below):
    marks = out_of_range(np.array(values), np.arange(len(values)), "float32")
    assert marks.below.tolist() == [bool(b) for b in below]
    assert not marks.above.any()


def test_underflow_level_and_overflow():
    assert underflow_level("float32") == pytest.approx(math.sqrt(TINY32))
    assert underflow_level("float64") == pytest.approx(math.sqrt(np.finfo(np.float64).tiny))
    # in float64 a 1e-30 before a 0 is far above the bottom of the range: a true zero
    assert not out_of_range(np.array([0.0, 1e-30, 1.0]), np.arange(3), "float64").below.any()
    marks = out_of_range(np.array([1.0, math.inf, -math.inf]), np.arange(3), "float32")
    assert marks.above.tolist() == [False, True, True] and marks.any


@pytest.mark.parametrize(
    ("marked", "text"),
    [
        ([1, 1, 1, 0, 0, 0], "k ≤ 2"),
        ([0, 0, 0, 0, 1, 1], "k ≥ 4"),
        ([0, 1, 1, 0, 1, 0], "k = 1–2, k = 4"),
        ([0, 0, 0, 0, 0, 0], ""),
    ],
    ids=["from-the-start", "to-the-end", "inner-runs", "none"],
)
def test_describe_positions(marked, text):
    assert describe_positions(np.array(marked, dtype=bool), np.arange(6), "k") == text


# ------------------------------------------------------------------------------ real runs
@pytest.fixture(scope="module")
def runs(range_store):
    store, ids = range_store
    return store, ids


def build(runs, figure: str, which: str, **options):
    store, ids = runs
    data = load_figure_data(store, figure, run_ids=[ids[which]], **options)
    return FIGURES[figure].builder(data, **options), data


def notes(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations if a.name == "range-note"]


def recorded(runs, which: str, probe: str, name: str, step: int):
    store, ids = runs
    m = store.run(ids[which]).metrics(probes=probe)
    m = m[(m["name"] == name) & (m["step"] == step) & (m["layer"] == 0)].sort_values("t")
    return m["t"].to_numpy(), m["value"].to_numpy()


def zero_prefix_end(t: np.ndarray, v: np.ndarray) -> int:
    """The last k of the run of exact zeros that starts at the first timestep."""
    nonzero = np.flatnonzero(v != 0)
    assert nonzero.size and nonzero[0] > 0, "expected zeros at the first timesteps"
    return int(t[nonzero[0] - 1])


@pytest.mark.parametrize("quantity", ["grad_hidden", "contribution:weight_hh"])
def test_profile_marks_the_underflow_with_a_note_from_the_data(runs, quantity):
    """The note's k is where the stored values turn to 0; the line stops there (no drop to the
    axis) and open triangles at its floor carry the recorded 0 into the CSV."""
    q = get_quantity(quantity)
    fig, _ = build(runs, "timestep_profile", "underflow", quantity=quantity)
    t, v = recorded(runs, "underflow", q.probe, q.name, step=1)
    k = zero_prefix_end(t, v)
    assert notes(fig) == [
        f'{q.text} below float32 range at k ≤ {k}<br>(recorded as 0; adjoint_dtype = "float64" '
        "keeps them)"
    ]
    line = fig.data[0]
    shown = np.asarray(line.y, dtype=np.float64)
    assert np.all(np.isnan(shown[t <= k])) and np.all(shown[t > k] > 0)  # no drop to 0
    (marker,) = [tr for tr in fig.data if tr.name.startswith("below float32 range")]
    assert list(marker.x) == list(range(int(t[0]), k + 1))
    assert np.all(np.asarray(marker.y) == v[v > 0].min())  # at the floor of the line
    table = figure_table(fig)
    rows = table[table["trace"] == marker.name]
    assert np.all(rows["value"] == 0) and len(rows) == k + 1 - int(t[0])


def test_heatmap_greys_the_underflowed_cells(runs):
    fig, _ = build(runs, "gradient_flow", "underflow")
    (grey,) = [tr for tr in fig.data if tr.name == "below float32 range (recorded as 0)"]
    store, ids = runs
    m = store.run(ids["underflow"]).metrics(probes="grad_hidden")
    zero = m[(m["value"] == 0) & (m["layer"] == 0)]
    z = np.asarray(grey.z, dtype=np.float64)
    marked = {(int(grey.y[i]), int(grey.x[j])) for i, j in zip(*np.nonzero(z == 1), strict=True)}
    assert marked == {(int(r.step), int(r.t)) for r in zero.itertuples()}
    k = int(zero["t"].max())
    assert notes(fig) == [
        f"‖∂L/∂h_k‖ below float32 range at k ≤ {k}<br>(recorded as 0; grey cells, at 2 of 2 "
        'recorded steps; adjoint_dtype = "float64" keeps them)'
    ]


def test_jacobian_lag_marks_its_underflow(runs):
    fig, _ = build(runs, "jacobian_lag", "underflow")
    k, v = recorded(runs, "underflow", "jacobian", "spectral", step=1)
    lag = int(k.max()) + 1 - k
    zero = lag[v == 0]
    assert zero.size, "expected ‖∂s_T/∂s_k‖ to underflow in float32 at T = 300"
    assert notes(fig) == [
        f"‖∂s_T/∂s_k‖_2 below float32 range at lag ≥ {int(zero.min())}<br>(recorded as 0)"
    ]


@pytest.mark.parametrize(
    ("figure", "which", "options"),
    [
        ("timestep_profile", "float64", {}),
        ("timestep_profile", "float64", {"quantity": "contribution:weight_hh"}),
        ("gradient_flow", "float64", {}),
        ("timestep_profile", "dead-relu", {}),
        ("timestep_profile", "dead-relu", {"quantity": "contribution:weight_hh"}),
        ("gradient_flow", "dead-relu", {}),
        ("jacobian_lag", "dead-relu", {}),
    ],
    ids=[
        "f64-profile",
        "f64-contribution",
        "f64-heatmap",
        "relu-profile",
        "relu-contribution",
        "relu-heatmap",
        "relu-jacobian",
    ],
)
def test_no_mark_where_values_are_kept_or_truly_zero(runs, figure, which, options):
    fig, _ = build(runs, figure, which, **options)
    assert notes(fig) == []
    assert not [tr for tr in fig.data if "range" in (tr.name or "")]


def test_the_float64_run_is_positive_and_the_relu_zeros_are_true(runs):
    _, v64 = recorded(runs, "float64", "grad_hidden", "norm", step=1)
    assert np.all(v64 > 0) and v64.min() < 1e-45  # kept below float32's smallest number
    _, relu = recorded(runs, "dead-relu", "grad_hidden", "norm", step=1)
    assert np.all(relu[:-1] == 0) and relu[-1] > 1e-3  # ∂L/∂h_T normal, zeros before it


def test_two_runs_get_one_labelled_line_each(runs):
    store, ids = runs
    both = [ids["underflow"], ids["float64"]]
    data = load_figure_data(store, "timestep_profile", run_ids=both)
    fig = FIGURES["timestep_profile"].builder(data)
    (note,) = notes(fig)
    assert note.startswith("rnn · adjoint float32 · seq 300 · seed 0: ‖∂L/∂h_k‖ below float32")
    assert "float64 ·" not in note  # the float64 adjoint's run has no mark


def test_cell_vs_hidden_marks_only_the_series_that_underflows(runs):
    fig, _ = build(runs, "cell_vs_hidden", "lstm-underflow")
    t, h = recorded(runs, "lstm-underflow", "grad_hidden", "norm", step=1)
    _, c = recorded(runs, "lstm-underflow", "grad_cell", "norm", step=1)
    assert np.all(c > 0), "the cell path should stay in range here"
    k = zero_prefix_end(t, h)
    assert notes(fig) == [
        f'‖∂L/∂h_k‖ below float32 range at k ≤ {k}<br>(recorded as 0; adjoint_dtype = "float64" '
        "keeps them)"
    ]
    (marker,) = [tr for tr in fig.data if (tr.name or "").startswith("below float32 range")]
    assert marker.name == "below float32 range: ‖∂L/∂h_k‖"


def test_profile_marks_an_overflow_at_the_ceiling(runs):
    store, ids = runs
    assert store.run(ids["overflow"]).status == "diverged"
    fig, _ = build(runs, "timestep_profile", "overflow", quantity="hidden:mean_abs")
    t, v = recorded(runs, "overflow", "hidden", "mean_abs", step=0)
    (k,) = t[np.isinf(v)]
    assert notes(fig) == [f"mean |h_k| above float32 range at k = {k}<br>(recorded as Inf)"]
    (marker,) = [tr for tr in fig.data if (tr.name or "").startswith("above float32 range")]
    assert list(marker.x) == [k] and marker.y[0] == np.nanmax(v[np.isfinite(v)])
