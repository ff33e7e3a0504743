"""A plugin that adds the softsign activation φ(u) = u / (1 + |u|) through `register_activation`
alone (with theory hooks), for `experiments/indrnn.toml` (``plugins = ["softsign_activation.py"]``).

φ'(u) = 1 / (1 + |u|)² = (1 - |φ(u)|)², so γ = sup|φ'| = φ'(0) = 1; φ is bounded by ±1, odd and
|φ(u)| < |u| for u ≠ 0, so the mean-field theory applies as for tanh (`sub_identity`).
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from gradlab.cells import Activation, TheoryHooks, register_activation


def softsign(a: Tensor) -> Tensor:
    return a / (1.0 + a.abs())


def softsign_derivative(a: Tensor, h: Tensor) -> Tensor:
    return (1.0 - h.abs()).square()


def np_softsign(u: np.ndarray) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    return u / (1.0 + np.abs(u))


def np_softsign_derivative(u: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.abs(np.asarray(u, dtype=np.float64))) ** 2


SOFTSIGN = register_activation(
    Activation(
        "softsign",
        softsign,
        softsign_derivative,
        bounds=(-1.0, 1.0),
        theory=TheoryHooks(np_softsign, np_softsign_derivative, gamma=1.0, sub_identity=True),
    )
)

__all__ = ["SOFTSIGN", "np_softsign", "np_softsign_derivative", "softsign", "softsign_derivative"]
