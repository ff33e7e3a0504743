"""Measured-vs-theory at initialisation: the numbers that let a user trust gradlab's.

`measured_decay_rate` builds a random vanilla RNN (W_hh ~ N(0, σ_w²/N), biases ~ N(0, σ_b²),
W_ih ~ N(0, 1/I) with x ~ N(0, 1), so the input drive has σ_v = 1), records it with
`gradlab.record`, and fits the per-step slope of ln ‖∂L/∂h_t‖ against the lag. Mean-field theory
predicts ½ ln χ (Schoenholz et al. 2017; Chen, Pennington & Schoenholz 2018) once the state has
reached its stationary variance q*; `edge_of_chaos_table` puts the two side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gradlab.cells import RNN, init_model
from gradlab.fits import decay_fit
from gradlab.record import record
from gradlab.theory import mean_field

__all__ = ["RateComparison", "edge_of_chaos_table", "measured_decay_rate"]


@dataclass(frozen=True)
class RateComparison:
    """One row of the table: measured slope (± stderr) against ½ ln χ."""

    activation: str
    sigma_w: float
    sigma_b: float
    hidden_size: int
    measured: float
    stderr: float
    theory: float
    chi: float


def measured_decay_rate(
    activation: str = "tanh",
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    hidden_size: int = 256,
    seq_len: int = 120,
    burn_in: int = 40,
    batch_size: int = 16,
    input_size: int = 16,
    seed: int = 0,
) -> tuple[float, float]:
    """(rate, stderr) of ln ‖∂L/∂h_t‖ per step of lag, for L = u·h_T with u random.

    Only lags T−t <= seq_len − burn_in are fitted, so every fitted state is past the transient.
    """
    generator = torch.Generator().manual_seed(seed)
    model = RNN(input_size, hidden_size, activation=activation, dtype=torch.float64)
    init_model(model, "gaussian", gain=sigma_w, seed=seed, bias_scale=sigma_b)
    x = torch.randn(seq_len, batch_size, input_size, generator=generator, dtype=torch.float64)
    u = torch.randn(batch_size, hidden_size, generator=generator, dtype=torch.float64)
    rec = record(model, x, loss_fn=lambda out: (out[-1] * u).sum())
    norms = rec.grad_hidden.norm(dim=(1, 2)).numpy()  # (T+1,), index t
    fit = decay_fit(norms, fit_range=(1, seq_len - burn_in))
    return fit.rate, fit.stderr


def edge_of_chaos_table(
    sigma_ws: tuple[float, ...] = (0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0),
    hidden_sizes: tuple[int, ...] = (256, 512, 1000),
    sigma_b: float = 0.0,
    activation: str = "tanh",
    seeds: tuple[int, ...] = (0, 1, 2),
) -> list[RateComparison]:
    """Measured rate (mean over seeds) against ½ ln χ with σ_v = 1, for every (N, σ_w)."""
    rows = []
    for n in hidden_sizes:
        for sigma_w in sigma_ws:
            fits = [measured_decay_rate(activation, sigma_w, sigma_b, n, seed=s) for s in seeds]
            rates = [rate for rate, _ in fits]
            mean = sum(rates) / len(rates)
            spread = math.sqrt(sum((r - mean) ** 2 for r in rates) / max(1, len(rates) - 1))
            theory = mean_field(activation, sigma_w, sigma_b, sigma_v=1.0)
            rows.append(
                RateComparison(
                    activation,
                    sigma_w,
                    sigma_b,
                    n,
                    mean,
                    spread / math.sqrt(len(rates)),
                    theory.rate,
                    theory.chi,
                )
            )
    return rows
