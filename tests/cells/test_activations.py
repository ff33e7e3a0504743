"""The one activation table (gradlab/cells/activations.py): torch function, derivative and
theory hooks agree for every entry; softsign added through `register_activation` alone (a plugin
file) works in record, train and theory; an activation without theory hooks has "no theory"."""

from __future__ import annotations

import math
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import torch

import gradlab
from gradlab import _reference as ref
from gradlab.cells import ACTIVATIONS, Activation, get_activation, register_activation
from gradlab.sweep.plugins import import_plugin
from gradlab.theory import mean_field, pascanu_bound, predict_rate, theory_rate

SOFTSIGN = Path(__file__).resolve().parents[2] / "experiments" / "softsign_activation.py"
import_plugin(str(SOFTSIGN))  # registers "softsign", as a sweep worker would
WITH_THEORY = [name for name, act in ACTIVATIONS.items() if act.theory is not None]
F64 = torch.float64


@pytest.mark.parametrize("name", WITH_THEORY)
def test_theory_hooks_agree_with_the_torch_function(name):
    act = ACTIVATIONS[name]
    a = torch.linspace(-6, 6, 2401, dtype=F64)
    a = a[a.abs() > 1e-9]  # relu has no derivative at 0
    h = act.fn(a)
    hooks = act.theory
    np.testing.assert_allclose(hooks.phi(a.numpy()), h.numpy(), rtol=1e-14, atol=1e-15)
    a_grad = a.clone().requires_grad_(True)
    (slope,) = torch.autograd.grad(act.fn(a_grad).sum(), a_grad)
    np.testing.assert_allclose(hooks.dphi(a.numpy()), slope.numpy(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(act.derivative(a, h), slope, rtol=1e-12, atol=1e-14)
    grid = np.linspace(-6, 6, 2401)  # includes 0, where tanh, softsign, sigmoid peak
    assert hooks.gamma == pytest.approx(float(np.abs(hooks.dphi(grid)).max()), rel=1e-12)
    if act.bounds is not None:
        lo, hi = act.bounds
        assert float(h.min()) >= lo and float(h.max()) <= hi


def test_aliases_and_the_error_for_an_unknown_name():
    assert get_activation("identity") is ACTIVATIONS["linear"]
    assert get_activation("Tanh") is ACTIVATIONS["tanh"]
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'; expected one of: .*plugins"):
        get_activation("gelu")


@pytest.mark.parametrize("cell", ["rnn", "indrnn"])
def test_softsign_records_exactly(cell):
    """record with the plugin activation vs the float64 autograd twin, to 1e-10."""
    model = gradlab.cells.get_cell(cell).build(3, 4, "softsign", num_layers=2, dtype=F64)
    gradlab.init_model(model, "gaussian", gain=1.4, seed=3, bias_scale=0.2)
    x = torch.randn(7, 2, 3, dtype=F64, generator=torch.Generator().manual_seed(4))

    def loss_fn(out):
        return out[-1].square().sum()

    rec = gradlab.record(model, x, loss_fn)
    twin = ref.reference_record(model, x, loss_fn)
    for key, e in twin.items():
        torch.testing.assert_close(
            rec.layer(*key).grad_hidden, e["grad_hidden"], rtol=1e-10, atol=1e-12
        )
        for short, c in e["contributions"].items():
            torch.testing.assert_close(
                rec.layer(*key).contributions(short), c, rtol=1e-10, atol=1e-12
            )
    saturation = rec.hidden_stats()["saturation"]
    torch.testing.assert_close(
        saturation, ref.reference_hidden_stats(twin.spec, rec.hidden)["saturation"]
    )


def _mp_softsign_fixed_point(sw, sb, q_claimed):
    phi = lambda u: u / (1 + abs(u))  # noqa: E731
    dphi = lambda u: 1 / (1 + abs(u)) ** 2  # noqa: E731

    def expect(f, q):
        s = mp.sqrt(q)
        pts = [-mp.inf, -2, -1, 0, 1, 2, mp.inf]
        return mp.quad(lambda z: f(s * z) * mp.exp(-(z**2) / 2), pts) / mp.sqrt(2 * mp.pi)

    def gap(q):
        return mp.mpf(sw) ** 2 * expect(lambda u: phi(u) ** 2, q) + mp.mpf(sb) ** 2 - q

    q = mp.findroot(gap, (mp.mpf(q_claimed) * 0.9, mp.mpf(q_claimed) * 1.1), solver="anderson")
    return q, mp.mpf(sw) ** 2 * expect(lambda u: dphi(u) ** 2, q)


@pytest.mark.parametrize(("sw", "sb"), [(1.5, 0.1), (2.5, 0.3)], ids=["sw1.5", "sw2.5"])
def test_softsign_theory_comes_from_its_hooks(sw, sb):
    mf = mean_field("softsign", sw, sb)
    q_ref, chi_ref = _mp_softsign_fixed_point(sw, sb, mf.q_star)
    assert mf.q_star == pytest.approx(float(q_ref), rel=1e-6)
    assert mf.chi == pytest.approx(float(chi_ref), rel=1e-6)
    config = dict(cell="rnn", activation="softsign", init="gaussian", gain=sw, bias_scale=sb)
    prediction = predict_rate(config)  # the driven theory, through the same hooks
    assert (
        prediction.method == "driven mean field" and prediction.mean_field.activation == "softsign"
    )
    assert theory_rate(config) == prediction.rate and math.isfinite(prediction.rate)
    assert mean_field("softsign", 0.8).q_star == 0.0  # sub-identity: ordered phase without bias


def test_softsign_trains_and_the_summary_carries_its_theory(tmp_path):
    config = gradlab.RunConfig(activation="softsign", init="gaussian", gain=1.2, seq_len=8,
                               hidden_size=6, steps=3, batch_size=4, probe_batch=4,
                               record_every=1)  # fmt: skip
    run_id = gradlab.train(config, tmp_path, progress=None)
    store = gradlab.open_store(tmp_path)
    assert store.run(run_id).status == "complete"
    model = gradlab.cells.get_cell("rnn").build(1, 6, "softsign")
    assert pascanu_bound(model).gamma == 1.0


def test_an_activation_without_theory_hooks_has_no_theory(tmp_path):
    softplus = Activation("softplus-test", torch.nn.functional.softplus,
                          lambda a, h: torch.sigmoid(a))  # fmt: skip
    register_activation(softplus)
    try:
        config = gradlab.RunConfig(activation="softplus-test", init="gaussian", seq_len=6,
                                   hidden_size=4, steps=2, batch_size=4, probe_batch=3)  # fmt: skip
        assert theory_rate(config.to_dict()) is None  # "no theory", never an error
        with pytest.raises(ValueError, match="no theory for activation 'softplus-test'"):
            mean_field("softplus-test", 1.0)
        run_id = gradlab.train(config, tmp_path, progress=None)
        assert gradlab.open_store(tmp_path).run(run_id).status == "complete"
    finally:
        ACTIVATIONS.pop("softplus-test")


WITH_OUTPUT_DERIVATIVE = [n for n, act in ACTIVATIONS.items() if act.output_derivative]


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", WITH_OUTPUT_DERIVATIVE)
def test_the_derivative_from_the_output_alone_is_the_derivative_bitwise(name, dtype):
    """φ'(a) from h = φ(a) alone equals `derivative(a, h)` to the last bit, at 0, -0, the
    smallest normal, a subnormal, huge and infinite a and NaN included (relu: h > 0 exactly
    where a > 0)."""
    act = ACTIVATIONS[name]
    info = torch.finfo(dtype)
    edges = [0.0, -0.0, info.tiny, -info.tiny, info.smallest_normal / 2**10, 1e30, -1e30]
    edges += [info.max, -info.max, math.inf, -math.inf]
    a = torch.cat([torch.linspace(-30, 30, 6001, dtype=dtype), torch.tensor(edges, dtype=dtype)])
    h = act.fn(a)
    expected, got = act.derivative(a, h), act.output_derivative(h)
    assert got.dtype == dtype and torch.equal(got, expected)
    nan = torch.tensor([math.nan], dtype=dtype)
    assert torch.equal(
        act.output_derivative(act.fn(nan)).isnan(), act.derivative(nan, act.fn(nan)).isnan()
    )


@pytest.mark.parametrize(
    ("cell", "activation", "recomputes"),
    [("rnn", "tanh", False), ("rnn", "relu", False), ("indrnn", "relu", False),
     ("rnn", "softsign", True), ("indrnn", "softsign", True)],
    ids=["rnn-tanh", "rnn-relu", "indrnn-relu", "rnn-softsign", "indrnn-softsign"],
)  # fmt: skip
def test_record_recomputes_preactivations_only_for_an_activation_without_output_derivative(
    cell, activation, recomputes, monkeypatch
):
    """An activation whose φ' is a function of its output spares the trace its pre-activation
    GEMMs; one without (softsign here) still gets them, and both record exactly (autograd)."""
    from gradlab.cells import traces

    calls = []
    original = traces.activation_slope

    def counting(act, hidden, preactivations, twin):
        def counted():
            calls.append(act.name)
            return preactivations()

        return original(act, hidden, counted, twin)

    monkeypatch.setattr(traces, "activation_slope", counting)
    monkeypatch.setattr(gradlab.cells.indrnn, "activation_slope", counting)
    model = gradlab.cells.get_cell(cell).build(3, 5, activation, dtype=F64)
    gradlab.init_model(model, "gaussian", gain=1.3, seed=2, bias_scale=0.3)
    x = torch.randn(6, 2, 3, dtype=F64, generator=torch.Generator().manual_seed(5))
    rec = gradlab.record(model, x, lambda out: out[-1].square().sum())
    assert calls == ([activation] if recomputes else [])
    model.zero_grad()
    out, _ = model(x)
    out[-1].square().sum().backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(rec.contributions(name).sum(0), p.grad, rtol=1e-12, atol=1e-13)
