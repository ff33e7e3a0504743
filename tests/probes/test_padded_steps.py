"""Probes of a PackedSequence batch count only the sequences still running at each step.

Reference: every sequence recorded alone, unpadded, in float64. The probe's aggregate at step t
of the padded batch must equal the same aggregate over the sequences whose length reaches t
(squared norms add up, means average them, contributions sum), and a step where none of the
counted sequences runs has no row. Ids read ``lstm-L2-bi``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import gradlab
from gradlab.probes import (
    PROBES,
    ContributionProbe,
    GradCellProbe,
    GradHiddenProbe,
    JacobianProbe,
    ProbeContext,
    StepJacobianProbe,
    run_probes,
)

TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
LENGTHS = [4, 2, 7, 5]  # T = 7; the Jacobian samples (rows 0, 1) both end by step 4
SAMPLES = (0, 1)
I, N = 3, 4


@pytest.fixture(scope="module", autouse=True)
def _one_thread(single_thread):
    """See conftest.single_thread: tiny tensors, loaded machine."""


class Model(nn.Module):
    """A recurrent module and a head on its outputs and final state; each sequence's loss term
    depends on that sequence alone (sums, no batch means), so alone it has the same adjoint."""

    def __init__(self, cell: str, **kw) -> None:
        super().__init__()
        self.rnn = TORCH[cell](I, N, dtype=torch.float64, **kw)
        self.head = nn.Linear(N * (2 if kw.get("bidirectional") else 1), 2, dtype=torch.float64)

    def forward(self, x):
        out, state = self.rnn(x)
        if isinstance(out, nn.utils.rnn.PackedSequence):
            out = pad_packed_sequence(out)[0]  # padded outputs get no gradient
        parts = state if isinstance(state, tuple) else (state,)
        return self.head(out), sum(p.tanh().sum() for p in parts)


def loss_fn(result):
    logits, from_state = result
    return logits.sin().sum() + 0.3 * from_state


def _rows(rec, probe) -> pd.DataFrame:
    context = ProbeContext(jacobian_samples=SAMPLES)
    ((_, rows),) = run_probes(rec, context, [probe()])
    return pd.DataFrame(rows)


def _series(rows: pd.DataFrame, name: str, layer: int, direction: int) -> dict[int, float]:
    keep = (rows["name"] == name) & (rows["layer"] == layer) & (rows["direction"] == direction)
    return {int(t): float(v) for t, v in zip(rows["t"][keep], rows["value"][keep], strict=True)}


def _close(got: dict[int, float], want: dict[int, float]) -> None:
    assert sorted(got) == sorted(want), "the steps with rows"
    for t in want:
        assert math.isclose(got[t], want[t], rel_tol=1e-10, abs_tol=1e-300), (t, got[t], want[t])


CASES = [
    pytest.param((cell, layers, bi), id=f"{cell}-L{layers}{'-bi' if bi else ''}")
    for cell in ("rnn", "lstm", "gru")
    for layers, bi in ((1, False), (2, True))
]


@pytest.fixture(scope="module", params=CASES)
def recordings(request):
    """(cell, the packed batch's Recording, each sequence's own Recording)."""
    cell, layers, bi = request.param
    torch.manual_seed(0)
    model = Model(cell, num_layers=layers, bidirectional=bi)
    x = torch.randn(max(LENGTHS), len(LENGTHS), I, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False)
    batch = gradlab.record(model, packed, loss_fn, module="rnn")
    alone = [
        gradlab.record(model, x[:n, b : b + 1], loss_fn, module="rnn")
        for b, n in enumerate(LENGTHS)
    ]
    return cell, batch, alone


def _running(t: int) -> list[int]:
    """The sequences whose step t is real (step 0, the initial state, is every sequence's)."""
    return [b for b, n in enumerate(LENGTHS) if t <= n]


def test_adjoint_norms_count_running_sequences(recordings):
    """grad_hidden / grad_cell: ‖∂L/∂h_t‖² is the sum over the running sequences of theirs."""
    cell, batch, alone = recordings
    probes = [GradHiddenProbe] + ([GradCellProbe] if cell == "lstm" else [])
    for probe in probes:
        rows = _rows(batch, probe)
        for (layer, reverse), lr in batch.layers.items():
            got = _series(rows, "norm", layer, int(reverse))
            want = {}
            for t in range(lr.T + 1):
                views = [alone[b].layer(layer, reverse) for b in _running(t)]
                adjoints = [v.grad_cell if probe is GradCellProbe else v.grad_hidden for v in views]
                want[t] = math.sqrt(sum(float(a[t].square().sum()) for a in adjoints))
            _close(got, want)


def test_contributions_sum_running_sequences(recordings):
    """Step t's term of ∂L/∂W is the sum of the running sequences' terms (padded steps add 0)."""
    _, batch, alone = recordings
    rows = _rows(batch, ContributionProbe)
    for (layer, reverse), lr in batch.layers.items():
        for name in ("weight_hh", "weight_ih", "bias_hh"):
            got = _series(rows, name, layer, int(reverse))
            want = {}
            for t in range(1, lr.T + 1):
                terms = [
                    alone[b].layer(layer, reverse).contributions(name)[t - 1] for b in _running(t)
                ]
                want[t] = float(torch.stack(terms).sum(0).norm())
            _close(got, want)


def test_step_jacobian_norms_average_running_sequences(recordings):
    """‖J_t‖ means: `fro` over the running sequences of the batch, `spectral` over the running
    samples; no `spectral` row past the samples' lengths (a held state's J_t = I is no data)."""
    _, batch, alone = recordings
    rows = _rows(batch, StepJacobianProbe)
    for (layer, reverse), lr in batch.layers.items():
        for name, ord, rows_of in (("fro", "fro", None), ("spectral", 2, SAMPLES)):
            got = _series(rows, name, layer, int(reverse))
            want = {}
            for t in range(1, lr.T + 1):
                counted = [b for b in _running(t) if rows_of is None or b in rows_of]
                if counted:
                    norms = [
                        alone[b].layer(layer, reverse).step_jacobian_norms(ord) for b in counted
                    ]
                    want[t] = float(np.mean([float(n[t - 1, 0]) for n in norms]))
            _close(got, want)
        assert max(_series(rows, "spectral", layer, int(reverse))) == max(
            LENGTHS[b] for b in SAMPLES
        )


def test_state_jacobian_norms_average_running_samples(recordings):
    """‖∂s_T/∂s_k‖₂: sample b counts at k < its length, where it is ‖∂s_{T_b}/∂s_k‖ of the
    sequence alone; no row for k past every sample's length."""
    _, batch, alone = recordings
    rows = _rows(batch, JacobianProbe)
    for (layer, reverse), lr in batch.layers.items():
        got = _series(rows, "spectral", layer, int(reverse))
        want = {}
        for k in range(lr.T):
            counted = [b for b in _running(k + 1) if b in SAMPLES]
            if counted:
                norms = [alone[b].layer(layer, reverse).jacobian_norms(ord=2) for b in counted]
                want[k] = float(np.mean([float(n[k, 0]) for n in norms]))
        _close(got, want)


def test_every_probe_writes_no_padded_step():
    """No per-step row of any probe lies past the longest sequence's steps that it aggregates,
    and an unpadded batch keeps a row at every step."""
    torch.manual_seed(0)
    model = Model("lstm")
    x = torch.randn(6, 2, I, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([3, 2]), enforce_sorted=False)
    rec = gradlab.record(model, packed, loss_fn, module="rnn")
    assert rec.T == 3  # torch packs to the longest sequence: T = 3
    context = ProbeContext(jacobian_samples=(1,))  # sample 1 ends at step 2
    rows = {
        p.probe: pd.DataFrame(r)
        for p, r in run_probes(rec, context, [c() for c in PROBES.values()])
    }
    assert sorted(rows["step_jacobian"].query("name == 'spectral'")["t"]) == [1, 2]
    assert sorted(rows["jacobian"]["t"]) == [0, 1]
    assert sorted(rows["step_jacobian"].query("name == 'fro'")["t"]) == [1, 2, 3]
    assert sorted(rows["grad_hidden"]["t"]) == [0, 1, 2, 3]
