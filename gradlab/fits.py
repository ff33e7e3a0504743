"""Fitted summaries of per-timestep gradient measurements, to set beside `gradlab.theory`.

Conventions. A per-timestep series `norms` is indexed by timestep t (t = 0..T or 1..T; only the
order matters): its *last* element is the one nearest the loss, at lag 0, and element i sits at
lag L - 1 - i (L = len(norms)). Rates are natural-log rates per step against the lag, so
‖g‖ ≈ C·exp(rate·lag): negative means the gradient vanishes going back in time, the same sign
convention as `gradlab.theory` (e.g. ½·ln χ). Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["SUMMARY_KEYS", "DecayFit", "decay_fit", "early_fraction", "memory_horizon", "summarize"]

#: The keys of `summarize` (the store's "summary" probe names).
SUMMARY_KEYS: tuple[str, ...] = (
    "decay_rate",
    "decay_rate_se",
    "fit_lo",
    "fit_hi",
    "adjoint_decay_rate",
    "adjoint_decay_rate_se",
    "horizon_e",
    "horizon_1e3",
    "early_fraction",
    "theory_rate",
)


def _as_1d(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a


@dataclass(frozen=True)
class DecayFit:
    """Least-squares fit ln‖g‖ ≈ a + rate·lag (see `decay_fit`).

    `rate`: slope per step (negative: vanishing); `stderr`: its standard error; `fit_lo`,
    `fit_hi`: smallest and largest lag actually used (integral values; nan if none); `n`: number
    of points used. rate and stderr are nan when fewer than 3 points qualify.
    """

    rate: float
    stderr: float
    fit_lo: float
    fit_hi: float
    n: int


def decay_fit(norms: ArrayLike, fit_range: tuple[int, int] | None = None) -> DecayFit:
    """Ordinary least squares of ln norms against lag = (L - 1) - index.

    Points are kept when finite and > 0 and, if `fit_range = (lo, hi)` is given, when
    lo <= lag <= hi (inclusive). By default every qualifying point is used. With n >= 3 points
    the slope's standard error is √(SSR / (n - 2) / Σ(lag - mean lag)²).
    """
    y = _as_1d(norms, "norms")
    lags = np.arange(y.size - 1, -1, -1, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(y) & (y > 0)
    if fit_range is not None:
        lo, hi = fit_range
        if lo > hi:
            raise ValueError(f"fit_range must be (lo, hi) with lo <= hi, got {fit_range}")
        keep &= (lags >= lo) & (lags <= hi)
    x, ly = lags[keep], np.log(y[keep])
    n = int(x.size)
    lo_used = float(x.min()) if n else math.nan
    hi_used = float(x.max()) if n else math.nan
    if n < 3:
        return DecayFit(math.nan, math.nan, lo_used, hi_used, n)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (ly - ly.mean())) / sxx
    resid = ly - ly.mean() - slope * xc
    stderr = math.sqrt(max(float(resid @ resid), 0.0) / (n - 2) / sxx)
    return DecayFit(slope, stderr, lo_used, hi_used, n)


def memory_horizon(norms: ArrayLike, factor: float) -> float:
    """The lag at which ‖g‖ first falls below `factor` × its value at lag 0.

    Linear interpolation of ln‖g‖ between the last lag above and the first below the threshold
    (a zero value counts as crossing exactly at its own lag). Non-finite and negative values are
    skipped. Returns math.inf if the norm never falls below the threshold within the sequence,
    nan if the lag-0 value is not finite and positive. Used with factor = e⁻¹ and 1e-3.
    """
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must be in (0, 1), got {factor}")
    r = _as_1d(norms, "norms")[::-1]  # r[k] is the value at lag k
    if r.size == 0 or not (math.isfinite(r[0]) and r[0] > 0):
        return math.nan
    threshold = factor * r[0]
    log_thr = math.log(threshold)
    prev_lag, prev_val = 0, float(r[0])
    for k in range(1, r.size):
        v = float(r[k])
        if not math.isfinite(v) or v < 0:
            continue
        if v < threshold:
            if v == 0.0:
                return float(k)
            lp, lv = math.log(prev_val), math.log(v)
            return prev_lag + (k - prev_lag) * (lp - log_thr) / (lp - lv)
        prev_lag, prev_val = k, v
    return math.inf


def early_fraction(contribution_norms: ArrayLike, fraction: float = 0.1) -> float:
    """Share of Σ_t ‖contribution_t‖ coming from the first ⌊fraction·T⌋ timesteps (at least one).

    `contribution_norms` (T,) is ordered t = 1..T, so the first timesteps are the ones furthest
    from a loss at the end. Non-finite values are skipped (counted as 0); nan if the total is 0.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    c = _as_1d(contribution_norms, "contribution_norms")
    if c.size == 0:
        return math.nan
    c = np.where(np.isfinite(c), c, 0.0)
    m = max(1, math.floor(fraction * c.size + 1e-9))
    total = float(c.sum())
    if total == 0.0:
        return math.nan
    return float(c[:m].sum()) / total


def summarize(
    state_jacobian_norms: ArrayLike,
    grad_hidden_norms: ArrayLike,
    contribution_norms: ArrayLike,
    theory_rate: float | None = None,
) -> dict[str, float]:
    """The store's "summary" probe values from one recording.

    `state_jacobian_norms` (T,): ‖∂s_T/∂s_k‖ for k = 0..T-1 (lags T..1; the full state, so an
    LSTM's cell path counts); `grad_hidden_norms` (T+1,): ‖∂L/∂h_t‖, t = 0..T;
    `contribution_norms` (T,): step t's term of ∂L/∂W_hh, t = 1..T. Keys (`SUMMARY_KEYS`):
    * decay_rate, decay_rate_se, fit_lo, fit_hi: the *state decay rate*, `decay_fit` of the
      state-Jacobian norms against the lag T−k (fit_lo, fit_hi in lags T−k); defined for every
      I/O type because no loss enters it;
    * adjoint_decay_rate, adjoint_decay_rate_se: `decay_fit` of ‖∂L/∂h_t‖ against T−t (per-step
      loss terms of a many-to-many task keep it near 0 whatever the memory);
    * horizon_e, horizon_1e3: `memory_horizon` of ‖∂L/∂h_t‖ with factor e⁻¹ and 1e-3;
    * early_fraction: `early_fraction` of the contributions (first 10 %);
    * theory_rate: the theory's rate (nan if None).
    """
    state = decay_fit(state_jacobian_norms)
    adjoint = decay_fit(grad_hidden_norms)
    return {
        "decay_rate": state.rate,
        "decay_rate_se": state.stderr,
        "fit_lo": state.fit_lo + 1.0,  # element k sits at decay_fit's lag T-1-k, true lag T-k
        "fit_hi": state.fit_hi + 1.0,
        "adjoint_decay_rate": adjoint.rate,
        "adjoint_decay_rate_se": adjoint.stderr,
        "horizon_e": memory_horizon(grad_hidden_norms, math.exp(-1.0)),
        "horizon_1e3": memory_horizon(grad_hidden_norms, 1e-3),
        "early_fraction": early_fraction(contribution_norms),
        "theory_rate": math.nan if theory_rate is None else float(theory_rate),
    }
