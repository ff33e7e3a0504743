"""IndRNN (Li, Li, Cook, Zhu & Gao 2018): h_t = φ(W_ih x_t + b_ih + u ⊙ h_{t-1} + b_hh).

Each unit has one recurrent weight u_i, so W_hh is the diagonal diag(u) and u is stored as a
vector, `weight_hh_l{k}[_reverse]` of shape (N,); the other parameters have torch's names and
shapes (weight_ih (N, I), bias_ih / bias_hh (N,)). Any registered activation; layers and
bidirectional as torch's RNN. Everything gradlab needs is in this file:

* `IndRNN`, the model (a plain loop: torch has no fused kernel for it);
* `IndRNNTrace`: J_t = diag(φ'(a_t) ⊙ u), so the adjoint is elementwise,
  ḡ_{t-1} = direct + u ⊙ φ'(a_t) ⊙ ḡ_t, and step k's term of ∂L/∂u is Σ_b δ_k ⊙ h_{k-1} (N,);
* `indrnn_init`: what each scheme means for a diagonal recurrence — "default": u_i ~ U(-1, 1)·gain
  (W_ih and biases torch's U(±1/√N)); "gaussian": u_i ~ N(0, gain²) (the row norm of diag(u)
  matches a dense W_hh's gain); "orthogonal": u_i = ±gain (a diagonal orthogonal matrix is a sign
  matrix, signs Haar-random); "identity": u_i = gain. The non-default schemes draw W_ih ~ N(0, 1/I)
  and biases as the other cells do.
* `indrnn_reference_step`, the float64 step for the autograd twin;
* theory: ‖∂h_t/∂h_k‖₂ = max_i Π_s |u_i φ'(a_{s,i})| <= (γ·max_i |u_i|)^{t-k}, with equality for a
  linear φ, whose exact rate is ln max_i |u_i| (`recurrent_norm` gives max_i |u_i| = ‖diag(u)‖₂).
  At init (`indrnn_rate_at_init`, linear φ): identity and orthogonal give ln gain; default gives
  E[ln max_i |u_i|] = ln gain - 1/N (max_i |u_i|/gain is the max of N uniforms on [0, 1], whose
  N-th power is uniform).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from gradlab.cells.activations import Activation, get_activation
from gradlab.cells.init import gaussian, input_weights_and_biases, uniform_
from gradlab.cells.models import LayerWeights, RecurrentModel
from gradlab.cells.registry import CellSpec, register_cell
from gradlab.cells.traces import Trace, activation_slope

__all__ = ["IndRNN", "IndRNNTrace", "indrnn_init", "indrnn_rate_at_init", "indrnn_reference_step"]


class IndRNN(RecurrentModel, nn.Module):
    """IndRNN h_t = φ(W_ih x_t + b_ih + u ⊙ h_{t-1} + b_hh), u = weight_hh (N,).

    x: (T, B, I) (or (B, T, I) with batch_first); returns output (T, B, D·N), h_n (L·D, B, N).
    """

    cell = "indrnn"
    gate_names = ()
    activation: Activation

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation: str | Activation = "relu",
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.activation = get_activation(activation)
        bound = 1.0 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else self.num_directions * hidden_size
            for reverse in (False, True)[: self.num_directions]:
                shapes = {"weight_ih": (hidden_size, fan_in), "weight_hh": (hidden_size,)}
                if bias:
                    shapes.update(bias_ih=(hidden_size,), bias_hh=(hidden_size,))
                for short, shape in shapes.items():
                    p = nn.Parameter(
                        torch.empty(shape, device=device, dtype=dtype).uniform_(-bound, bound)
                    )
                    self.register_parameter(self.param_name(short, layer, reverse), p)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_input(x, h0)
        return self._loop_forward(x, h0)

    def layer_forward(  # type: ignore[override]  # this cell's state: a tensor
        self, inputs: Tensor, h0: Tensor, layer: int = 0
    ) -> tuple[Tensor, Tensor]:
        phi = self.activation.fn
        outputs, finals = [], []
        for d in range(self.num_directions):
            w = self.layer_weights(layer, reverse=d == 1)
            steps = inputs.flip(0) if d == 1 else inputs
            drive = steps @ w.weight_ih.T  # (T, B, N)
            if w.bias_ih is not None and w.bias_hh is not None:
                drive = drive + (w.bias_ih + w.bias_hh)
            h, states = h0[d], []
            for t in range(steps.shape[0]):
                h = phi(torch.addcmul(drive[t], w.weight_hh, h))
                states.append(h)
            out = torch.stack(states)
            outputs.append(out.flip(0) if d == 1 else out)
            finals.append(h)
        return torch.cat(outputs, dim=-1), torch.stack(finals)

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bias={self.bias}, batch_first={self.batch_first}, "
            f"bidirectional={self.bidirectional}, activation={self.activation.name!r}"
        )


class IndRNNTrace(Trace):
    """a_t = W_ih x_t + b_ih + u ⊙ h_{t-1} + b_hh, h_t = φ(a_t); J_t = diag(φ'(a_t) ⊙ u)."""

    def __init__(
        self,
        weights: LayerWeights,
        inputs: Tensor,
        hidden: Tensor,
        activation: Activation,
        twin: bool = False,
    ) -> None:
        """`twin`: the states come from a recording in another dtype (see `Trace.build`)."""
        super().__init__(weights, inputs, hidden)
        T, B, w = self.T, self.B, weights

        def preactivations() -> Tensor:
            pre = inputs.reshape(T * B, -1) @ w.weight_ih.T
            if w.bias_ih is not None and w.bias_hh is not None:
                pre += w.bias_ih + w.bias_hh
            return pre.view(T, B, -1).addcmul_(hidden[:-1], w.weight_hh)

        self.slope = activation_slope(activation, hidden, preactivations, twin)  # (T, B, N)
        self.diagonal = self.slope * w.weight_hh  # J_t's diagonal, (T, B, N)
        self.gates = {}

    @classmethod
    def build(
        cls,
        weights: LayerWeights,
        inputs: Tensor,
        hidden: Tensor,
        initial: tuple[Tensor, ...] = (),
        activation: Activation | None = None,
        recorded: tuple[Tensor, ...] | None = None,
    ) -> IndRNNTrace:
        if activation is None:
            raise ValueError("an IndRNN trace needs the model's activation")
        return cls(weights, inputs, hidden, activation, twin=recorded is not None)

    def adjoint(self, direct: Tensor) -> tuple[Tensor, None, Tensor, Tensor]:
        T, u = self.T, self.weights.weight_hh
        grad = direct.new_empty(T + 1, self.B, self.N)
        delta = direct.new_empty(T, self.B, self.N)
        grad[T] = direct[T - 1]
        for t in range(T, 0, -1):
            torch.mul(grad[t], self.slope[t - 1], out=delta[t - 1])
            if t > 1:
                torch.addcmul(direct[t - 2], delta[t - 1], u, out=grad[t - 1])
            else:
                torch.mul(delta[0], u, out=grad[0])
        return grad, None, delta, delta

    def jvp(self, t: int, V: Tensor, samples: Tensor | None = None) -> Tensor:
        return self._pick(self.diagonal[t - 1], samples).unsqueeze(-1) * V

    def vjp(self, t: int, U: Tensor, samples: Tensor | None = None) -> Tensor:
        return self._pick(self.diagonal[t - 1], samples).unsqueeze(-1) * U

    def step_jacobian_fro(self) -> Tensor:
        return self.diagonal.square().sum(-1).sqrt()

    def weight_hh_contributions(self, delta_hh: Tensor, previous: Tensor) -> Tensor:
        """Step k's term of ∂L/∂u: Σ_b δ_k ⊙ h_{k-1}, (T, N)."""
        return (delta_hh * previous).sum(1)

    def weight_hh_contribution_norms(self, delta_hh: Tensor, previous: Tensor) -> Tensor:
        return self.weight_hh_contributions(delta_hh, previous).norm(dim=-1)


def indrnn_init(
    w: LayerWeights, init: str, gain: float, bias_scale: float, generator: torch.Generator
) -> None:
    """The init schemes for one layer/direction of an IndRNN (see the module docstring)."""
    u = w.weight_hh
    if init == "default":
        bound = 1.0 / math.sqrt(u.shape[0])
        for p in w:
            if p is not None:
                uniform_(p, gain if p is u else bound, generator)
        return
    if init == "gaussian":
        u.copy_(gaussian(u.shape, gain, generator, u.dtype))
    elif init == "orthogonal":
        signs = torch.randint(0, 2, u.shape, generator=generator, dtype=torch.int64) * 2 - 1
        u.copy_((gain * signs).to(u.dtype))
    else:
        u.fill_(gain)
    input_weights_and_biases(w, bias_scale, generator)


def indrnn_reference_step(
    p: dict[str, Tensor],
    x: Tensor,
    s: Tensor,
    hidden_size: int,
    phi: Callable[[Tensor], Tensor] | None,
    c_perturb: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """h' = φ(W_ih x + b_ih + u ⊙ h + b_hh); x (..., I), s = h (..., N)."""
    if phi is None:
        raise ValueError("the IndRNN reference step needs the activation φ")
    a = x @ p["weight_ih"].T + p["weight_hh"] * s
    if "bias_ih" in p:
        a = a + p["bias_ih"] + p["bias_hh"]
    return phi(a), {}


def indrnn_rate_at_init(config: Mapping[str, Any]) -> float | None:
    """The per-step log-rate of gradient norms at init for a linear-φ IndRNN (None otherwise):
    ln gain for identity / orthogonal (exact), ln gain - 1/N for default (the expectation over
    the init of ln max_i |u_i|); gaussian and nonlinear φ have no closed form here."""
    from gradlab.theory import config_activation, is_unit_slope, orthogonal_rate

    activation = config_activation(config)
    if activation is None or not is_unit_slope(activation):
        return None
    init = str(config.get("init") or "default").lower()
    gain = config.get("gain")
    gain = 1.0 if gain is None else abs(float(gain))
    if init in ("identity", "orthogonal"):
        return orthogonal_rate(gain)
    if init == "default" and config.get("hidden_size"):
        return orthogonal_rate(gain) - 1.0 / int(config["hidden_size"])
    return None


def max_abs(weight_hh: Any) -> float:
    """‖diag(u)‖₂ = max_i |u_i|."""
    u = weight_hh.detach() if isinstance(weight_hh, Tensor) else torch.as_tensor(weight_hh)
    return float(u.abs().max()) if u.numel() else 0.0


register_cell(
    CellSpec(
        "indrnn",
        model=IndRNN,
        trace=IndRNNTrace,
        reference_step=indrnn_reference_step,
        init=indrnn_init,
        takes_activation=True,
        default_activation="relu",
        rate_at_init=indrnn_rate_at_init,
        recurrent_norm=max_abs,
        display_name="IndRNN",
        color="#CC79A7",  # Okabe-Ito reddish purple
        order=3,
    )
)
