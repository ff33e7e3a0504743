"""The built-in cells: vanilla RNN, LSTM and GRU (torch's equations), one `CellSpec` each.

Each spec points at its model and trace (`gradlab.cells.models`, `gradlab.cells.traces`), the
standard init (`gradlab.cells.init.standard_init`), the float64 reference step below (written
out from torch's documentation, used by the autograd twin in `gradlab._reference`) and its
theory hooks in `gradlab.theory` (imported when called: theory imports the registry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from gradlab.cells.init import standard_init
from gradlab.cells.models import GRU, LSTM, RNN
from gradlab.cells.registry import CellSpec, register_cell
from gradlab.cells.traces import GRUTrace, LSTMTrace, RNNTrace

__all__ = ["gru_reference_step", "lstm_reference_step", "rnn_reference_step"]

# Okabe & Ito (2008) colour-blind-safe palette entries used for the cells.
_VERMILLION, _BLUE, _BLUISH_GREEN = "#D55E00", "#0072B2", "#009E73"


def _affine(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    y = x @ w.T
    return y if b is None else y + b


def _sigmoid(a: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-a))


def rnn_reference_step(
    p: dict[str, Tensor],
    x: Tensor,
    s: Tensor,
    hidden_size: int,
    phi: Callable[[Tensor], Tensor] | None,
    c_perturb: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """h' = φ(W_ih x + b_ih + W_hh h + b_hh); x (..., I), s = h (..., N)."""
    if phi is None:
        raise ValueError("the RNN reference step needs the activation φ")
    a = _affine(x, p["weight_ih"], p.get("bias_ih")) + _affine(s, p["weight_hh"], p.get("bias_hh"))
    return phi(a), {}


def lstm_reference_step(
    p: dict[str, Tensor],
    x: Tensor,
    s: Tensor,
    hidden_size: int,
    phi: Callable[[Tensor], Tensor] | None = None,
    c_perturb: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """i = σ(W_ii x + b_ii + W_hi h + b_hi), f, g = tanh(...), o likewise;
    c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c'); s = (h, c) (..., 2N). `c_perturb` is added to c'
    before h' is formed, so its gradient is the total dL/dc'."""
    N = hidden_size
    h, c = s[..., :N], s[..., N:]
    a = _affine(x, p["weight_ih"], p.get("bias_ih")) + _affine(h, p["weight_hh"], p.get("bias_hh"))
    i = _sigmoid(a[..., 0 * N : 1 * N])
    f = _sigmoid(a[..., 1 * N : 2 * N])
    g = torch.tanh(a[..., 2 * N : 3 * N])
    o = _sigmoid(a[..., 3 * N : 4 * N])
    c_new = f * c + i * g
    if c_perturb is not None:
        c_new = c_new + c_perturb
    h_new = o * torch.tanh(c_new)
    return torch.cat([h_new, c_new], dim=-1), {"i": i, "f": f, "g": g, "o": o}


def gru_reference_step(
    p: dict[str, Tensor],
    x: Tensor,
    s: Tensor,
    hidden_size: int,
    phi: Callable[[Tensor], Tensor] | None = None,
    c_perturb: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 - z) ⊙ n + z ⊙ h."""
    N = hidden_size
    gi = _affine(x, p["weight_ih"], p.get("bias_ih"))
    gh = _affine(s, p["weight_hh"], p.get("bias_hh"))
    r = _sigmoid(gi[..., 0 * N : 1 * N] + gh[..., 0 * N : 1 * N])
    z = _sigmoid(gi[..., 1 * N : 2 * N] + gh[..., 1 * N : 2 * N])
    n = torch.tanh(gi[..., 2 * N : 3 * N] + r * gh[..., 2 * N : 3 * N])
    return (1.0 - z) * n + z * s, {"r": r, "z": z, "n": n}


def _vanilla_rate(config: Mapping[str, Any]) -> Any:
    from gradlab.theory import vanilla_rnn_prediction

    return vanilla_rnn_prediction(config)


def _spectral_norm(weight_hh: Any) -> float:
    from gradlab.theory import spectral_norm

    return spectral_norm(weight_hh)


def _lstm_at_zero(weight_hh: Any, bias_ih: Any, bias_hh: Any) -> Any:
    from gradlab.theory import lstm_jacobian_at_zero

    return lstm_jacobian_at_zero(weight_hh, bias_ih, bias_hh)


def _gru_at_zero(weight_hh: Any, bias_ih: Any, bias_hh: Any) -> Any:
    from gradlab.theory import gru_jacobian_at_zero

    return gru_jacobian_at_zero(weight_hh, bias_ih, bias_hh)


register_cell(
    CellSpec(
        "rnn",
        model=RNN,
        trace=RNNTrace,
        reference_step=rnn_reference_step,
        init=standard_init,
        takes_activation=True,
        default_activation="tanh",
        torch_classes=(nn.RNN, nn.RNNCell),
        rate_at_init=_vanilla_rate,
        mean_field=True,
        recurrent_norm=_spectral_norm,
        display_name="vanilla RNN",
        color=_VERMILLION,
        order=0,
    )
)
register_cell(
    CellSpec(
        "lstm",
        model=LSTM,
        trace=LSTMTrace,
        reference_step=lstm_reference_step,
        init=standard_init,
        gate_names=("i", "f", "g", "o"),
        state_parts=("h", "c"),
        gate_biases={"forget_bias": "f"},
        hidden_bounds=(-1.0, 1.0),
        torch_classes=(nn.LSTM, nn.LSTMCell),
        jacobian_at_zero=_lstm_at_zero,
        display_name="LSTM",
        color=_BLUE,
        order=1,
    )
)
register_cell(
    CellSpec(
        "gru",
        model=GRU,
        trace=GRUTrace,
        reference_step=gru_reference_step,
        init=standard_init,
        gate_names=("r", "z", "n"),
        gate_biases={"update_bias": "z"},
        hidden_bounds=(-1.0, 1.0),
        torch_classes=(nn.GRU, nn.GRUCell),
        jacobian_at_zero=_gru_at_zero,
        display_name="GRU",
        color=_BLUISH_GREEN,
        order=2,
    )
)
