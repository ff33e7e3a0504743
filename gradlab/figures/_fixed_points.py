"""What the fixed-point figures share: the markers of the stability classes and one run's
points at one recorded step (the `fixed_points` probe's rows beside its arrays)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gradlab.arrays import FIXED_POINT_EIGENVALUES, FIXED_POINT_STATES
from gradlab.figures import style
from gradlab.figures.data import FigureData
from gradlab.probes import FixedPointProbe
from gradlab.probes.fixed_points import POINT_NAMES, STABILITY

__all__ = ["MARKERS", "PROBE", "Points", "points_at", "stability_name"]

PROBE = FixedPointProbe.probe

#: Stability class → (marker symbol, colour): filled for stable, open for unstable.
MARKERS: dict[str, tuple[str, str]] = {
    "stable": ("circle", style.OKABE_ITO["blue"]),
    "marginal": ("square", style.OKABE_ITO["bluish_green"]),
    "saddle": ("x", style.OKABE_ITO["orange"]),
    "unstable": ("circle-open", style.OKABE_ITO["vermillion"]),
}


def stability_name(code: float) -> str:
    """The class of a stored `stability` code ("unknown" for a code outside `STABILITY`)."""
    if not math.isfinite(code) or not 0 <= int(code) < len(STABILITY):
        return "unknown"
    return STABILITY[int(code)]


@dataclass(frozen=True)
class Points:
    """One run's fixed / slow points at one recorded step (layer 0 forward): `states` (P, S)
    and `eigenvalues` (P, S) complex from the arrays (None when not saved), and the probe's
    per-point rows by name (P,) each: q, fixed, stability (codes), max_abs_eigenvalue,
    tau_slowest, n_unstable, visits."""

    step: int
    states: np.ndarray | None
    eigenvalues: np.ndarray | None
    rows: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        return len(self.rows["q"])

    @property
    def classes(self) -> list[str]:
        return [stability_name(c) for c in self.rows["stability"]]


def points_at(data: FigureData, run_id: str, step: int | None) -> Points | None:
    """The points of `run_id` at `step` (None: the latest step with saved points, else the
    latest with rows); None when the run has none there."""
    if step is None:
        saved = data.array_steps(run_id, FIXED_POINT_STATES) or data.array_steps(
            run_id, FIXED_POINT_EIGENVALUES
        )
        step = saved[-1] if saved else data.resolve_step(run_id, PROBE, "q")
    if step is None:
        return None
    frame = data.select(run_id, PROBE, step=int(step))
    frame = frame[frame["t"].notna()]
    if frame.empty:
        return None
    rows = {}
    for name in POINT_NAMES:
        part = frame[frame["name"] == name].sort_values("t")
        rows[name] = part["value"].to_numpy(np.float64)
    if len({len(v) for v in rows.values()}) != 1:
        return None
    _, states = data.array(run_id, FIXED_POINT_STATES, int(step))
    _, pairs = data.array(run_id, FIXED_POINT_EIGENVALUES, int(step))
    eigenvalues = None
    if pairs is not None and pairs.ndim == 3 and pairs.shape[-1] == 2:
        eigenvalues = pairs[..., 0] + 1j * pairs[..., 1]
    count = len(rows["q"])
    if states is not None and len(states) != count:
        states = None
    if eigenvalues is not None and len(eigenvalues) != count:
        eigenvalues = None
    return Points(int(step), states, eigenvalues, rows)
