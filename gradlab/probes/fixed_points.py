"""`fixed_points`: the fixed and slow points of the recorded model (`gradlab.fixed_points`) and
their spectra, beside the top Lyapunov exponent of the recorded trajectories.

Per layer and direction, one float64 search minimises q(s) = ½‖F(s, x̄) − s‖² from
`config.fixed_point_inits` states drawn (seeded by `config.seed`, without replacement) from
the recorded trajectories s_0..s_T of the probe batch (full state: (h, c) for an LSTM), with x̄
the mean input the layer read over the recording's real steps (``constant_input="mean"``: zero
after the cue for the identity task, the drift of a noisy input stream otherwise). Points with
q above the search's `slow_tol` are dropped, and so are points whose h lies outside the cell's
range (`within_range`), so a search may find none. A point stops descending once
q ≤ `Q_TARGET` (a slow point), then a Newton polish inside the default trust radius makes it a
fixed point where an isolated root is near (``q_target`` of `gradlab.fixed_points`).

One row per point p (t = p, in the order `gradlab.fixed_points` returns, q ascending): `q`;
`fixed` (1 when q ≤ tol, 0 for a slow point); `stability` (the index in `STABILITY`);
`max_abs_eigenvalue` |λ_max| of the step Jacobian at the point; `tau_slowest` (τ = −1/ln|λ| of
its slowest decaying mode, steps; NaN when every mode grows); `n_unstable`; `count` (initial
states that ended there); `visits` (probe trajectories that visit it, below).

"Visit": a probe trajectory b visits the point nearest (Euclidean, full state) to its last
state s_T(b) (the state at its own length when padded): the point its memory sits at when the
readout reads it. Per step (t null): `n_points`; `rate` = the mean over the probe trajectories
of ln|λ_max| at the point each visits; `modulus` = e^rate; `tau` = −1/rate (Inf when rate ≥ 0);
`distance` = the mean RMS distance per state coordinate, ‖s_T(b) − s*_p‖/√S, from each
trajectory's last state to the point it visits (small: the trajectory sits at the point; large:
the nearest point is far, and `rate` says little about it); `lyapunov`: the top Lyapunov
exponent of the recording (`LayerRecording.lyapunov`), per step.

The search is the probe's cost, so `gradlab.train` runs it only at the recordings
`fixed_point_recordings` picks; `found_fixed_points(rec)` returns what the last `rows` call on
`rec` found (for the arrays `gradlab.train.write_recording` saves) and `fixed_point_values(rec)`
its per-step values.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gradlab.probes.base import Probe, ProbeContext, Rows, layer_views, running
from gradlab.record import LayerRecording, Recording

if TYPE_CHECKING:
    from gradlab.fixed_points import FixedPoints

__all__ = [
    "STABILITY",
    "FixedPointProbe",
    "fixed_point_recordings",
    "fixed_point_values",
    "found_fixed_points",
    "initial_states",
    "visited_points",
    "within_range",
]

#: The probe's slow-point threshold (`gradlab.fixed_points`' q_target, FixedPointFinder's
#: tol_q): a point stops descending once q ≤ 1e-10, i.e. once the state moves by at most
#: ‖F(s) − s‖ = 1.4e-5 per step, orders of magnitude below how far a trajectory moves per step.
#: Without it the search slides a point along the slow manifold of a trained memory (a line or
#: plane attractor, where q is tiny everywhere) towards the saturated edge of the state space,
#: where q → 0 and |λ| → 1; with it the point stays where it became slow, near the trajectory
#: state it started from, and a Newton polish inside the default trust radius still finds the
#: isolated fixed points exactly.
Q_TARGET = 1e-5

#: Stability classes (`gradlab.fixed_points.STABILITY_CLASSES`, in its order); a point's
#: `stability` row is the index of its class here.
STABILITY: tuple[str, ...] = ("stable", "unstable", "saddle", "marginal")

#: Names of the rows with one row per point (t = the point's index).
POINT_NAMES = (
    "q",
    "fixed",
    "stability",
    "max_abs_eigenvalue",
    "tau_slowest",
    "n_unstable",
    "count",
    "visits",
)
#: Names of the per-step scalars (t null).
STEP_NAMES = ("n_points", "n_outside", "rate", "modulus", "tau", "distance", "lyapunov")

#: Recording → {(layer, direction): (FixedPoints, per-step values by name)} of the last `rows`
#: call (dropped with the recording).
_FOUND: weakref.WeakKeyDictionary[
    Recording, dict[tuple[int, int], tuple[Any, dict[str, float]]]
] = weakref.WeakKeyDictionary()


def fixed_point_recordings(recorded: Sequence[int], every: int) -> list[int]:
    """The recorded steps at which fixed points are searched: the 0th, every-th, 2·every-th...
    recording, and the last one; [] when `every` is 0."""
    steps = sorted(recorded)
    if every <= 0 or not steps:
        return []
    return sorted({*steps[::every], steps[-1]})


def _running_states(view: LayerRecording) -> torch.Tensor:
    """(T+1, B) bool: the states s_0..s_T each sequence really reaches."""
    mask = running(view, 0, view.T + 1)
    if mask is None:
        return torch.ones(view.T + 1, view.hidden.shape[1], dtype=torch.bool)
    return mask.cpu()


def initial_states(view: LayerRecording, n: int, seed: int) -> torch.Tensor:
    """(min(n, M), S): n of the M finite recorded states s_0..s_T of every running sequence,
    drawn uniformly without replacement with a generator seeded by `seed` (all when M ≤ n)."""
    states = view.trace.state().detach()  # (T+1, B, S)
    keep = _running_states(view).to(states.device) & torch.isfinite(states).all(-1)
    pool = states[keep]  # (M, S)
    if pool.shape[0] <= n:
        return pool
    generator = torch.Generator().manual_seed(int(seed))
    chosen = torch.randperm(pool.shape[0], generator=generator)[:n]
    return pool[chosen.to(pool.device)]


def last_states(view: LayerRecording) -> torch.Tensor:
    """(B, S): each probe sequence's state at its own last step."""
    states = view.trace.state().detach()  # (T+1, B, S)
    lengths = view.lengths.to(states.device)
    return states[lengths, torch.arange(states.shape[1], device=states.device)]


def visited_points(points: np.ndarray, finals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index (B,), distance (B,)): the point of `points` (P, S) nearest each trajectory's last
    state `finals` (B, S), and the RMS distance per coordinate ‖s_T − x_p‖/√S to it; -1 and NaN
    for a non-finite last state."""
    points = np.asarray(points, np.float64)
    finals = np.asarray(finals, np.float64)
    if len(points) == 0:
        return np.full(len(finals), -1), np.full(len(finals), np.nan)
    gaps = np.linalg.norm(finals[:, None, :] - points[None, :, :], axis=-1)  # (B, P)
    finite = np.isfinite(gaps).all(1)
    index = np.where(finite, np.argmin(np.where(np.isfinite(gaps), gaps, np.inf), axis=1), -1)
    nearest = np.take_along_axis(gaps, np.maximum(index, 0)[:, None], axis=1)[:, 0]
    distance = np.where(finite, nearest / math.sqrt(max(points.shape[1], 1)), np.nan)
    return index, distance


def within_range(found: FixedPoints, model: Any) -> tuple[FixedPoints, int]:
    """(the points of `found` whose hidden part h lies in the closed range of the cell's h, how
    many lay outside). The step map keeps a bounded h (tanh RNN, LSTM h = o·tanh(c), GRU h' =
    (1 − z)·n + z·h) inside its range, so a point outside can never be reached from a real
    state: there the gates saturate and q can be tiny (a spurious slow point, |λ| → 1). No
    bounds (relu, linear, an LSTM projection): every point is kept."""
    bounds = _hidden_bounds(model)
    if bounds is None or len(found) == 0:
        return found, 0
    lo, hi = bounds
    h = found.states[:, : model.hidden_size]
    inside = ((h >= lo) & (h <= hi)).all(1)
    if bool(inside.all()):
        return found, 0
    keep = inside.nonzero().squeeze(1)
    subset = {
        name: getattr(found, name)[keep]
        for name in (
            "states",
            "q",
            "is_fixed",
            "counts",
            "jacobians",
            "eigenvalues",
            "slowest",
            "time_constants",
        )
    }
    stability = tuple(found.stability[i] for i in keep.tolist())
    return replace(found, **subset, stability=stability), int((~inside).sum())


def _hidden_bounds(model: Any) -> tuple[float, float] | None:
    """(lo, hi) of the model's hidden state h, or None when it is unbounded."""
    from gradlab.cells import get_cell

    if getattr(model, "proj_size", 0):
        return None
    activation = model.activation
    if activation is None:
        return get_cell(model.cell).hidden_bounds
    return getattr(activation, "bounds", None)


def found_fixed_points(rec: Recording, layer: int = 0, direction: int = 0) -> FixedPoints | None:
    """What the probe's last `rows` call on `rec` found for a layer and direction (None: it
    did not run, or no recorded state was finite)."""
    found = _FOUND.get(rec, {}).get((layer, direction))
    return None if found is None else found[0]


def fixed_point_values(rec: Recording, layer: int = 0, direction: int = 0) -> dict[str, float]:
    """The per-step values (`STEP_NAMES`: rate, modulus, lyapunov...) of the probe's last
    `rows` call on `rec` for a layer and direction ({} when it did not run)."""
    found = _FOUND.get(rec, {}).get((layer, direction))
    return {} if found is None else dict(found[1])


class FixedPointProbe(Probe):
    """Fixed / slow points, their spectra, the points the trajectories visit and the top
    Lyapunov exponent (see the module docstring)."""

    probe = "fixed_points"
    names = POINT_NAMES + STEP_NAMES
    needs_loss = False

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        from gradlab.fixed_points import fixed_points

        rows = Rows()
        found_here: dict[tuple[int, int], tuple[Any, dict[str, float]]] = {}
        config = context.config
        for layer, direction, view in layer_views(rec):
            starts = initial_states(view, config.fixed_point_inits, config.seed)
            if starts.shape[0] == 0:
                continue
            found = fixed_points(
                rec.model,
                rec,
                constant_input="mean",
                initial_states=starts,
                n_inits=int(starts.shape[0]),
                seed=config.seed,
                layer=layer,
                reverse=bool(direction),
                dtype=torch.float64,
                q_target=Q_TARGET,
                solver="dense",  # exact steps: inexact ones miss roots where slow points abound
            )
            found, outside = within_range(found, rec.model)
            points = _numpy(found.states)
            slowest = _numpy(found.slowest)
            index, distance = visited_points(points, _numpy(last_states(view)))
            seen = index >= 0
            visits = np.bincount(index[seen], minlength=len(points)).astype(np.float64)
            with np.errstate(divide="ignore"):
                logs = np.log(slowest[index[seen]])
            rate = float(logs.mean()) if logs.size else math.nan
            per_point = {
                "q": _numpy(found.q),
                "fixed": _numpy(found.is_fixed),
                "stability": np.array([STABILITY.index(k) for k in found.stability], np.float64),
                "max_abs_eigenvalue": slowest,
                "tau_slowest": _numpy(found.tau_slowest),
                "n_unstable": _numpy(found.n_unstable),
                "count": _numpy(found.counts),
                "visits": visits,
            }
            for name in POINT_NAMES:
                rows.add(name, per_point[name], t0=0, layer=layer, direction=direction)
            lyapunov = float(view.lyapunov(1)[0]) if view.T > 0 else math.nan
            per_step = {
                "n_points": float(len(points)),
                "n_outside": float(outside),
                "rate": rate,
                "modulus": math.exp(rate) if math.isfinite(rate) else math.nan,
                "tau": -1.0 / rate if rate < 0 else (math.inf if rate >= 0 else math.nan),
                "distance": float(distance[seen].mean()) if seen.any() else math.nan,
                "lyapunov": lyapunov,
            }
            for name in STEP_NAMES:
                rows.add(name, [per_step[name]], layer=layer, direction=direction)
            found_here[(layer, direction)] = (found, per_step)
        _FOUND[rec] = found_here
        return rows.columns()


def _numpy(x: torch.Tensor) -> np.ndarray:
    """A real tensor as float64 numpy (bools and counts as 0/1 and whole numbers)."""
    return x.detach().to("cpu", torch.float64).numpy()
