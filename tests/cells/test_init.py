"""gradlab.cells.init_model: in place, seeded, the schemes the issue defines."""

from __future__ import annotations

import math

import pytest
import torch

import gradlab
from gradlab.cells import init_model

IN = 3
SCHEMES = ["default", "gaussian", "orthogonal", "identity"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _make(cell, N=6, dtype=torch.float64, **kw):
    cls = {"rnn": gradlab.RNN, "lstm": gradlab.LSTM, "gru": gradlab.GRU}[cell]
    return cls(IN, N, dtype=dtype, **kw)


def _recurrent(model):
    """[(name, W_hh)] for every layer and direction."""
    return [(n, p) for n, p in model.named_parameters() if n.startswith("weight_hh")]


def _blocks(W, N):
    """Split a stacked (G*N, N) recurrent weight into its G gate blocks (N, N)."""
    return [W[g * N : (g + 1) * N] for g in range(W.shape[0] // N)]


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("init", SCHEMES)
def test_shapes_dtype_and_seed(cell, init):
    if init == "identity" and cell != "rnn":
        pytest.skip("identity (IRNN) is a vanilla-RNN scheme")
    kw = dict(num_layers=2, bidirectional=True)
    a, b, c = _make(cell, **kw), _make(cell, **kw), _make(cell, **kw)
    shapes = {n: p.shape for n, p in a.named_parameters()}
    torch.manual_seed(123)  # the global RNG must not matter
    init_model(a, init=init, seed=7)
    torch.manual_seed(999)
    init_model(b, init=init, seed=7)
    init_model(c, init=init, seed=8)
    pa, pb, pc = _params(a), _params(b), _params(c)
    assert {n: p.shape for n, p in pa.items()} == shapes
    for n in pa:
        assert pa[n].dtype == torch.float64
        assert torch.isfinite(pa[n]).all()
        assert torch.equal(pa[n], pb[n]), f"same seed, different {n}"
    # a different seed changes the weights (identity fixes W_hh; the rest still moves)
    assert any(not torch.equal(pa[n], pc[n]) for n in pa), "different seed, same weights"
    if init != "identity":
        for n, _ in _recurrent(a):
            assert not torch.equal(pa[n], pc[n]), n


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("gain", [0.5, 1.5])
def test_gaussian_variance(cell, gain):
    N = 256 if cell == "rnn" else 128
    model = _make(cell, N=N, num_layers=2)
    init_model(model, init="gaussian", gain=gain, seed=3)
    target = gain**2 / N
    for name, W in _recurrent(model):
        assert W.shape == (GATES[cell] * N, N)
        for g, block in enumerate(_blocks(W.detach(), N)):
            n_el = block.numel()
            var = float(block.var())
            # sample variance of n_el normals: relative sd sqrt(2 / n_el) (< 1.2% here)
            assert abs(var / target - 1) < 6 * math.sqrt(2 / n_el), (name, g, var, target)
            assert abs(float(block.mean())) < 6 * math.sqrt(target / n_el), (name, g)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("gain", [1.0, 0.9, 1.7])
def test_orthogonal(cell, gain):
    N = 16
    model = _make(cell, N=N, num_layers=2, bidirectional=True)
    init_model(model, init="orthogonal", gain=gain, seed=5)
    eye = torch.eye(N, dtype=torch.float64)
    for name, W in _recurrent(model):
        for g, block in enumerate(_blocks(W.detach(), N)):
            torch.testing.assert_close(
                block @ block.T, gain**2 * eye, rtol=0, atol=1e-10, msg=f"{name} block {g}"
            )


@pytest.mark.parametrize("gain", [1.0, 0.5, 2.0])
def test_identity(gain):
    N = 8
    model = _make("rnn", N=N, num_layers=2, bidirectional=True, activation="relu")
    init_model(model, init="identity", gain=gain, seed=1)
    for name, W in _recurrent(model):
        assert torch.equal(W.detach(), gain * torch.eye(N, dtype=torch.float64)), name
    for name, b in model.named_parameters():
        if name.startswith("bias_hh"):
            assert torch.equal(b.detach(), torch.zeros_like(b)), name


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_default_is_torch_uniform(cell):
    N = 64
    model = _make(cell, N=N, num_layers=2, bidirectional=True)
    init_model(model, init="default", seed=2)
    bound = 1 / math.sqrt(N)
    allp = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float(allp.abs().max()) <= bound
    assert float(allp.abs().max()) > 0.95 * bound  # it fills the interval
    # uniform(-a, a) has variance a^2 / 3
    assert abs(float(allp.var()) / (bound**2 / 3) - 1) < 0.05
    # and the call is the default
    other = _make(cell, N=N, num_layers=2, bidirectional=True)
    init_model(other, seed=2)
    for (n, p), q in zip(model.named_parameters(), other.parameters(), strict=True):
        assert torch.equal(p, q), n


@pytest.mark.parametrize("init", ["default", "gaussian", "orthogonal"])
@pytest.mark.parametrize("value", [1.0, 3.0, -2.0])
def test_forget_bias(init, value):
    N = 5
    model = _make("lstm", N=N, num_layers=2, bidirectional=True)
    init_model(model, init=init, seed=4, forget_bias=value)
    sfxs = [f"_l{layer}{r}" for layer in range(2) for r in ("", "_reverse")]
    for sfx in sfxs:
        b_ih = getattr(model, "bias_ih" + sfx).detach()
        b_hh = getattr(model, "bias_hh" + sfx).detach()
        total = b_ih[N : 2 * N] + b_hh[N : 2 * N]  # gate order i, f, g, o
        torch.testing.assert_close(total, torch.full((N,), value, dtype=torch.float64))
    # only the forget gate is set: the same seed without forget_bias gives the other gates
    plain = _make("lstm", N=N, num_layers=2, bidirectional=True)
    init_model(plain, init=init, seed=4)
    for sfx in sfxs:
        for kind in ("bias_ih", "bias_hh"):
            got, ref = getattr(model, kind + sfx).detach(), getattr(plain, kind + sfx).detach()
            for gate in (0, 2, 3):
                sl = slice(gate * N, (gate + 1) * N)
                torch.testing.assert_close(got[sl], ref[sl], rtol=0, atol=0)


@pytest.mark.parametrize("init", ["default", "gaussian", "orthogonal"])
@pytest.mark.parametrize("value", [1.0, -1.5])
def test_update_bias(init, value):
    N = 5
    model = _make("gru", N=N, num_layers=2)
    init_model(model, init=init, seed=4, update_bias=value)
    for layer in range(2):
        b_ih = getattr(model, f"bias_ih_l{layer}").detach()
        b_hh = getattr(model, f"bias_hh_l{layer}").detach()
        total = b_ih[N : 2 * N] + b_hh[N : 2 * N]  # gate order r, z, n
        torch.testing.assert_close(total, torch.full((N,), value, dtype=torch.float64))


def test_unknown_scheme_rejected():
    model = _make("rnn")
    with pytest.raises((ValueError, KeyError)) as ei:
        init_model(model, init="xavier-ish")
    assert "orthogonal" in str(ei.value)


def test_float32_model():
    model = _make("gru", N=32, dtype=torch.float32)
    init_model(model, init="orthogonal", gain=1.0, seed=0)
    W = model.weight_hh_l0.detach()
    assert W.dtype == torch.float32
    for block in _blocks(W, 32):
        torch.testing.assert_close(block @ block.T, torch.eye(32), rtol=0, atol=1e-5)
