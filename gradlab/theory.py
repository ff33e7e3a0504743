"""Theoretical predictions for gradient propagation through time in recurrent networks.

Conventions. A vanilla RNN h_t = φ(W h_{t-1} + W_ih x_t + b) with W_hh[i, j] ~ N(0, σ_w²/N)
(σ_w is the init gain g), bias entries of standard deviation σ_b and an input drive W_ih x_t of
per-unit standard deviation σ_v. All rates are *natural-log rates per time step* of gradient
norms, going backwards in time: ‖∂L/∂h_{T-k}‖ ≈ C·exp(rate·k), so a negative rate means
vanishing and a positive one exploding.

What is here:

* `mean_field`, `critical_sigma_w`: the mean-field ("signal propagation") theory of Poole et al.
  (2016), Schoenholz et al. (2017) and, for recurrent networks, Chen, Pennington & Schoenholz
  (2018): the length fixed point q*, the slope χ, the depth scale and the rate ½·ln χ.
* `pascanu_bound`: the sufficient / necessary conditions of Pascanu, Mikolov & Bengio (2013).
* Exact rates where they exist: linear RNNs (`linear_rnn_jacobian_norms`, `linear_rnn_rate`),
  orthogonal and identity (IRNN) initialisations, the linearisation of an LSTM/GRU at the zero
  state (`gated_jacobian_at_zero`, `gated_rate_at_zero`) and of an autonomous RNN at a fixed point
  (`lyapunov_at_fixed_point`).
* `driven_mean_field`: the same theory for a time-varying input drive σ_v²(t) from the state
  h_0 = 0 (the run's actual inputs): the recursion for q_t, χ_t and the least-squares rate of the
  predicted log-norm profile.
* `finite_size_gap`: the expected offset and spread, at finite N and T, between ½·ln χ and the
  measured slope of ln ‖∂h_T/∂h_k‖₂ against the lag.
* `predict_rate` / `theory_rate`: the predicted rate for a run configuration (driven by the
  task's input statistics and the init's weight laws), with its assumptions, or None with the
  reason where no theory applies.

Activations come from the one table, `gradlab.cells.activations` (their `TheoryHooks`: numpy φ,
φ', γ); cells from the registry, `gradlab.cells.registry` (their rate / norm / linearisation
hooks). An activation or cell without hooks has no theory here: `theory_rate` says None.

Pure numpy (torch is only touched to read a model's weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypedDict

import numpy as np

from gradlab.cells.activations import ACTIVATIONS as _TABLE
from gradlab.cells.activations import Activation, TheoryHooks, get_activation
from gradlab.cells.registry import cell_names, cell_of, get_cell

__all__ = [
    "DrivenMeanField",
    "FiniteSizeGap",
    "MeanField",
    "PascanuBound",
    "RatePrediction",
    "WeightLaws",
    "config_activation",
    "critical_sigma_w",
    "driven_mean_field",
    "finite_size_gap",
    "gated_jacobian_at_zero",
    "gated_rate_at_zero",
    "gru_jacobian_at_zero",
    "identity_rate",
    "is_unit_slope",
    "linear_rnn_jacobian_norms",
    "linear_rnn_rate",
    "lstm_jacobian_at_zero",
    "lyapunov_at_fixed_point",
    "mean_field",
    "orthogonal_rate",
    "pascanu_bound",
    "predict_rate",
    "spectral_norm",
    "theory_rate",
    "vanilla_rnn_prediction",
    "weight_laws",
]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _theory_activations() -> list[str]:
    """The activations with theory hooks, in table order."""
    return [name for name, act in _TABLE.items() if act.theory is not None]


def _activation(activation: str) -> Activation:
    """The table's activation (aliases resolved); ValueError if unknown or without theory."""
    try:
        act = get_activation(activation)
    except ValueError:
        allowed = ", ".join(_theory_activations())
        raise ValueError(f"unknown activation {activation!r}; expected one of: {allowed}") from None
    if act.theory is None:
        allowed = ", ".join(_theory_activations())
        raise ValueError(
            f"no theory for activation {act.name!r} (it has no TheoryHooks); "
            f"theory covers: {allowed}"
        )
    return act


def _hooks(name: str) -> TheoryHooks:
    hooks = _activation(name).theory
    assert hooks is not None
    return hooks


def _has_theory(activation: str) -> bool:
    """Whether `activation` is in the table with theory hooks."""
    try:
        _activation(activation)
    except ValueError:
        return False
    return True


def _check_activation(activation: str) -> str:
    """The table's name of `activation`; ValueError if unknown or without theory hooks."""
    return _activation(activation).name


def _sigmoid(u: np.ndarray) -> np.ndarray:
    # Numerically stable logistic: 1/(1+e^-u) without overflow for large |u|.
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _phi(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """φ as a numpy function (the activation table's hook)."""
    return _hooks(name).phi


def _dphi(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """φ' as a numpy function (the table's hook; relu: the right derivative, 1 at 0)."""
    return _hooks(name).dphi


@cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _gauss_expect(f: Callable[[np.ndarray], np.ndarray], q: float) -> float:
    """E_z[f(√q z)], z ~ N(0, 1), by composite 20-point Gauss–Legendre quadrature.

    Integrates over u = √q z in [-10√q, 10√q] (the Gaussian tail beyond holds < 2e-23) on panels
    no wider than 0.5 where |u| < 40 (where tanh / sigmoid vary, poles at distance ≥ π/2 from the
    real axis) and no wider than √q/4 elsewhere (where the Gaussian varies). Accuracy is close
    to machine precision for every built-in activation (tests check 1e-6 against mpmath).
    """
    if q == 0.0:
        return float(f(np.zeros(1))[0])
    s = math.sqrt(q)
    lim = 10.0 * s
    inner = np.arange(-40.0, 40.0 + 0.25, 0.5)
    inner = inner[np.abs(inner) < lim]
    outer = np.linspace(-lim, lim, 81)
    edges = np.unique(np.concatenate([inner, outer]))
    x, w = _legendre(20)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    u = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    weights = (half[:, None] * w[None, :]).ravel()
    density = np.exp(-0.5 * u * u / q) / math.sqrt(2.0 * math.pi * q)
    return float(np.sum(weights * density * f(u)))


def _bisect(fun: Callable[[float], float], lo: float, hi: float, rtol: float = 1e-15) -> float:
    """A root of `fun` in [lo, hi], given fun(lo) > 0 >= fun(hi) (or the reverse)."""
    f_lo = fun(lo)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if hi - lo <= rtol * max(abs(lo), abs(hi)) or mid in (lo, hi):
            break
        f_mid = fun(mid)
        if f_mid == 0.0:
            return mid
        if (f_mid > 0) == (f_lo > 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _as_matrix(W: Any, name: str = "W") -> np.ndarray:
    """A float64 numpy copy of a torch tensor / array-like; must be a square matrix."""
    if hasattr(W, "detach"):
        W = W.detach().cpu().double().numpy()
    A = np.array(W, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {A.shape}")
    return A


def _spectral_radius(A: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(A)))) if A.size else 0.0


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _model_cell(model: Any) -> str:
    """The registered cell of a gradlab model or a torch.nn.RNN/LSTM/GRU (or cell); ValueError
    for anything else (never a silent default)."""
    return cell_of(model).name


def _model_activation(model: Any) -> str | None:
    act = getattr(model, "activation", None)
    if act is not None:
        return getattr(act, "name", act if isinstance(act, str) else None)
    return getattr(model, "nonlinearity", None)


# --------------------------------------------------------------------------------------------
# Mean-field theory
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeanField:
    """Mean-field prediction for a random vanilla RNN (see `mean_field`).

    `q_star`: fixed point of the pre-activation variance (math.inf where none is finite);
    `chi`: χ = σ_w² E[φ'(√q* z)²], the mean squared singular value of one step's Jacobian;
    `depth_scale`: ξ = -1/ln χ for χ < 1 (math.inf at or above 1);
    `rate`: ½·ln χ, the per-step log-rate of gradient norms (negative: vanishing).
    """

    activation: str
    sigma_w: float
    sigma_b: float
    sigma_v: float
    q_star: float
    chi: float
    depth_scale: float
    rate: float


def _q_star(name: str, sw: float, c: float) -> float:
    """The largest (stable) fixed point of q = σ_w² E[φ(√q z)²] + c, c = σ_b² + σ_v²."""
    hooks = _hooks(name)
    if hooks.homogeneous_moments is not None:
        # Positively homogeneous φ: E[φ(√q z)²] = m q, so q = σ_w² m q + c, finite only for
        # σ_w² m < 1 (linear m = 1: σ_w = 1, c = 0 fixes every q; no finite fixed point is
        # singled out, we return inf as for the divergent case; relu m = 1/2).
        m = hooks.homogeneous_moments[0]
        return c / (1.0 - sw * sw * m) if sw * sw * m < 1.0 else math.inf
    # Bounded φ (tanh, sigmoid): φ² ≤ B = max(lo², hi²), so F(q) ≤ U = σ_w² B + c and the
    # monotone increasing map F(q) = σ_w² E[φ(√q z)²] + c iterated from U decreases to the
    # largest fixed point.
    bounds = get_activation(name).bounds
    if bounds is None:
        raise ValueError(
            f"no mean-field fixed point for activation {name!r}: its theory hooks need bounds "
            "or homogeneous_moments"
        )
    top = max(bounds[0] ** 2, bounds[1] ** 2)
    phi = hooks.phi

    def F(q: float) -> float:
        return sw * sw * _gauss_expect(lambda u: phi(u) ** 2, q) + c

    if sw == 0.0:
        return c
    if hooks.sub_identity and c == 0.0 and sw * abs(float(hooks.dphi(np.zeros(1))[0])) <= 1.0:
        # φ(x)² < x² gives F(q) < σ_w² q <= q for q > 0 when σ_w φ'(0) <= 1 (tanh: σ_w <= 1):
        # q = 0 is the only fixed point (the ordered phase without bias or input: the state
        # decays to zero).
        return 0.0
    q = sw * sw * top + c
    for _ in range(500):
        q_new = F(q)
        if abs(q_new - q) <= 1e-13 * max(q, 1e-300):
            break
        q = q_new

    # Polish (the iteration is slow near criticality, where F'(q*) → 1): bisect G(q) = F(q) - q
    # on the nearest sign change below the iterate (G <= 0 above the largest root). For tanh
    # with c = 0 in the chaotic phase G(q) ≈ (σ_w² - 1) q > 0 for small q, so this finds the
    # nonzero fixed point, not the unstable q = 0.
    def G(x: float) -> float:
        return F(x) - x

    hi = q
    g_hi = G(hi)
    if g_hi >= 0:  # converged to rounding
        return hi
    step = max(-g_hi, 1e-12 * hi)
    while True:
        lo = max(hi - step, 0.0)
        if G(lo) > 0:
            break
        if lo == 0.0:
            return 0.0
        hi, step = lo, 2.0 * step
    return _bisect(G, lo, hi)


def _chi(name: str, sw: float, q: float) -> float:
    hooks = _hooks(name)
    if hooks.homogeneous_moments is not None:
        # E[φ'(√q z)²] does not depend on q (relu: P(z > 0) = 1/2, linear: 1); q* = 0 and
        # q* = inf are the limits.
        return sw * sw * hooks.homogeneous_moments[1]
    dphi = hooks.dphi
    return sw * sw * _gauss_expect(lambda u: dphi(u) ** 2, q)


def mean_field(
    activation: str, sigma_w: float, sigma_b: float = 0.0, sigma_v: float = 0.0
) -> MeanField:
    """Mean-field fixed point and gradient rate of a random RNN h_t = φ(W h_{t-1} + W_ih x_t + b).

    q* solves q = σ_w² E_z[φ(√q z)²] + σ_b² + σ_v², z ~ N(0, 1) (Poole et al. 2016); the
    per-step Jacobian has mean squared singular value χ = σ_w² E_z[φ'(√q* z)²] (Schoenholz et al.
    2017; for RNNs Chen, Pennington & Schoenholz 2018), so gradient norms change by a factor √χ
    per step: rate = ½·ln χ, depth_scale ξ = -1/ln χ (χ < 1, else inf).

    Fixed point: closed forms for relu (q* = c / (1 - σ_w²/2)) and linear (q* = c / (1 - σ_w²)),
    c = σ_b² + σ_v²; where these diverge (σ_w²/2 >= 1, resp. σ_w >= 1) q_star is inf and χ is
    still exact, because χ does not depend on q for relu (σ_w²/2) and linear (σ_w²). tanh and
    sigmoid: iteration q ← F(q) from q = σ_w² + c (above every fixed point), which decreases
    monotonically to the largest, stable fixed point, then polished by bisection (the iteration
    is slow near criticality). For tanh with c = 0 and σ_w <= 1, q* = 0 and χ = σ_w² φ'(0)² =
    σ_w²; for σ_w > 1 the nonzero fixed point is returned (q = 0 is then unstable).
    Expectations use an adaptive composite Gauss–Legendre rule accurate far below 1e-6.
    """
    name = _check_activation(activation)
    sigmas = {"sigma_w": sigma_w, "sigma_b": sigma_b, "sigma_v": sigma_v}
    for key, val in sigmas.items():
        if not math.isfinite(val) or val < 0:
            raise ValueError(f"{key} must be a finite non-negative number, got {val!r}")
    sw, c = float(sigma_w), float(sigma_b) ** 2 + float(sigma_v) ** 2
    q = _q_star(name, sw, c)
    chi = _chi(name, sw, q)
    depth = -1.0 / math.log(chi) if 0.0 < chi < 1.0 else (0.0 if chi == 0.0 else math.inf)
    return MeanField(
        activation=name,
        sigma_w=sw,
        sigma_b=float(sigma_b),
        sigma_v=float(sigma_v),
        q_star=q,
        chi=chi,
        depth_scale=depth,
        rate=0.5 * _log(chi),
    )


def critical_sigma_w(activation: str, sigma_b: float = 0.0, sigma_v: float = 0.0) -> float:
    """The order-to-chaos transition: the σ_w at which χ(σ_w, σ_b, σ_v) = 1.

    Exact for tanh with σ_b = σ_v = 0 (1: q* = 0 and χ = σ_w²), relu (√2) and linear (1), which
    do not depend on σ_b, σ_v; otherwise bisection on σ_w (Poole et al. 2016, Fig. 2;
    Schoenholz et al. 2017).
    """
    name = _check_activation(activation)
    for key, val in {"sigma_b": sigma_b, "sigma_v": sigma_v}.items():
        if not math.isfinite(val) or val < 0:
            raise ValueError(f"{key} must be a finite non-negative number, got {val!r}")
    hooks = _hooks(name)
    if hooks.homogeneous_moments is not None:  # χ = σ_w² E[φ'(z)²]: linear 1, relu √2
        return math.sqrt(1.0 / hooks.homogeneous_moments[1])
    if hooks.sub_identity and sigma_b == 0.0 and sigma_v == 0.0:  # q* = 0: χ = σ_w² φ'(0)²
        return 1.0 / abs(float(hooks.dphi(np.zeros(1))[0]))

    def excess(sw: float) -> float:
        return mean_field(name, sw, sigma_b, sigma_v).chi - 1.0

    lo, hi = 0.0, 1.0
    while excess(hi) < 0.0:
        lo, hi = hi, 2.0 * hi
        if hi > 1e8:
            raise ValueError(f"no critical sigma_w found for {name} below 1e8")
    return _bisect(lambda sw: -excess(sw), lo, hi, rtol=1e-13)


# --------------------------------------------------------------------------------------------
# Pascanu, Mikolov & Bengio (2013)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PascanuBound:
    """‖∂h_t/∂h_{t-1}‖₂ = ‖diag(φ'(a_t)) W‖₂ <= γ·σ_max(W) = `bound` at every step.

    `vanishing_guaranteed` (bound < 1) is the sufficient condition for vanishing gradients,
    `exploding_possible` (bound > 1) the necessary condition for exploding ones. `per_layer`
    maps each recurrent weight's torch name (weight_hh_l{k}[_reverse]) to its bound (empty for
    a bare matrix).
    """

    gamma: float
    sigma_max: float
    bound: float
    vanishing_guaranteed: bool
    exploding_possible: bool
    per_layer: dict[str, float] = field(default_factory=dict)


def pascanu_bound(model_or_W: Any, activation: str | None = None) -> PascanuBound:
    """γ·σ_max(W_hh) with γ = sup|φ'| (tanh 1, sigmoid 1/4, relu 1, linear 1).

    Pascanu, Mikolov & Bengio (2013), "On the difficulty of training recurrent neural networks".
    `model_or_W`: a W_hh matrix (torch tensor or numpy array; `activation` required) or a vanilla
    RNN model (torch.nn.RNN / RNNCell or gradlab.RNN; activation from the argument, else
    `model.activation.name`, else torch's `model.nonlinearity`). Top-level numbers are for layer 0,
    forward direction. A model's σ_max is its cell's `recurrent_norm` hook (IndRNN: max|u_i|,
    the norm of diag(u)); cells without one (LSTM, GRU) raise ValueError: the bound is for
    vanilla (ungated) recurrences.
    """
    per_layer: dict[str, float] = {}
    if hasattr(model_or_W, "named_parameters"):
        model = model_or_W
        spec = cell_of(model)
        if spec.recurrent_norm is None:
            vanilla = ", ".join(n for n in cell_names() if get_cell(n).recurrent_norm is not None)
            raise ValueError(
                f"pascanu_bound applies to vanilla (ungated) recurrences only ({vanilla}), "
                f"not to a {spec.name.upper()} model"
            )
        act = activation if activation is not None else _model_activation(model)
        if act is None:
            raise ValueError("cannot tell the model's activation; pass activation=...")
        gamma = _hooks(act).gamma
        weights = {k: p for k, p in model.named_parameters() if k.startswith("weight_hh")}
        if not weights:
            raise ValueError("the model has no weight_hh parameter")
        sig = {k: float(spec.recurrent_norm(W)) for k, W in weights.items()}
        per_layer = {k: gamma * s for k, s in sig.items()}
        sigma_max = sig.get("weight_hh_l0", sig.get("weight_hh", next(iter(sig.values()))))
    else:
        if activation is None:
            raise ValueError("activation is required when passing a weight matrix")
        gamma = _hooks(activation).gamma
        sigma_max = spectral_norm(model_or_W)
    bound = gamma * sigma_max
    return PascanuBound(
        gamma=gamma,
        sigma_max=sigma_max,
        bound=bound,
        vanishing_guaranteed=bound < 1.0,
        exploding_possible=bound > 1.0,
        per_layer=per_layer,
    )


def spectral_norm(W: Any) -> float:
    """σ_max(W) of a square matrix (torch tensor or array-like)."""
    return float(np.linalg.norm(_as_matrix(W), 2))


# --------------------------------------------------------------------------------------------
# Exact rates
# --------------------------------------------------------------------------------------------
def linear_rnn_jacobian_norms(W: Any, T: int) -> np.ndarray:
    """‖W^k‖₂ for k = 0..T, shape (T+1,).

    For a linear RNN h_t = W h_{t-1} + U x_t + b, ∂h_T/∂h_{T-k} = W^k exactly, so these are the
    exact Jacobian norms at every lag.
    """
    A = _as_matrix(W)
    if T < 0:
        raise ValueError(f"T must be >= 0, got {T}")
    out = np.empty(T + 1)
    P = np.eye(A.shape[0])
    for k in range(T + 1):
        out[k] = np.linalg.norm(P, 2) if P.size else 0.0
        P = A @ P
    return out


def linear_rnn_rate(W: Any) -> float:
    """ln ρ(W): the asymptotic per-step rate of ‖W^k‖₂ (Gelfand: ‖W^k‖^{1/k} → ρ(W))."""
    return _log(_spectral_radius(_as_matrix(W)))


def orthogonal_rate(gain: float) -> float:
    """ln|gain|: exact for W = gain·Q (Q orthogonal) in a linear RNN.

    Every singular value of W^k = gain^k Q^k is |gain|^k, so ‖∂h_T/∂h_{T-k}‖₂ = |gain|^k at every
    lag, for every direction (Saxe et al. 2014; Henaff et al. 2016).
    """
    return _log(abs(float(gain)))


def identity_rate(gain: float) -> float:
    """ln|gain| for the IRNN, W = gain·I (Le, Jaitly & Hinton 2015).

    Exact for a linear RNN. With relu it holds only while units stay active (pre-activations > 0):
    there ∂h_t/∂h_{t-1} = gain·I; a unit that turns off contributes no gradient through that step,
    so in general the rate is an upper bound.
    """
    return _log(abs(float(gain)))


def lyapunov_at_fixed_point(W: Any, activation: str, bias: Any = None, h_star: Any = None) -> float:
    """ln ρ(diag(φ'(a*)) W), a* = W h* + b: the maximal Lyapunov exponent of h_t = φ(W h_{t-1} + b)
    along trajectories converging to the fixed point h*.

    With b = 0 and φ(0) = 0 (tanh, relu, linear) h* = 0 and this is ln(|φ'(0)|·ρ(W)); for tanh
    in the ordered phase (ρ(W) < 1) every trajectory decays to 0. Otherwise h* (if not given) is
    found by iterating the map from h = 0, and ValueError is raised if it does not converge. relu
    uses the right derivative φ'(0) = 1 (the exponent of trajectories in the active region; the
    autograd Jacobian exactly at 0 would use torch's φ'(0) = 0).
    """
    name = _check_activation(activation)
    A = _as_matrix(W)
    n = A.shape[0]
    b = np.zeros(n) if bias is None else np.asarray(_as_vector(bias), dtype=np.float64)
    phi, dphi = _phi(name), _dphi(name)
    if h_star is None:
        h = np.zeros(n)
        for _ in range(100_000):
            h_new = phi(A @ h + b)
            if np.max(np.abs(h_new - h), initial=0.0) <= 1e-14 * max(1.0, np.max(np.abs(h_new))):
                h = h_new
                break
            h = h_new
        else:
            raise ValueError("iterating h = φ(W h + b) from 0 did not reach a fixed point")
    else:
        h = np.asarray(_as_vector(h_star), dtype=np.float64)
    a = A @ h + b
    return _log(_spectral_radius(dphi(a)[:, None] * A))


def _as_vector(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().double().numpy()
    return np.asarray(v, dtype=np.float64).ravel()


def _gated_params(
    model: Any,
) -> tuple[Callable[..., np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """(the cell's jacobian_at_zero hook, W_hh, b_ih, b_hh) of layer 0 (forward) of a gated
    model or cell (LSTM, GRU)."""
    spec = cell_of(model)
    if spec.jacobian_at_zero is None:
        gated = " or ".join(n.upper() for n in cell_names() if get_cell(n).jacobian_at_zero)
        raise ValueError(f"expected an {gated} model, got a {spec.name.upper()} model")
    if getattr(model, "proj_size", 0):
        raise ValueError("LSTMs with proj_size > 0 are not supported")
    suffix = "_l0" if hasattr(model, "weight_hh_l0") else ""
    W = getattr(model, "weight_hh" + suffix)
    if hasattr(W, "detach"):
        W = W.detach().cpu().double().numpy()
    W = np.array(W, dtype=np.float64)
    zeros = np.zeros(W.shape[0])
    b_ih = getattr(model, "bias_ih" + suffix, None)
    b_hh = getattr(model, "bias_hh" + suffix, None)
    b_ih = zeros if b_ih is None else _as_vector(b_ih)
    b_hh = zeros if b_hh is None else _as_vector(b_hh)
    return spec.jacobian_at_zero, W, b_ih, b_hh


def gated_jacobian_at_zero(model: Any) -> np.ndarray:
    """The state Jacobian of one LSTM/GRU step at zero state and zero input (layer 0, forward).

    LSTM (torch gate order i, f, g, o; c' = f⊙c + i⊙g, h' = o⊙tanh(c')), state s = (h, c), at
    h = c = x = 0 with b = b_ih + b_hh: i = σ(b_i), f = σ(b_f), g = tanh(b_g), o = σ(b_o), c' = i⊙g:
        ∂c'/∂h = diag(g⊙i(1-i)) W_hi + diag(i⊙(1-g²)) W_hg,      ∂c'/∂c = diag(f),
        ∂h'/∂h = diag(o(1-o)⊙tanh c') W_ho + diag(o⊙(1-tanh² c')) ∂c'/∂h,
        ∂h'/∂c = diag(o⊙(1-tanh² c')⊙f);                              returns (2N, 2N).
    GRU (order r, z, n; n = tanh(b_in + r⊙(W_hn h + b_hn)), h' = (1-z)⊙n + z⊙h), at h = x = 0:
        ∂h'/∂h = diag(z) - diag(n⊙z(1-z)) W_hz
                 + diag((1-z)(1-n²)) [diag(r) W_hn + diag(b_hn⊙r(1-r)) W_hr];   returns (N, N).
    The zero state is a fixed point only when i⊙g = 0 (b_g = 0) for the LSTM, n = 0
    (b_in + r⊙b_hn = 0) for the GRU; otherwise this is the Jacobian of the first step taken from
    the zero initial state.
    """
    at_zero, W, b_ih, b_hh = _gated_params(model)
    return at_zero(W, b_ih, b_hh)


def _blocks(W: np.ndarray) -> list[np.ndarray]:
    """W_hh (G·N, N) as its G gate blocks (N, N)."""
    n = W.shape[1]
    return [W[k * n : (k + 1) * n] for k in range(W.shape[0] // n)]


def _part(v: np.ndarray, k: int, n: int) -> np.ndarray:
    return v[k * n : (k + 1) * n]


def lstm_jacobian_at_zero(W: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    """The LSTM formula of `gated_jacobian_at_zero` from W_hh (4N, N) and the biases (4N,)."""
    n_hidden = W.shape[1]
    b = b_ih + b_hh

    def part(v: np.ndarray, k: int) -> np.ndarray:
        return _part(v, k, n_hidden)

    W_i, W_f, W_g, W_o = _blocks(W)
    del W_f  # c = 0: the forget gate's dependence on h is multiplied by c
    i, f = _sigmoid(part(b, 0)), _sigmoid(part(b, 1))
    g, o = np.tanh(part(b, 2)), _sigmoid(part(b, 3))
    tc = np.tanh(i * g)
    dc_dh = (g * i * (1 - i))[:, None] * W_i + (i * (1 - g * g))[:, None] * W_g
    dc_dc = np.diag(f)
    dh_dh = (o * (1 - o) * tc)[:, None] * W_o + (o * (1 - tc * tc))[:, None] * dc_dh
    dh_dc = np.diag(o * (1 - tc * tc) * f)
    return np.block([[dh_dh, dh_dc], [dc_dh, dc_dc]])


def gru_jacobian_at_zero(W: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    """The GRU formula of `gated_jacobian_at_zero` from W_hh (3N, N) and the biases (3N,)."""
    n_hidden = W.shape[1]
    b = b_ih + b_hh

    def part(v: np.ndarray, k: int) -> np.ndarray:
        return _part(v, k, n_hidden)

    W_r, W_z, W_n = _blocks(W)
    r, z = _sigmoid(part(b, 0)), _sigmoid(part(b, 1))
    b_hn = part(b_hh, 2)
    n = np.tanh(part(b_ih, 2) + r * b_hn)
    dn = ((1 - z) * (1 - n * n))[:, None] * (r[:, None] * W_n + (b_hn * r * (1 - r))[:, None] * W_r)
    return np.diag(z) - (n * z * (1 - z))[:, None] * W_z + dn


def gated_rate_at_zero(model: Any) -> float:
    """ln ρ(J₀), J₀ = `gated_jacobian_at_zero(model)`: the per-step rate of the LSTM/GRU
    linearised at the zero state (exact asymptotic rate near zero when zero is a fixed point)."""
    return _log(_spectral_radius(gated_jacobian_at_zero(model)))


# --------------------------------------------------------------------------------------------
# Driven mean field: the run's actual input drive, from h_0 = 0
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DrivenMeanField:
    """Mean field of h_t = φ(W h_{t-1} + W_ih x_t + b) from h_0 = 0 under a drive σ_v²(t).

    `drive`: (T,) σ_v²(t) for t = 1..T; `q`: (T,) the pre-activation variance q_t; `chi`: (T,)
    χ_t = σ_w² E[φ'(√q_t z)²]; `log_norm`: (T+1,) the predicted ln ‖∂h_T/∂h_{T-ℓ}‖ (root mean
    square over directions) at lag ℓ = 0..T, ½ Σ_{t=T-ℓ+1}^{T} ln χ_t; `rate`: its least-squares
    slope over the lags 1..T, the lags the measured headline fit uses.
    """

    activation: str
    sigma_w: float
    sigma_b: float
    drive: np.ndarray = field(repr=False)
    q: np.ndarray = field(repr=False)
    chi: np.ndarray = field(repr=False)
    log_norm: np.ndarray = field(repr=False)
    rate: float


def _lag_slope(log_norm: np.ndarray) -> float:
    """Least-squares slope of log_norm[ℓ] against ℓ over ℓ = 1..T (ℓ(T)/T when T < 3)."""
    T = log_norm.size - 1
    if not np.all(np.isfinite(log_norm)):
        return -math.inf
    if T < 3:
        return float(log_norm[-1]) / T
    lags = np.arange(1, T + 1, dtype=np.float64)
    x = lags - lags.mean()
    return float(x @ (log_norm[1:] - log_norm[1:].mean()) / (x @ x))


def driven_mean_field(
    activation: str, sigma_w: float, sigma_b: float, drive: Any
) -> DrivenMeanField:
    """Mean-field variance and Jacobian slope of a random RNN driven by a time-varying input.

    `drive` (T,): σ_v²(t) = (per-entry variance of W_ih) × Σ_j E[x_{t,j}²] for the inputs
    consumed at t = 1..T (`gradlab.tasks.Task.input_second_moment` times `weight_laws`).
    Recursion (Poole et al. 2016, with the drive added each step; h_0 = 0 exactly, so the first
    step sees no recurrent term):
        q_1 = σ_b² + σ_v²(1),   q_t = σ_w² E_z[φ(√q_{t-1} z)²] + σ_b² + σ_v²(t),
        χ_t = σ_w² E_z[φ'(√q_t z)²],
    and ∂h_T/∂h_k = J_T ⋯ J_{k+1} has mean squared singular value ∏ χ_t, so the predicted
    log-norm at lag ℓ is ½ Σ_{t=T-ℓ+1}^{T} ln χ_t. Which average: `rate` is the least-squares
    slope of that profile over ℓ = 1..T — the same estimator `gradlab.fits.decay_fit` applies to
    the measured norms, so transients (q_t rising from 0, adding's marker steps, identity's
    input at t = 1 only) weigh in exactly as they do in the measurement. For a drive that is
    constant after a short transient it equals the stationary ½ ln χ(q*) of `mean_field` to
    O(transient / T).
    """
    name = _check_activation(activation)
    for key, val in {"sigma_w": sigma_w, "sigma_b": sigma_b}.items():
        if not math.isfinite(val) or val < 0:
            raise ValueError(f"{key} must be a finite non-negative number, got {val!r}")
    v = np.asarray(drive, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"drive must be a non-empty one-dimensional array, got shape {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("drive must hold finite non-negative variances σ_v²(t)")
    sw, sb2 = float(sigma_w), float(sigma_b) ** 2
    phi, moments = _phi(name), _hooks(name).homogeneous_moments
    q, chi = np.empty(v.size), np.empty(v.size)
    mean_h2 = 0.0  # E[h_0²] = 0
    for t in range(v.size):
        q[t] = sw * sw * mean_h2 + sb2 + v[t]
        if t and q[t] == q[t - 1]:  # converged under a constant drive: nothing changes
            chi[t] = chi[t - 1]
            continue
        chi[t] = _chi(name, sw, q[t])
        if moments is not None:  # homogeneous φ: E[φ²] = m q in closed form (q may grow to inf)
            mean_h2 = float(q[t]) * moments[0]
        else:
            mean_h2 = _gauss_expect(lambda u: phi(u) ** 2, q[t])
    with np.errstate(divide="ignore"):
        log_norm = np.concatenate([[0.0], 0.5 * np.cumsum(np.log(chi[::-1]))])
    return DrivenMeanField(
        activation=name,
        sigma_w=sw,
        sigma_b=float(sigma_b),
        drive=v,
        q=q,
        chi=chi,
        log_norm=log_norm,
        rate=_lag_slope(log_norm),
    )


# --------------------------------------------------------------------------------------------
# Finite N and T
# --------------------------------------------------------------------------------------------
def _digamma(x: float) -> float:
    """ψ(x) for x > 0: recurrence up to x >= 10, then the asymptotic series (error < 1e-15)."""
    shift = 0.0
    while x < 10.0:
        shift -= 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return shift + math.log(x) - 0.5 / x - series


def _trigamma(x: float) -> float:
    """ψ'(x) for x > 0: recurrence up to x >= 10, then the asymptotic series."""
    shift = 0.0
    while x < 10.0:
        shift += 1.0 / (x * x)
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv + 0.5 * inv2 + inv * inv2 * (1 / 6 - inv2 * (1 / 30 - inv2 * (1 / 42 - inv2 / 30)))
    return shift + series


@dataclass(frozen=True)
class FiniteSizeGap:
    """Expected (measured − theory) for the least-squares slope of ln ‖∂h_T/∂h_k‖₂ over lags
    1..T at finite N and T (see `finite_size_gap`).

    `edge`: spectral norm against the mean-square norm mean field describes (> 0);
    `lyapunov`: ½(ψ(N/2) − ln(N/2)) ≈ −1/(2N), the top Lyapunov exponent's offset;
    `offset` = edge + lyapunov: the expected gap; `spread`: the standard deviation of one
    trajectory's slope around it; `quenched`: E ln(ρ(W)/σ_w) of one fixed Gaussian W_hh, an
    additional upward pull (not in `offset`) where the network is nearly linear.
    """

    hidden_size: int
    seq_len: int
    edge: float
    lyapunov: float
    offset: float
    spread: float
    quenched: float


def finite_size_gap(hidden_size: int, seq_len: int) -> FiniteSizeGap:
    """The expected gap between ½ ln χ and the measured slope of ln ‖∂h_T/∂h_k‖₂ against the
    lag (fit over lags 1..T), for state size N = `hidden_size` and T = `seq_len`.

    Derivation, for the product P_ℓ = J_T ⋯ J_{T-ℓ+1} of ℓ random Gaussian-like matrices with
    mean squared singular value ∏ χ_t (what mean field predicts):
    * Edge (spectral vs mean square). For ℓ ≪ N the squared singular values of P_ℓ / √∏χ_t follow
      the Fuss–Catalan law of order ℓ — for products of independent Ginibre matrices and for
      powers of one (Alexeev, Götze & Tikhomirov 2010) — whose upper edge is
      (ℓ+1)^{ℓ+1}/ℓ^ℓ (Penson & Życzkowski 2011). So ln ‖P_ℓ‖₂ ≈ ½ Σ ln χ_t + c(ℓ) with
      c(ℓ) = ½ ln((ℓ+1)^{ℓ+1}/ℓ^ℓ) ≈ ½ ln(e(ℓ+1)): `edge` is the least-squares slope of c over
      ℓ = 1..T, positive and O(ln T / T) (0.0139 at T = 100, 0.0072 at T = 200), independent of N.
    * Lyapunov (ℓ → ∞ at fixed N). The slope then tends to the top Lyapunov exponent, which for
      products of i.i.d. Gaussian matrices is exactly ½ ln χ + ½(ψ(N/2) − ln(N/2)) (Newman
      1986), i.e. −1/(2N) − 1/(6N²) + ...: `lyapunov`.
    * Spread. Each step multiplies a propagated vector's squared norm by χ_t Y_t / N with
      Y_t ~ χ²_N, so its log-norm is a random walk with step variance ¼ ψ'(N/2) ≈ 1/(2N); the
      least-squares slope of a T-step random walk has variance (6/5) σ²/T:
      spread = √(1.2 ψ'(N/2) / (4T)) (0.0048 at N = 256, T = 100).
    * Quenched W (not in `offset`). W_hh is the same matrix at every step. Where the network is
      nearly linear (ordered, weakly driven: torch's default init, σ_v ≈ 0.04) ‖P_ℓ‖ → ρ(D W)^ℓ,
      and the spectral radius of an N×N Gaussian matrix exceeds σ_w. `quenched` = E ln(ρ/σ_w)
      for complex Ginibre, exact at finite N by Kostlan's theorem (the |λ_k|² are independent
      Gamma(k, 1)/N): 0.065, 0.054, 0.043, 0.034 at N = 64, 128, 256, 512, decaying like
      √(ln N / 4N) (Rider 2003). Real Gaussian W, measured: 0.047, 0.035, 0.042, 0.025 (± 0.005),
      so `quenched` bounds this pull. With a strong fresh drive D_t changes every step and the
      pull fades; measured headline slopes at init: default-init tanh RNN, N = 64, T = 100,
      adding: −0.48 against theory −0.57 (+0.085, offset + quenched + one seed's spread);
      gaussian σ_w = 0.9, N = 128, T = 60, adding: −0.26 against −0.32; copy task (frozen blank
      input), N = 128: +0.06, at N = 512: −0.02.
    tests/test_theory.py checks measured slopes against offset ± (quenched + 3 spread/√n).
    """
    n = _positive_int(hidden_size, "hidden_size")
    T = _positive_int(seq_len, "seq_len")
    lags = np.arange(1, T + 1, dtype=np.float64)
    edge_profile = 0.5 * ((lags + 1) * np.log1p(lags) - lags * np.log(lags))
    edge = _lag_slope(np.concatenate([[0.0], edge_profile])) if T >= 3 else 0.0
    half = 0.5 * n
    lyapunov = 0.5 * (_digamma(half) - math.log(half))
    spread = math.sqrt(1.2 * _trigamma(half) / (4.0 * T))
    return FiniteSizeGap(n, T, edge, lyapunov, edge + lyapunov, spread, _ginibre_log_radius(n))


@cache
def _ginibre_log_radius(n: int) -> float:
    """E ln ρ of an n×n complex Ginibre matrix (entries of variance 1/n).

    Kostlan: the |λ_k|² are independent Gamma(k, 1)/n, and Gamma(k, 1) <= x exactly when a
    Poisson(x) count is >= k, so P(ρ² <= r) = ∏_k P(Poisson(n r) >= k), integrated on a grid of
    r. Above n = 1024 (memory) Rider's (2003) edge law with the Gumbel mean:
    ρ ≈ 1 + √(γ/4n) + 0.5772/√(4nγ), γ = ln(n/2π) − 2 ln ln n.
    """
    if n > 1024:
        gamma_n = math.log(n / (2 * math.pi)) - 2 * math.log(math.log(n))
        return math.log1p(math.sqrt(gamma_n / (4 * n)) + 0.5772156649 / math.sqrt(4 * n * gamma_n))
    # ρ² concentrates near 1 as n grows (width ~ 1/√n); small n needs the whole range.
    r = np.linspace(1e-3, 6.0, 6000) if n <= 64 else np.linspace(0.4, 2.5, 1500)
    x = n * r
    j = np.arange(n)
    log_factorial = np.cumsum(np.log(np.maximum(j, 1)))
    log_pmf = -x[:, None] + j[None, :] * np.log(x)[:, None] - log_factorial[None, :]
    below = np.cumsum(np.exp(log_pmf), axis=1)  # P(Poisson(x) < k), k = 1..n
    cdf = np.prod(np.clip(1.0 - below, 0.0, 1.0), axis=1)
    mid = 0.5 * (r[1:] + r[:-1])
    return 0.5 * float(np.sum(np.log(mid) * np.diff(cdf)))


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# Weight laws of the init schemes (gradlab.cells.init)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightLaws:
    """The laws of a vanilla RNN's parameters under one init scheme.

    `sigma_w`: √(N · Var W_hh[i, j]) (the mean-field σ_w); `input_variance`: Var W_ih[i, j], so the
    drive is σ_v²(t) = input_variance · Σ_j E[x_{t,j}²]; `sigma_b`: standard deviation of
    b_ih + b_hh per unit; `iid`: whether W_hh's entries are i.i.d. (mean field applies).
    """

    init: str
    sigma_w: float
    input_variance: float
    sigma_b: float
    iid: bool


def weight_laws(
    init: str,
    hidden_size: int,
    input_size: int,
    gain: float = 1.0,
    bias_scale: float = 0.0,
    bias: bool = True,
) -> WeightLaws:
    """The laws `gradlab.cells.init.init_model` draws from (layer 0, input size I).

    * "default" (torch's U(−1/√N, 1/√N) for every parameter; `gain` is not used): a uniform
      entry has variance (1/√N)²/3, so σ_w² = N · 1/(3N) = 1/3, Var W_ih = 1/(3N), and
      σ_b² = 2/(3N) (b_ih + b_hh, two independent uniforms).
    * "gaussian": W_hh ~ N(0, gain²/N) so σ_w = gain; W_ih ~ N(0, 1/I); σ_b = bias_scale.
    * "orthogonal" (gain·Q) and "identity" (gain·I): σ_w = gain in the sense ‖W h‖ = gain‖h‖, but
      not i.i.d.; W_ih ~ N(0, 1/I); σ_b = bias_scale.
    Without biases σ_b = 0.
    """
    n = _positive_int(hidden_size, "hidden_size")
    i = _positive_int(input_size, "input_size")
    if init == "default":
        laws = (math.sqrt(1.0 / 3.0), 1.0 / (3.0 * n), math.sqrt(2.0 / (3.0 * n)), True)
    elif init in ("gaussian", "orthogonal", "identity"):
        laws = (abs(float(gain)), 1.0 / i, float(bias_scale), init == "gaussian")
    else:
        raise ValueError(
            f"unknown init {init!r}; expected one of: default, gaussian, orthogonal, identity"
        )
    sigma_w, input_variance, sigma_b, iid = laws
    return WeightLaws(init, sigma_w, input_variance, sigma_b if bias else 0.0, iid)


# --------------------------------------------------------------------------------------------
# Run configurations
# --------------------------------------------------------------------------------------------
class _Assumed(TypedDict):
    """The run's side of a `RatePrediction` (its keyword arguments cell .. seq_len)."""

    cell: str
    activation: str | None
    init: str
    hidden_size: int
    seq_len: int


class _Sigmas(TypedDict):
    """The σ's a `RatePrediction` assumes (its keyword arguments sigma_w, sigma_v, sigma_b)."""

    sigma_w: float
    sigma_v: float
    sigma_b: float


@dataclass(frozen=True)
class RatePrediction:
    """The theory's per-step rate for a run at initialisation, with what it assumes.

    `rate`: natural-log rate per step of ‖∂h_T/∂h_k‖ against the lag (None: no theory applies,
    `reason` says why); `method`: which theory; `sigma_w`, `sigma_v` (root mean square of σ_v(t)
    over the steps), `sigma_b`, `hidden_size` N, `seq_len` T: the assumed parameters; `gap`: the
    expected finite-N, finite-T gap of the measured spectral-norm slope (mean field only);
    `mean_field`: the driven recursion behind `rate` (mean field only).
    """

    rate: float | None
    method: str
    reason: str
    cell: str
    activation: str | None
    init: str
    sigma_w: float
    sigma_v: float
    sigma_b: float
    hidden_size: int
    seq_len: int
    gap: FiniteSizeGap | None = None
    mean_field: DrivenMeanField | None = field(default=None, repr=False)

    @property
    def assumptions(self) -> str:
        """ "σ_w = 0.58, σ_v = 0.04, σ_b = 0.10, N = 64, at initialisation" (σ's shown where the
        theory uses them)."""
        parts = []
        if self.method == "driven mean field":
            parts += [f"σ_w = {self.sigma_w:.3g}", f"σ_v = {self.sigma_v:.3g}"]
            parts += [f"σ_b = {self.sigma_b:.3g}"]
        elif self.rate is not None:
            parts.append(f"gain = {self.sigma_w:.3g}")
        parts += [f"N = {self.hidden_size}", "at initialisation"]
        return ", ".join(parts)

    @property
    def label(self) -> str:
        """One line for a figure: the method, the assumptions and the expected finite-N gap, or
        why there is no theory."""
        if self.rate is None:
            return self.reason
        text = f"{self.method} ({self.assumptions})"
        if self.gap is not None:
            sign = "+" if self.gap.offset >= 0 else "−"
            text += (
                f"; expected finite-N/T gap of the measured slope {sign}{abs(self.gap.offset):.3f}"
                f" ± {self.gap.spread:.3f}, up to +{self.gap.quenched:.3f} more where nearly "
                f"linear (fixed W_hh)"
            )
        return text


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN (a runs table's empty cell)
    except TypeError:  # pandas.NA
        return True


def _run_config(config: Any) -> Any:
    """A RunConfig from a RunConfig or a mapping (extra keys and empty values are ignored,
    missing keys take RunConfig's defaults)."""
    from gradlab.config import RunConfig

    if isinstance(config, RunConfig):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a RunConfig or a mapping, got {type(config).__name__}")
    known = RunConfig.__dataclass_fields__
    values = {k: v for k, v in config.items() if k in known and not _missing(v)}
    for key in ("hidden_size", "seq_len", "num_layers"):
        if key in values:
            values[key] = int(values[key])
    return RunConfig(**values)


def _config_task_assumed(config: Any) -> tuple[Any, Any, _Assumed]:
    """(the RunConfig, its task, the assumptions every prediction states) of `config`."""
    from gradlab.tasks import make

    cfg = _run_config(config)
    task = make(cfg.task, seq_len=cfg.seq_len)
    # every task has a seq_len field (make passed it; the copy task's is validated to an int)
    common = _Assumed(
        cell=cfg.cell,
        activation=cfg.activation_name,
        init=cfg.init,
        hidden_size=cfg.hidden_size,
        seq_len=int(task.params["seq_len"]),
    )
    return cfg, task, common


def predict_rate(config: Any) -> RatePrediction:
    """The predicted per-step rate of ‖∂h_T/∂h_k‖ for a run at initialisation (layer 0), with
    its assumptions; `rate` None with a `reason` where no theory applies.

    `config`: a RunConfig or a mapping of its fields (a runs-table row works; missing keys take
    RunConfig's defaults). The cell's `rate_at_init` hook (the cell registry) makes the
    prediction: the vanilla RNN's is `vanilla_rnn_prediction` (the driven mean field); IndRNN's
    is its closed form. A cell without the hook (LSTM, GRU) or an activation without theory
    hooks has no theory (`reason` says which); an unknown cell raises ValueError.
    """
    cfg, _task, common = _config_task_assumed(config)
    spec = get_cell(cfg.cell)
    activation = cfg.activation_name
    nan = _Sigmas(sigma_w=math.nan, sigma_v=math.nan, sigma_b=math.nan)
    if spec.rate_at_init is None:
        kind = " (a gated cell)" if spec.gate_names else ""
        reason = f"no mean-field theory for {cfg.cell.upper()}{kind}"
        return RatePrediction(None, "", reason, **common, **nan)
    if activation is not None and not _has_theory(activation):
        reason = f"no theory for activation {activation!r} (it has no theory hooks)"
        return RatePrediction(None, "", reason, **common, **nan)
    result = spec.rate_at_init(cfg.to_dict())
    if isinstance(result, RatePrediction):
        return result
    sigmas = _Sigmas(sigma_w=abs(cfg.gain), sigma_v=math.nan, sigma_b=cfg.bias_scale)
    if result is None:
        reason = f"no closed form for a {activation} {spec.display_name} with {cfg.init} init"
        return RatePrediction(None, "", reason, **common, **sigmas)
    method = f"closed form for a {activation} {spec.display_name} at {cfg.init} init"
    return RatePrediction(float(result), method, "", **common, **sigmas)


def theory_rate(config: Any) -> float | None:
    """`predict_rate(config).rate`: the theory's per-step rate at initialisation, or None
    where no theory applies ("no theory for this activation" included)."""
    return predict_rate(config).rate


def is_unit_slope(activation: str) -> bool:
    """|φ'| = 1 almost everywhere (linear): γ = sup|φ'| = 1 and E[φ'(z)²] = 1."""
    hooks = _hooks(activation)
    moments = hooks.homogeneous_moments
    return hooks.gamma == 1.0 and moments is not None and moments[1] == 1.0


def config_activation(config: Mapping[str, Any]) -> str | None:
    """The activation a run config means (its cell's default when missing), if it has theory
    hooks; None for a cell without an activation or an activation without theory."""
    spec = get_cell(str(config.get("cell") or _default_cell()))
    name = spec.activation_name(config.get("activation"))
    return _check_activation(name) if name is not None and _has_theory(name) else None


def _default_cell() -> str:
    from gradlab.config import RunConfig

    return RunConfig.cell


def vanilla_rnn_prediction(config: Any) -> RatePrediction:
    """The vanilla RNN's `rate_at_init` hook: the driven theory at initialisation.

    The drive comes from the task the config names (`Task.input_second_moment`) and the init's
    laws (`weight_laws`):
    * i.i.d. W_hh ("default", "gaussian"): `driven_mean_field` with
      σ_v²(t) = Var W_ih · Σ_j E[x_{t,j}²];
    * "orthogonal" / "identity" with |φ'| = 1 (linear): ln gain, exact at every lag;
    * other orthogonal / identity RNNs: no theory.
    """
    cfg, task, common = _config_task_assumed(config)
    activation = cfg.activation_name
    name = _check_activation(activation)
    laws = weight_laws(cfg.init, cfg.hidden_size, task.input_size, cfg.gain, cfg.bias_scale)
    drive = laws.input_variance * np.asarray(task.input_second_moment(), dtype=np.float64)
    sigmas = _Sigmas(
        sigma_w=laws.sigma_w, sigma_v=math.sqrt(float(drive.mean())), sigma_b=laws.sigma_b
    )
    if laws.iid:
        mf = driven_mean_field(name, laws.sigma_w, laws.sigma_b, drive)
        gap = finite_size_gap(cfg.hidden_size, common["seq_len"])
        return RatePrediction(
            mf.rate, "driven mean field", "", **common, **sigmas, gap=gap, mean_field=mf
        )
    if is_unit_slope(name):
        method = (
            f"exact for a linear RNN with W_hh = gain·{'Q' if cfg.init == 'orthogonal' else 'I'}"
        )
        return RatePrediction(orthogonal_rate(laws.sigma_w), method, "", **common, **sigmas)
    reason = (
        f"no theory for a {name} RNN with {cfg.init} init (W_hh is not i.i.d.; "
        f"exact only for a linear RNN)"
    )
    return RatePrediction(None, "", reason, **common, **sigmas)
