"""Record the recurrent part of any nn.Module: `record(model, inputs, loss_fn, module=...)`.

The user's *whole* model runs once. For that call the recurrent submodule's `forward` is
replaced (on the instance, restored in `finally`) by an equivalent layer-by-layer forward:
per layer one call of torch's fused kernel for a single layer (the packed overload for a
PackedSequence), with the module's own parameters (no copy), and dropout between layers
drawn exactly as torch's CPU kernel draws it (`bernoulli_(1 - p) / (1 - p)` on the layer's
output, in the same order), so a train-mode pass under the same seed is the pass torch makes,
and the masks drawn are kept (on a GPU cuDNN draws its masks otherwise: the recording is
still exact for the pass it made, which is then not the one a plain call makes under that
seed). That forward captures each layer's input, initial state and output; autograd through
the rest of the model (the real head, the real loss) gives ∂L/∂output and ∂L/∂(h_n, c_n) of
the submodule, and gradlab's adjoint scan runs from there as the direct term. So Σ_k of the
contributions is autograd's gradient of the whole model's loss for the submodule's
parameters, and `param.grad` is left untouched.

Variable lengths (PackedSequence): sequence b's steps past its length l_b are not part of the
pass. Every layer's record is padded to T = max l_b with zeros past l_b (inputs and states, as
torch's `pad_packed_sequence`), its direct terms are 0 there, and ∂L/∂h_n enters at step l_b,
so those steps contribute exactly 0. A reverse direction is read per sequence in its processing
order: step s of sequence b consumes x_{l_b - s + 1} (for full lengths, the `record`
convention). `Recording.lengths` / `Recording.step_mask` say which steps are real.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from gradlab.cells.models import RecurrentModel
from gradlab.cells.registry import cell_of, get_cell
from gradlab.cells.traces import LSTMTrace
from gradlab.record import (
    LayerRecording,
    NonFiniteWarning,
    Recording,
    _adjoint_trace,
    _check_adjoint_dtype,
    _first_nonfinite,
    _make_trace,
)

__all__ = ["RECURRENT_MODULES", "record_module", "recurrent_submodules"]

#: The module types `record_module` finds and records by default.
RECURRENT_MODULES: tuple[type[nn.Module], ...] = (nn.RNN, nn.LSTM, nn.GRU, RecurrentModel)


def recurrent_submodules(
    model: nn.Module, module: str | nn.Module | None = None
) -> dict[str, nn.Module]:
    """name → recurrent submodule to record: `module` by dotted name (as in `named_modules`,
    "" for `model` itself) or by identity, or every nn.RNN/LSTM/GRU/gradlab model inside (an
    outermost one only: a gradlab model's own submodules are not searched)."""
    named = dict(model.named_modules())
    if module is None:
        found: dict[str, nn.Module] = {}
        for name, sub in named.items():
            inside = any(name.startswith(f"{outer}.") or outer == "" for outer in found)
            if isinstance(sub, RECURRENT_MODULES) and not inside:
                found[name] = sub
        if not found:
            raise ValueError(
                f"{type(model).__name__} has no nn.RNN, nn.LSTM, nn.GRU or gradlab recurrent "
                "model inside; pass module= to name one"
            )
        return found
    if isinstance(module, str):
        if module not in named:
            recurrent = [n for n, m in named.items() if isinstance(m, RECURRENT_MODULES)]
            raise ValueError(f"module {module!r} is not a submodule; recurrent ones: {recurrent}")
        name, sub = module, named[module]
    elif isinstance(module, nn.Module):
        names = [n for n, m in named.items() if m is module]
        if not names:
            raise ValueError(f"module {type(module).__name__} is not a submodule of the model")
        name, sub = names[0], module
    else:
        raise TypeError(f"module must be a name, an nn.Module or None, got {type(module).__name__}")
    if not isinstance(sub, RECURRENT_MODULES):
        raise TypeError(
            f"module {name!r} is a {type(sub).__name__}; expected nn.RNN, nn.LSTM, nn.GRU or a "
            "gradlab recurrent model"
        )
    return {name: sub}


def _view(module: nn.Module) -> RecurrentModel:
    """The gradlab model of `module` whose parameters *are* the module's (no copy): a gradlab
    model passes through; torch's is built on the meta device and given the module's tensors."""
    if isinstance(module, RecurrentModel):
        return module
    spec = cell_of(module)
    rnn: Any = module  # an nn.RNN / LSTM / GRU (RECURRENT_MODULES)
    activation = getattr(rnn, "nonlinearity", None) if spec.takes_activation else None
    view = spec.build(
        rnn.input_size,
        rnn.hidden_size,
        activation,
        num_layers=rnn.num_layers,
        bias=rnn.bias,
        batch_first=rnn.batch_first,
        bidirectional=rnn.bidirectional,
        device="meta",
        dtype=rnn.weight_hh_l0.dtype,
        **({"proj_size": rnn.proj_size} if getattr(rnn, "proj_size", 0) else {}),
    )
    for name in rnn._flat_weights_names:
        setattr(view, name, getattr(rnn, name))
    return view


def _permute(state: Tensor, index: Tensor | None) -> Tensor:
    """A state (L·D, B, N) with its batch rows taken in `index` order (None: as it is)."""
    return state if index is None else state.index_select(1, index)


def _reorder(x: Tensor, index: Tensor) -> Tensor:
    """x (T, B, ...) read at time index[s, b] for step s of sequence b."""
    shape = index.shape + (1,) * (x.dim() - 2)
    return x.gather(0, index.view(shape).expand_as(x))


class _Pass:
    """What the replaced forward of one recurrent submodule captured in the model's pass."""

    def __init__(self, name: str, module: nn.Module, keep_graph: bool) -> None:
        """`keep_graph`: run the layers with autograd, so a gradient can flow through this
        submodule to another recorded one below it; otherwise they run without a graph and the
        model receives leaves (only ∂L/∂(what it receives) is needed)."""
        self.name, self.module, self.view = name, module, _view(module)
        self.spec = get_cell(self.view.cell)
        self.keep_graph = keep_graph
        self.calls = 0
        # filled by forward: per layer (input (T, B, I), initial parts ((D, B, N) each),
        # output (T, B, D·N)), all padded, time-major, original batch order, detached
        self.layers: list[tuple[Tensor, tuple[Tensor, ...], Tensor]] = []
        self.noise: list[Tensor | None] = []  # dropout factor applied to layer l's output
        self.lengths = torch.empty(0, dtype=torch.long)  # (B,), set by forward
        self.output: Any = None
        self.tapped: list[Tensor] = []  # output, then h_n parts: what the model received
        self.unbatched = False
        self.packed: PackedSequence | None = None

    def _error(self, what: str) -> ValueError:
        return ValueError(f"{what} (the input of recurrent submodule {self.name or 'model'!r})")

    def _check_tensor(self, x: Tensor) -> Tensor:
        """x as (T, B, I), time-major, with ValueErrors that name the argument."""
        view = self.view
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a Tensor or PackedSequence, got {type(x).__name__}")
        layout = "(B, T, I)" if view.batch_first else "(T, B, I)"
        if x.dim() not in (2, 3) or x.shape[-1] != view.input_size:
            raise self._error(
                f"input must be {layout} or unbatched (T, I) with I = input_size = "
                f"{view.input_size}, got shape {tuple(x.shape)}"
            )
        self.unbatched = x.dim() == 2
        if self.unbatched:
            x = x.unsqueeze(1)
        elif view.batch_first:
            x = x.transpose(0, 1)
        if x.shape[1] == 0:
            raise self._error(f"input has batch size B = 0 (shape {tuple(x.shape)})")
        if x.shape[0] == 0:
            raise self._error(f"input has no timesteps, T = 0 (shape {tuple(x.shape)})")
        return x

    def _initial(self, hx: Any, B: int, like: Tensor) -> tuple[Tensor, ...]:
        """The initial state parts, (L·D, B, N) each, original batch order."""
        view, parts = self.view, self.spec.state_parts
        shapes = [(view.num_layers * view.num_directions, B, n) for n in view.state_sizes()]
        if hx is None:
            return tuple(like.new_zeros(shape) for shape in shapes)
        states = hx if isinstance(hx, tuple) else (hx,)
        if len(states) != len(parts) or not all(isinstance(s, Tensor) for s in states):
            names = ", ".join(f"{p}0" for p in parts)
            raise self._error(f"hx must be ({names}) of shapes {', '.join(map(str, shapes))}")
        if self.unbatched:
            states = tuple(s.unsqueeze(1) if s.dim() == 2 else s for s in states)
        for s, shape in zip(states, shapes, strict=True):
            if tuple(s.shape) != shape:
                raise self._error(
                    f"hx must have shape (num_layers·num_directions, B, N) = {shape}, "
                    f"got {tuple(s.shape)}"
                )
        return tuple(states)

    def forward(self, input: Any, hx: Any = None) -> tuple[Any, Any]:
        """The module's forward, layer by layer; see the module docstring."""
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError(
                f"recurrent submodule {self.name!r} was called more than once in one forward; "
                "record records one call"
            )
        if self.keep_graph:
            top, h_n = self._layers_forward(input, hx)
        else:
            with torch.no_grad():
                top, h_n = self._layers_forward(input, hx)
            top = top.detach().requires_grad_(True)
            h_n = [h.detach().requires_grad_(True) for h in h_n]
        self.tapped = [top, *h_n]
        # the model gets copies: what it does to them in place leaves the tapped tensors as
        # they were, and the gradients are taken with respect to those
        top, h_n = top.clone(), [h.clone() for h in h_n]
        if self.packed is not None:
            pk = self.packed
            self.output = PackedSequence(
                top, pk.batch_sizes, pk.sorted_indices, pk.unsorted_indices
            )
        else:
            self.output = top
        return self.output, self.spec.join_state(h_n)

    def _layers_forward(self, input: Any, hx: Any) -> tuple[Tensor, list[Tensor]]:
        """The layers' pass: the top layer's output as the module returns it (a packed
        sequence's data), and h_n's parts as it returns them; fills the captured record."""
        view, spec = self.view, self.spec
        L, D = view.num_layers, view.num_directions
        p = float(getattr(self.module, "dropout", 0.0) or 0.0)
        drop = p > 0 and self.module.training and L > 1
        if isinstance(input, PackedSequence):
            self.packed = input
            padded, lengths = pad_packed_sequence(input)
            if padded.shape[-1] != view.input_size:
                raise self._error(
                    f"input must have I = input_size = {view.input_size} features, got "
                    f"{padded.shape[-1]}"
                )
            sorted_idx, unsorted_idx = input.sorted_indices, input.unsorted_indices
            layer_data: Tensor = input.data
        else:
            padded = self._check_tensor(input)
            lengths = torch.full((padded.shape[1],), padded.shape[0], dtype=torch.long)
            layer_data = padded
        if not layer_data.requires_grad:  # so ∂L/∂output exists even with frozen parameters
            layer_data = layer_data.detach().requires_grad_(True)
        T, B = padded.shape[0], padded.shape[1]
        self.lengths = lengths
        initial = self._initial(hx, B, padded)
        finals: list[list[Tensor]] = [[] for _ in spec.state_parts]
        layer_padded = padded
        for layer in range(L):
            init = tuple(part[layer * D : (layer + 1) * D] for part in initial)
            if self.packed is not None:
                kernel_init = tuple(_permute(part, sorted_idx) for part in init)
                out_data, *final = view.packed_layer_forward(
                    layer_data, self.packed.batch_sizes, spec.join_state(kernel_init), layer
                )
                final = [_permute(f, unsorted_idx) for f in final]
                sequence = PackedSequence(
                    out_data, self.packed.batch_sizes, sorted_idx, unsorted_idx
                )
                out_padded = pad_packed_sequence(sequence, total_length=T)[0]
            else:
                out_data, *final = view.layer_forward(layer_data, spec.join_state(init), layer)
                out_padded = out_data
            for parts, f in zip(finals, final, strict=True):
                parts.append(f)
            self.layers.append(
                (layer_padded.detach(), tuple(i.detach() for i in init), out_padded.detach())
            )
            noise = None
            if drop and layer < L - 1:  # as torch's CPU kernel: bernoulli_(1-p)/(1-p), in order
                noise = (
                    torch.empty_like(out_data).bernoulli_(1 - p).div_(1 - p)
                    if p < 1
                    else torch.zeros_like(out_data)  # torch's p = 1: everything dropped
                )
                out_data = out_data * noise
                if self.packed is not None:
                    sequence = PackedSequence(
                        noise, self.packed.batch_sizes, sorted_idx, unsorted_idx
                    )
                    noise = pad_packed_sequence(sequence, total_length=T)[0]
                layer_padded = (out_padded * noise).detach()
            else:
                layer_padded = out_padded
            self.noise.append(noise)
            layer_data = out_data
        h_n = [torch.cat(parts) for parts in finals]  # (L·D, B, N) each
        if self.packed is not None:
            return layer_data, h_n
        if self.unbatched:
            return layer_data.squeeze(1), [h.squeeze(1) for h in h_n]
        return (layer_data.transpose(0, 1) if view.batch_first else layer_data), h_n

    def grads_padded(self, grads: list[Tensor | None]) -> tuple[Tensor, list[Tensor]]:
        """∂L/∂output as (T, B, D·N) padded time-major and ∂L/∂h_n parts as (L·D, B, N)."""
        full = [
            torch.zeros_like(t) if g is None else g for g, t in zip(grads, self.tapped, strict=True)
        ]
        grad_top, *grad_final = full
        T = self.layers[0][0].shape[0]
        if self.packed is not None:
            pk = self.packed
            grad_top = pad_packed_sequence(
                PackedSequence(grad_top, pk.batch_sizes, pk.sorted_indices, pk.unsorted_indices),
                total_length=T,
            )[0]
        elif self.unbatched:
            grad_top = grad_top.unsqueeze(1)
            grad_final = [g.unsqueeze(1) for g in grad_final]
        elif self.view.batch_first:
            grad_top = grad_top.transpose(0, 1)
        return grad_top, grad_final


def _record_pass(
    tap: _Pass,
    grads: list[Tensor | None] | None,
    loss: float | None,
    adjoint_dtype: torch.dtype | None,
) -> Recording:
    """The Recording of one captured pass: traces, then (with grads) the adjoint scans."""
    view = tap.view
    L, D, N = view.num_layers, view.num_directions, view.output_size
    T, B = tap.layers[0][0].shape[:2]
    lengths = tap.lengths
    device = tap.layers[0][0].device
    steps = torch.arange(T, device=device).unsqueeze(1)  # (T, 1)
    ends = lengths.to(device).unsqueeze(0)  # (1, B)
    # step s of a reverse direction reads time l_b - 1 - s (s < l_b); padding stays in place
    reverse_index = torch.where(steps < ends, ends - 1 - steps, steps)  # (T, B), an involution
    layers: dict[tuple[int, bool], LayerRecording] = {}
    with torch.no_grad():
        for layer, (inputs, initial, out) in enumerate(tap.layers):
            for d in range(D):
                reverse = d == 1
                hidden = out[..., d * N : (d + 1) * N]
                x = inputs
                if reverse:
                    hidden, x = _reorder(hidden, reverse_index), _reorder(inputs, reverse_index)
                hidden = torch.cat((initial[0][d].unsqueeze(0), hidden))
                rest = tuple(part[d] for part in initial[1:])
                trace = _make_trace(view, layer, reverse, x.contiguous(), hidden, rest)
                layers[(layer, reverse)] = LayerRecording(view, layer, reverse, trace, lengths)
        if grads is not None:
            dtype = _check_adjoint_dtype(adjoint_dtype, view.weight_hh_l0.dtype)
            grad_layer, grad_final = tap.grads_padded(grads)
            last = (lengths.to(device) - 1, torch.arange(B, device=device))
            full = bool((lengths == T).all())  # then ∂L/∂c_n enters at step T for every row
            for layer in range(L - 1, -1, -1):
                grad_input: Tensor | None = None
                for d in range(D):
                    lr = layers[(layer, d == 1)]
                    direct = grad_layer[..., d * N : (d + 1) * N].to(dtype)
                    direct = _reorder(direct, reverse_index) if d == 1 else direct.clone()
                    direct[last] += grad_final[0][layer * D + d].to(dtype)  # ∂L/∂h_n at l_b
                    finals = [part[layer * D + d].to(dtype) for part in grad_final[1:]]
                    trace = _adjoint_trace(view, lr, dtype)
                    adjoint: tuple[Tensor, Tensor | None, Tensor, Tensor]
                    if full and isinstance(trace, LSTMTrace):  # ∂L/∂c_n at step T for all rows
                        adjoint = trace.adjoint(direct.contiguous(), final_cell=finals[0])
                    else:  # ∂L/∂c_n at l_b: a direct term (T, B, N), 0 but at l_b
                        extra = []
                        for final in finals:
                            term = direct.new_zeros(direct.shape[:2] + final.shape[-1:])
                            term[last] = final
                            extra.append(term)
                        adjoint = trace.adjoint(direct.contiguous(), *extra)
                    lr._set_adjoint(*adjoint)
                    if layer > 0:
                        delta_ih = lr._need_loss()[2]
                        delta = _reorder(delta_ih, reverse_index) if d == 1 else delta_ih
                        term = delta @ trace.weights.weight_ih
                        grad_input = term if grad_input is None else grad_input + term
                if grad_input is not None:
                    noise = tap.noise[layer - 1]
                    grad_layer = grad_input if noise is None else grad_input * noise.to(dtype)
    output = tap.output
    if isinstance(output, PackedSequence):
        output = PackedSequence(
            output.data.detach(), output.batch_sizes, output.sorted_indices, output.unsorted_indices
        )
    else:
        output = output.detach()
    return Recording(view, layers, output, loss)


def _call(model: nn.Module, inputs: Any) -> Any:
    """model(inputs): a tuple is positional arguments, a mapping keyword arguments."""
    if isinstance(inputs, PackedSequence | Tensor):
        return model(inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def _check_inputs(inputs: Any) -> None:
    """A ValueError naming `inputs` for an empty tensor (B = 0 or T = 0)."""
    if isinstance(inputs, PackedSequence):
        tensors: list[Any] = [inputs.data]
    elif isinstance(inputs, Tensor):
        tensors = [inputs]
    elif isinstance(inputs, Mapping):
        tensors = list(inputs.values())
    elif isinstance(inputs, tuple):
        tensors = list(inputs)
    else:
        tensors = []
    for i, t in enumerate(tensors):
        if isinstance(t, Tensor) and t.dim() > 0 and t.numel() == 0:
            where = "inputs" if len(tensors) == 1 else f"inputs[{i}]"
            raise ValueError(
                f"{where} has shape {tuple(t.shape)}: a dimension of size 0 (B = 0 or T = 0); "
                "record needs at least one sequence and one step"
            )


def record_module(
    model: nn.Module,
    inputs: Any,
    loss_fn: Callable[[Any], Tensor] | None = None,
    module: str | nn.Module | None = None,
    *,
    adjoint_dtype: torch.dtype | None = None,
) -> Recording | dict[str, Recording]:
    """Record the recurrent submodule(s) of `model` in one pass of the whole model.

    inputs: what `model` takes (a tensor or PackedSequence; a tuple for several positional
    arguments, a mapping for keyword arguments). loss_fn maps exactly what `model(inputs)`
    returns to a scalar. module: the submodule to record, by dotted name (as in
    `named_modules`) or itself; None records every nn.RNN/LSTM/GRU (and gradlab model) inside.
    Returns one Recording when one submodule is recorded, else a dict name → Recording (in
    `named_modules` order). Each Recording's `model` is a gradlab model that shares the
    submodule's parameters; `lengths` gives each sequence's length. The model's `.grad`s are
    not touched; dropout between layers uses the masks drawn in this pass (module docstring).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    _check_inputs(inputs)
    found = recurrent_submodules(model, module)
    # several: a gradient may flow from one through another, so their layers keep a graph
    taps = [_Pass(name, sub, keep_graph=len(found) > 1) for name, sub in found.items()]
    for tap in taps:
        tap.module.forward = tap.forward
    try:
        with torch.enable_grad():
            result = _call(model, inputs)
            loss_value, grads = None, None
            if loss_fn is not None:
                loss = loss_fn(result)
                if not isinstance(loss, Tensor) or loss.numel() != 1:
                    shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
                    raise ValueError(f"loss_fn must return a scalar tensor, got {shape}")
    finally:
        for tap in taps:
            del tap.module.forward
    missing = [tap.name for tap in taps if tap.calls == 0]
    if missing:
        raise RuntimeError(f"the model's forward did not call recurrent submodule(s) {missing}")
    recordings = {}
    all_grads: list[Tensor | None] = []
    if loss_fn is not None:
        loss_value = float(loss.detach())
        tapped = [t for tap in taps for t in tap.tapped]
        wanted = [t for t in tapped if t.requires_grad]
        got: list[Tensor | None] = (
            list(torch.autograd.grad(loss.reshape(()), wanted, allow_unused=True))
            if wanted and loss.requires_grad
            else [None] * len(wanted)
        )
        answers = iter(got)
        all_grads = [next(answers) if t.requires_grad else None for t in tapped]
    offset = 0
    for tap in taps:
        grads = None
        if loss_fn is not None:
            grads = all_grads[offset : offset + len(tap.tapped)]
            offset += len(tap.tapped)
        recordings[tap.name] = _record_pass(tap, grads, loss_value, adjoint_dtype)
    for rec in recordings.values():
        where = _first_nonfinite(rec)
        if where is not None or (loss_value is not None and not math.isfinite(loss_value)):
            warnings.warn(
                f"non-finite values in the record: {where or 'the loss'}; kept as they are",
                NonFiniteWarning,
                stacklevel=3,
            )
    if len(recordings) == 1:
        return next(iter(recordings.values()))
    return recordings
