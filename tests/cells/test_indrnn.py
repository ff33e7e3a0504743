"""IndRNN (gradlab/cells/indrnn.py): the float64 twin, the init schemes, and its theory —
‖∂h_t/∂h_k‖₂ = max_i |u_i|^{t-k} exactly for a linear φ, the Pascanu bound γ·max_i |u_i|, and
the rate at init from the config."""

from __future__ import annotations

import math

import pytest
import torch

import gradlab
from gradlab import _reference as ref
from gradlab.cells import get_cell, init_model
from gradlab.cells.indrnn import IndRNN
from gradlab.theory import pascanu_bound, theory_rate

T, B, N, IN = 9, 3, 5, 2
F64 = torch.float64


def _input(T=T, seed=1):
    return torch.randn(T, B, IN, dtype=F64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("act", ["relu", "tanh", "linear"])
@pytest.mark.parametrize(("L", "bi"), [(1, False), (2, True)], ids=["L1-uni", "L2-bi"])
def test_float64_twin_to_1e10(act, L, bi):
    """Every layer's states, adjoints and per-step contributions equal the autograd unroll of the
    spec's reference step to 1e-10; summed, the contributions are torch.autograd's gradient."""
    model = IndRNN(IN, N, act, num_layers=L, bidirectional=bi, dtype=F64)
    init_model(model, "gaussian", gain=0.9, seed=5, bias_scale=0.3)
    x = _input()
    target = torch.randn(T, B, model.num_directions * N, dtype=F64)

    def loss_fn(out):
        return ((out - target) ** 2).sum()

    rec = gradlab.record(model, x, loss_fn)
    twin = ref.reference_record(model, x, loss_fn)
    for (layer, reverse), e in twin.items():
        view = rec.layer(layer, reverse)
        torch.testing.assert_close(view.hidden, e["hidden"], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(view.grad_hidden, e["grad_hidden"], rtol=1e-10, atol=1e-12)
        for short, expected in e["contributions"].items():
            torch.testing.assert_close(view.contributions(short), expected, rtol=1e-10, atol=1e-12)
            norms = expected.flatten(1).norm(dim=1)
            torch.testing.assert_close(
                view.contribution_norms(short), norms, rtol=1e-10, atol=1e-12
            )
    grads = torch.autograd.grad(loss_fn(model(x)[0]), list(model.parameters()))
    for (name, p), g in zip(model.named_parameters(), grads, strict=True):
        assert rec.contributions(name).shape == (T, *p.shape)
        torch.testing.assert_close(rec.contributions(name).sum(0), g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("gain", [0.8, 1.0, 1.25])
def test_linear_jacobian_norms_are_max_abs_u_to_the_lag(gain):
    """Linear φ: ∂h_t/∂h_k = diag(u)^{t-k}, so ‖·‖₂ = max|u|^{t-k} (exact, every lag) and the
    Lyapunov spectrum is {ln|u_i|} (QR from Q_0 = I keeps each axis: exponent i is ln|u_i|)."""
    model = IndRNN(IN, N, "linear", dtype=F64)
    init_model(model, "default", gain=gain, seed=7)
    u = model.weight_hh_l0.detach()
    u_max = float(u.abs().max())
    rec = gradlab.record(model, _input())
    lags = torch.arange(T, 0, -1, dtype=F64)  # k = 0..T-1 -> lag T-k
    expected = (u_max**lags).unsqueeze(1).expand(T, B)
    torch.testing.assert_close(rec.jacobian_norms(), expected, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(rec.lyapunov(n=N), u.abs().log(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
def test_pascanu_bound_is_gamma_max_abs_u_and_bounds_every_step(act):
    model = IndRNN(IN, N, act, dtype=F64)
    init_model(model, "default", gain=1.3, seed=2)
    pb = pascanu_bound(model)
    gamma = gradlab.cells.get_activation(act).theory.gamma
    assert pb.sigma_max == float(model.weight_hh_l0.detach().abs().max())
    assert pb.bound == gamma * pb.sigma_max
    norms = gradlab.record(model, 3 * _input()).step_jacobian_norms()
    assert float(norms.max()) <= pb.bound * (1 + 1e-12)


@pytest.mark.parametrize("gain", [0.5, 1.5])
def test_init_schemes_mean_what_the_docstring_says(gain):
    model = IndRNN(IN, 4000, "relu", dtype=F64)
    init_model(model, "identity", gain=gain, seed=0)
    assert torch.equal(model.weight_hh_l0, torch.full((4000,), gain, dtype=F64))
    init_model(model, "orthogonal", gain=gain, seed=0)
    u = model.weight_hh_l0
    assert (
        torch.equal(u.abs(), torch.full_like(u, gain))
        and 0.45 < float((u > 0).double().mean()) < 0.55
    )
    init_model(model, "gaussian", gain=gain, seed=0)
    assert float(model.weight_hh_l0.detach().std()) == pytest.approx(gain, rel=0.05)
    init_model(model, "default", gain=gain, seed=0)
    u = model.weight_hh_l0.detach()
    assert float(u.abs().max()) <= gain and float(u.abs().max()) > 0.99 * gain
    assert float(model.weight_ih_l0.abs().max()) <= 1 / math.sqrt(4000)


@pytest.mark.parametrize(
    ("init", "gain", "expected"),
    [
        ("identity", 0.9, math.log(0.9)),
        ("orthogonal", 1.2, math.log(1.2)),
        ("default", 1.1, math.log(1.1) - 1 / 8),
        ("gaussian", 1.0, None),
    ],
    ids=["identity", "orthogonal", "default", "gaussian"],
)
def test_theory_rate_at_init(init, gain, expected):
    config = {
        "cell": "indrnn",
        "activation": "linear",
        "init": init,
        "gain": gain,
        "hidden_size": 8,
    }
    got = theory_rate(config)
    assert got == (None if expected is None else pytest.approx(expected, abs=1e-15))
    assert theory_rate({**config, "activation": "tanh"}) is None  # φ' varies: no closed form


def test_default_init_rate_is_the_mean_log_max_abs_u():
    """ln gain - 1/N = E[ln max_i |u_i|] over the default init's draws (Monte Carlo, 5 SE)."""
    N8, gain, draws = 8, 1.1, 4000
    model = IndRNN(1, N8, "linear", dtype=F64)
    logs = []
    for seed in range(draws):
        init_model(model, "default", gain=gain, seed=seed)
        logs.append(math.log(float(model.weight_hh_l0.abs().max())))
    logs_t = torch.tensor(logs, dtype=F64)
    se = float(logs_t.std()) / math.sqrt(draws)
    predicted = theory_rate(
        {"cell": "indrnn", "activation": "linear", "hidden_size": N8, "gain": gain}
    )
    assert abs(float(logs_t.mean()) - predicted) < 5 * se


def test_indrnn_is_one_registered_cell():
    spec = get_cell("indrnn")
    assert spec.model is IndRNN and spec.takes_activation and spec.default_activation == "relu"
    model = spec.build(IN, N, None)
    assert model.weight_hh_l0.shape == (N,) and model.activation.name == "relu"
