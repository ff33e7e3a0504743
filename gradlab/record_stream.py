"""`record_streaming`: `record`'s per-step reductions, checkpointed, in memory that stays bounded.

The plain `gradlab.record` keeps the whole trace — gates and the step map's coefficients for every
step, ∂L/∂h_t, the δ's of every pre-activation — so its memory is about 10–20 (T, B, N) arrays
(LSTM, GRU). A recording of T = 100,000 steps does not fit. The streaming mode is checkpointed:

1. Forward, chunk by chunk of K steps (K ≈ √T by default): torch's fused kernel runs each chunk
   from the previous chunk's final state (the states it carries are the kernel's own, so h_t is
   the trajectory the plain mode records) and writes h_1..h_T into one (T+1, B, N) buffer — the
   model's output, which the loss needs anyway. For an LSTM each chunk's trace is built to get
   the cell state c at the chunk's end as the trace computes it (the plain mode's c_t), kept as
   the next chunk's checkpoint: T/K states of (B, N).
2. ∂L/∂output from one autograd call on `loss_fn`, as in the plain mode.
3. Backward, chunks from last to first: the chunk's trace is rebuilt from its checkpoint, the
   adjoint scan runs over it with the adjoint carried in from the later chunk (∂L/∂h and, for an
   LSTM, ∂L/∂c at the chunk's end), and only per-step reductions are kept: ‖∂L/∂h_t‖ per batch
   row, the contribution norms of every parameter, the summed gradient of every parameter, and
   the forward ones (step-Jacobian Frobenius norms, hidden-state statistics, gate means; without
   a loss these come from the forward pass).

So the same formulas run on the same states as in the plain mode and the numbers agree to
rounding. Memory: the (T+1, B, N) states and ∂L/∂output (both also in any fused forward+backward),
plus one chunk's trace and adjoint, plus (T, B) reductions. Time: an LSTM's chunk traces are
built twice (forward for c, backward), other cells' once (the forward reductions are kept in the
backward pass). Measured (benchmarks/record_memory.py, LSTM, T=10,000, N=128, B=8,
float32, one thread): 91 MB and 10.5 s, against 900 MB and 6.9 s for `record` with the same
reductions; at T=100,000 about 830 MB.

Kept (same names as `Recording`): `hidden`, `output`, `loss`, `T`, `state_size`, `lengths`,
`step_mask`, `contribution_norms`, `step_jacobian_norms("fro")`, `hidden_stats`, `gate_means`;
and the reductions of what is not kept: `grad_hidden_norms()` (= `rec.grad_hidden.norm(dim=-1)`),
`grad_cell_norms()` (LSTM), `gradient(name)` (= `rec.contributions(name).sum(0)`). Everything
else of a `Recording` raises an AttributeError that names the plain mode.

Scope: a gradlab model with one layer and one direction, a padded tensor input, the adjoint in
the model's dtype; the plain `record` covers the rest.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradlab.cells.models import RecurrentModel
from gradlab.cells.registry import get_cell
from gradlab.cells.traces import Trace
from gradlab.record import _FULL_NAME, PARAM_NAMES, LayerRecording, NonFiniteWarning

__all__ = ["StreamingRecording", "record_streaming"]

#: What a `Recording` has that the streaming mode does not keep.
PLAIN_ONLY = (
    "cell",
    "contributions",
    "gates",
    "grad_cell",
    "grad_hidden",
    "inputs",
    "jacobian",
    "jacobian_norms",
    "layer",
    "layers",
    "lyapunov",
    "singular_values",
    "step_jacobian",
    "step_jacobians",
    "step_singular_values",
    "trace",
)


def default_chunk(T: int) -> int:
    """K = ⌈√T⌉ steps per chunk: T/K checkpoints and one K-step trace, both about √T."""
    return max(1, math.isqrt(T - 1) + 1) if T > 1 else 1


class StreamingRecording:
    """The per-step reductions of one batch, made by `record_streaming` (read-only).

    Shapes: T steps, B batch rows, N hidden units; (T,) per step t = 1..T unless said.
    """

    def __init__(
        self,
        model: RecurrentModel,
        hidden: Tensor,
        output: Tensor,
        loss: float | None,
        chunk: int,
        reductions: dict[str, Any],
    ) -> None:
        self._model = model
        self._hidden = hidden
        self._output = output
        self._loss = loss
        self._chunk = chunk
        self._r = reductions

    def __getattr__(self, name: str) -> Any:
        if name in PLAIN_ONLY:
            raise AttributeError(
                f"record_streaming keeps per-step reductions only, not {name!r}: record the "
                f"batch with the plain mode, gradlab.record(model, x, loss_fn), for it (on a "
                f"shorter sequence if the whole one does not fit)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        T, B, N = self._hidden.shape[0] - 1, self._hidden.shape[1], self._hidden.shape[2]
        return (
            f"StreamingRecording({self._model.cell}, T={T}, B={B}, N={N}, chunk={self._chunk}, "
            f"loss={self._loss})"
        )

    # ----- forward ----------------------------------------------------------------------
    @property
    def model(self) -> RecurrentModel:
        """The recorded model."""
        return self._model

    @property
    def chunk(self) -> int:
        """K, the steps per checkpointed chunk."""
        return self._chunk

    @property
    def hidden(self) -> Tensor:
        """h_0..h_T, (T+1, B, N) (kept: it is the model's output)."""
        return self._hidden

    @property
    def output(self) -> Tensor:
        """Exactly what ``model(x, h0)[0]`` returns."""
        return self._output

    @property
    def loss(self) -> float | None:
        """The loss's value (None when recorded without ``loss_fn``)."""
        return self._loss

    @property
    def T(self) -> int:
        """Number of timesteps."""
        return self._hidden.shape[0] - 1

    @property
    def state_size(self) -> int:
        """S: N, or N + cell size for an LSTM (state (h, c))."""
        return int(self._r["state_size"])

    @property
    def lengths(self) -> Tensor:
        """Each sequence's number of real steps, (B,): all T (a padded tensor input)."""
        return torch.full((self._hidden.shape[1],), self.T, dtype=torch.long)

    @property
    def step_mask(self) -> Tensor:
        """(T, B) bool, True where step k = 1..T of sequence b is real: all of them here."""
        return torch.ones(self.T, self._hidden.shape[1], dtype=torch.bool)

    def step_jacobian_norms(self, ord: int | str = "fro", samples: Any = None) -> Tensor:
        """‖J_t‖_F for t = 1..T, (T, B) (B' rows with `samples`). Only "fro" is kept."""
        if ord != "fro":
            raise ValueError(
                f"record_streaming keeps the Frobenius step-Jacobian norms only (ord='fro'), "
                f"got ord={ord!r}: use the plain mode, gradlab.record, for spectral norms"
            )
        norms = self._r["step_jacobian_fro"]
        if samples is None:
            return norms
        return norms[:, torch.as_tensor(samples, dtype=torch.long).reshape(-1)]

    def hidden_stats(self) -> dict[str, Tensor]:
        """Per step t = 0..T, (T+1,) each: "mean_abs", "saturation", "dead" (see
        `LayerRecording.hidden_stats`)."""
        return dict(self._r["hidden_stats"])

    def gate_means(self) -> dict[str, Tensor]:
        """Batch-and-unit mean of each gate per step t = 1..T, name → (T,)."""
        return dict(self._r["gate_means"])

    # ----- backward ---------------------------------------------------------------------
    def _need_loss(self) -> dict[str, Any]:
        if self._loss is None:
            raise RuntimeError(
                "this quantity needs a loss: call record_streaming(model, x, loss_fn=...)"
            )
        return self._r

    def grad_hidden_norms(self) -> Tensor:
        """‖∂L/∂h_t‖ per batch row for t = 0..T, (T+1, B): `rec.grad_hidden.norm(dim=-1)`."""
        return self._need_loss()["grad_hidden_norms"]

    def grad_cell_norms(self) -> Tensor:
        """LSTM ‖∂L/∂c_t‖ per batch row for t = 0..T, (T+1, B)."""
        norms = self._need_loss()["grad_cell_norms"]
        if norms is None:
            raise AttributeError(f"a {self._model.cell!r} layer has no cell state")
        return norms

    def _short_name(self, name: str) -> str:
        match = _FULL_NAME.match(name)
        if match:
            if int(match[2]) != 0 or match[3]:
                raise ValueError(f"{name!r} is not a parameter of the recorded layer")
            name = match[1]
        if name not in self._need_loss()["gradient"]:
            known = tuple(self._r["gradient"])
            if name in PARAM_NAMES:
                raise ValueError(f"the model has no {name!r}; it has {known}")
            raise ValueError(f"unknown parameter {name!r}; expected one of {known}")
        return name

    def contribution_norms(self, name: str) -> Tensor:
        """(T,) Frobenius norms of step k's term of ∂L/∂param, k = 1..T (short or full name)."""
        return self._r["contribution_norms"][self._short_name(name)]

    def gradient(self, name: str) -> Tensor:
        """∂L/∂param, the sum of every step's term, (*param.shape): the plain mode's
        `contributions(name).sum(0)` and what autograd's backward gives."""
        return self._r["gradient"][self._short_name(name)]

    @property
    def is_finite(self) -> bool:
        """False when a state or a gradient norm is NaN or Inf."""
        values = [self._hidden.sum()]
        if self._loss is not None:
            values.append(self._r["grad_hidden_norms"].sum())
        return all(bool(torch.isfinite(v)) for v in values)


class _ForwardReductions:
    """The forward per-step reductions, filled chunk by chunk (in any order): step-Jacobian
    Frobenius norms (T, B), hidden-state statistics (T+1,) each, gate means (T,) each."""

    def __init__(self, T: int, B: int, like: Tensor) -> None:
        self._T, self._like = T, like
        self._jacobian_fro = like.new_empty(T, B)
        self._stats: dict[str, Tensor] = {}
        self._gates: dict[str, Tensor] = {}
        self._state_size = 0

    def keep(self, lr: LayerRecording, first: int, stop: int) -> None:
        """Steps first+1..stop of the chunk recorded by `lr` (its states h_first..h_stop)."""
        self._state_size = lr.state_size
        self._jacobian_fro[first:stop] = lr.step_jacobian_norms("fro")
        for key, values in lr.hidden_stats().items():  # h_first's row: the same from either chunk
            self._stats.setdefault(key, values.new_empty(self._T + 1))[first : stop + 1] = values
        for key, values in lr.gate_means().items():
            self._gates.setdefault(key, values.new_empty(self._T))[first:stop] = values

    def kept(self) -> dict[str, Any]:
        return {
            "state_size": self._state_size,
            "step_jacobian_fro": self._jacobian_fro,
            "hidden_stats": self._stats,
            "gate_means": self._gates,
        }


def _parameter_names(model: RecurrentModel) -> tuple[str, ...]:
    """The layer's parameters as short names (weight_ih, weight_hh, biases, weight_hr)."""
    w = model.layer_weights(0, False)
    names = ["weight_ih", "weight_hh"]
    if w.bias_ih is not None:
        names += ["bias_ih", "bias_hh"]
    if w.weight_hr is not None:
        names.append("weight_hr")
    return tuple(names)


def _gradient_sum(lr: LayerRecording, name: str) -> Tensor:
    """Σ_k of step k's term of ∂L/∂param over a chunk, (*param.shape), in one product."""
    delta, right = lr._factors(name)
    if right is None:
        return delta.sum((0, 1))
    own = name == "weight_hh" and type(lr.trace).weight_hh_contributions is not (
        Trace.weight_hh_contributions
    )
    if own:  # the cell's own recurrence (may not be a matrix): its trace knows the terms
        return lr.contributions(name).sum(0)
    return delta.flatten(0, 1).T @ right.flatten(0, 1)


def _check(model: Any, x: Any, h0: Any) -> None:
    if not isinstance(model, RecurrentModel):
        raise TypeError(
            f"record_streaming records a gradlab recurrent model, got {type(model).__name__}; "
            "use gradlab.record(model, x, loss_fn, module=...) for other modules"
        )
    if model.num_layers != 1 or model.bidirectional:
        raise ValueError(
            f"record_streaming records one layer in one direction, got num_layers="
            f"{model.num_layers}, bidirectional={model.bidirectional}: use the plain mode, "
            "gradlab.record"
        )
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(
            "record_streaming takes a padded batch, a 3-D tensor (T, B, I) ((B, T, I) when "
            "batch_first): use the plain mode, gradlab.record, for packed or unbatched inputs"
        )
    model.check_input(x, h0)


@torch.no_grad()
def record_streaming(
    model: RecurrentModel,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor] | None = None,
    h0: Tensor | tuple[Tensor, Tensor] | None = None,
    *,
    chunk: int | None = None,
) -> StreamingRecording:
    """Record one pass of a one-layer gradlab `model` over `x` in checkpointed chunks of
    `chunk` steps (default ⌈√T⌉), keeping per-step reductions only (see the module docstring).

    x (T, B, I), or (B, T, I) when the model is batch_first; loss_fn maps what `model(x, h0)[0]`
    returns to a scalar; h0 (1, B, N), for an LSTM a tuple (h0, c0). Returns a
    StreamingRecording, whose numbers are those of `gradlab.record(model, x, loss_fn, h0)`.
    """
    _check(model, x, h0)
    dtype = model.weight_hh_l0.dtype
    if x.dtype != dtype:
        raise ValueError(f"x has dtype {x.dtype} but the model's parameters are {dtype}")
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf; expected finite inputs")
    xs = x.transpose(0, 1) if model.batch_first else x  # time-major (T, B, I)
    T, B = xs.shape[0], xs.shape[1]
    if T < 1 or B < 1:
        raise ValueError(f"x must have T >= 1 steps and B >= 1 rows, got shape {tuple(x.shape)}")
    K = default_chunk(T) if chunk is None else int(chunk)
    if K < 1:
        raise ValueError(f"chunk must be a positive number of steps, got {chunk!r}")
    spec = get_cell(model.cell)
    if len(spec.state_parts) > 2 or spec.state_parts[1:] not in ((), ("c",)):
        raise ValueError(f"record_streaming supports states (h,) and (h, c), not {spec.name!r}")
    if h0 is None:
        state = spec.join_state([xs.new_zeros(1, B, size) for size in model.state_sizes()])
    else:
        state = h0
    parts = spec.split_state(state)  # (1, B, ·) each: h, then c for an LSTM
    weights = model.layer_weights(0, False)
    starts = list(range(0, T, K))

    def trace_of(first: int, stop: int, cell0: Tensor | None) -> Trace:
        initial = () if cell0 is None else (cell0,)
        return spec.make_trace(model, weights, xs[first:stop], hidden[first : stop + 1], initial)

    # 1. Forward: the fused kernel chunk by chunk into one buffer. A chunk's trace is built here
    # only for an LSTM's c checkpoint or a record without a loss; otherwise the backward pass
    # builds it anyway and keeps the forward reductions there.
    hidden = xs.new_empty(T + 1, B, parts[0].shape[-1])
    hidden[0] = parts[0][0]
    kernel_state = state
    cell_checkpoints: list[Tensor | None] = []  # the trace's c at each chunk's start
    cell = parts[1][0] if len(parts) > 1 else None
    forward = _ForwardReductions(T, B, xs)
    for first in starts:
        stop = min(T, first + K)
        output, *final = model.layer_forward(xs[first:stop], kernel_state, 0)
        hidden[first + 1 : stop + 1] = output
        del output
        kernel_state = spec.join_state(final)
        cell_checkpoints.append(cell)
        if cell is None and loss_fn is not None:
            continue
        trace = trace_of(first, stop, cell)
        cells = trace.cell_state
        if cell is not None and cells is not None:
            cell = cells[-1].clone()
        if loss_fn is None:
            forward.keep(LayerRecording(model, 0, False, trace), first, stop)
        del trace
    output = hidden[1:].transpose(0, 1) if model.batch_first else hidden[1:]
    output = output.contiguous()  # a view of the buffer unless batch_first
    reductions: dict[str, Any] = {}

    loss_value = None
    if loss_fn is not None:
        # 2. ∂L/∂output from one autograd call on the loss alone (as `record`).
        leaf = output.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(leaf)
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
                raise ValueError(f"loss_fn must return a scalar tensor, got {shape}")
            grad_output = None
            if loss.requires_grad:
                (grad_output,) = torch.autograd.grad(loss.reshape(()), leaf, allow_unused=True)
        loss_value = float(loss)
        del leaf, loss
        if grad_output is None:  # a loss that does not depend on the output
            grad_output = torch.zeros_like(output)
        direct_all = grad_output.transpose(0, 1) if model.batch_first else grad_output
        reductions.update(
            _backward(model, trace_of, direct_all, starts, K, cell_checkpoints, forward)
        )
        del grad_output, direct_all
    reductions.update(forward.kept())

    rec = StreamingRecording(model, hidden, output, loss_value, K, reductions)
    if not rec.is_finite or (loss_value is not None and not math.isfinite(loss_value)):
        warnings.warn(
            "non-finite values in the streaming record; they are kept as they are",
            NonFiniteWarning,
            stacklevel=2,
        )
    return rec


def _backward(
    model: RecurrentModel,
    trace_of: Callable[[int, int, Tensor | None], Trace],
    direct_all: Tensor,
    starts: list[int],
    K: int,
    cell_checkpoints: list[Tensor | None],
    forward: _ForwardReductions,
) -> dict[str, Any]:
    """The adjoint scan chunk by chunk, last first, carrying ∂L/∂h (and ∂L/∂c) across chunk
    boundaries; returns the backward reductions and keeps each chunk's forward ones in
    `forward`. direct_all: ∂L/∂h_1..h_T direct, (T, B, N)."""
    T, B = direct_all.shape[0], direct_all.shape[1]
    names = _parameter_names(model)
    grad_norms = direct_all.new_empty(T + 1, B)
    cell_norms = direct_all.new_empty(T + 1, B) if cell_checkpoints[0] is not None else None
    contribution = {name: direct_all.new_empty(T) for name in names}
    gradient: dict[str, Tensor] = {}
    carry_h: Tensor | None = None  # ∂L/∂h at the later chunk's start, through that chunk
    carry_c: Tensor | None = None  # ∂L/∂c likewise (LSTM)
    for index in range(len(starts) - 1, -1, -1):
        first = starts[index]
        stop = min(T, first + K)
        cell0 = cell_checkpoints[index]
        trace = trace_of(first, stop, cell0)
        direct = direct_all[first:stop]
        if carry_h is not None:
            direct = direct.clone()
            direct[-1] += carry_h
        direct = direct.contiguous()
        if cell0 is None:
            adjoint = trace.adjoint(direct)
        else:
            direct_cell = None
            if carry_c is not None:
                direct_cell = direct.new_zeros(stop - first, B, carry_c.shape[-1])
                direct_cell[-1] = carry_c
            adjoint = trace.adjoint(direct, direct_cell)  # type: ignore[call-arg]
        grad_h, grad_c = adjoint[0], adjoint[1]
        carry_h = grad_h[0]
        grad_norms[first + 1 : stop + 1] = grad_h[1:].norm(dim=-1)
        if cell_norms is not None and grad_c is not None:
            carry_c = grad_c[0]
            cell_norms[first + 1 : stop + 1] = grad_c[1:].norm(dim=-1)
        lr = LayerRecording(model, 0, False, trace)
        forward.keep(lr, first, stop)
        lr._set_adjoint(*adjoint)
        for name in names:
            contribution[name][first:stop] = lr.contribution_norms(name)
            term = _gradient_sum(lr, name)
            gradient[name] = term if name not in gradient else gradient[name] + term
        del trace, lr, adjoint, grad_h, grad_c
    assert carry_h is not None
    grad_norms[0] = carry_h.norm(dim=-1)
    if cell_norms is not None and carry_c is not None:
        cell_norms[0] = carry_c.norm(dim=-1)
    return {
        "grad_hidden_norms": grad_norms,
        "grad_cell_norms": cell_norms,
        "contribution_norms": contribution,
        "gradient": gradient,
    }
