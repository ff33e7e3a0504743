"""Each probe against a slow reference computed directly from the Recording (full Jacobians and
full per-step gradient terms, torch.linalg norms, plain loops over t)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from probe_cases import RELU, SAMPLES, make_recording

from gradlab import fits
from gradlab.probes import (
    ContributionProbe,
    GatesProbe,
    GradCellProbe,
    GradHiddenProbe,
    HiddenProbe,
    JacobianProbe,
    StepJacobianProbe,
    SummaryProbe,
)

RTOL = 1e-10


def series(rows: dict) -> dict[tuple, np.ndarray]:
    """(name, layer, direction) → values ordered by t; checks t is consecutive."""
    out: dict[tuple, list[tuple[int, float]]] = {}
    for name, layer, direction, t, value in zip(
        rows["name"], rows["layer"], rows["direction"], rows["t"], rows["value"], strict=True
    ):
        out.setdefault((name, layer, direction), []).append((t, value))
    result = {}
    for key, points in out.items():
        points.sort(key=lambda p: -1 if p[0] is None else p[0])
        ts = [p[0] for p in points]
        if ts[0] is not None:
            assert ts == list(range(ts[0], ts[0] + len(ts))), (key, ts)
        result[key] = np.array([p[1] for p in points])
    return result


def views(rec):
    for (layer, reverse), view in sorted(rec.layers.items()):
        yield layer, int(reverse), view


def expect(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, values in want.items():
        np.testing.assert_allclose(got[key], values, rtol=RTOL, atol=1e-12, err_msg=str(key))


def test_grad_hidden(recorded):
    rec, ctx = recorded
    want = {
        ("norm", layer, d): [float(v.grad_hidden[t].norm()) for t in range(v.T + 1)]
        for layer, d, v in views(rec)
    }
    expect(series(GradHiddenProbe().rows(rec, ctx)), want)


def test_grad_cell(recorded):
    rec, ctx = recorded
    want = {}
    if rec.model.cell == "lstm":
        want = {
            ("norm", layer, d): [float(v.grad_cell[t].norm()) for t in range(v.T + 1)]
            for layer, d, v in views(rec)
        }
    expect(series(GradCellProbe().rows(rec, ctx)), want)


def test_contribution(recorded):
    rec, ctx = recorded
    want = {}
    for layer, d, v in views(rec):
        for name in ("weight_hh", "weight_ih", "bias_hh", "bias_ih"):
            terms = v.contributions(name)  # (T, *shape), formed in full
            want[(name, layer, d)] = [float(torch.linalg.norm(terms[t - 1])) for t in range(1, 6)]
    expect(series(ContributionProbe().rows(rec, ctx)), want)


def test_step_jacobian(recorded):
    rec, ctx = recorded
    want = {}
    for layer, d, v in views(rec):
        fro, spectral = [], []
        for t in range(1, v.T + 1):
            full = v.step_jacobian(t)  # (B, S, S)
            fro.append(float(torch.linalg.matrix_norm(full, ord="fro").mean()))
            rows = full[list(SAMPLES)]
            spectral.append(float(torch.linalg.matrix_norm(rows, ord=2).mean()))
        want[("fro", layer, d)] = fro
        want[("spectral", layer, d)] = spectral
    expect(series(StepJacobianProbe().rows(rec, ctx)), want)


def test_jacobian(recorded):
    rec, ctx = recorded
    want = {}
    for layer, d, v in views(rec):
        norms = []
        for k in range(v.T):
            product = v.jacobian(v.T, k)[list(SAMPLES)]  # ∂s_T/∂s_k, (s, S, S)
            norms.append(float(torch.linalg.matrix_norm(product, ord=2).mean()))
        want[("spectral", layer, d)] = norms
    expect(series(JacobianProbe().rows(rec, ctx)), want)


def test_spectral_probes_write_nothing_without_samples(recorded):
    rec, ctx = recorded
    ctx = type(ctx)(ctx.config, (), ctx.theory_rate)
    assert len(JacobianProbe().rows(rec, ctx)["name"]) == 0
    assert set(StepJacobianProbe().rows(rec, ctx)["name"]) == {"fro"}


def test_summary_without_jacobian_samples_fits_frobenius_norms_over_the_batch(recorded):
    """The fallback: no SVD, the Frobenius norm of ∂s_T/∂s_k averaged over the whole batch."""
    rec, ctx = recorded
    ctx = type(ctx)(ctx.config, (), ctx.theory_rate)
    v = rec.layer(0)
    fro = [float(torch.linalg.matrix_norm(v.jacobian(v.T, k)).mean()) for k in range(v.T)]
    rows = SummaryProbe().rows(rec, ctx)
    got = dict(zip(rows["name"], rows["value"], strict=True))
    assert got["decay_rate"] == pytest.approx(fits.decay_fit(np.array(fro)).rate, rel=1e-10)


def test_jacobian_norms_are_computed_once_per_recording(recorded, monkeypatch):
    """The jacobian probe and the summary probe share one backward accumulation."""
    rec, ctx = make_recording(RELU)
    calls = []
    view = rec.layer(0)
    original = type(view).jacobian_norms

    def counting(self, *args, **kwargs):
        calls.append((self.layer, self.reverse))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(view), "jacobian_norms", counting)
    JacobianProbe().rows(rec, ctx)
    SummaryProbe().rows(rec, ctx)
    assert calls == [(0, False)]


def _hidden_reference(rec) -> dict:
    want = {}
    act = rec.model.activation
    for layer, d, v in views(rec):
        h = v.hidden
        mean_abs, saturation, dead = [], [], []
        for t in range(v.T + 1):
            ht = h[t]
            mean_abs.append(float(ht.abs().mean()))
            if act is not None and act.name == "relu":
                saturation.append(0.0)
                dead.append(float((ht == 0).double().mean()))
            else:  # tanh range [-1, 1]: within 1% of the range (0.02) from a bound
                saturation.append(float(((ht > 0.98) | (ht < -0.98)).double().mean()))
                dead.append(0.0)
        want[("mean_abs", layer, d)] = mean_abs
        want[("saturation", layer, d)] = saturation
        want[("dead", layer, d)] = dead
    return want


def test_hidden(recorded):
    rec, ctx = recorded
    expect(series(HiddenProbe().rows(rec, ctx)), _hidden_reference(rec))


def test_hidden_relu_dead_units():
    rec, ctx = make_recording(RELU)
    got = series(HiddenProbe().rows(rec, ctx))
    expect(got, _hidden_reference(rec))
    assert got[("dead", 0, 0)][1:].max() > 0  # the reference case really has dead units


def test_gates(recorded):
    rec, ctx = recorded
    names = {"rnn": (), "lstm": "ifgo", "gru": "rzn"}[rec.model.cell]
    want = {
        (g, layer, d): [float(v.gates[g][t - 1].mean()) for t in range(1, v.T + 1)]
        for layer, d, v in views(rec)
        for g in names
    }
    expect(series(GatesProbe().rows(rec, ctx)), want)


def test_summary(recorded):
    rec, ctx = recorded
    v = rec.layer(0)
    norms = np.array([float(v.grad_hidden[t].norm()) for t in range(v.T + 1)])
    contrib = np.array(
        [float(torch.linalg.norm(v.contributions("weight_hh")[t])) for t in range(5)]
    )
    state = np.array(  # ‖∂s_T/∂s_k‖₂ from full products, mean over the Jacobian samples
        [
            float(torch.linalg.matrix_norm(v.jacobian(v.T, k)[list(SAMPLES)], ord=2).mean())
            for k in range(v.T)
        ]
    )
    want = fits.summarize(state, norms, contrib, ctx.theory_rate)
    rows = SummaryProbe().rows(rec, ctx)
    assert rows["t"] == rows["layer"] == rows["direction"] == [None] * len(fits.SUMMARY_KEYS)
    got = dict(zip(rows["name"], rows["value"], strict=True))
    assert list(got) == list(fits.SUMMARY_KEYS)
    for key in fits.SUMMARY_KEYS:
        if math.isnan(want[key]) or math.isinf(want[key]):
            assert got[key] == want[key] or (math.isnan(got[key]) and math.isnan(want[key]))
        else:
            assert got[key] == pytest.approx(want[key], rel=1e-10), key
    assert got["theory_rate"] == -0.25
