"""Curves made easier to read: EMA smoothing (as TensorBoard's slider) and runs that differ only
in their seed folded into one mean line with a min–max band.

>>> ema([1.0, 3.0], 0.5).tolist()
[1.0, 2.3333333333333335]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import numpy as np
import pandas as pd

from gradlab.config import RunConfig
from gradlab.figures.data import FigureData

__all__ = ["SEED_MODES", "SMOOTH_MAX", "ema", "seed_band", "seed_groups"]

#: ``seeds=`` option of the figures that fold seeds: "each" draws every run, "band" one mean
#: line per group of runs that differ only in seed, with a shaded min–max band.
SEED_MODES = ("each", "band")
#: Largest smoothing weight (TensorBoard's slider stops at 0.99 too: 1 would freeze the curve).
SMOOTH_MAX = 0.99
#: Config keys that do not make two runs different experiments (the seed, where they ran).
_NOT_CONDITION = ("seed", "device")
#: Config keys that do: RunConfig's fields but the seed and the device.
CONDITION_KEYS = tuple(f.name for f in fields(RunConfig) if f.name not in _NOT_CONDITION)


def ema(values: Sequence[float] | np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average of ``values`` (n,) with TensorBoard's debiasing:
    ``m_i = w·m_{i−1} + (1−w)·x_i`` from ``m = 0``, shown as ``m_i / (1 − w^c)`` where c counts
    the finite values so far, so the first point is the first value, not pulled towards 0.
    Non-finite values (NaN, ±Inf) are left as they are and do not enter the average.
    ``weight`` 0 returns the values; it must lie in [0, SMOOTH_MAX]."""
    x = np.asarray(values, dtype=np.float64)
    w = float(weight)
    if not 0.0 <= w <= SMOOTH_MAX:
        raise ValueError(f"smoothing weight must lie in [0, {SMOOTH_MAX}], got {weight!r}")
    if w == 0.0 or x.size == 0:
        return x.copy()
    out = x.copy()
    finite = np.isfinite(x)
    xs = x[finite]
    if xs.size == 0:
        return out
    # m_i = (1−w) Σ_{j≤i} w^{i−j} x_j, debiased by 1 − w^(i+1): a short loop is exact and fast
    # enough for training curves (thousands of points).
    smoothed = np.empty_like(xs)
    m = 0.0
    for i, value in enumerate(xs):
        m = w * m + (1.0 - w) * value
        smoothed[i] = m / (1.0 - w ** (i + 1))
    out[finite] = smoothed
    return out


def seed_groups(data: FigureData, run_ids: Sequence[str]) -> list[list[str]]:
    """``run_ids`` split into groups of runs whose configs agree on every key of
    CONDITION_KEYS the runs have (they differ at most in seed or device), in the order each
    group's first run appears; a run without a runs row is a group of its own."""
    keys = [k for k in CONDITION_KEYS if k in data.runs.columns]
    groups: dict[object, list[str]] = {}
    for rid in run_ids:
        row = data.run(str(rid))
        key: object = tuple(repr(row.get(k)) for k in keys) if row else ("run", str(rid))
        groups.setdefault(key, []).append(str(rid))
    return list(groups.values())


def seed_band(frames: dict[str, pd.DataFrame], x: str = "step") -> pd.DataFrame:
    """Mean, min, max and count of ``value`` over the runs of one group at each ``x``.

    ``frames``: run id → a frame with columns ``x`` and ``value`` (one row per x). Returns
    columns ``x, mean, min, max, n`` sorted by x; NaN values are left out of the statistics
    (n counts the runs with a finite value at that x)."""
    parts = [f[[x, "value"]].assign(run_id=rid) for rid, f in frames.items() if not f.empty]
    if not parts:
        return pd.DataFrame(columns=[x, "mean", "min", "max", "n"])
    long = pd.concat(parts, ignore_index=True)
    long["value"] = pd.to_numeric(long["value"], errors="coerce").astype("float64")
    long.loc[~np.isfinite(long["value"]), "value"] = np.nan
    out = long.groupby(x, sort=True)["value"].agg(["mean", "min", "max", "count"])
    return out.rename(columns={"count": "n"}).reset_index()
