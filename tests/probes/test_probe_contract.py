"""One contract over every registered probe: columns, types, coverage of layers/directions,
declared names, and no autograd graph left behind."""

from __future__ import annotations

import numpy as np
import pytest
from probe_cases import CASES, make_recording

import gradlab
from gradlab.probes import COLUMNS, PROBES, FixedPointProbe, Probe, ProbeContext, run_probes
from gradlab.store.schema import metrics_table

ALL = list(PROBES.values())
PER_LAYER = [cls for cls in ALL if cls.probe != "summary"]
CASE_NO_LOSS = CASES[-1]  # gru, 2 layers, bidirectional


def test_registry_keys_are_the_probe_constants():
    assert all(key == cls.probe and cls.names for key, cls in PROBES.items())
    assert len({cls.probe for cls in ALL}) == len(ALL)
    assert all(issubclass(cls, Probe) for cls in ALL)


@pytest.mark.parametrize("cls", ALL, ids=[c.probe for c in ALL])
def test_columns_and_types(cls, recorded):
    rec, ctx = recorded
    rows = cls().rows(rec, ctx)
    assert tuple(rows) == COLUMNS
    n = len(rows["value"])
    assert all(len(rows[c]) == n for c in COLUMNS)
    assert isinstance(rows["value"], np.ndarray) and rows["value"].dtype == np.float64
    assert set(rows["name"]) <= set(cls.names)
    assert set(rows["direction"]) <= {0, 1, None}
    # t is a timestep 0..T; the fixed-point probe's per-point rows count its points instead
    T = rec.T if cls is not FixedPointProbe else ctx.config.fixed_point_inits - 1
    assert all(t is None or 0 <= t <= T for t in rows["t"])
    # the store accepts the rows once step and probe are added
    table = metrics_table({**rows, "step": 3, "probe": cls.probe})
    assert table.num_rows == n


@pytest.mark.parametrize("cls", PER_LAYER, ids=[c.probe for c in PER_LAYER])
def test_every_layer_and_direction(cls, case, recorded):
    rec, ctx = recorded
    rows = cls().rows(rec, ctx)
    if not rows["name"]:
        assert (cls.probe, case.cell) in {
            ("gates", "rnn"),
            ("grad_cell", "rnn"),
            ("grad_cell", "gru"),
        }
        return
    covered = set(zip(rows["layer"], rows["direction"], strict=True))
    D = 2 if case.bidirectional else 1
    assert covered == {(layer, d) for layer in range(case.num_layers) for d in range(D)}


def test_run_probes_skips_loss_probes_without_a_loss():
    rec, ctx = make_recording(CASE_NO_LOSS)
    bare = gradlab.record(rec.model, rec.layer(0).inputs)
    done = [p.probe for p, _ in run_probes(bare, ctx, [cls() for cls in ALL])]
    assert done == [cls.probe for cls in ALL if not cls.needs_loss]


def test_probes_on_a_model_whose_parameters_require_grad():
    rec, ctx = make_recording(CASE_NO_LOSS)
    rec.model.requires_grad_(True)  # as during training: run_probes builds no graph
    for _, rows in run_probes(rec, ctx, [cls() for cls in ALL]):
        assert isinstance(rows["value"], np.ndarray) and len(rows["value"]) == len(rows["t"])


def test_context_from_config_clips_samples_to_the_probe_batch():
    config = gradlab.config.RunConfig(jacobian_samples=5, probe_batch=3, init="gaussian", gain=0.5)
    ctx = ProbeContext.from_config(config)
    assert ctx.jacobian_samples == (0, 1, 2)
    assert ctx.theory_rate is not None and ctx.theory_rate < 0  # ordered phase: vanishing
    assert ProbeContext.from_config(config.replace(cell="lstm")).theory_rate is None
