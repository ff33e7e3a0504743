"""gradlab.fits: decay fits, memory horizons, early fractions and the summary dict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradlab.fits import (
    SUMMARY_KEYS,
    DecayFit,
    decay_fit,
    early_fraction,
    memory_horizon,
    summarize,
)


def geometric(rate: float, T: int, c: float = 2.0) -> np.ndarray:
    """norms[t] = c·exp(rate·(T - t)), t = 0..T: lag T - t, exact exponential."""
    t = np.arange(T + 1)
    return c * np.exp(rate * (T - t))


# ------------------------------------------------------------------ decay_fit
@pytest.mark.parametrize("rate", [-0.7, -0.05, 0.0, 0.3], ids=lambda r: f"rate={r}")
def test_decay_fit_exact_exponential(rate):
    fit = decay_fit(geometric(rate, 40))
    assert isinstance(fit, DecayFit)
    assert fit.rate == pytest.approx(rate, abs=1e-10)
    assert fit.stderr < 1e-10
    assert (fit.fit_lo, fit.fit_hi, fit.n) == (0, 40, 41)


def test_decay_fit_lag_orientation():
    # Vanishing going back in time: small values at early t -> negative rate.
    norms = np.array([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert decay_fit(norms).rate == pytest.approx(-math.log(10.0), abs=1e-12)


def test_decay_fit_fit_range():
    # Exponential with rate -0.2 at lags 5..20, garbage at lags 0..4.
    norms = geometric(-0.2, 20)
    norms[-5:] = [7.0, 0.1, 3.0, 50.0, 1.0]
    fit = decay_fit(norms, fit_range=(5, 20))
    assert fit.rate == pytest.approx(-0.2, abs=1e-10)
    assert (fit.fit_lo, fit.fit_hi, fit.n) == (5, 20, 16)
    with pytest.raises(ValueError):
        decay_fit(norms, fit_range=(6, 5))


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_decay_fit_noise(seed):
    rng = np.random.default_rng(seed)
    T, rate = 60, -0.15
    norms = geometric(rate, T) * np.exp(0.2 * rng.standard_normal(T + 1))
    fit = decay_fit(norms)
    assert fit.stderr > 0
    assert abs(fit.rate - rate) < 3 * fit.stderr
    # The standard error agrees with the textbook formula for OLS with known noise 0.2.
    lags = np.arange(T + 1)
    expected_se = 0.2 / np.sqrt(np.sum((lags - lags.mean()) ** 2))
    assert fit.stderr == pytest.approx(expected_se, rel=0.35)


def test_decay_fit_matches_polyfit():
    rng = np.random.default_rng(5)
    norms = np.exp(rng.standard_normal(30))
    lags = np.arange(29, -1, -1)
    slope = np.polyfit(lags, np.log(norms), 1)[0]
    assert decay_fit(norms).rate == pytest.approx(slope, abs=1e-12)


def test_decay_fit_excludes_bad_values():
    norms = geometric(-0.3, 30)
    bad = norms.copy()
    bad[[2, 9, 17, 25]] = [np.nan, np.inf, 0.0, -1.0]
    fit = decay_fit(bad)
    assert fit.n == 31 - 4
    assert fit.rate == pytest.approx(-0.3, abs=1e-10)


@pytest.mark.parametrize(
    "norms",
    [[], [1.0], [1.0, 0.5], [np.nan, 0.0, 1.0, 2.0], [0.0, 0.0, 0.0]],
    ids=["empty", "one", "two", "two-valid", "all-zero"],
)
def test_decay_fit_too_few_points(norms):
    fit = decay_fit(norms)
    assert math.isnan(fit.rate) and math.isnan(fit.stderr)
    assert fit.n < 3


# ------------------------------------------------------------------ memory_horizon
@pytest.mark.parametrize("rate", [-0.05, -0.3, -1.7], ids=lambda r: f"rate={r}")
@pytest.mark.parametrize("factor", [math.exp(-1.0), 1e-3], ids=["e", "1e-3"])
def test_memory_horizon_geometric(rate, factor):
    # Log-linear interpolation is exact for a geometric sequence: ln factor = rate·k.
    norms = geometric(rate, 400)
    assert memory_horizon(norms, factor) == pytest.approx(math.log(factor) / rate, rel=1e-10)


def test_memory_horizon_never_and_undefined():
    assert memory_horizon(geometric(-0.01, 20), 1e-3) == math.inf  # needs lag 690
    assert memory_horizon(geometric(0.1, 20), math.exp(-1)) == math.inf
    assert math.isnan(memory_horizon([1.0, 2.0, 0.0], 0.5))  # lag-0 value is zero
    assert math.isnan(memory_horizon([1.0, 2.0, np.nan], 0.5))
    with pytest.raises(ValueError):
        memory_horizon([1.0, 2.0], 1.5)


def test_memory_horizon_interpolation_and_bad_values():
    # By lag: 1, 0.5, nan, 0.01 -> threshold 0.1 crossed between lags 1 and 3 in log space.
    norms = [0.01, np.nan, 0.5, 1.0]
    expected = 1 + 2 * (math.log(0.5) - math.log(0.1)) / (math.log(0.5) - math.log(0.01))
    assert memory_horizon(norms, 0.1) == pytest.approx(expected, rel=1e-12)
    assert memory_horizon([0.0, 0.5, 1.0], 0.1) == 2.0  # a zero crosses at its own lag


# ------------------------------------------------------------------ early_fraction
@pytest.mark.parametrize(
    ("norms", "fraction", "expected"),
    [
        (np.ones(20), 0.1, 0.1),
        (np.arange(1.0, 11.0), 0.1, 1.0 / 55.0),
        (np.arange(1.0, 11.0), 0.3, 6.0 / 55.0),
        (np.ones(5), 0.1, 0.2),  # at least one timestep
        ([3.0, 0.0, 0.0, 1.0], 0.5, 0.75),
        ([np.nan, 1.0, 1.0, 2.0], 0.5, 0.25),  # non-finite counted as 0
        (np.zeros(4), 0.1, math.nan),
    ],
    ids=["uniform", "ramp", "ramp-30%", "min-one", "half", "nan", "zero-total"],
)
def test_early_fraction(norms, fraction, expected):
    got = early_fraction(norms, fraction)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12)


def test_early_fraction_validates():
    with pytest.raises(ValueError):
        early_fraction([1.0, 2.0], 0.0)


# ------------------------------------------------------------------ summarize
def test_summarize_keys_and_values():
    T, rate, state_rate = 50, -0.25, -0.4
    hidden = geometric(rate, T)
    state = np.exp(state_rate * (T - np.arange(T)))  # k = 0..T-1: lags T..1
    contrib = np.exp(rate * (T - np.arange(1, T + 1)))
    s = summarize(state, hidden, contrib, theory_rate=-0.25)
    assert tuple(s) == SUMMARY_KEYS
    assert all(isinstance(v, float) for v in s.values())
    assert s["decay_rate"] == pytest.approx(state_rate, abs=1e-10)
    assert s["decay_rate_se"] < 1e-10
    assert (s["fit_lo"], s["fit_hi"]) == (1.0, 50.0)  # lags of ∂s_T/∂s_k, k = T-1..0
    assert s["adjoint_decay_rate"] == pytest.approx(rate, abs=1e-10)
    assert s["adjoint_decay_rate_se"] < 1e-10
    assert s["horizon_e"] == pytest.approx(4.0, rel=1e-10)
    assert s["horizon_1e3"] == pytest.approx(math.log(1e3) / 0.25, rel=1e-10)
    assert s["early_fraction"] == pytest.approx(contrib[:5].sum() / contrib.sum())
    assert s["theory_rate"] == -0.25
    assert math.isnan(summarize(state, hidden, contrib)["theory_rate"])


def test_summarize_state_and_adjoint_rates_are_independent():
    """A flat adjoint (per-step loss terms) does not hide a decaying state Jacobian."""
    T = 40
    state = np.exp(-0.3 * (T - np.arange(T)))
    s = summarize(state, np.ones(T + 1), np.ones(T))
    assert s["decay_rate"] == pytest.approx(-0.3, abs=1e-12)
    assert s["adjoint_decay_rate"] == pytest.approx(0.0, abs=1e-12)
