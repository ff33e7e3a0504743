"""The probe tests' cases: tiny float64 models of every cell, 1-2 layers, uni/bi."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

import gradlab
from gradlab.config import RunConfig
from gradlab.probes import ProbeContext

T, B, N, INPUT = 5, 4, 3, 2
SAMPLES = (0, 2)


@dataclass(frozen=True)
class Case:
    cell: str
    num_layers: int
    bidirectional: bool
    activation: str | None = None

    @property
    def id(self) -> str:
        cell = f"{self.cell}-{self.activation}" if self.activation else self.cell
        return f"{cell}-{self.num_layers}layer-{'bi' if self.bidirectional else 'uni'}"


CASES = [
    Case(cell, layers, bi)
    for cell in ("rnn", "lstm", "gru")
    for layers in (1, 2)
    for bi in (False, True)
]
RELU = Case("rnn", 1, False, "relu")  # dead units and no saturation bound


def make_recording(case: Case) -> tuple[gradlab.Recording, ProbeContext]:
    kw = dict(num_layers=case.num_layers, bidirectional=case.bidirectional, dtype=torch.float64)
    if case.cell == "rnn":
        model = gradlab.RNN(INPUT, N, activation=case.activation or "tanh", **kw)
    else:
        model = {"lstm": gradlab.LSTM, "gru": gradlab.GRU}[case.cell](INPUT, N, **kw)
    gradlab.init_model(model, "gaussian", gain=1.3, seed=3, bias_scale=0.4)
    model.requires_grad_(False)  # the references below build no autograd graphs
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(T, B, INPUT, generator=gen, dtype=torch.float64)
    target = torch.randn(T, B, model.num_directions * N, generator=gen, dtype=torch.float64)

    def loss_fn(out: torch.Tensor) -> torch.Tensor:  # many-to-many: every direction gets a loss
        return 0.5 * (out - target).square().sum() / B

    config = RunConfig(
        cell=case.cell,
        activation=case.activation,
        hidden_size=N,
        num_layers=case.num_layers,
        bidirectional=case.bidirectional,
        seq_len=T,
        init="gaussian",
        gain=1.3,
        bias_scale=0.4,
    )
    context = ProbeContext(config, SAMPLES, theory_rate=-0.25)
    return gradlab.record(model, x, loss_fn), context


@cache
def cached_recording(case: Case) -> tuple[gradlab.Recording, ProbeContext]:
    """`make_recording(case)`, made once per session (probes only read a Recording)."""
    return make_recording(case)
