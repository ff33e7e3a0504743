"""The recurrent models: torch.nn.RNN / LSTM / GRU with gradlab's activations and metadata.

Each model subclasses its torch counterpart, so parameter names (`weight_ih_l0`,
`weight_hh_l0_reverse`, ...), shapes, gate order (LSTM i, f, g, o; GRU r, z, n) and equations
are torch's, and the fused kernel computes the forward pass wherever torch has one. A vanilla
RNN whose activation torch has no kernel for (sigmoid, linear, or one registered later) runs a
plain loop with the same equations.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from gradlab.cells.activations import Activation, get_activation
from gradlab.cells.registry import CellSpec, cell_of, get_cell

__all__ = ["GRU", "LSTM", "RNN", "LayerWeights", "RecurrentModel", "from_torch"]


class LayerWeights(NamedTuple):
    """The parameters of one layer and direction (biases are None when bias=False), in the
    order torch's kernels take them.

    Shapes: weight_ih (G·N, I), weight_hh (G·N, P), bias_ih / bias_hh (G·N,), G gates, P = N
    (a cell with another recurrence says so: IndRNN's weight_hh is the diagonal u, (N,)); an
    LSTM with proj_size P > 0 also has weight_hr (P, N), h_t = W_hr (o_t ⊙ tanh c_t).
    """

    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor | None
    bias_hh: Tensor | None
    weight_hr: Tensor | None = None


class RecurrentModel(nn.Module):
    """Base of gradlab's recurrent models (RNN, LSTM and GRU also inherit from torch's classes);
    `cell` names the model's `CellSpec` in the registry."""

    cell: str
    gate_names: tuple[str, ...]
    activation: Activation | None
    # set by torch.nn.RNNBase.__init__
    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    batch_first: bool
    bidirectional: bool
    weight_hh_l0: Tensor

    @property
    def spec(self) -> CellSpec:
        """This model's cell in the registry."""
        return get_cell(self.cell)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Size of h_t (and of each direction's output): proj_size P for a projected LSTM, else
        hidden_size N."""
        return getattr(self, "proj_size", 0) or self.hidden_size

    def state_sizes(self) -> tuple[int, ...]:
        """Size of each part of the state (`spec.state_parts`): h is `output_size`, others N."""
        parts = self.spec.state_parts
        return (self.output_size,) + (self.hidden_size,) * (len(parts) - 1)

    @property
    def state_size(self) -> int:
        """Size S of the recurrent state s_t of one layer: N (RNN, GRU), 2N (LSTM: h, c), P + N
        (LSTM with proj_size P)."""
        return sum(self.state_sizes())

    def param_name(self, short: str, layer: int, reverse: bool) -> str:
        """Torch's name of a parameter, e.g. ("weight_hh", 1, True) -> "weight_hh_l1_reverse"."""
        return f"{short}_l{layer}{'_reverse' if reverse else ''}"

    def layer_weights(self, layer: int, reverse: bool = False) -> LayerWeights:
        """The parameters of one layer and direction."""
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be in 0..{self.num_layers - 1}, got {layer}")
        if reverse and not self.bidirectional:
            raise ValueError("reverse=True needs a bidirectional model")

        def get(short: str) -> Tensor | None:
            return getattr(self, self.param_name(short, layer, reverse), None)

        def weight(short: str) -> Tensor:
            value: Tensor = getattr(self, self.param_name(short, layer, reverse))
            return value

        return LayerWeights(
            weight("weight_ih"),
            weight("weight_hh"),
            get("bias_ih"),
            get("bias_hh"),
            get("weight_hr"),
        )

    def flat_weights(self, layer: int) -> list[Tensor]:
        """One layer's parameters in the order torch's fused kernels take them."""
        flat: list[Tensor] = []
        for reverse in (False, True)[: self.num_directions]:
            flat.extend(p for p in self.layer_weights(layer, reverse) if p is not None)
        return flat

    def layer_forward(
        self, inputs: Tensor, h0: Tensor | tuple[Tensor, ...], layer: int = 0
    ) -> tuple[Tensor, ...]:
        """Run one layer, both directions, time-major: inputs (T, B, I), h0 (D, B, N).

        Returns (output (T, B, D·N), h_n (D, B, N)) and, for an LSTM, c_n (D, B, N).
        Subclasses call torch's fused kernel for the layer where one exists.
        """
        raise NotImplementedError(f"{type(self).__name__} must define layer_forward")

    def packed_layer_forward(
        self, data: Tensor, batch_sizes: Tensor, h0: Tensor | tuple[Tensor, ...], layer: int = 0
    ) -> tuple[Tensor, ...]:
        """Run one layer, both directions, on a PackedSequence's `data` (sum of lengths, I) and
        `batch_sizes`, h0 (D, B, N) in the packed (sorted) batch order. Returns (output data
        (sum of lengths, D·N), h_n (D, B, N)) and, for an LSTM, c_n. Only cells with a torch
        kernel have it."""
        raise self._no_packed_kernel()

    def _no_packed_kernel(self) -> TypeError:
        name = getattr(self.activation, "name", None)
        return TypeError(
            f"a PackedSequence needs a cell with a torch kernel; this {self.cell!r} "
            f"{'(' + name + ') ' if name else ''}model runs a plain loop: pass a padded tensor"
        )

    def _loop_forward(self, x: Any, h0: Tensor | None) -> tuple[Tensor, Tensor]:
        """Layer by layer with `layer_forward`, for a cell whose state is one tensor and that has
        no fused kernel (or an activation without one): x, h0 and the result as `forward`'s
        (unbatched (T, I) too; a PackedSequence needs a kernel)."""
        if isinstance(x, PackedSequence):
            raise self._no_packed_kernel()
        if x.dim() == 2:  # unbatched: one sequence
            output, h_n = self._loop_forward(
                x.unsqueeze(1), None if h0 is None else h0.unsqueeze(1)
            )
            return output.squeeze(1), h_n.squeeze(1)
        if self.batch_first:
            x = x.transpose(0, 1)
        D = self.num_directions
        if h0 is None:
            h0 = x.new_zeros(self.num_layers * D, x.shape[1], self.hidden_size)
        layer_input, finals = x, []
        for layer in range(self.num_layers):
            layer_input, h_n = self.layer_forward(
                layer_input, h0[layer * D : (layer + 1) * D], layer
            )
            finals.append(h_n)
        output = layer_input.transpose(0, 1) if self.batch_first else layer_input
        return output, torch.cat(finals)

    def check_input(self, x: Any, h0: Tensor | tuple[Tensor, Tensor] | None) -> None:
        """Raise a ValueError that says what was expected if `x` or `h0` has the wrong shape.

        x: (T, B, I) ((B, T, I) when batch_first), unbatched (T, I), or a PackedSequence (its
        h0 is checked by torch)."""
        if isinstance(x, PackedSequence):
            if x.data.shape[-1] != self.input_size:
                raise ValueError(
                    f"x (a PackedSequence) must have I = input_size = {self.input_size} "
                    f"features, got {x.data.shape[-1]}"
                )
            return
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor or PackedSequence, got {type(x).__name__}")
        layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
        if x.dim() == 2:  # unbatched (T, I), as torch takes it
            if x.shape[-1] != self.input_size:
                raise ValueError(
                    f"x must be {layout} or unbatched (T, I) with I = input_size = "
                    f"{self.input_size}, got shape {tuple(x.shape)}"
                )
            return
        if x.dim() != 3:
            raise ValueError(
                f"x must be 3-D {layout} (or unbatched 2-D (T, I)) with I = input_size = "
                f"{self.input_size}, got shape {tuple(x.shape)}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"x must be {layout} with I = input_size = {self.input_size}, "
                f"got shape {tuple(x.shape)}"
            )
        if h0 is None:
            return
        batch = x.shape[0] if self.batch_first else x.shape[1]
        expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        states = h0 if isinstance(h0, tuple) else (h0,)
        parts = self.spec.state_parts
        if len(parts) > 1 and len(states) != len(parts):
            names = ", ".join(f"{p}0" for p in parts)
            raise ValueError(
                f"{self.cell.upper()} h0 must be a tuple ({names}), each of shape {expected}"
            )
        if len(parts) == 1 and isinstance(h0, tuple):
            raise ValueError(f"h0 must be a tensor of shape {expected}, got a tuple")
        for state, size in zip(states, self.state_sizes(), strict=True):
            expected = (*expected[:2], size)
            if tuple(state.shape) != expected:
                raise ValueError(
                    f"h0 must have shape (num_layers·num_directions, B, N) = {expected}, "
                    f"got {tuple(state.shape)}"
                )


class RNN(RecurrentModel, nn.RNN):
    """Vanilla RNN h_t = φ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) for any registered φ.

    x: (T, B, I) (or (B, T, I) with batch_first); returns output (T, B, D·N) and h_n (L·D, B, N).
    """

    cell = "rnn"
    gate_names = ()
    activation: Activation

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation: str | Activation = "tanh",
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        act = get_activation(activation)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            nonlinearity=act.torch_kernel or "tanh",
            bias=bias,
            batch_first=batch_first,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self.activation = act

    def forward(  # type: ignore[override]
        self, x: Tensor | PackedSequence, h0: Tensor | None = None
    ) -> tuple[Any, Tensor]:
        """x as torch's (a PackedSequence or unbatched (T, I) too, where torch has a kernel)."""
        self.check_input(x, h0)
        if self.activation.torch_kernel is not None:
            return super().forward(x, h0)
        return self._loop_forward(x, h0)

    def layer_forward(  # type: ignore[override]  # this cell's state: a tensor
        self, inputs: Tensor, h0: Tensor, layer: int = 0
    ) -> tuple[Tensor, Tensor]:
        kernel = self.activation.torch_kernel
        if kernel is not None:
            fused = _VF.rnn_tanh if kernel == "tanh" else _VF.rnn_relu
            args = (self.bias, 1, 0.0, False, self.bidirectional, False)
            return fused(inputs, h0, self.flat_weights(layer), *args)
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
                h = phi(torch.addmm(drive[t], h, w.weight_hh.T))
                states.append(h)
            out = torch.stack(states)
            outputs.append(out.flip(0) if d == 1 else out)
            finals.append(h)
        return torch.cat(outputs, dim=-1), torch.stack(finals)

    def packed_layer_forward(  # type: ignore[override]  # this cell's state: a tensor
        self, data: Tensor, batch_sizes: Tensor, h0: Tensor, layer: int = 0
    ) -> tuple[Tensor, Tensor]:
        kernel = self.activation.torch_kernel
        if kernel is None:
            raise self._no_packed_kernel()
        fused = _VF.rnn_tanh if kernel == "tanh" else _VF.rnn_relu
        args = (self.bias, 1, 0.0, False, self.bidirectional)
        return fused(data, batch_sizes, h0, self.flat_weights(layer), *args)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", activation={self.activation.name!r}"


class LSTM(RecurrentModel, nn.LSTM):
    """LSTM with torch's equations and gate order (i, f, g, o); state s_t = (h_t, c_t).

    proj_size P > 0: h_t = W_hr (o_t ⊙ tanh c_t) has P units (torch's projected LSTM)."""

    cell = "lstm"
    gate_names = ("i", "f", "g", "o")
    activation = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            bidirectional=bidirectional,
            proj_size=proj_size,
            device=device,
            dtype=dtype,
        )

    def forward(  # type: ignore[override]  # x as torch's, checked first
        self, x: Tensor | PackedSequence, h0: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Any, tuple[Tensor, Tensor]]:
        self.check_input(x, h0)
        return super().forward(x, h0)

    def layer_forward(  # type: ignore[override]  # this cell's state: (h, c)
        self, inputs: Tensor, h0: tuple[Tensor, Tensor], layer: int = 0
    ) -> tuple[Tensor, Tensor, Tensor]:
        args = (self.bias, 1, 0.0, False, self.bidirectional, False)
        return _VF.lstm(inputs, h0, self.flat_weights(layer), *args)

    def packed_layer_forward(  # type: ignore[override]  # this cell's state: (h, c)
        self, data: Tensor, batch_sizes: Tensor, h0: tuple[Tensor, Tensor], layer: int = 0
    ) -> tuple[Tensor, Tensor, Tensor]:
        args = (self.bias, 1, 0.0, False, self.bidirectional)
        return _VF.lstm(data, batch_sizes, h0, self.flat_weights(layer), *args)


class GRU(RecurrentModel, nn.GRU):
    """GRU with torch's equations and gate order (r, z, n): h' = (1 - z) n + z h."""

    cell = "gru"
    gate_names = ("r", "z", "n")
    activation = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )

    def forward(  # type: ignore[override]  # x as torch's, checked first
        self, x: Tensor | PackedSequence, h0: Tensor | None = None
    ) -> tuple[Any, Tensor]:
        self.check_input(x, h0)
        return super().forward(x, h0)

    def layer_forward(  # type: ignore[override]  # this cell's state: a tensor
        self, inputs: Tensor, h0: Tensor, layer: int = 0
    ) -> tuple[Tensor, Tensor]:
        args = (self.bias, 1, 0.0, False, self.bidirectional, False)
        return _VF.gru(inputs, h0, self.flat_weights(layer), *args)

    def packed_layer_forward(  # type: ignore[override]  # this cell's state: a tensor
        self, data: Tensor, batch_sizes: Tensor, h0: Tensor, layer: int = 0
    ) -> tuple[Tensor, Tensor]:
        args = (self.bias, 1, 0.0, False, self.bidirectional)
        return _VF.gru(data, batch_sizes, h0, self.flat_weights(layer), *args)


def from_torch(module: nn.Module) -> RecurrentModel:
    """The gradlab model with the same architecture and weights as a torch nn.RNN/LSTM/GRU
    (an LSTM's proj_size included).

    A module with dropout between layers (dropout > 0, num_layers > 1) is refused: gradlab's
    models have none, and dropping it silently would change a train-mode pass. Record such a
    module where it is, with `gradlab.record(model, inputs, loss_fn, module=...)`, which uses
    the masks torch draws in that pass.
    """
    supported = "torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU"
    if not isinstance(module, nn.RNN | nn.LSTM | nn.GRU):
        raise TypeError(f"from_torch supports {supported}; got {type(module).__name__}")
    if module.dropout > 0 and module.num_layers > 1:
        raise ValueError(
            f"from_torch would drop this {type(module).__name__}'s dropout={module.dropout} "
            "between layers (gradlab models have none); record it inside its model with "
            "gradlab.record(model, inputs, loss_fn, module=...), which keeps the masks torch "
            "draws, or set dropout=0"
        )
    weight = module.weight_hh_l0
    common: dict[str, Any] = dict(
        num_layers=module.num_layers,
        bias=module.bias,
        batch_first=module.batch_first,
        bidirectional=module.bidirectional,
        device=weight.device,
        dtype=weight.dtype,
    )
    if getattr(module, "proj_size", 0):
        common["proj_size"] = module.proj_size
    spec = cell_of(module)
    activation = getattr(module, "activation", None) or getattr(module, "nonlinearity", None)
    model = spec.build(
        module.input_size,
        module.hidden_size,
        activation if spec.takes_activation else None,
        **common,
    )
    model.load_state_dict(module.state_dict())
    model.train(module.training)
    return model
