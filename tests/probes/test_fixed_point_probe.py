"""The fixed-point probe against `gradlab.fixed_points` called directly on the same recording:
its per-point rows, the points the trajectories visit (by brute force), its per-step values, and
its schedule and initial states."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from probe_cases import CASES, make_recording

from gradlab.fixed_points import fixed_points
from gradlab.probes import FixedPointProbe
from gradlab.probes.fixed_points import (
    Q_TARGET,
    STABILITY,
    fixed_point_recordings,
    fixed_point_values,
    found_fixed_points,
    initial_states,
    visited_points,
    within_range,
)

UNI = [c for c in CASES if c.num_layers == 1 and not c.bidirectional]  # rnn, lstm, gru
TWO = [c for c in CASES if c.num_layers == 2 and c.bidirectional][:1]


def by_name(rows: dict, layer: int, direction: int) -> dict[str, np.ndarray]:
    """name → values in t order (per-point rows) or the one value (per-step rows)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for name, lay, d, t, value in zip(
        rows["name"], rows["layer"], rows["direction"], rows["t"], rows["value"], strict=True
    ):
        if (lay, d) == (layer, direction):
            out.setdefault(name, []).append((-1 if t is None else t, value))
    return {k: np.array([v for _, v in sorted(pairs)]) for k, pairs in out.items()}


@pytest.mark.parametrize("case", UNI + TWO, ids=lambda c: c.id)
def test_rows_are_those_of_fixed_points_on_the_recording(case):
    rec, context = make_recording(case)
    rows = FixedPointProbe().rows(rec, context)
    views = sorted(rec.layers.items())
    assert {(lay, d) for lay, d in zip(rows["layer"], rows["direction"], strict=True)} == {
        (layer, int(reverse)) for (layer, reverse), _ in views
    }
    for (layer, reverse), view in views:
        direction = int(reverse)
        got = by_name(rows, layer, direction)
        starts = initial_states(view, context.config.fixed_point_inits, context.config.seed)
        expected, _ = within_range(
            fixed_points(
                rec.model,
                rec,
                constant_input="mean",
                initial_states=starts,
                n_inits=int(starts.shape[0]),
                seed=context.config.seed,
                layer=layer,
                reverse=reverse,
                dtype=torch.float64,
                q_target=Q_TARGET,
                solver="dense",
            ),
            rec.model,
        )
        found = found_fixed_points(rec, layer, direction)
        assert found is not None
        np.testing.assert_allclose(got["q"], expected.q, rtol=1e-6, atol=1e-14)
        np.testing.assert_allclose(found.states, expected.states, atol=1e-8)
        np.testing.assert_allclose(got["max_abs_eigenvalue"], expected.slowest, rtol=1e-8)
        np.testing.assert_allclose(got["tau_slowest"], expected.tau_slowest, rtol=1e-8)
        np.testing.assert_array_equal(got["n_unstable"], expected.n_unstable)
        np.testing.assert_array_equal(got["count"], expected.counts)
        assert [STABILITY[int(c)] for c in got["stability"]] == list(expected.stability)
        np.testing.assert_array_equal(got["fixed"], np.asarray(expected.is_fixed, float))
        # visits: each trajectory's last state → the nearest point, by brute force
        states = view.trace.state()
        last = states[-1].to(torch.float64).numpy()  # no padding: every sequence runs T steps
        points = expected.states.numpy()
        assert len(points) > 0
        nearest = [int(np.argmin([np.linalg.norm(s - p) for p in points])) for s in last]
        assert expected.nearest(torch.from_numpy(last))[0].tolist() == nearest  # the same rule
        counts = np.bincount(nearest, minlength=len(points))
        np.testing.assert_array_equal(got["visits"], counts)
        rate = float(np.mean([math.log(expected.slowest[i]) for i in nearest]))
        assert got["rate"][0] == pytest.approx(rate, rel=1e-8)
        assert got["modulus"][0] == pytest.approx(math.exp(rate), rel=1e-8)
        assert got["n_points"][0] == len(points)
        gaps = [
            np.linalg.norm(s - points[i]) / math.sqrt(points.shape[1])
            for s, i in zip(last, nearest, strict=True)
        ]
        assert got["distance"][0] == pytest.approx(float(np.mean(gaps)), rel=1e-8)
        lyapunov = float(view.lyapunov(1)[0])
        assert got["lyapunov"][0] == pytest.approx(lyapunov, rel=1e-10)
        values = fixed_point_values(rec, layer, direction)
        assert values["rate"] == got["rate"][0] and values["lyapunov"] == got["lyapunov"][0]


@pytest.mark.parametrize(
    ("every", "expected"),
    [(0, []), (1, [0, 10, 20, 30, 40]), (2, [0, 20, 40]), (3, [0, 30, 40]), (9, [0, 40])],
    ids=["off", "every", "every-2nd", "every-3rd-and-last", "first-and-last"],
)
def test_schedule_picks_every_kth_recording_and_the_last(every, expected):
    assert fixed_point_recordings([0, 10, 20, 30, 40], every) == expected


def test_initial_states_are_distinct_recorded_states():
    rec, _ = make_recording(UNI[2])  # gru
    view = rec.layer(0)
    pool = view.trace.state().reshape(-1, view.state_size)
    starts = initial_states(view, 7, seed=1)
    assert starts.shape == (7, view.state_size)
    matches = (starts[:, None, :] == pool[None]).all(-1)  # (7, M)
    assert matches.any(1).all()
    assert len({tuple(s.tolist()) for s in starts}) == 7
    torch.testing.assert_close(initial_states(view, 7, seed=1), starts)
    assert initial_states(view, 10_000, seed=1).shape[0] == pool.shape[0]  # all of them


def test_visited_points_is_the_nearest_point_to_each_last_state():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    finals = np.array([[0.9, 0.1], [0.1, 1.5], [np.nan, 0.0], [-0.1, 0.1]])
    index, distance = visited_points(points, finals)
    np.testing.assert_array_equal(index, [1, 2, -1, 0])
    np.testing.assert_allclose(
        distance[[0, 1, 3]],
        np.array([math.hypot(0.1, 0.1), math.hypot(0.1, 0.5), math.hypot(0.1, 0.1)]) / math.sqrt(2),
    )
    assert math.isnan(distance[2])


def test_no_finite_state_gives_no_rows():
    rec, context = make_recording(UNI[0])
    view = rec.layer(0)
    with torch.no_grad():
        view.trace.hidden.fill_(math.nan)  # a diverged recording
    rows = FixedPointProbe().rows(rec, context)
    assert rows["name"] == [] and found_fixed_points(rec) is None


def test_points_outside_the_cells_range_are_dropped():
    rec, _ = make_recording(UNI[2])  # gru: h in [−1, 1]
    view = rec.layer(0)
    found = fixed_points(rec.model, rec, constant_input="mean", dtype=torch.float64)
    assert len(found) >= 1
    kept, outside = within_range(found, rec.model)
    assert outside == 0 and len(kept) == len(found)
    moved = found.states.clone()
    moved[0, 0] = 1.5  # h_0 of point 0 beyond tanh's range: unreachable from a real state
    shifted = replace(found, states=moved)
    kept, outside = within_range(shifted, rec.model)
    assert outside == 1 and len(kept) == len(found) - 1
    torch.testing.assert_close(kept.states, moved[1:])
    torch.testing.assert_close(kept.eigenvalues, found.eigenvalues[1:])
    assert kept.stability == found.stability[1:]
    assert view.state_size == found.states.shape[1]


def test_stability_codes_follow_the_library_classes():
    from gradlab.fixed_points import STABILITY_CLASSES

    assert STABILITY == STABILITY_CLASSES
