"""The recording engine (gradlab.record) against its slow twin (gradlab._reference).

One grid of settings, cell x activation x layers x direction x batch_first x loss kind, ids like
``rnn-tanh-L2-bi-bf-m2m`` ("tm" = time-major input). The many-to-many cases also pass a random h0
(the many-to-one cases use h0=None), so both paths are covered. Every quantity the Recording
exposes is compared in float64 for every layer and direction.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import warnings

import pytest
import torch
from cell_cases import CELL_ACTS  # every registered cell x built-in activation

import gradlab
from gradlab import _reference as ref
from gradlab.cells import cells, get_cell

T, B, N, IN = 6, 3, 4, 3
RTOL, ATOL = 1e-9, 1e-11

GATE_NAMES = {spec.name: set(spec.gate_names) for spec in cells()}
HAS_CELL_STATE = {spec.name for spec in cells() if spec.has_cell_state}


def _cid(cell, act):
    return f"{cell}-{act}" if act else cell


CASES = [
    pytest.param(
        (cell, act, L, bi, bf, kind),
        id=f"{_cid(cell, act)}-L{L}-{'bi' if bi else 'uni'}-{'bf' if bf else 'tm'}-{kind}",
    )
    for (cell, act) in CELL_ACTS
    for L, bi, bf, kind in itertools.product([1, 2], [False, True], [False, True], ["m2o", "m2m"])
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(single_thread):
    """See conftest.single_thread: tiny tensors, loaded machine."""


def close(actual, expected, rtol=RTOL, atol=ATOL, msg=None):
    """assert_close in float64; ``msg`` labels the failure (torch's details are kept)."""
    actual = torch.as_tensor(actual)
    expected = torch.as_tensor(expected)
    torch.testing.assert_close(
        actual.to(torch.float64),
        expected.to(torch.float64),
        rtol=rtol,
        atol=atol,
        msg=None if msg is None else (lambda m: f"{msg}: {m}"),
    )


class Case:
    """Everything one grid point needs; the engine's record is made lazily (so a failure in the
    engine is a test failure, not a fixture error)."""

    def __init__(self, params, helpers):
        cell, act, L, bi, bf, kind = params
        self.cell, self.act, self.L, self.bf, self.kind = cell, act, L, bf, kind
        self.D = 2 if bi else 1
        self.model = helpers.build("gradlab", cell, act, num_layers=L, bidirectional=bi,
                                   batch_first=bf, seed=11)  # fmt: skip
        if act == "relu":  # keep most units alive so Lyapunov exponents stay finite
            # (a diagonal recurrence such as IndRNN's loses a direction whenever one unit is off,
            # so it needs every unit alive: non-negative recurrent and upper-layer input weights)
            diagonal = self.model.weight_hh_l0.dim() == 1
            with torch.no_grad():
                for layer in range(L):
                    for sfx in ["", "_reverse"][: self.D]:
                        getattr(self.model, f"bias_ih_l{layer}{sfx}").add_(3.0 if diagonal else 0.5)
                        if diagonal:
                            getattr(self.model, f"weight_hh_l{layer}{sfx}").abs_()
                            if layer > 0:
                                getattr(self.model, f"weight_ih_l{layer}{sfx}").abs_()
        self.x = helpers.make_input(T, B, IN, batch_first=bf, seed=12)
        self.h0 = helpers.make_h0(self.model, B, seed=13) if kind == "m2m" else None
        self.loss_fn = helpers.make_loss(kind, self.D * N, bf, seed=14)
        self.ref = ref.reference_record(self.model, self.x, self.loss_fn, self.h0)

    @functools.cached_property
    def rec(self):
        return gradlab.record(self.model, self.x, self.loss_fn, h0=self.h0)

    def keys(self):
        return [(layer, d == 1) for layer in range(self.L) for d in range(self.D)]

    def view(self, layer, reverse):
        return self.rec.layer(layer, reverse=reverse)

    @functools.cache  # noqa: B019 - one Case per grid point, lives for the module
    def jac(self, key):
        """Reference Jacobian tables for one layer/direction."""
        e = self.ref[key]
        st, xs = e["states"], e["inputs"]
        args = (self.model, *key, st, xs)
        return {
            "step": ref.reference_step_jacobians(*args),  # (T, B, S, S), index t-1
            "to_T": ref.reference_jacobians_to(*args, T),  # (T+1, B, S, S), index k
            "to_3": ref.reference_jacobians_to(*args, 3),
        }


@pytest.fixture(scope="module", params=CASES)
def case(request, helpers):
    return Case(request.param, helpers)


# ---------------------------------------------------------------------------------------------
# forward trace
# ---------------------------------------------------------------------------------------------
def test_forward_trace(case):
    rec = case.rec
    out, _ = case.model(case.x, case.h0)
    close(rec.output, out, msg="output")
    close(case.ref.output, out, rtol=1e-12, atol=1e-12, msg="reference vs model")
    assert isinstance(rec.loss, float)
    assert rec.loss == pytest.approx(case.ref.loss, rel=1e-10, abs=1e-12)
    assert rec.is_finite
    assert rec.hidden.dtype == torch.float64
    # top level is layer 0, forward
    close(rec.hidden, case.view(0, False).hidden)
    for key in case.keys():
        v, e = case.view(*key), case.ref[key]
        assert v.hidden.shape == (T + 1, B, N)
        close(v.hidden, e["hidden"], msg=f"hidden {key}")
        if case.cell in HAS_CELL_STATE:
            assert v.cell.shape == (T + 1, B, N)
            close(v.cell, e["cell"], msg=f"cell {key}")
        assert set(v.gates) == GATE_NAMES[case.cell]
        for g, val in v.gates.items():
            assert val.shape == (T, B, N)
            close(val, e["gates"][g], msg=f"gate {g} {key}")


# ---------------------------------------------------------------------------------------------
# adjoint
# ---------------------------------------------------------------------------------------------
def test_grad_hidden(case):
    for key in case.keys():
        v, e = case.view(*key), case.ref[key]
        assert v.grad_hidden.shape == (T + 1, B, N)
        close(v.grad_hidden, e["grad_hidden"], msg=f"grad_hidden {key}")
        if case.cell in HAS_CELL_STATE:
            assert v.grad_cell.shape == (T + 1, B, N)
            close(v.grad_cell, e["grad_cell"], msg=f"grad_cell {key}")
    close(case.rec.grad_hidden, case.ref[(0, False)]["grad_hidden"])


def test_contributions(case):
    rec = case.rec
    for key in case.keys():
        v, e = case.view(*key), case.ref[key]
        for short, expected in e["contributions"].items():
            full = ref.full_name(short, *key)
            shape = getattr(case.model, full).shape
            for got in (v.contributions(short), rec.contributions(full)):
                assert got.shape == (T, *shape)
                close(got, expected, msg=f"contributions {full}")
            norms = ref.frobenius(expected)
            for got in (v.contribution_norms(short), rec.contribution_norms(full)):
                assert got.shape == (T,)
                close(got, norms, msg=f"contribution_norms {full}")


def test_contributions_sum_to_autograd(case):
    """The headline property: Σ_k contribution_k == torch.autograd.grad, every parameter."""
    model = case.model
    loss = case.loss_fn(model(case.x, case.h0)[0])
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for name, g in zip(names, grads, strict=True):
        close(case.rec.contributions(name).sum(0), g, rtol=1e-10, atol=1e-12, msg=name)


# ---------------------------------------------------------------------------------------------
# Jacobians
# ---------------------------------------------------------------------------------------------
def test_step_jacobians(case):
    S = len(get_cell(case.cell).state_parts) * N
    for key in case.keys():
        v, J = case.view(*key), case.jac(key)["step"]
        for t in range(1, T + 1):
            got = v.step_jacobian(t)
            assert got.shape == (B, S, S)
            close(got, J[t - 1], msg=f"step_jacobian t={t} {key}")
        close(v.step_jacobian(2, samples=[0, 2]), J[1][[0, 2]], msg="samples")
        for o in (2, "fro"):
            got = v.step_jacobian_norms(ord=o)
            assert got.shape == (T, B)
            close(got, ref.matrix_norms(J, o), msg=f"step_jacobian_norms {o} {key}")
        close(v.step_jacobian_norms(samples=[1]), ref.matrix_norms(J, 2)[:, [1]])
        # every J_t at once, and their singular values (descending, shared with the norms)
        close(v.step_jacobians(), J, msg=f"step_jacobians {key}")
        close(v.step_jacobians(samples=[2, 0]), J[:, [2, 0]])
        sv = v.step_singular_values(samples=[-1, 0])
        assert sv.shape == (T, 2, S)
        close(sv, torch.linalg.svdvals(J[:, [2, 0]]), msg=f"step sv {key}")
        close(v.step_singular_values(), torch.linalg.svdvals(J))
        assert (sv[..., :-1] >= sv[..., 1:]).all()


def test_long_jacobians(case):
    for key in case.keys():
        v, tab = case.view(*key), case.jac(key)
        to_T, to_3 = tab["to_T"], tab["to_3"]
        e = case.ref[key]
        for t, k in [(T, 0), (T, T - 2), (T, T), (3, 1), (3, 0)]:
            expected = (to_T if t == T else to_3)[k]
            close(v.jacobian(t, k), expected, msg=f"jacobian({t},{k}) {key}")
            if k == 0 and t == 3:  # jacrev of the unrolled map, the third route
                direct = ref.reference_jacobian(case.model, *key, e["states"], e["inputs"], t, k)
                close(v.jacobian(t, k), direct)
        close(v.jacobian(T, 1, samples=[2, 0]), to_T[1][[2, 0]], msg="samples")
        # norms of ds_t/ds_k, rows k = 0..t-1
        for o in (2, "fro"):
            got = v.jacobian_norms(t=T, ord=o)
            assert got.shape == (T, B)
            close(got, ref.matrix_norms(to_T[:T], o), msg=f"jacobian_norms T {o} {key}")
            close(v.jacobian_norms(t=3, ord=o), ref.matrix_norms(to_3[:3], o))
        close(v.jacobian_norms(), ref.matrix_norms(to_T[:T], 2), msg="t=None means t=T")
        close(v.jacobian_norms(t=T, samples=[1]), ref.matrix_norms(to_T[:T], 2)[:, [1]])
        # singular values, descending
        sv = v.singular_values(T)
        close(sv, torch.linalg.svdvals(tab["step"][T - 1]), msg=f"singular_values(T) {key}")
        close(v.singular_values(T, 0), torch.linalg.svdvals(to_T[0]), msg="sv(T, 0)")
        close(v.singular_values(3, 1, samples=[0]), torch.linalg.svdvals(to_3[1])[[0]])
        assert (sv[:, :-1] >= sv[:, 1:]).all()


def test_lyapunov(case):
    J0 = case.jac((0, False))["step"]
    close(case.rec.lyapunov(), ref.lyapunov_from_step_jacobians(J0), msg="default n=1")
    for key in case.keys():
        v, J = case.view(*key), case.jac(key)["step"]
        # relu: dead units make J_t rank-deficient, so only the leading exponent is finite
        for n, burn in [(1, 2)] if case.act == "relu" else [(3, 2)]:
            expected = ref.lyapunov_from_step_jacobians(J, n=n, burn_in=burn)
            assert torch.isfinite(expected).all(), "test setting should keep exponents finite"
            got = torch.as_tensor(v.lyapunov(n=n, burn_in=burn))
            assert got.shape == (n,)
            close(got, expected, msg=f"lyapunov n={n} burn_in={burn} {key}")


@pytest.mark.parametrize(("cell", "act"), CELL_ACTS, ids=[_cid(*c) for c in CELL_ACTS])
def test_lyapunov_settings(helpers, cell, act):
    """n and burn_in, including the full spectrum n = S, on a longer sequence."""
    model = helpers.build("gradlab", cell, act, gain=1.2, seed=81)
    if act == "relu":
        with torch.no_grad():
            model.bias_ih_l0.add_(3.0)  # every unit alive: J_t invertible
    x = helpers.make_input(15, B, IN, seed=82)
    rec = gradlab.record(model, x)
    e = ref.reference_record(model, x)[(0, False)]
    J = ref.reference_step_jacobians(model, 0, False, e["states"], e["inputs"])
    S = J.shape[-1]
    for n, burn in [(1, 0), (2, 3), (S, 0), (S, 5)]:
        expected = ref.lyapunov_from_step_jacobians(J, n=n, burn_in=burn)
        close(rec.lyapunov(n=n, burn_in=burn), expected, msg=f"lyapunov n={n} burn_in={burn}")


def test_hidden_stats_and_gate_means(case):
    for key in case.keys():
        v, e = case.view(*key), case.ref[key]
        expected = ref.reference_hidden_stats(case.ref.spec, e["hidden"])
        got = v.hidden_stats()
        assert set(got) >= {"mean_abs", "saturation", "dead"}
        for name, val in expected.items():
            assert torch.as_tensor(got[name]).shape == (T + 1,)
            close(got[name], val, msg=f"hidden_stats {name} {key}")
        gm = v.gate_means()
        assert set(gm) == GATE_NAMES[case.cell]
        for g, val in ref.reference_gate_means(e["gates"]).items():
            close(gm[g], val, msg=f"gate_means {g} {key}")


def test_relu_dead_units(helpers):
    model = helpers.build("gradlab", "rnn", "relu", num_layers=2, bidirectional=True, seed=71)
    with torch.no_grad():
        model.bias_ih_l0.sub_(0.5)
        model.bias_ih_l1_reverse.sub_(0.5)
    x = helpers.make_input(T, B, IN, seed=72)
    h0 = helpers.make_h0(model, B, seed=73).abs()
    rec = gradlab.record(model, x, h0=h0)
    r = ref.reference_record(model, x, None, h0)
    for key in r:
        expected = ref.reference_hidden_stats(r.spec, r[key]["hidden"])
        assert float(expected["dead"][1:].max()) > 0
        got = rec.layer(*key).hidden_stats()
        close(got["dead"], expected["dead"], msg=f"dead {key}")
        close(got["saturation"], torch.zeros(T + 1), msg="relu is unbounded")


@pytest.mark.parametrize(("cell", "act"), CELL_ACTS, ids=[_cid(*c) for c in CELL_ACTS])
def test_without_bias(helpers, cell, act):
    model = helpers.build("gradlab", cell, act, num_layers=2, bidirectional=True, bias=False,
                          seed=91)  # fmt: skip
    x = helpers.make_input(T, B, IN, seed=92)
    loss_fn = helpers.make_loss("m2m", 2 * N, False, seed=93)
    rec = gradlab.record(model, x, loss_fn)
    r = ref.reference_record(model, x, loss_fn)
    for key, e in r.items():
        v = rec.layer(*key)
        close(v.hidden, e["hidden"])
        close(v.grad_hidden, e["grad_hidden"])
        assert set(e["contributions"]) == {"weight_ih", "weight_hh"}
        for short, c in e["contributions"].items():
            close(v.contributions(short), c, msg=f"{short} {key}")
        with pytest.raises((ValueError, KeyError)):
            v.contributions("bias_hh")


# Bounded h: a bounded activation, or a cell whose hidden state has bounds of its own.
SATURATING = [
    (cell, act)
    for cell, act in CELL_ACTS
    if (act is not None and gradlab.cells.get_activation(act).bounds is not None)
    or (act is None and get_cell(cell).hidden_bounds is not None)
]


@pytest.mark.parametrize(("cell", "act"), SATURATING, ids=[_cid(*c) for c in SATURATING])
def test_saturation(helpers, cell, act):
    """Large weights: a good share of units within 1% of a bound of the activation's range."""
    model = helpers.build("gradlab", cell, act, num_layers=2, hidden_size=8, gain=4.0, seed=95)
    x = 3 * helpers.make_input(T, B, IN, seed=96)
    rec = gradlab.record(model, x)
    r = ref.reference_record(model, x)
    for key, e in r.items():
        expected = ref.reference_hidden_stats(r.spec, e["hidden"])
        if act is not None:  # a bounded activation saturates partly at this scale
            assert 0 < float(expected["saturation"][1:].mean()) < 1
        got = rec.layer(*key).hidden_stats()
        for name in ("saturation", "mean_abs", "dead"):
            close(got[name], expected[name], msg=f"{name} {key}")


# ---------------------------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cell", "act"), CELL_ACTS, ids=[_cid(*c) for c in CELL_ACTS])
def test_float32_contributions_match_autograd(helpers, cell, act):
    model = helpers.build("gradlab", cell, act, num_layers=2, bidirectional=True,
                          dtype=torch.float32, seed=21)  # fmt: skip
    x = helpers.make_input(T, B, IN, dtype=torch.float32, seed=22)
    loss_fn = helpers.make_loss("m2m", 2 * N, False, seed=23)
    rec = gradlab.record(model, x, loss_fn)
    assert rec.hidden.dtype == torch.float32
    loss = loss_fn(model(x)[0])
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for (name, _), g in zip(model.named_parameters(), grads, strict=True):
        s = rec.contributions(name).sum(0)
        assert s.shape == g.shape
        err = float((s.double() - g.double()).norm())
        assert err <= 1e-5 * float(g.double().norm()) + 1e-7, (name, err)
    # and against the float64 reference, at float32 accuracy
    r = ref.reference_record(model, x, loss_fn)
    close(rec.hidden, r[(0, False)]["hidden"], rtol=1e-5, atol=1e-6)
    close(rec.grad_hidden, r[(0, False)]["grad_hidden"], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# closed form: linear RNN with W_hh = g·Q
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("g", [0.7, 1.0, 1.3])
def test_linear_orthogonal_closed_form(g):
    Tn, Nn, In = 7, 5, 3
    gen = torch.Generator().manual_seed(31)
    Q, _ = torch.linalg.qr(torch.randn(Nn, Nn, generator=gen, dtype=torch.float64))
    model = gradlab.RNN(In, Nn, activation="linear", dtype=torch.float64)
    with torch.no_grad():
        model.weight_hh_l0.copy_(g * Q)
        model.weight_ih_l0.copy_(torch.randn(Nn, In, generator=gen, dtype=torch.float64))
        model.bias_ih_l0.zero_()
        model.bias_hh_l0.zero_()
    x = torch.randn(Tn, 1, In, generator=gen, dtype=torch.float64)
    h0 = torch.randn(1, 1, Nn, generator=gen, dtype=torch.float64)
    u = torch.randn(Nn, generator=gen, dtype=torch.float64)
    rec = gradlab.record(model, x, lambda out: out[-1, 0] @ u, h0=h0)
    for t in (Tn, 4):
        for k in range(t + 1):
            sv = rec.singular_values(t, k) if k < t else torch.linalg.svdvals(rec.jacobian(t, k))
            close(sv, torch.full((1, Nn), g ** (t - k), dtype=torch.float64), rtol=1e-10, atol=0)
    close(
        rec.jacobian_norms(t=Tn),
        torch.tensor([[g ** (Tn - k)] for k in range(Tn)], dtype=torch.float64),
        rtol=1e-10,
        atol=0,
    )
    # step k (1-based) adds δ_k h_{k-1}ᵀ with ||δ_k|| = g^(T-k) ||u||
    h = rec.hidden[:, 0]  # (T+1, N)
    expected = torch.tensor(
        [g ** (Tn - k) * float(u.norm()) * float(h[k - 1].norm()) for k in range(1, Tn + 1)],
        dtype=torch.float64,
    )
    close(rec.contribution_norms("weight_hh"), expected, rtol=1e-10, atol=0)
    steps = torch.arange(1, Tn + 1, dtype=torch.float64)
    close(rec.grad_hidden[1:, 0].norm(dim=-1), g ** (Tn - steps) * u.norm(), rtol=1e-10, atol=0)
    # all exponents log g
    close(rec.lyapunov(n=Nn), torch.full((Nn,), math.log(g), dtype=torch.float64), 1e-10, 1e-12)


# ---------------------------------------------------------------------------------------------
# errors and non-finite values
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def small(helpers):
    model = helpers.build("gradlab", "rnn", "tanh", seed=41)
    x = helpers.make_input(T, B, IN, seed=42)
    return model, x


def test_wrong_rank_rejected(small):
    """1-D and 4-D are refused; 2-D is one unbatched sequence, as torch takes it."""
    model, x = small
    with pytest.raises(ValueError, match=r"(?i)3-?d|3 dim|three|ndim|dimension"):
        gradlab.record(model, x[0, 0])
    with pytest.raises(ValueError, match=r"(?i)3-?d|3 dim|three|ndim|dimension"):
        gradlab.record(model, x[None])


def test_wrong_feature_size_rejected(small):
    model, _ = small
    with pytest.raises(ValueError, match=r"(?i)input.?size|feature") as ei:
        gradlab.record(model, torch.randn(T, B, IN + 2, dtype=torch.float64))
    assert str(IN) in str(ei.value)


@pytest.mark.parametrize("cell", [spec.name for spec in cells()])
def test_wrong_h0_rejected(helpers, cell):
    model = helpers.build("gradlab", cell, get_cell(cell).default_activation, num_layers=2)
    x = helpers.make_input(T, B, IN)
    bad = torch.zeros(1, B, N, dtype=torch.float64)  # needs (2, B, N)
    good = torch.zeros(2, B, N, dtype=torch.float64)
    cases = [bad, torch.zeros(2, B, N + 1, dtype=torch.float64), torch.zeros(2, B + 1, N)]
    if cell in HAS_CELL_STATE:
        cases = [(c, good) for c in cases] + [(good, bad)]
    for h0 in cases:
        with pytest.raises(ValueError, match=r"(?i)(h0|c0|initial).*(shape|expect)|(shape|expect).*(h0|c0|initial)"):  # fmt: skip # noqa: E501
            gradlab.record(model, x, h0=h0)


def test_non_scalar_loss_rejected(small):
    model, x = small
    with pytest.raises(ValueError, match=r"(?i)scalar"):
        gradlab.record(model, x, lambda out: out.sum(-1))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_rejected(small, bad):
    model, x = small
    x = x.clone()
    x[2, 1, 0] = bad
    with pytest.raises(ValueError, match=r"(?i)nan|inf|finite"):
        gradlab.record(model, x)


def test_non_finite_warning_is_runtime_warning():
    assert issubclass(gradlab.NonFiniteWarning, RuntimeWarning)


def _exploding_relu():
    model = gradlab.RNN(2, 3, activation="relu", dtype=torch.float32)
    with torch.no_grad():
        model.weight_hh_l0.copy_(1e6 * torch.eye(3))
        model.weight_ih_l0.fill_(1.0)
        model.bias_ih_l0.zero_()
        model.bias_hh_l0.zero_()
    return model


@pytest.mark.parametrize("with_loss", [False, True], ids=["forward", "loss"])
def test_exploding_dynamics_reported(with_loss):
    model = _exploding_relu()
    x = torch.ones(20, 2, 2)
    loss_fn = (lambda out: out.sum()) if with_loss else None
    with pytest.warns(gradlab.NonFiniteWarning, match=r"(?i)step|t\s*=|time|layer|hidden"):
        rec = gradlab.record(model, x, loss_fn)
    assert not bool(rec.is_finite)
    h = rec.hidden
    assert not torch.isfinite(h).all(), "non-finite values must not be replaced"
    assert torch.isfinite(h[:5]).all()
    out, _ = model(x)
    torch.testing.assert_close(h[1:], out, rtol=1e-6, atol=0, equal_nan=True)


def test_huge_input_overflow_reported():
    model = gradlab.RNN(2, 3, activation="linear", dtype=torch.float32)
    with torch.no_grad():
        model.weight_hh_l0.copy_(1e3 * torch.eye(3))
        model.weight_ih_l0.fill_(1.0)
    x = torch.full((8, 1, 2), 1e30)
    with pytest.warns(gradlab.NonFiniteWarning):
        rec = gradlab.record(model, x)
    assert not bool(rec.is_finite)
    assert torch.isinf(rec.hidden).any() or torch.isnan(rec.hidden).any()


def test_finite_states_whose_sum_overflows_do_not_warn():
    """The one-sync screen sums each tensor: a finite record whose sum is Inf is cleared by the
    exact per-step check, not reported."""
    model = gradlab.RNN(2, 64, activation="linear", dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.weight_ih_l0.fill_(1.0)
    x = torch.full((4, 8, 2), 1e37)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gradlab.NonFiniteWarning)
        rec = gradlab.record(model, x)
    assert torch.isinf(rec.hidden.sum()) and bool(rec.is_finite)


def test_finite_run_does_not_warn(small):
    model, x = small
    with warnings.catch_warnings():
        warnings.simplefilter("error", gradlab.NonFiniteWarning)
        rec = gradlab.record(model, x, lambda out: out.pow(2).sum())
    assert bool(rec.is_finite)


def test_without_loss_forward_only(helpers):
    model = helpers.build("gradlab", "lstm", None, seed=51)
    x = helpers.make_input(T, B, IN, seed=52)
    rec = gradlab.record(model, x)
    r = ref.reference_record(model, x)
    close(rec.hidden, r[(0, False)]["hidden"])
    close(rec.cell, r[(0, False)]["cell"])
    e = r[(0, False)]
    J = ref.reference_step_jacobians(model, 0, False, e["states"], e["inputs"])
    close(rec.step_jacobian(T), J[-1])
    close(
        rec.hidden_stats()["mean_abs"], ref.reference_hidden_stats(r.spec, e["hidden"])["mean_abs"]
    )
    assert torch.as_tensor(rec.lyapunov()).shape == (1,)
    for access in (
        lambda: rec.grad_hidden,
        lambda: rec.grad_cell,
        lambda: rec.contributions("weight_hh"),
        lambda: rec.contribution_norms("weight_hh"),
    ):
        with pytest.raises((RuntimeError, ValueError), match=r"(?i)loss"):
            access()


def test_unknown_parameter_name(helpers):
    model = helpers.build("gradlab", "gru", None, num_layers=2, bidirectional=True, seed=61)
    rec = gradlab.record(model, helpers.make_input(T, B, IN), lambda o: o.pow(2).sum())
    for bad in ("weight_xx", "weight_hh_l5", "weight_hh_l0_sideways"):
        with pytest.raises((ValueError, KeyError)) as ei:
            rec.contributions(bad)
        # it lists the valid names (or, for a layer that does not exist, the valid layers)
        assert re.search(r"weight_hh|layers? 0", str(ei.value)), str(ei.value)
    with pytest.raises((ValueError, KeyError), match="weight_hh"):
        rec.layer(1, reverse=True).contributions("nope")
    # the full torch name and the layer view agree
    close(
        rec.contributions("weight_hh_l1_reverse"),
        rec.layer(1, reverse=True).contributions("weight_hh"),
        rtol=0,
        atol=0,
    )


def test_time_index_out_of_range(small):
    model, x = small
    rec = gradlab.record(model, x, lambda o: o.pow(2).sum())
    beyond_T = [
        lambda: rec.step_jacobian(0),
        lambda: rec.step_jacobian(T + 1),
        lambda: rec.jacobian(T + 1, 0),
        lambda: rec.jacobian(T, -1),
        lambda: rec.jacobian_norms(t=T + 1),
        lambda: rec.singular_values(T + 1),
    ]
    for call in beyond_T:
        with pytest.raises((ValueError, IndexError)) as ei:
            call()
        assert str(T) in str(ei.value), f"message should state the valid range: {ei.value}"
    for call in (lambda: rec.jacobian(2, 3), lambda: rec.singular_values(3, 4)):
        with pytest.raises((ValueError, IndexError), match=r"k\s*<=?\s*t|<=|range|between"):
            call()


# ---------------------------------------------------------------------------------------------
# adjoint dtype: a float64 adjoint of a float32 model, on the float32 trajectory
# ---------------------------------------------------------------------------------------------
ADJOINT_CASES = [
    pytest.param((cell, act, L, bi, bf, kind), id=f"{_cid(cell, act)}-{tag}")
    for (cell, act) in CELL_ACTS
    for L, bi, bf, kind, tag in [
        (1, False, False, "m2o", "L1-uni-tm-m2o"),
        (2, True, True, "m2m", "L2-bi-bf-m2m"),
    ]
]


def _twin(model, x, rec):
    """`_reference.reference_trajectory_adjoint` on `rec`'s own (float32) states and dL/doutput."""
    states = {}
    for key, view in rec.layers.items():
        s = view.hidden
        states[key] = torch.cat((s, view.cell), -1) if model.cell == "lstm" else s
    return states


def _grad_output(rec, loss_fn):
    leaf = rec.output.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(leaf), leaf)
    return g


def _per_step_close(actual, expected, rtol, what):
    """‖actual_k − expected_k‖ ≤ rtol·‖expected_k‖ at every step k (values span many decades)."""
    a = actual.to(torch.float64).flatten(1)
    e = expected.to(torch.float64).flatten(1)
    err, size = (a - e).norm(dim=1), e.norm(dim=1)
    bad = (err > rtol * size).nonzero().flatten().tolist()
    assert not bad, f"{what}: steps {bad[:5]} off, e.g. {err[bad[0]]:.3g} vs ‖·‖ {size[bad[0]]:.3g}"


def _check_against_twin(model, x, loss_fn, rec, h0_given: bool = False):
    grad_output = _grad_output(rec, loss_fn)
    twin = ref.reference_trajectory_adjoint(model, x, _twin(model, x, rec), grad_output)
    params = ref.PARAM_NAMES if model.bias else ref.PARAM_NAMES[:2]
    for key, expected in twin.items():
        view = rec.layer(*key)
        _per_step_close(view.grad_hidden, expected["grad_hidden"], 1e-12, f"{key} grad_hidden")
        if model.cell == "lstm":
            _per_step_close(view.grad_cell, expected["grad_cell"], 1e-12, f"{key} grad_cell")
        for name in params:
            terms = expected["contributions"][name]
            _per_step_close(view.contributions(name), terms, 1e-12, f"{key} {name}")
            norms = terms.flatten(1).norm(dim=1)
            _per_step_close(view.contribution_norms(name)[:, None], norms[:, None], 1e-10, name)
    return twin


@pytest.mark.parametrize("params", ADJOINT_CASES)
def test_float64_adjoint_equals_the_float64_twin_on_the_float32_trajectory(helpers, params):
    cell, act, L, bi, bf, kind = params
    model = helpers.build("gradlab", cell, act, num_layers=L, bidirectional=bi,
                          batch_first=bf, dtype=torch.float32, seed=61)  # fmt: skip
    x = helpers.make_input(T, B, IN, batch_first=bf, dtype=torch.float32, seed=62)
    h0 = helpers.make_h0(model, B, seed=63) if kind == "m2m" else None
    loss_fn = helpers.make_loss(kind, (2 if bi else 1) * N, bf, seed=64)
    rec = gradlab.record(model, x, loss_fn, h0=h0, adjoint_dtype=torch.float64)
    assert rec.hidden.dtype == torch.float32 and rec.grad_hidden.dtype == torch.float64
    assert rec.contributions("weight_hh").dtype == torch.float64
    _check_against_twin(model, x, loss_fn, rec)
    # the float32 adjoint is the same quantity at float32 accuracy
    rec32 = gradlab.record(model, x, loss_fn, h0=h0)
    assert rec32.grad_hidden.dtype == torch.float32
    close(rec32.grad_hidden, rec.grad_hidden, rtol=1e-4, atol=1e-6)


UNDERFLOW_T = 200
#: W scale per cell so that over 200 steps the adjoint falls from ~1 to between 1e-45 (float32's
#: smallest number) and 1e-308 (float64's): 1.5-3 nats per step for the RNNs, ~0.6 (gates ≈ ½)
#: for LSTM and GRU.
UNDERFLOW_GAIN = {"tanh": 0.25, "relu": 0.25, "sigmoid": 0.5, "linear": 0.25, None: 0.05}
#: IndRNN's diagonal u_i ~ N(0, gain²/N) times sigmoid's φ' <= 1/4 falls past 1e-308 at 0.5.
UNDERFLOW_GAIN_OF_CELL = {("indrnn", "sigmoid"): 1.0}


@pytest.mark.parametrize(("cell", "act"), CELL_ACTS, ids=[_cid(*c) for c in CELL_ACTS])
def test_float64_adjoint_keeps_what_float32_underflows(helpers, cell, act):
    """Over 200 steps a float32 adjoint falls below 1e-45 and is exactly 0 at k = 0; the
    float64 adjoint keeps every step, still equal to the float64 twin step by step."""
    gain = UNDERFLOW_GAIN_OF_CELL.get((cell, act), UNDERFLOW_GAIN[act])
    model = helpers.build("gradlab", cell, act, dtype=torch.float32, seed=71, gain=gain)
    if act == "relu":  # keep units alive: a dead relu's zeros are true zeros, not underflow
        with torch.no_grad():
            model.bias_ih_l0.add_(0.5)
    x = helpers.make_input(UNDERFLOW_T, B, IN, dtype=torch.float32, seed=72)
    loss_fn = helpers.make_loss("m2o", N, False, seed=73)
    rec32 = gradlab.record(model, x, loss_fn)
    assert torch.all(rec32.grad_hidden[0] == 0), "the float32 adjoint should underflow by k = 0"
    rec = gradlab.record(model, x, loss_fn, adjoint_dtype=torch.float64)
    norms = rec.grad_hidden.flatten(1).norm(dim=1)
    assert torch.all(norms > 0) and float(norms[0]) < 1e-45
    twin = _check_against_twin(model, x, loss_fn, rec)
    expected = twin[(0, False)]["contributions"]["weight_ih"].flatten(1).norm(dim=1)
    assert torch.all(rec.contribution_norms("weight_ih") > 0) and torch.all(expected > 0)
    assert float(rec32.contribution_norms("weight_ih")[0]) == 0


@pytest.mark.parametrize("name", ["weight_hh", "weight_ih", "bias_hh"])
def test_float32_contribution_norms_do_not_underflow_in_the_squares(helpers, name):
    """Terms of size ~1e-30 are representable in float32 but their squares are not: the norms
    are scaled per step, so they equal the float64 norms of the float32 terms."""
    model = helpers.build("gradlab", "rnn", "tanh", dtype=torch.float32, seed=71, gain=0.05)
    x = helpers.make_input(40, B, IN, dtype=torch.float32, seed=72)
    rec = gradlab.record(model, x, helpers.make_loss("m2o", N, False, seed=73))
    terms = rec.contributions(name).double().flatten(1).norm(dim=1)
    normal = terms >= torch.finfo(torch.float32).tiny  # norms in float32's normal range
    assert torch.any(normal & (terms < 1e-23)), "no term whose squares underflow"
    norms = rec.contribution_norms(name)
    _per_step_close(norms[normal, None], terms[normal, None], 1e-5, name)
    assert torch.all(norms[terms > 0] > 0)


@pytest.mark.parametrize(
    ("model_dtype", "adjoint_dtype"),
    [(torch.float32, torch.float16), (torch.float64, torch.float32), (torch.float32, "float64")],
    ids=["half", "narrower-than-model", "string"],
)
def test_bad_adjoint_dtype_rejected(helpers, model_dtype, adjoint_dtype):
    model = helpers.build("gradlab", "rnn", "tanh", dtype=model_dtype, seed=41)
    x = helpers.make_input(T, B, IN, dtype=model_dtype, seed=42)
    with pytest.raises(ValueError, match="adjoint_dtype"):
        gradlab.record(model, x, lambda out: out.sum(), adjoint_dtype=adjoint_dtype)


# the typed surface: README's table of quantities is the contract
# ---------------------------------------------------------------------------------------------
def readme_quantities() -> list[str]:
    """Names in the first column of the README's table of Recording quantities."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = text.split("| quantity | shape | what |", 1)[1].split("\n\n", 1)[0]
    names = []
    for row in table.splitlines()[2:]:
        names += re.findall(r"`(\w+)", row.split("|")[1])
    return names


QUANTITIES = readme_quantities()


def test_readme_table_is_read():
    assert {"hidden", "cell", "grad_hidden", "contributions", "lyapunov"} <= set(QUANTITIES)


@pytest.mark.parametrize("name", QUANTITIES)
def test_quantity_is_a_typed_member_of_both_views(name):
    """Declared on Recording and LayerRecording themselves (no attribute forwarding), each
    with a return type."""
    import inspect
    import typing

    assert not hasattr(gradlab.Recording, "__getattr__")
    for cls in (gradlab.Recording, gradlab.LayerRecording):
        member = inspect.getattr_static(cls, name)
        func = member.fget if isinstance(member, property) else member
        hints = typing.get_type_hints(func)
        assert "return" in hints, f"{cls.__name__}.{name} has no return type"


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_recording_is_layer_zero_forward_and_read_only(helpers, cell):
    act = "tanh" if cell == "rnn" else None
    model = helpers.build("gradlab", cell, act, seed=3, num_layers=2)
    x = helpers.make_input(T, B, IN, seed=4)
    rec = gradlab.record(model, x, lambda o: o.pow(2).sum())
    first = rec.layer(0)
    assert (first.layer, first.reverse, first.model) == (0, False, model)
    for name in (
        "hidden",
        "inputs",
        "grad_hidden",
        *(["cell", "grad_cell"] if cell == "lstm" else []),
    ):
        assert getattr(rec, name) is getattr(first, name), name
    assert rec.T == first.T == T and rec.state_size == first.state_size
    close(rec.step_jacobian(2), first.step_jacobian(2), rtol=0, atol=0)
    close(rec.jacobian_norms(), first.jacobian_norms(), rtol=0, atol=0)
    close(rec.lyapunov(), first.lyapunov(), rtol=0, atol=0)
    assert rec.hidden_stats().keys() == first.hidden_stats().keys()
    for obj, attr in (
        (rec, "hidden"),
        (rec, "loss"),
        (rec, "layers"),
        (first, "trace"),
        (first, "layer"),
    ):
        with pytest.raises(AttributeError):
            setattr(obj, attr, None)
    with pytest.raises(TypeError):
        rec.layers[(0, False)] = first  # type: ignore[index]


@pytest.mark.parametrize("threads", [1, 2])
def test_one_thread_sets_one_and_restores(threads):
    from gradlab.record import one_thread

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == threads
        with pytest.raises(RuntimeError), one_thread():
            raise RuntimeError("inside")
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def _matrices(kind: str, dtype: torch.dtype) -> torch.Tensor:
    """(5, 48, 48) test matrices of one kind."""
    gen = torch.Generator().manual_seed(1)
    S = 48
    if kind == "gaussian":
        return torch.randn(5, S, S, generator=gen, dtype=dtype)
    if kind in ("tiny", "huge"):  # their squares leave float32's range
        size = 1e-20 if kind == "tiny" else 1e20
        return torch.randn(5, S, S, generator=gen, dtype=dtype) * size
    if kind == "zero":
        return torch.zeros(5, S, S, dtype=dtype)
    if kind == "identity":
        return torch.eye(S, dtype=dtype).expand(5, S, S).clone()
    if kind == "rank_one":
        a, b = torch.randn(2, 5, S, 1, generator=gen, dtype=dtype)
        return a @ b.mT
    # clustered: three equal largest singular values and a close fourth
    q1, _ = torch.linalg.qr(torch.randn(5, S, S, generator=gen, dtype=dtype))
    q2, _ = torch.linalg.qr(torch.randn(5, S, S, generator=gen, dtype=dtype))
    sigma = torch.linspace(0.1, 0.9, S, dtype=dtype).flip(0)
    sigma[:3], sigma[3] = 2.0, 1.999
    return q1 @ torch.diag_embed(sigma.expand(5, S)) @ q2.mT


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "kind", ["gaussian", "clustered", "rank_one", "identity", "zero", "tiny", "huge"]
)
def test_largest_singular_values_match_svdvals(kind, dtype):
    """Lanczos σ_max against LAPACK's svdvals, to the stated relative tolerance (100·eps of the
    dtype on the residual: well inside 1e-5 in float32 and 1e-12 in float64)."""
    from gradlab.record import largest_singular_values

    A = _matrices(kind, dtype)
    got = largest_singular_values(
        lambda v: (A @ v.unsqueeze(-1)).squeeze(-1),
        lambda u: (A.mT @ u.unsqueeze(-1)).squeeze(-1),
        A.shape[0],
        A.shape[1],
        A,
    )
    expected = torch.linalg.svdvals(A.double())[:, 0]
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got.double(), expected, rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_float32_spectral_step_norms_match_svdvals(helpers, cell):
    """The spectral norms `step_jacobian_norms(2)` computes by Lanczos (no J_t formed) agree with
    svdvals of the formed J_t to 1e-5 in float32, at a size where Lanczos stops early."""
    torch.manual_seed(0)
    Nf = 48
    model = gradlab.RNN(8, Nf, "tanh") if cell == "rnn" else getattr(gradlab, cell.upper())(8, Nf)
    rec = gradlab.record(model, torch.randn(12, 3, 8))
    lanczos = rec.step_jacobian_norms(2)
    exact = torch.linalg.svdvals(rec.step_jacobians().double())[..., 0]
    torch.testing.assert_close(lanczos.double(), exact, rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", ["gaussian", "clustered", "rank_one", "zero", "tiny", "huge"])
def test_spectral_norms_match_svdvals(kind, dtype):
    """σ_max from the Gram matrix's largest eigenvalue equals svdvals' to rounding, also for
    wide matrices and for matrices whose squares leave float32's range."""
    from gradlab.record import spectral_norms

    A = _matrices(kind, dtype)
    expected = torch.linalg.svdvals(A.double())[:, 0]
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(spectral_norms(A).double(), expected, rtol=rtol, atol=1e-30)
    wide = A[:, :20]  # (5, 20, 48): the Gram of the smaller side
    expected = torch.linalg.svdvals(wide.double())[:, 0]
    torch.testing.assert_close(spectral_norms(wide).double(), expected, rtol=rtol, atol=1e-30)
