"""The slow twin (gradlab._reference) is itself checked against torch, autograd and algebra.

Only plain torch.nn modules and hand-written loops are used here, so these tests stand on their
own whatever state the fast engine is in (cells torch has no module for, such as IndRNN, are
read from gradlab models for their weights only: their step is the registry's reference step).
"""

from __future__ import annotations

import itertools
import types

import pytest
import torch
from cell_cases import CELL_ACTS

from gradlab import _reference as ref
from gradlab.cells import get_cell

T, B, N, IN = 6, 3, 4, 3
TORCH_CELL_ACTS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)]
SHAPES = list(itertools.product([1, 2], [False, True], [False, True]))  # layers, bi, bf


def _cid(cell, act):
    return f"{cell}-{act}" if act else cell


def _sid(L, bi, bf):
    return f"L{L}-{'bi' if bi else 'uni'}-{'bf' if bf else 'tm'}"


GRID = [
    pytest.param(cell, act, L, bi, bf, id=f"{_cid(cell, act)}-{_sid(L, bi, bf)}")
    for (cell, act) in TORCH_CELL_ACTS
    for (L, bi, bf) in SHAPES
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(single_thread):
    """See conftest.single_thread: tiny tensors, loaded machine."""


def close(a, b, rtol=1e-12, atol=1e-12):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------
# forward and gradients vs torch.nn
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_h0", [False, True], ids=["h0none", "h0"])
@pytest.mark.parametrize(("cell", "act", "L", "bi", "bf"), GRID)
def test_forward_matches_torch(torch_model, helpers, cell, act, L, bi, bf, with_h0):
    m = torch_model(cell, act, num_layers=L, bidirectional=bi, batch_first=bf)
    x = helpers.make_input(T, B, IN, batch_first=bf)
    h0 = helpers.make_h0(m, B) if with_h0 else None
    out, hn = m(x, h0)
    r = ref.reference_record(m, x, None, h0)
    close(r.output, out)
    D = 2 if bi else 1
    for layer in range(L):
        for d in range(D):
            e = r[(layer, d == 1)]
            hn_t, cn_t = hn if cell == "lstm" else (hn, None)
            close(e["hidden"][T], hn_t[layer * D + d])
            if cell == "lstm":
                close(e["cell"][T], cn_t[layer * D + d])
            else:
                assert e["cell"] is None
            # initial state is h0 (or zeros)
            h0_h = (h0[0] if cell == "lstm" else h0) if with_h0 else torch.zeros(L * D, B, N)
            close(e["hidden"][0], h0_h[layer * D + d].double())
    # top layer's per-direction states are the output (reverse: hidden[s] is output at T - s)
    out_tm = out.transpose(0, 1) if bf else out
    top_f = r[(L - 1, False)]["hidden"]
    close(top_f[1:], out_tm[..., :N])
    if bi:
        top_r = r[(L - 1, True)]["hidden"]
        for s in range(1, T + 1):
            close(top_r[s], out_tm[T - s, :, N:])


@pytest.mark.parametrize("kind", ["m2o", "m2m"])
@pytest.mark.parametrize(("cell", "act", "L", "bi", "bf"), GRID)
def test_contributions_sum_to_autograd(torch_model, helpers, cell, act, L, bi, bf, kind):
    m = torch_model(cell, act, num_layers=L, bidirectional=bi, batch_first=bf)
    x = helpers.make_input(T, B, IN, batch_first=bf)
    h0 = helpers.make_h0(m, B)
    h0_leaf = (
        tuple(h.clone().requires_grad_(True) for h in h0)
        if cell == "lstm"
        else h0.clone().requires_grad_(True)
    )
    D = 2 if bi else 1
    loss_fn = helpers.make_loss(kind, D * N, bf)
    loss = loss_fn(m(x, h0_leaf)[0])
    names = [n for n, _ in m.named_parameters()]
    leaves = [*m.parameters(), *(h0_leaf if cell == "lstm" else (h0_leaf,))]
    grads = torch.autograd.grad(loss, leaves)
    g = dict(zip(names, grads, strict=False))

    r = ref.reference_record(m, x, loss_fn, h0)
    assert r.loss == pytest.approx(float(loss.detach()), rel=1e-12)
    for layer in range(L):
        for d in range(D):
            e = r[(layer, d == 1)]
            for short, c in e["contributions"].items():
                name = ref.full_name(short, layer, d == 1)
                assert c.shape == (T, *g[name].shape)
                close(c.sum(0), g[name], rtol=1e-10, atol=1e-12)
            # dL/dh_0 (and dL/dc_0) of every layer/direction is the h0 gradient
            gh0 = grads[len(names)][layer * D + d]
            close(e["grad_hidden"][0], gh0, rtol=1e-10, atol=1e-12)
            if cell == "lstm":
                close(e["grad_cell"][0], grads[len(names) + 1][layer * D + d], 1e-10, 1e-12)


@pytest.mark.parametrize("kind", ["m2o", "m2m"])
@pytest.mark.parametrize(("cell", "act"), TORCH_CELL_ACTS, ids=[_cid(*c) for c in TORCH_CELL_ACTS])
def test_grad_hidden_is_total_adjoint(torch_model, helpers, cell, act, kind):
    """grad_state[t-1] = direct_{t-1} + J_tᵀ grad_state[t]; direct_t = dL/d(output at t)."""
    m = torch_model(cell, act)
    x = helpers.make_input(T, B, IN)
    loss_fn = helpers.make_loss(kind, N, False)
    r = ref.reference_record(m, x, loss_fn)
    e = r[(0, False)]
    out = r.output.clone().requires_grad_(True)
    (direct,) = torch.autograd.grad(loss_fn(out), out)  # (T, B, N): dL/dh_t, t = 1..T
    J = ref.reference_step_jacobians(m, 0, False, e["states"], e["inputs"])
    gs = e["grad_state"]
    S = gs.shape[-1]
    direct_s = torch.zeros(T + 1, B, S, dtype=torch.float64)
    direct_s[1:, :, :N] = direct
    close(gs[T], direct_s[T], 1e-10, 1e-12)
    for t in range(T, 0, -1):
        expect = direct_s[t - 1] + torch.einsum("bi,bij->bj", gs[t], J[t - 1])
        close(gs[t - 1], expect, 1e-10, 1e-12)


@pytest.mark.parametrize("kind", ["m2o", "m2m"])
def test_lstm_grad_cell_is_total(torch_model, helpers, kind):
    """total dL/dc_t = (state-space adjoint of c_t) + dL/dh_t ⊙ o_t ⊙ (1 - tanh² c_t)."""
    m = torch_model("lstm", None, num_layers=2)
    x = helpers.make_input(T, B, IN)
    r = ref.reference_record(m, x, helpers.make_loss(kind, N, False), helpers.make_h0(m, B))
    for e in r.values():
        c, o, gh = e["cell"], e["gates"]["o"], e["grad_hidden"]
        via_h = gh[1:] * o * (1 - torch.tanh(c[1:]) ** 2)
        close(e["grad_cell"][1:], e["grad_state"][1:, :, N:] + via_h, 1e-10, 1e-13)
        close(e["grad_cell"][0], e["grad_state"][0, :, N:], 0, 0)
        close(e["grad_hidden"], e["grad_state"][..., :N], 0, 0)


def test_no_loss_gives_forward_only(torch_model, helpers):
    m = torch_model("lstm", None)
    r = ref.reference_record(m, helpers.make_input(T, B, IN))
    e = r[(0, False)]
    assert r.loss is None
    assert e["grad_hidden"] is None and e["contributions"] is None
    assert e["hidden"].shape == (T + 1, B, N) and e["cell"].shape == (T + 1, B, N)
    assert set(e["gates"]) == {"i", "f", "g", "o"}
    assert all(v.shape == (T, B, N) for v in e["gates"].values())


def test_non_scalar_loss_rejected(torch_model, helpers):
    m = torch_model("gru", None)
    with pytest.raises(ValueError, match="scalar"):
        ref.reference_record(m, helpers.make_input(T, B, IN), lambda out: out.sum(0))


@pytest.mark.parametrize("bias", [True, False])
def test_bias_false(torch_model, helpers, bias):
    m = torch_model("gru", None, bias=bias, num_layers=2)
    x = helpers.make_input(T, B, IN)
    loss_fn = helpers.make_loss("m2m", N, False)
    r = ref.reference_record(m, x, loss_fn)
    close(r.output, m(x)[0])
    grads = torch.autograd.grad(loss_fn(m(x)[0]), list(m.parameters()))
    for (name, _), g in zip(m.named_parameters(), grads, strict=True):
        short, layer = name.rsplit("_l", 1)
        close(r[(int(layer), False)]["contributions"][short].sum(0), g, 1e-10, 1e-12)
    assert set(r[(0, False)]["contributions"]) == (
        {"weight_ih", "weight_hh", "bias_ih", "bias_hh"} if bias else {"weight_ih", "weight_hh"}
    )


# ---------------------------------------------------------------------------------------------
# activations torch has no kernel for: an explicit loop with autograd on the real parameters
# ---------------------------------------------------------------------------------------------
def _fake_rnn(act: str, **kw) -> torch.nn.RNN:
    """An nn.RNN that *declares* another activation (as gradlab.RNN does)."""
    nl = act if act in ("tanh", "relu") else "tanh"  # torch's kernel is only used for these
    m = torch.nn.RNN(IN, N, nonlinearity=nl, dtype=torch.float64, **kw)
    m.activation = types.SimpleNamespace(name=act)
    m.cell = "rnn"
    return m


@pytest.mark.parametrize("act", ["sigmoid", "linear", "tanh", "relu"])
@pytest.mark.parametrize("bi", [False, True], ids=["uni", "bi"])
def test_other_activations_explicit_loop(helpers, act, bi):
    m = helpers.randomize_(_fake_rnn(act, num_layers=2, bidirectional=bi), seed=5)
    fn = {
        "sigmoid": torch.sigmoid,
        "linear": lambda a: a,
        "tanh": torch.tanh,
        "relu": torch.relu,
    }[act]
    x = helpers.make_input(T, B, IN)
    D = 2 if bi else 1
    layer_in = x
    for layer in range(2):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = getattr(m, "weight_ih" + sfx), getattr(m, "weight_hh" + sfx)
            b = getattr(m, "bias_ih" + sfx) + getattr(m, "bias_hh" + sfx)
            h = torch.zeros(B, N, dtype=torch.float64)
            hs = [None] * T
            order = range(T - 1, -1, -1) if d else range(T)
            for t in order:
                h = fn(layer_in[t] @ w_ih.T + h @ w_hh.T + b)
                hs[t] = h
            outs.append(torch.stack(hs))
        layer_in = torch.cat(outs, -1)
    loss_fn = helpers.make_loss("m2m", D * N, False)
    loss = loss_fn(layer_in)
    grads = dict(
        zip(
            [n for n, _ in m.named_parameters()],
            torch.autograd.grad(loss, list(m.parameters())),
            strict=True,
        )
    )
    r = ref.reference_record(m, x, loss_fn)
    close(r.output, layer_in.detach())
    if act in ("tanh", "relu"):  # torch's own kernel agrees too
        close(r.output, m(x)[0].detach())
    for (layer, rev), e in r.items():
        for short, c in e["contributions"].items():
            close(c.sum(0), grads[ref.full_name(short, layer, rev)], 1e-10, 1e-12)


# ---------------------------------------------------------------------------------------------
# Jacobians
# ---------------------------------------------------------------------------------------------
# torch's cells and activations, plus every registered cell torch has no module for (IndRNN).
ALL_CELL_ACTS = [
    *TORCH_CELL_ACTS,
    ("rnn", "sigmoid"),
    ("rnn", "linear"),
    *[(cell, act) for cell, act in CELL_ACTS if not get_cell(cell).torch_classes],
]


def _model(helpers, cell, act, **kw):
    if not get_cell(cell).torch_classes:  # only its weights are read: the step is the spec's
        return helpers.build("gradlab", cell, act, **kw)
    if act in ("sigmoid", "linear"):
        gain = kw.pop("gain", 1.0)
        return helpers.randomize_(_fake_rnn(act, **kw), seed=0, gain=gain)
    return helpers.build("torch", cell, act, **kw)


@pytest.mark.parametrize(("cell", "act"), ALL_CELL_ACTS, ids=[_cid(*c) for c in ALL_CELL_ACTS])
def test_step_jacobian_finite_differences(helpers, cell, act):
    m = _model(helpers, cell, act, num_layers=2, bidirectional=True)
    x = helpers.make_input(T, B, IN)
    r = ref.reference_record(m, x, None, helpers.make_h0(m, B))
    spec = ref.model_spec(m)
    for (layer, rev), e in r.items():
        st, xs = e["states"], e["inputs"]
        p = ref.layer_params(m, layer, rev)
        all_J = ref.reference_step_jacobians(m, layer, rev, st, xs)
        for t in (1, 3, T):
            J = ref.reference_step_jacobian(m, layer, rev, st, xs, t)
            close(J, all_J[t - 1], 1e-14, 1e-14)
            S = st.shape[-1]
            fd = torch.empty_like(J)
            h = 1e-6
            for j in range(S):
                dv = torch.zeros(S, dtype=torch.float64)
                dv[j] = h
                plus = ref.cell_step(spec, p, xs[t - 1], st[t - 1] + dv)[0]
                minus = ref.cell_step(spec, p, xs[t - 1], st[t - 1] - dv)[0]
                fd[:, :, j] = (plus - minus) / (2 * h)
            close(J, fd, rtol=1e-6, atol=1e-8)


def test_step_jacobian_tanh_closed_form(helpers):
    """Vanilla tanh RNN: ds_t/ds_{t-1} = diag(1 - h_t²) W_hh."""
    m = helpers.build("torch", "rnn", "tanh", gain=1.5)
    x = helpers.make_input(T, B, IN)
    e = ref.reference_record(m, x)[(0, False)]
    J = ref.reference_step_jacobians(m, 0, False, e["states"], e["inputs"])
    W = m.weight_hh_l0.detach()
    h = e["hidden"]
    for t in range(1, T + 1):
        close(J[t - 1], (1 - h[t] ** 2)[:, :, None] * W[None], 1e-13, 1e-14)


@pytest.mark.parametrize(("cell", "act"), ALL_CELL_ACTS, ids=[_cid(*c) for c in ALL_CELL_ACTS])
def test_long_jacobian_three_ways(helpers, cell, act):
    """jacrev of s_k -> s_t == perturbation jacrev == product of step Jacobians."""
    m = _model(helpers, cell, act, num_layers=2, bidirectional=True, batch_first=True)
    x = helpers.make_input(T, B, IN, batch_first=True)
    r = ref.reference_record(m, x)
    for (layer, rev), e in r.items():
        st, xs = e["states"], e["inputs"]
        steps = ref.reference_step_jacobians(m, layer, rev, st, xs)
        S = st.shape[-1]
        for t in (T, 4):
            all_k = ref.reference_jacobians_to(m, layer, rev, st, xs, t)
            assert all_k.shape == (t + 1, B, S, S)
            prod = torch.eye(S, dtype=torch.float64).expand(B, S, S)
            for k in range(t, -1, -1):
                if k < t:
                    prod = prod @ steps[k]  # ds_t/ds_k = ds_t/ds_{k+1} · J_{k+1}
                direct = ref.reference_jacobian(m, layer, rev, st, xs, t, k)
                close(direct, prod, 1e-12, 1e-14)
                close(all_k[k], direct, 1e-12, 1e-14)
    with pytest.raises(ValueError):
        ref.reference_jacobian(m, 0, False, st, xs, 2, 3)


@pytest.mark.parametrize(("cell", "act"), ALL_CELL_ACTS, ids=[_cid(*c) for c in ALL_CELL_ACTS])
def test_lyapunov_identities(helpers, cell, act):
    m = _model(helpers, cell, act, gain=1.3)
    if act == "relu":  # keep every unit alive so that no J_t is singular (log 0)
        with torch.no_grad():
            m.bias_ih_l0.add_(3.0)
            if m.weight_hh_l0.dim() == 1:  # a diagonal recurrence (IndRNN): u >= 0 as well
                m.weight_hh_l0.abs_()
    x = helpers.make_input(12, B, IN)
    e = ref.reference_record(m, x, None, helpers.make_h0(m, B))[(0, False)]
    st, xs = e["states"], e["inputs"]
    J = ref.reference_step_jacobians(m, 0, False, st, xs)
    S = st.shape[-1]
    # n = S: the exponents sum to the mean log|det J_t|
    for burn in (0, 3):
        lam = ref.reference_lyapunov(m, 0, False, st, xs, n=S, burn_in=burn)
        assert lam.shape == (S,)
        logdet = torch.linalg.slogdet(J[burn:]).logabsdet.mean()
        assert float(lam.sum()) == pytest.approx(float(logdet), rel=1e-9, abs=1e-9)
        # descending (up to the finite-time noise the QR method allows, it is sorted for these)
        # n = 1: power iteration with renormalisation
        v = torch.zeros(B, S, dtype=torch.float64)
        v[:, 0] = 1.0
        logs = []
        for t in range(1, J.shape[0] + 1):
            w = torch.einsum("bij,bj->bi", J[t - 1], v)
            nrm = w.norm(dim=-1)
            v = w / nrm[:, None]
            if t > burn:
                logs.append(torch.log(nrm))
        lam1 = ref.reference_lyapunov(m, 0, False, st, xs, n=1, burn_in=burn)
        assert lam1.shape == (1,)
        close(lam1[0], torch.stack(logs).mean(0).mean(0), 1e-10, 1e-12)
        # the first of n exponents does not depend on n
        close(lam[0], lam1[0], 1e-10, 1e-12)


def test_hidden_stats_definitions():
    spec = ref.ModelSpec("rnn", "tanh", 1, 2, 1, 1, True, False)
    h = torch.tensor([[[0.0, 0.985]], [[-0.99, 0.5]], [[0.97, -0.97]]], dtype=torch.float64)
    s = ref.reference_hidden_stats(spec, h)
    close(s["saturation"], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    close(s["mean_abs"], torch.tensor([0.4925, 0.745, 0.97], dtype=torch.float64))
    close(s["dead"], torch.zeros(3, dtype=torch.float64))
    relu = ref.ModelSpec("rnn", "relu", 1, 2, 1, 1, True, False)
    s = ref.reference_hidden_stats(relu, torch.tensor([[[0.0, 5.0]]], dtype=torch.float64))
    assert float(s["dead"][0]) == 0.5 and float(s["saturation"][0]) == 0.0
    sig = ref.ModelSpec("rnn", "sigmoid", 1, 2, 1, 1, True, False)
    s = ref.reference_hidden_stats(sig, torch.tensor([[[0.005, 0.5]]], dtype=torch.float64))
    assert float(s["saturation"][0]) == 0.5


@pytest.mark.parametrize("act", ["tanh", "relu", "linear"])
def test_indrnn_step_jacobian_is_diagonal(helpers, act):
    """IndRNN: ds_t/ds_{t-1} = diag(φ'(a_t) ⊙ u), a_t = W_ih x_t + b + u ⊙ h_{t-1} (autograd)."""
    m = helpers.build("gradlab", "indrnn", act, gain=1.5)
    x = helpers.make_input(T, B, IN)
    e = ref.reference_record(m, x)[(0, False)]
    J = ref.reference_step_jacobians(m, 0, False, e["states"], e["inputs"])
    u = m.weight_hh_l0.detach()
    h, xs = e["hidden"], e["inputs"]
    for t in range(1, T + 1):
        a = (xs[t - 1] @ m.weight_ih_l0.detach().T + m.bias_ih_l0.detach() + m.bias_hh_l0.detach()
             + u * h[t - 1])  # fmt: skip
        slope = {"tanh": 1 - torch.tanh(a) ** 2, "relu": (a > 0).double(), "linear": 1 + 0 * a}
        close(J[t - 1], torch.diag_embed(slope[act] * u), 1e-13, 1e-14)
