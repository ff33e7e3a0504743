"""Seeded initialisers from the literature for the recurrent weights.

Every scheme initialises each N×N gate block of W_hh the same way (an LSTM's W_hh has four):
- "default": torch's U(-1/√N, 1/√N) for every parameter, but seeded;
- "gaussian": W_hh[i, j] ~ N(0, gain²/N) — the mean-field setting (Poole et al. 2016);
- "orthogonal": W_hh = gain·Q, Q Haar-random orthogonal (Saxe et al. 2014; Henaff et al. 2016);
- "identity": W_hh = gain·I, the IRNN (Le, Jaitly & Hinton 2015).
For the non-default schemes W_ih ~ N(0, 1/I) and the biases are b_ih ~ N(0, bias_scale²),
b_hh = 0, so the total bias has standard deviation σ_b = bias_scale (zero by default, as in IRNN).
`forget_bias` (LSTM) and `update_bias` (GRU z gate) then set that gate's total bias.

What a scheme does to one layer is the cell's `init` hook (`CellSpec.init`): `standard_init`
below for cells whose W_hh is (G·N, N) gate blocks; a cell with another recurrence (IndRNN's
diagonal) says what each scheme means for it. Gate-bias knobs come from `CellSpec.gate_biases`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradlab.cells.models import LayerWeights, RecurrentModel
from gradlab.cells.registry import cell_names, get_cell

__all__ = [
    "GATE_BIAS_KNOBS",
    "INITS",
    "gaussian",
    "init_model",
    "input_weights_and_biases",
    "standard_init",
    "uniform_",
]

#: The init knobs that set one gate's total bias (a cell lists the ones it has in gate_biases).
GATE_BIAS_KNOBS = ("forget_bias", "update_bias")

INITS = ("default", "gaussian", "orthogonal", "identity")


def _orthogonal(n: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    """A Haar-random n×n orthogonal matrix (QR of a Gaussian with the sign fix of Mezzadri 2007)."""
    a = torch.randn(n, n, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, 1.0)
    return q.to(dtype)


def gaussian(
    shape: tuple[int, ...], std: float, generator: torch.Generator, dtype: torch.dtype
) -> Tensor:
    """N(0, std²) samples drawn in float64 (so a seed gives the same values in every dtype)."""
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * std).to(dtype)


def uniform_(p: Tensor, bound: float, generator: torch.Generator) -> None:
    """p ~ U(-bound, bound) in place, drawn in float64 (same values in every dtype)."""
    u = torch.rand(p.shape, generator=generator, dtype=torch.float64)
    p.copy_(((2 * u - 1) * bound).to(p.dtype))


def standard_init(
    w: LayerWeights, init: str, gain: float, bias_scale: float, generator: torch.Generator
) -> None:
    """The schemes of the module docstring for one layer/direction whose W_hh is (G·N, N)."""
    N = w.weight_hh.shape[1]
    dtype = w.weight_hh.dtype
    if init == "default":
        for p in w:
            if p is not None:
                uniform_(p, 1.0 / math.sqrt(N), generator)
        return
    for g in range(w.weight_hh.shape[0] // N):
        block = slice(g * N, (g + 1) * N)
        if init == "gaussian":
            w.weight_hh[block] = gaussian((N, N), gain / math.sqrt(N), generator, dtype)
        elif init == "orthogonal":
            w.weight_hh[block] = gain * _orthogonal(N, generator, dtype)
        else:
            w.weight_hh[block] = gain * torch.eye(N, dtype=dtype)
    input_weights_and_biases(w, bias_scale, generator)


def input_weights_and_biases(
    w: LayerWeights, bias_scale: float, generator: torch.Generator
) -> None:
    """W_ih ~ N(0, 1/I), b_ih ~ N(0, bias_scale²), b_hh = 0 (the non-default schemes)."""
    dtype = w.weight_ih.dtype
    input_std = 1.0 / math.sqrt(w.weight_ih.shape[1])
    w.weight_ih.copy_(gaussian(w.weight_ih.shape, input_std, generator, dtype))
    if w.bias_ih is not None and w.bias_hh is not None:
        w.bias_ih.copy_(gaussian(w.bias_ih.shape, bias_scale, generator, dtype))
        w.bias_hh.zero_()


@torch.no_grad()
def init_model(
    model: RecurrentModel,
    init: str = "default",
    gain: float = 1.0,
    seed: int = 0,
    bias_scale: float = 0.0,
    forget_bias: float | None = None,
    update_bias: float | None = None,
) -> RecurrentModel:
    """Initialise `model` in place (and return it); the same seed gives the same weights."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of: {', '.join(INITS)}")
    if not math.isfinite(gain) or gain < 0:
        raise ValueError(f"gain must be a finite number >= 0, got {gain}")
    proj_size = getattr(model, "proj_size", 0)
    if proj_size:
        raise ValueError(
            "init_model's schemes fill square N×N gate blocks of W_hh; a projected LSTM "
            f"(proj_size={proj_size}) has (N, P) blocks: keep torch's initialisation"
        )
    spec = get_cell(model.cell)
    knobs = {"forget_bias": forget_bias, "update_bias": update_bias}
    for knob, value in knobs.items():
        if value is not None and knob not in spec.gate_biases:
            owners = [n for n in cell_names() if knob in get_cell(n).gate_biases]
            raise ValueError(
                f"{knob} applies to cell {' / '.join(owners)} only, not to a {model.cell!r} model"
            )
    generator = torch.Generator().manual_seed(int(seed))
    N = model.hidden_size
    directions = (False, True)[: model.num_directions]
    for layer in range(model.num_layers):
        for reverse in directions:
            spec.init(model.layer_weights(layer, reverse), init, gain, bias_scale, generator)
    for knob, gate in spec.gate_biases.items():
        value = knobs[knob]
        if value is None:
            continue
        if not model.bias:
            raise ValueError(f"{knob} needs a model with bias=True")
        rows = slice(spec.gate_names.index(gate) * N, (spec.gate_names.index(gate) + 1) * N)
        for layer in range(model.num_layers):
            for reverse in directions:
                w = model.layer_weights(layer, reverse)
                assert w.bias_ih is not None and w.bias_hh is not None  # model.bias checked above
                w.bias_ih[rows] = value
                w.bias_hh[rows] = 0.0
    return model
