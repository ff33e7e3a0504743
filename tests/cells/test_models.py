"""gradlab.RNN / LSTM / GRU and from_torch: torch's parameters, torch's equations."""

from __future__ import annotations

import itertools

import pytest
import torch

import gradlab

T, B, N, IN = 5, 3, 4, 3
TORCH_CLS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
TORCH_CELL_ACTS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)]
ACTIVATION_NAMES = ("tanh", "relu", "sigmoid", "linear")


def _cid(cell, act):
    return f"{cell}-{act}" if act else cell


def _gradlab_cls(cell):
    return {"rnn": gradlab.RNN, "lstm": gradlab.LSTM, "gru": gradlab.GRU}[cell]


FROM_TORCH_GRID = [
    pytest.param(
        cell,
        act,
        L,
        bi,
        bf,
        dtype,
        id=f"{_cid(cell, act)}-L{L}-{'bi' if bi else 'uni'}-{'bf' if bf else 'tm'}-"
        f"{str(dtype).removeprefix('torch.')}",
    )
    for (cell, act) in TORCH_CELL_ACTS
    for L, bi, bf, dtype in itertools.product(
        [1, 2], [False, True], [False, True], [torch.float32, torch.float64]
    )
]


@pytest.mark.parametrize(("cell", "act", "L", "bi", "bf", "dtype"), FROM_TORCH_GRID)
def test_from_torch_same_outputs(helpers, cell, act, L, bi, bf, dtype):
    m = helpers.build("torch", cell, act, num_layers=L, bidirectional=bi, batch_first=bf,
                      dtype=dtype, seed=3)  # fmt: skip
    g = gradlab.from_torch(m)
    assert isinstance(g, _gradlab_cls(cell))
    assert isinstance(g, TORCH_CLS[cell])
    assert g.cell == cell
    if cell == "rnn":
        assert g.activation.name == act
    else:
        assert g.activation is None
    assert (g.num_layers, g.bidirectional, g.batch_first) == (L, bi, bf)
    assert (g.input_size, g.hidden_size) == (IN, N)
    gp, mp = dict(g.named_parameters()), dict(m.named_parameters())
    assert list(gp) == list(mp)
    for name, p in mp.items():
        assert gp[name].dtype == dtype
        assert torch.equal(gp[name], p), name

    x = helpers.make_input(T, B, IN, batch_first=bf, dtype=dtype)
    h0 = helpers.make_h0(m, B)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for args in [(x,), (x, h0)]:
        out_g, hn_g = g(*args)
        out_m, hn_m = m(*args)
        assert out_g.dtype == dtype
        torch.testing.assert_close(out_g, out_m, **tol)
        if cell == "lstm":
            torch.testing.assert_close(hn_g[0], hn_m[0], **tol)
            torch.testing.assert_close(hn_g[1], hn_m[1], **tol)
        else:
            torch.testing.assert_close(hn_g, hn_m, **tol)


@pytest.mark.parametrize(
    "module",
    [
        torch.nn.Linear(3, 4),
        torch.nn.RNNCell(3, 4),
        torch.nn.Sequential(torch.nn.RNN(3, 4)),
    ],
    ids=["linear", "rnncell", "sequential"],
)
def test_from_torch_rejects_unsupported(module):
    with pytest.raises(TypeError) as ei:
        gradlab.from_torch(module)
    msg = str(ei.value)
    for supported in ("RNN", "LSTM", "GRU"):
        assert supported in msg, msg


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("L", "bi", "bias"), [(1, False, True), (2, True, True), (3, True, False)])
def test_parameter_names_and_shapes_are_torchs(cell, L, bi, bias):
    kw = dict(num_layers=L, bidirectional=bi, bias=bias)
    g = _gradlab_cls(cell)(IN, N, **kw)
    m = TORCH_CLS[cell](IN, N, **kw)
    assert [(n, p.shape) for n, p in g.named_parameters()] == [
        (n, p.shape) for n, p in m.named_parameters()
    ]
    assert next(g.parameters()).dtype == torch.float32
    g64 = _gradlab_cls(cell)(IN, N, dtype=torch.float64, **kw)
    assert all(p.dtype == torch.float64 for p in g64.parameters())


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_model_attributes(cell):
    g = _gradlab_cls(cell)(IN, N)
    assert g.cell == cell
    if cell == "rnn":
        assert g.activation.name == "tanh"  # default
    else:
        assert g.activation is None
    x = torch.randn(T, B, IN)
    out, hn = g(x)
    assert out.shape == (T, B, N)
    if cell == "lstm":
        h, c = hn
        assert h.shape == c.shape == (1, B, N)
    else:
        assert hn.shape == (1, B, N)


@pytest.mark.parametrize("act", ACTIVATION_NAMES)
def test_rnn_activation_attribute(act):
    g = gradlab.RNN(IN, N, activation=act)
    assert g.cell == "rnn"
    assert g.activation.name == act


@pytest.mark.parametrize("act", ["sigmoid", "linear", "tanh", "relu"])
@pytest.mark.parametrize("bf", [False, True], ids=["tm", "bf"])
def test_rnn_forward_matches_explicit_loop(helpers, act, bf):
    fn = {"sigmoid": torch.sigmoid, "linear": lambda a: a, "tanh": torch.tanh, "relu": torch.relu}
    L, D = 2, 2
    g = helpers.build("gradlab", "rnn", act, num_layers=L, bidirectional=True, batch_first=bf,
                      seed=4)  # fmt: skip
    x = helpers.make_input(T, B, IN, batch_first=bf)
    h0 = helpers.make_h0(g, B)
    out, hn = g(x, h0)
    # explicit loop, time-major
    seq = x.transpose(0, 1) if bf else x
    hn_expected = []
    with torch.no_grad():
        for layer in range(L):
            outs = []
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w_ih, w_hh = getattr(g, "weight_ih" + sfx), getattr(g, "weight_hh" + sfx)
                b_ih, b_hh = getattr(g, "bias_ih" + sfx), getattr(g, "bias_hh" + sfx)
                h = h0[layer * D + d]
                hs = [None] * T
                for t in range(T - 1, -1, -1) if d else range(T):
                    h = fn[act](seq[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
                    hs[t] = h
                outs.append(torch.stack(hs))
                hn_expected.append(h)
            seq = torch.cat(outs, -1)
    expected = seq.transpose(0, 1) if bf else seq
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hn, torch.stack(hn_expected), rtol=1e-12, atol=1e-12)
    # and it is differentiable by autograd
    loss = g(x, h0)[0].pow(2).sum()
    grads = torch.autograd.grad(loss, list(g.parameters()))
    assert all(torch.isfinite(gr).all() for gr in grads)


def test_unknown_activation_lists_allowed():
    with pytest.raises(ValueError) as ei:
        gradlab.RNN(IN, N, activation="no-such-activation")
    msg = str(ei.value)
    for name in ACTIVATION_NAMES:
        assert name in msg, msg


@pytest.mark.parametrize("act", ACTIVATION_NAMES)
def test_activation_registry(act):
    from gradlab.cells import ACTIVATIONS

    a_obj = ACTIVATIONS[act]
    assert a_obj.name == act
    a = torch.linspace(-3, 3, 61, dtype=torch.float64)
    a = a[a.abs() > 1e-3]  # relu has no derivative at 0
    a.requires_grad_(True)
    h = a_obj.fn(a)
    expected_fn = {
        "tanh": torch.tanh,
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "linear": lambda v: v,
    }[act]
    torch.testing.assert_close(h, expected_fn(a), rtol=1e-14, atol=1e-15)
    (dh,) = torch.autograd.grad(h.sum(), a)
    deriv = torch.as_tensor(a_obj.derivative(a.detach(), h.detach()))
    torch.testing.assert_close(deriv.expand_as(dh).to(dh.dtype), dh, rtol=1e-12, atol=1e-14)
    expected_bounds = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "linear": None}
    if act in expected_bounds:
        b = a_obj.bounds
        assert (None if b is None else tuple(float(v) for v in b)) == expected_bounds[act]


@pytest.mark.parametrize("bi", [False, True], ids=["uni", "bi"])
def test_from_torch_keeps_proj_size(bi):
    torch.manual_seed(0)
    m = torch.nn.LSTM(IN, N, num_layers=2, proj_size=2, bidirectional=bi, dtype=torch.float64)
    g = gradlab.from_torch(m)
    assert g.proj_size == 2 and g.output_size == 2 and g.state_size == 2 + N
    x = torch.randn(T, B, IN, dtype=torch.float64)
    for got, want in zip(
        torch.utils._pytree.tree_leaves(g(x)), torch.utils._pytree.tree_leaves(m(x)), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("cls", [torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU])
def test_from_torch_refuses_dropout_between_layers(cls):
    with pytest.raises(ValueError, match=r"dropout=0.3.*module="):
        gradlab.from_torch(cls(IN, N, num_layers=2, dropout=0.3))
    gradlab.from_torch(cls(IN, N, num_layers=2, dropout=0.0).eval())  # nothing to drop
