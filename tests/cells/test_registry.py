"""gradlab.cells.registry: the contract every registered cell keeps (ids = cell names), and the
clear errors an unknown cell gets everywhere."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import gradlab
from gradlab import _reference as ref
from gradlab.cells import (
    CELLS,
    INITS,
    CellSpec,
    LayerWeights,
    Trace,
    cell_names,
    cell_of,
    cells,
    get_cell,
    init_model,
    register_cell,
)
from gradlab.config import ConfigError, RunConfig

T, B, N, IN = 5, 3, 4, 3
SPECS = [pytest.param(spec, id=spec.name) for spec in cells()]


def _build(spec: CellSpec, **kw) -> gradlab.cells.RecurrentModel:
    return spec.build(IN, N, spec.default_activation, dtype=torch.float64, **kw)


@pytest.mark.parametrize("spec", SPECS)
def test_spec_matches_its_model_and_trace(spec):
    model = _build(spec, num_layers=2, bidirectional=True)
    assert model.cell == spec.name and get_cell(spec.name) is spec and cell_of(model) is spec
    assert issubclass(spec.trace, Trace) and spec.trace is not Trace
    assert model.state_size == len(spec.state_parts) * N and model.gate_names == spec.gate_names
    assert (model.activation is not None) == spec.takes_activation
    assert spec.display_name and spec.color.startswith("#")
    names = {n for n, _ in model.named_parameters()}
    for layer in range(2):
        for sfx in ("", "_reverse"):
            assert {f"{p}_l{layer}{sfx}" for p in ref.PARAM_NAMES} <= names


@pytest.mark.parametrize("spec", SPECS)
def test_split_and_join_state_round_trip(spec):
    parts = tuple(torch.randn(2, B, N) for _ in spec.state_parts)
    joined = spec.join_state(parts)
    assert isinstance(joined, tuple) == (len(parts) > 1)
    assert all(a is b for a, b in zip(spec.split_state(joined), parts, strict=True))
    with pytest.raises(ValueError, match="part"):
        spec.join_state((*parts, parts[0]))


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("init", INITS)
def test_init_hook_is_seeded_and_finite(spec, init):
    a, b = _build(spec, num_layers=2), _build(spec, num_layers=2)
    init_model(a, init, gain=0.9, seed=3, bias_scale=0.2)
    init_model(b, init, gain=0.9, seed=3, bias_scale=0.2)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.isfinite(p).all(), name
        assert torch.equal(p, q), name
    init_model(b, init, gain=0.9, seed=4, bias_scale=0.2)
    assert not torch.equal(a.weight_ih_l0, b.weight_ih_l0)


@pytest.mark.parametrize("spec", SPECS)
def test_gate_bias_knobs_follow_the_spec(spec):
    for knob in ("forget_bias", "update_bias"):
        model = _build(spec)
        if knob not in spec.gate_biases:
            with pytest.raises(ValueError, match=f"{knob} applies to cell"):
                init_model(model, **{knob: 1.0})
            with pytest.raises(ConfigError, match=knob):
                RunConfig(cell=spec.name, **{knob: 1.0})
            continue
        init_model(model, "gaussian", **{knob: 1.5})
        gate = spec.gate_names.index(spec.gate_biases[knob])
        rows = slice(gate * N, (gate + 1) * N)
        total = model.bias_ih_l0[rows] + model.bias_hh_l0[rows]
        torch.testing.assert_close(total, torch.full((N,), 1.5, dtype=torch.float64))


@pytest.mark.parametrize("spec", SPECS)
def test_reference_step_gives_the_models_output(spec):
    """The spec's float64 reference step, unrolled, is the model's own forward pass."""
    model = _build(spec)
    init_model(model, "gaussian", gain=1.1, seed=1, bias_scale=0.1)
    x = torch.randn(T, B, IN, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out, _ = model(x)
    assert torch.allclose(ref.reference_forward(model, x), out, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("spec", SPECS)
def test_every_cell_trains_and_is_recorded(spec, tmp_path):
    config = RunConfig(cell=spec.name, seq_len=6, hidden_size=4, steps=2, batch_size=4,
                       probe_batch=3, record_every=1, dtype="float64")  # fmt: skip
    run_id = gradlab.train(config, tmp_path, progress=None)
    run = gradlab.open_store(tmp_path).run(run_id)
    assert run.status == "complete"


def test_trace_is_an_abstract_base_class():
    w = LayerWeights(torch.zeros(N, IN), torch.zeros(N, N), None, None)
    with pytest.raises(TypeError, match="abstract"):
        Trace(w, torch.zeros(T, B, IN), torch.zeros(T + 1, B, N))

    class Half(Trace):  # a subclass that forgets the adjoint cannot be built either
        def jvp(self, t, V, samples=None):
            return V

        vjp = jvp

        def step_jacobian_fro(self):
            return torch.zeros(T, B)

    with pytest.raises(TypeError, match="adjoint"):
        Half(w, torch.zeros(T, B, IN), torch.zeros(T + 1, B, N))


def test_order_and_display():
    assert cell_names()[:3] == ("rnn", "lstm", "gru")
    assert [s.order for s in cells()] == sorted(s.order for s in cells())
    assert len({s.color for s in cells()}) == len(CELLS)


def test_register_cell_replaces_and_validates():
    rnn = get_cell("rnn")
    copy = dataclasses.replace(rnn, name="rnn-copy", order=99)
    try:
        register_cell(copy)
        assert "rnn-copy" in cell_names() and get_cell("RNN-copy") is copy
    finally:
        CELLS.pop("rnn-copy", None)
    with pytest.raises(TypeError):
        register_cell("rnn")
    with pytest.raises(ValueError, match="not a gate"):
        dataclasses.replace(rnn, name="x", gate_biases={"forget_bias": "f"})
    with pytest.raises(ValueError, match="default_activation"):
        dataclasses.replace(rnn, name="x", default_activation=None)


# ------------------------------------------------------------------ unknown cells: clear errors
def test_unknown_cell_is_a_clear_error_everywhere():
    from gradlab.theory import _model_cell, pascanu_bound, theory_rate

    known = ", ".join(cell_names())
    with pytest.raises(ValueError, match=f"unknown cell 'elman'; expected one of: {known}"):
        get_cell("elman")
    with pytest.raises(ConfigError, match=r"key 'cell' must be one of .*'indrnn'.*got 'elman'"):
        RunConfig(cell="elman")
    with pytest.raises(ValueError, match=r"key 'cell' must be one of .*got 'elman'"):
        theory_rate({"cell": "elman"})  # never silently "rnn"
    with pytest.raises(ValueError, match="not a recurrent model of a registered cell"):
        _model_cell(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="not a recurrent model"):
        pascanu_bound(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="not a recurrent model"):
        ref.model_spec(torch.nn.Linear(2, 2))
    model = gradlab.RNN(IN, N)
    model.cell = "elman"
    with pytest.raises(ValueError, match="unknown cell 'elman'"):
        gradlab.record(model, torch.zeros(T, B, IN))
    with pytest.raises(ValueError, match="unknown cell 'elman'"):
        init_model(model)
