"""gradlab.theory: mean-field predictions, the Pascanu bound and the exact rates.

References are computed independently here: mpmath quadrature at 30 digits, numpy matrix
powers, QR iterations, simulated random networks and torch's own LSTMCell / GRUCell under
torch.autograd.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import mpmath as mp
import numpy as np
import pytest
import torch

from gradlab.cells import ACTIVATIONS
from gradlab.fits import decay_fit
from gradlab.theory import (
    MeanField,
    PascanuBound,
    critical_sigma_w,
    gated_jacobian_at_zero,
    gated_rate_at_zero,
    identity_rate,
    linear_rnn_jacobian_norms,
    linear_rnn_rate,
    lyapunov_at_fixed_point,
    mean_field,
    orthogonal_rate,
    pascanu_bound,
    theory_rate,
)


# ============================================================================ mean field
def _mp_phi(name):
    return {
        "tanh": mp.tanh,
        "sigmoid": lambda u: 1 / (1 + mp.exp(-u)),
        "relu": lambda u: u if u > 0 else mp.mpf(0),
        "linear": lambda u: u,
    }[name]


def _mp_dphi(name):
    return {
        "tanh": lambda u: 1 - mp.tanh(u) ** 2,
        "sigmoid": lambda u: mp.exp(-u) / (1 + mp.exp(-u)) ** 2,
        "relu": lambda u: mp.mpf(1) if u > 0 else mp.mpf(0),
        "linear": lambda u: mp.mpf(1),
    }[name]


def _mp_expect(f, q):
    """E_z[f(√q z)], z ~ N(0, 1), by mpmath tanh-sinh quadrature split where f is steep/kinked."""
    s = mp.sqrt(q)
    pts = [-mp.inf, -2, -1, -0.25, 0, 0.25, 1, 2, mp.inf]
    return mp.quad(lambda z: f(s * z) * mp.exp(-(z**2) / 2), pts) / mp.sqrt(2 * mp.pi)


def _mp_fixed_point(act, sw, sb, sv, q_claimed):
    """(q*, χ) from mpmath: q* by a bracketing root solve within ±10 % of the claimed value."""
    phi, dphi = _mp_phi(act), _mp_dphi(act)
    c = mp.mpf(sb) ** 2 + mp.mpf(sv) ** 2

    def gap(q):
        return mp.mpf(sw) ** 2 * _mp_expect(lambda u: phi(u) ** 2, q) + c - q

    bracket = (mp.mpf(q_claimed) * 0.9, mp.mpf(q_claimed) * 1.1)
    q_ref = mp.findroot(gap, bracket, solver="anderson", tol=mp.mpf(10) ** -25)
    chi_ref = mp.mpf(sw) ** 2 * _mp_expect(lambda u: dphi(u) ** 2, q_ref)
    return q_ref, chi_ref


# (activation, sigma_w, sigma_b, sigma_v, chaotic?)
MF_CASES = [
    ("tanh", 0.9, 0.1, 0.0, False),
    ("tanh", 1.0, 0.05, 0.0, False),
    ("tanh", 0.8, 0.1, 0.5, False),
    ("tanh", 1.3, 0.0, 0.0, True),
    ("tanh", 1.5, 0.3, 0.0, True),
    ("tanh", 2.5, 0.5, 0.0, True),
    ("tanh", 4.0, 1.0, 0.0, True),
    ("sigmoid", 0.5, 0.0, 0.0, False),
    ("sigmoid", 1.5, 0.3, 0.0, False),
    ("sigmoid", 4.0, 0.5, 0.2, False),
    ("sigmoid", 12.0, 0.2, 0.0, True),
    ("relu", 0.5, 0.1, 0.0, False),
    ("relu", 1.0, 0.3, 0.0, False),
    ("relu", 1.3, 0.5, 0.1, False),
    ("linear", 0.5, 0.2, 0.0, False),
    ("linear", 0.9, 0.1, 0.3, False),
]


def _mf_id(case):
    act, sw, sb, sv, chaotic = case
    return f"{act}-sw{sw}-sb{sb}-sv{sv}-{'chaotic' if chaotic else 'ordered'}"


@pytest.mark.parametrize("case", MF_CASES, ids=[_mf_id(c) for c in MF_CASES])
def test_mean_field_matches_mpmath(case):
    act, sw, sb, sv, chaotic = case
    mf = mean_field(act, sw, sb, sv)
    assert isinstance(mf, MeanField)
    with mp.workdps(30):
        q_ref, chi_ref = _mp_fixed_point(act, sw, sb, sv, mf.q_star)
        log_chi_ref = float(mp.log(chi_ref))
    assert mf.q_star == pytest.approx(float(q_ref), rel=1e-6, abs=1e-6)
    assert mf.chi == pytest.approx(float(chi_ref), rel=1e-6, abs=1e-6)
    assert mf.rate == pytest.approx(0.5 * log_chi_ref, abs=1e-6)
    assert (mf.chi > 1) == chaotic
    if chaotic:
        assert mf.depth_scale == math.inf
    else:
        assert mf.depth_scale == pytest.approx(-1.0 / log_chi_ref, rel=1e-6)


@pytest.mark.parametrize("sw", [0.3, 0.8, 1.0], ids=lambda s: f"sw{s}")
def test_tanh_ordered_without_bias_has_zero_fixed_point(sw):
    mf = mean_field("tanh", sw)
    assert mf.q_star == 0.0
    assert mf.chi == pytest.approx(sw**2, abs=1e-15)  # χ = σ_w² φ'(0)²
    assert mf.rate == pytest.approx(math.log(sw), abs=1e-15)


@pytest.mark.parametrize(
    ("sw", "sb", "sv"),
    [(0.5, 0.3, 0.0), (1.2, 0.1, 0.4), (0.9, 0.0, 0.0)],
    ids=["sw0.5-sb0.3", "sw1.2-sb0.1-sv0.4", "sw0.9-nobias"],
)
def test_relu_closed_form(sw, sb, sv):
    mf = mean_field("relu", sw, sb, sv)
    assert mf.q_star == pytest.approx((sb**2 + sv**2) / (1 - sw**2 / 2), rel=1e-15, abs=1e-300)
    assert mf.chi == pytest.approx(sw**2 / 2, rel=1e-15)


@pytest.mark.parametrize(
    ("act", "sw", "chi"),
    [
        ("relu", 1.5, 1.125),
        ("relu", math.sqrt(2), 1.0),
        ("linear", 1.0, 1.0),
        ("linear", 1.5, 2.25),
    ],
    ids=["relu-1.5", "relu-critical", "linear-1", "linear-1.5"],
)
def test_divergent_fixed_point(act, sw, chi):
    mf = mean_field(act, sw, 0.2)
    assert mf.q_star == math.inf
    assert mf.chi == pytest.approx(chi, rel=1e-15)
    assert mf.depth_scale == math.inf
    assert mf.rate == pytest.approx(0.5 * math.log(chi), abs=1e-15)


def test_linear_closed_form():
    mf = mean_field("linear", 0.6, 0.3, 0.4)
    assert mf.q_star == pytest.approx(0.25 / (1 - 0.36), rel=1e-15)
    assert mf.rate == pytest.approx(math.log(0.6), rel=1e-15)


def test_mean_field_validates():
    with pytest.raises(ValueError, match=r"tanh.*sigmoid.*relu.*linear"):
        mean_field("softplus", 1.0)
    for bad in ({"sigma_w": -1.0}, {"sigma_b": -0.1}, {"sigma_v": -0.1}, {"sigma_w": math.nan}):
        kwargs = {"sigma_w": 1.0, **bad}
        with pytest.raises(ValueError):
            mean_field("tanh", **kwargs)
    assert mean_field("Tanh", 0.5).activation == "tanh"
    assert mean_field("identity", 0.5).activation == "linear"


# ============================================================================ critical line
@pytest.mark.parametrize(
    ("act", "expected"),
    [("tanh", 1.0), ("relu", math.sqrt(2.0)), ("linear", 1.0)],
    ids=["tanh", "relu", "linear"],
)
def test_critical_sigma_w_exact(act, expected):
    assert critical_sigma_w(act) == pytest.approx(expected, abs=1e-8)
    assert mean_field(act, critical_sigma_w(act)).chi == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize(
    ("act", "sb", "sv"),
    [
        ("tanh", 0.05, 0.0),
        ("tanh", 0.3, 0.0),
        ("tanh", 0.0, 0.5),
        ("sigmoid", 0.0, 0.0),
        ("sigmoid", 0.5, 0.0),
    ],
    ids=["tanh-sb0.05", "tanh-sb0.3", "tanh-sv0.5", "sigmoid", "sigmoid-sb0.5"],
)
def test_critical_sigma_w_numeric(act, sb, sv):
    sw = critical_sigma_w(act, sb, sv)
    assert mean_field(act, sw, sb, sv).chi == pytest.approx(1.0, abs=1e-8)
    assert mean_field(act, sw, sb, sv).depth_scale > 1e6 or math.isinf(
        mean_field(act, sw, sb, sv).depth_scale
    )
    assert mean_field(act, sw * 0.99, sb, sv).chi < 1 < mean_field(act, sw * 1.01, sb, sv).chi


def test_critical_line_continuous_and_increasing_in_bias():
    values = [critical_sigma_w("tanh", sb) for sb in (0.0, 0.01, 0.1, 0.3, 1.0)]
    assert values[0] == 1.0
    assert all(a < b for a, b in itertools.pairwise(values))
    assert values[1] < 1.1


def test_depth_scale_infinite_at_and_above_criticality():
    assert mean_field("tanh", 1.0).depth_scale == math.inf  # χ = 1 exactly
    assert mean_field("tanh", 1.5, 0.3).depth_scale == math.inf
    assert mean_field("tanh", 0.5).depth_scale == pytest.approx(-1 / math.log(0.25))


# ============================================================================ simulated networks
def _measured_tanh_rate(g, sigma_b, sigma_v, seed, N=500, burn_in=200, T=200):
    """Slope of ln‖v‖ for v propagated backwards through J_t = diag(1 - h_t²) W."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((N, N)) * (g / math.sqrt(N))
    b = sigma_b * rng.standard_normal(N)  # fixed per-unit bias
    h = rng.standard_normal(N)
    derivs = []
    for t in range(burn_in + T):
        h = np.tanh(W @ h + b + sigma_v * rng.standard_normal(N))  # fresh input drive
        if t >= burn_in:
            derivs.append(1.0 - h * h)
    v = rng.standard_normal(N)
    v /= np.linalg.norm(v)
    log_norms = [0.0]  # lag 0
    for d in reversed(derivs):  # v ← J_tᵀ v = Wᵀ (d ⊙ v)
        v = W.T @ (d * v)
        n = np.linalg.norm(v)
        log_norms.append(log_norms[-1] + math.log(n))
        v /= n
    norms_by_t = np.exp(np.array(log_norms[::-1]))  # index t: lag T - t
    return decay_fit(norms_by_t).rate


@pytest.mark.parametrize(
    ("g", "sigma_b", "sigma_v"),
    [
        (0.8, 0.0, 0.0),
        (0.8, 0.3, 0.0),
        (0.8, 0.0, 0.5),
        (1.5, 0.3, 0.0),
        (2.0, 0.3, 0.0),
        (1.5, 0.0, 0.5),
    ],
    ids=[
        "ordered-g0.8",
        "ordered-g0.8-sb0.3",
        "ordered-g0.8-sv0.5",
        "chaotic-g1.5-sb0.3",
        "chaotic-g2.0-sb0.3",
        "g1.5-sv0.5",
    ],
)
def test_measured_tanh_slope_matches_mean_field(g, sigma_b, sigma_v):
    # Tolerance 0.05 absolute: finite N = 500 (seed-to-seed spread of the top eigenvalue /
    # Lyapunov exponent ~ 0.02-0.04), finite T = 200 (the fit's transient), and the mean-field
    # rate being ½ ln E‖Jv‖² rather than E ln‖Jv‖ (equal as N → ∞). Mean of three seeds.
    measured = np.mean([_measured_tanh_rate(g, sigma_b, sigma_v, seed) for seed in range(3)])
    predicted = mean_field("tanh", g, sigma_b, sigma_v).rate
    assert measured == pytest.approx(predicted, abs=0.05)


# ============================================================================ Lyapunov exponent
def _qr_lyapunov(W, act, b, h0, steps=3000, burn_in=300, k=2):
    """Largest Lyapunov exponent of h_t = act(W h_{t-1} + b) by QR (Benettin) iteration."""
    fn, dfn = {
        "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2),
        "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2),
        "linear": (lambda a: a, np.ones_like),
    }[act]
    h = h0
    Q = np.linalg.qr(np.random.default_rng(1).standard_normal((W.shape[0], k)))[0]
    total = 0.0
    for t in range(steps):
        a = W @ h + b
        h = fn(a)
        Q, R = np.linalg.qr(dfn(a)[:, None] * (W @ Q))
        if t >= burn_in:
            total += math.log(abs(R[0, 0]))
    return total / (steps - burn_in)


@pytest.mark.parametrize(
    ("act", "g", "bias"),
    [("tanh", 0.8, 0.0), ("tanh", 0.5, 0.0), ("sigmoid", 2.0, 0.5), ("linear", 0.9, 0.0)],
    ids=["tanh-g0.8", "tanh-g0.5", "sigmoid-g2-bias", "linear-g0.9"],
)
def test_lyapunov_at_fixed_point_matches_qr(act, g, bias):
    N = 80
    rng = np.random.default_rng(3)
    W = rng.standard_normal((N, N)) * (g / math.sqrt(N))
    b = bias * rng.standard_normal(N)
    predicted = lyapunov_at_fixed_point(W, act, bias=b)
    measured = _qr_lyapunov(W, act, b, h0=rng.standard_normal(N))
    assert measured == pytest.approx(predicted, abs=5e-3)
    if bias == 0.0 and act == "tanh":
        assert predicted == pytest.approx(math.log(np.max(np.abs(np.linalg.eigvals(W)))), 1e-12)


def test_lyapunov_accepts_torch_and_given_fixed_point():
    W = torch.eye(3, dtype=torch.float64) * 0.5
    assert lyapunov_at_fixed_point(W, "tanh") == pytest.approx(math.log(0.5))
    assert lyapunov_at_fixed_point(W, "tanh", h_star=np.zeros(3)) == pytest.approx(math.log(0.5))


# ============================================================================ Pascanu bound
def _rand_W(N, scale, seed):
    return np.random.default_rng(seed).standard_normal((N, N)) * (scale / math.sqrt(N))


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0], ids=lambda s: f"scale{s}")
@pytest.mark.parametrize("seed", [0, 1], ids=lambda s: f"seed{s}")
def test_pascanu_bound_never_violated(act, scale, seed):
    N, T = 30, 40
    W = _rand_W(N, scale, seed)
    rng = np.random.default_rng(100 + seed)
    U, b = rng.standard_normal((N, 4)), rng.standard_normal(N)
    pb = pascanu_bound(W, act)
    assert isinstance(pb, PascanuBound)
    assert pb.gamma == ACTIVATIONS[act].theory.gamma
    assert pb.sigma_max == pytest.approx(np.linalg.svd(W, compute_uv=False)[0], rel=1e-12)
    phi = np.tanh if act == "tanh" else (lambda a: 1 / (1 + np.exp(-a)))
    dphi = (lambda a: 1 - np.tanh(a) ** 2) if act == "tanh" else (lambda a: phi(a) * (1 - phi(a)))
    h, P = rng.standard_normal(N), np.eye(N)
    for k in range(1, T + 1):
        a = W @ h + U @ rng.standard_normal(4) * 2.0 + b
        h = phi(a)
        J = dphi(a)[:, None] * W
        P = J @ P
        assert np.linalg.norm(J, 2) <= pb.bound * (1 + 1e-12)
        assert np.linalg.norm(P, 2) <= pb.bound**k * (1 + 1e-10)


def test_pascanu_flags():
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((10, 10)))[0]
    low, high = pascanu_bound(0.5 * Q, "tanh"), pascanu_bound(2.0 * Q, "tanh")
    assert low.vanishing_guaranteed and not low.exploding_possible
    assert high.exploding_possible and not high.vanishing_guaranteed
    assert low.bound == pytest.approx(0.5) and low.per_layer == {}
    sig = pascanu_bound(2.0 * Q, "sigmoid")
    assert sig.bound == pytest.approx(0.5) and sig.vanishing_guaranteed
    one = pascanu_bound(np.eye(10), "linear")  # bound exactly 1: neither condition
    assert not one.vanishing_guaranteed and not one.exploding_possible
    as_torch = pascanu_bound(torch.from_numpy(2.0 * Q), "relu")
    assert as_torch.bound == pytest.approx(2.0)


def test_pascanu_model_per_layer():
    torch.manual_seed(0)
    m = torch.nn.RNN(3, 6, num_layers=2, bidirectional=True, nonlinearity="relu")
    pb = pascanu_bound(m)
    names = {"weight_hh_l0", "weight_hh_l0_reverse", "weight_hh_l1", "weight_hh_l1_reverse"}
    assert set(pb.per_layer) == names
    for name in names:
        W = getattr(m, name).detach().double().numpy()
        assert pb.per_layer[name] == pytest.approx(np.linalg.norm(W, 2), rel=1e-6)
    assert pb.sigma_max == pytest.approx(np.linalg.norm(m.weight_hh_l0.detach().numpy(), 2), 1e-6)
    # Activation: the argument wins, then model.activation.name, then torch's nonlinearity.
    assert pascanu_bound(m, "sigmoid").gamma == 0.25
    m.activation = SimpleNamespace(name="sigmoid")
    assert pascanu_bound(m).gamma == 0.25
    cell = torch.nn.RNNCell(3, 4, nonlinearity="tanh")
    assert set(pascanu_bound(cell).per_layer) == {"weight_hh"}


@pytest.mark.parametrize("module", [torch.nn.LSTM, torch.nn.GRU], ids=["lstm", "gru"])
def test_pascanu_rejects_gated(module):
    with pytest.raises(ValueError, match="vanilla"):
        pascanu_bound(module(3, 4))


def test_pascanu_needs_activation_for_matrix():
    with pytest.raises(ValueError, match="activation"):
        pascanu_bound(np.eye(3))
    with pytest.raises(ValueError, match="expected one of"):
        pascanu_bound(np.eye(3), "gelu")


# ============================================================================ exact rates
@pytest.mark.parametrize("scale", [0.7, 1.0, 1.3], ids=lambda s: f"scale{s}")
def test_linear_rnn_jacobian_norms_match_numpy(scale):
    W = _rand_W(12, scale, 4)
    norms = linear_rnn_jacobian_norms(W, 25)
    assert norms.shape == (26,)
    expected = [np.linalg.norm(np.linalg.matrix_power(W, k), 2) for k in range(26)]
    np.testing.assert_allclose(norms, expected, rtol=1e-10)
    assert norms[0] == pytest.approx(1.0)
    # Gelfand: ‖W^k‖^(1/k) → ρ(W).
    rho = np.max(np.abs(np.linalg.eigvals(W)))
    assert linear_rnn_rate(W) == pytest.approx(math.log(rho), abs=1e-12)
    far = linear_rnn_jacobian_norms(W, 400)[-1]
    assert math.log(far) / 400 == pytest.approx(math.log(rho), abs=0.02)


def test_linear_rnn_torch_autograd():
    """‖∂h_T/∂h_{T-k}‖ of a linear RNN run by torch equals ‖W^k‖."""
    W = torch.from_numpy(_rand_W(6, 1.1, 7))
    U = torch.randn(6, 2, dtype=torch.float64)
    xs = torch.randn(8, 2, dtype=torch.float64)

    def run(h0):
        h = h0
        for x in xs:
            h = W @ h + U @ x
        return h

    J = torch.autograd.functional.jacobian(run, torch.zeros(6, dtype=torch.float64))
    assert torch.linalg.matrix_norm(J, 2).item() == pytest.approx(
        linear_rnn_jacobian_norms(W, 8)[8], rel=1e-12
    )


@pytest.mark.parametrize("gain", [0.9, 1.0, 1.05], ids=lambda g: f"gain{g}")
def test_orthogonal_exact(gain):
    Q = np.linalg.qr(np.random.default_rng(2).standard_normal((16, 16)))[0]
    W = gain * Q
    T = 60
    norms = linear_rnn_jacobian_norms(W, T)
    np.testing.assert_allclose(norms, gain ** np.arange(T + 1), rtol=1e-12)
    sv = np.linalg.svd(np.linalg.matrix_power(W, 17), compute_uv=False)
    np.testing.assert_allclose(sv, gain**17, rtol=1e-12)
    assert orthogonal_rate(gain) == pytest.approx(math.log(gain), abs=1e-15)
    assert linear_rnn_rate(W) == pytest.approx(math.log(gain), abs=1e-12)
    assert decay_fit(norms[::-1]).rate == pytest.approx(orthogonal_rate(gain), abs=1e-12)


def test_identity_rate_irnn_active_region():
    """IRNN with relu and positive drive: every unit active, ∂h_T/∂h_0 = gain^T I."""
    gain, N, T = 0.95, 5, 12
    m = torch.nn.RNN(2, N, nonlinearity="relu", dtype=torch.float64)
    with torch.no_grad():
        m.weight_hh_l0.copy_(gain * torch.eye(N, dtype=torch.float64))
        m.weight_ih_l0.fill_(0.5)
        m.bias_ih_l0.fill_(0.1)
        m.bias_hh_l0.zero_()
    x = torch.rand(T, 1, 2, dtype=torch.float64)
    h0 = torch.full((1, 1, N), 0.2, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda h: m(x, h)[1].reshape(N), h0).reshape(N, N)
    assert math.log(torch.linalg.matrix_norm(J, 2).item()) / T == pytest.approx(
        identity_rate(gain), abs=1e-12
    )
    assert orthogonal_rate(0.0) == -math.inf


# ============================================================================ gated cells
def _randomized(module, seed, bias_std=1.0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            std = bias_std if name.startswith("bias") else 1.0 / math.sqrt(p.shape[1])
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std)
    return module


def _autograd_jacobian(cell, input_size, N):
    x = torch.zeros(1, input_size, dtype=torch.float64)
    if isinstance(cell, torch.nn.LSTMCell):

        def step(s):
            h, c = cell(x, (s[:N][None], s[N:][None]))
            return torch.cat([h[0], c[0]])

        s0 = torch.zeros(2 * N, dtype=torch.float64)
    else:

        def step(s):
            return cell(x, s[None])[0]

        s0 = torch.zeros(N, dtype=torch.float64)
    return torch.autograd.functional.jacobian(step, s0).numpy()


def _as_layer(cell, module):
    """The equivalent one-layer torch.nn.LSTM / GRU with the cell's weights."""
    layer = module(cell.input_size, cell.hidden_size, bias=cell.bias, dtype=torch.float64)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            getattr(layer, f"{name}_l0").copy_(p)
    return layer


@pytest.mark.parametrize(
    ("cell_cls", "layer_cls"),
    [(torch.nn.LSTMCell, torch.nn.LSTM), (torch.nn.GRUCell, torch.nn.GRU)],
    ids=["lstm", "gru"],
)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("seed", [0, 1], ids=lambda s: f"seed{s}")
def test_gated_jacobian_matches_autograd(cell_cls, layer_cls, bias, seed):
    input_size, N = 3, 7
    cell = _randomized(cell_cls(input_size, N, bias=bias, dtype=torch.float64), seed)
    expected = _autograd_jacobian(cell, input_size, N)
    S = 2 * N if cell_cls is torch.nn.LSTMCell else N
    for model in (cell, _as_layer(cell, layer_cls)):
        J = gated_jacobian_at_zero(model)
        assert J.shape == (S, S)
        np.testing.assert_allclose(J, expected, atol=1e-13)
        rho = np.max(np.abs(np.linalg.eigvals(expected)))
        assert gated_rate_at_zero(model) == pytest.approx(math.log(rho), abs=1e-12)


def test_gated_zero_is_fixed_point_forget_bias():
    """LSTM with zero biases but the forget gate's: zero is a fixed point, cell path gives f."""
    N = 4
    cell = torch.nn.LSTMCell(2, N, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_hh.zero_()
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
        cell.bias_ih[N : 2 * N] = 2.0
    f = 1 / (1 + math.exp(-2.0))
    assert gated_rate_at_zero(cell) == pytest.approx(math.log(f), abs=1e-14)


def test_gated_rejects_rnn():
    with pytest.raises(ValueError, match="LSTM or GRU"):
        gated_jacobian_at_zero(torch.nn.RNN(2, 3))


# ============================================================================ theory_rate
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {
                "cell": "rnn",
                "activation": "tanh",
                "init": "gaussian",
                "gain": 0.8,
                "bias_scale": 0.3,
            },
            mean_field("tanh", 0.8, 0.3).rate,
        ),
        (
            {"cell": "rnn", "activation": "relu", "init": "gaussian", "gain": 1.2},
            0.5 * math.log(0.72),
        ),
        ({"cell": "rnn", "activation": "linear", "init": "orthogonal", "gain": 1.1}, math.log(1.1)),
        ({"cell": "rnn", "activation": "linear", "init": "identity", "gain": 0.9}, math.log(0.9)),
        ({"cell": "rnn", "activation": "tanh", "init": "orthogonal", "gain": 1.0}, None),
        ({"cell": "rnn", "activation": "relu", "init": "identity", "gain": 1.0}, None),
        ({"cell": "rnn", "activation": "tanh", "init": "default"}, None),
        ({"cell": "lstm", "init": "gaussian", "gain": 1.0}, None),
        ({"cell": "gru", "init": "orthogonal", "gain": 1.0}, None),
    ],
    ids=[
        "gaussian-tanh",
        "gaussian-relu",
        "orthogonal-linear",
        "identity-linear",
        "orthogonal-tanh",
        "identity-relu",
        "default",
        "lstm",
        "gru",
    ],
)
def test_theory_rate(config, expected):
    got = theory_rate(config)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_builtin_activations_have_theory_hooks():
    gammas = {
        name: ACTIVATIONS[name].theory.gamma for name in ("tanh", "sigmoid", "relu", "linear")
    }
    assert gammas == {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "linear": 1.0}
