"""Seeded initialisers from the literature for the recurrent weights.

Every scheme initialises each N×N gate block of W_hh the same way (an LSTM's W_hh has four):
- "default": torch's U(-1/√N, 1/√N) for every parameter, but seeded;
- "gaussian": W_hh[i, j] ~ N(0, gain²/N) — the mean-field setting (Poole et al. 2016);
- "orthogonal": W_hh = gain·Q, Q Haar-random orthogonal (Saxe et al. 2014; Henaff et al. 2016);
- "identity": W_hh = gain·I, the IRNN (Le, Jaitly & Hinton 2015).
For the non-default schemes W_ih ~ N(0, 1/I) and the biases are b_ih ~ N(0, bias_scale²),
b_hh = 0, so the total bias has standard deviation σ_b = bias_scale (zero by default, as in IRNN).
`forget_bias` (LSTM) and `update_bias` (GRU z gate) then set that gate's total bias.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradlab.cells.models import RecurrentModel

__all__ = ["INITS", "init_model"]

INITS = ("default", "gaussian", "orthogonal", "identity")


def _orthogonal(n: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    """A Haar-random n×n orthogonal matrix (QR of a Gaussian with the sign fix of Mezzadri 2007)."""
    a = torch.randn(n, n, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, 1.0)
    return q.to(dtype)


def _gaussian(
    shape: tuple[int, ...], std: float, generator: torch.Generator, dtype: torch.dtype
) -> Tensor:
    """N(0, std²) samples drawn in float64 (so a seed gives the same values in every dtype)."""
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * std).to(dtype)


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
    if forget_bias is not None and model.cell != "lstm":
        raise ValueError(f"forget_bias applies to an LSTM only, not to a {model.cell!r} model")
    if update_bias is not None and model.cell != "gru":
        raise ValueError(f"update_bias applies to a GRU only, not to a {model.cell!r} model")
    generator = torch.Generator().manual_seed(int(seed))
    N = model.hidden_size
    for layer in range(model.num_layers):
        for reverse in (False, True)[: model.num_directions]:
            w = model.layer_weights(layer, reverse)
            dtype = w.weight_hh.dtype
            gates = w.weight_hh.shape[0] // N

            if init == "default":
                bound = 1.0 / math.sqrt(N)
                for p in w:
                    if p is not None:
                        u = torch.rand(p.shape, generator=generator, dtype=torch.float64)
                        p.copy_(((2 * u - 1) * bound).to(dtype))
                continue
            for g in range(gates):
                block = slice(g * N, (g + 1) * N)
                if init == "gaussian":
                    w.weight_hh[block] = _gaussian((N, N), gain / math.sqrt(N), generator, dtype)
                elif init == "orthogonal":
                    w.weight_hh[block] = gain * _orthogonal(N, generator, dtype)
                else:
                    w.weight_hh[block] = gain * torch.eye(N, dtype=dtype)
            input_std = 1.0 / math.sqrt(w.weight_ih.shape[1])
            w.weight_ih.copy_(_gaussian(w.weight_ih.shape, input_std, generator, dtype))
            if w.bias_ih is not None and w.bias_hh is not None:
                w.bias_ih.copy_(_gaussian(w.bias_ih.shape, bias_scale, generator, dtype))
                w.bias_hh.zero_()
    gate_bias = {"lstm": forget_bias, "gru": update_bias}.get(model.cell)
    if gate_bias is not None:
        for layer in range(model.num_layers):
            for reverse in (False, True)[: model.num_directions]:
                w = model.layer_weights(layer, reverse)
                if w.bias_ih is None or w.bias_hh is None:
                    raise ValueError("forget_bias / update_bias need a model with bias=True")
                w.bias_ih[N : 2 * N] = gate_bias  # LSTM: f is gate 1; GRU: z is gate 1
                w.bias_hh[N : 2 * N] = 0.0
    return model
