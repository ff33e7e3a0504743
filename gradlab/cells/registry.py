"""The cell registry: one `CellSpec` per recurrent cell, the one place that knows what a cell is.

Every other module asks the registry (`get_cell(name)`, `cells()`) instead of branching on a cell
name: `record` builds traces and splits states through it, `train` builds models, `init_model`
applies gate-bias knobs, figures take colours and display names, theory takes per-cell rates.
Adding a cell is one file that defines its model, trace, init hook and reference step and ends
with `register_cell(CellSpec(...))`, plus one import line in `gradlab/cells/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from gradlab.cells.models import LayerWeights, RecurrentModel
    from gradlab.cells.traces import Trace

__all__ = [
    "CELLS",
    "CellSpec",
    "cell_names",
    "cell_of",
    "cells",
    "get_cell",
    "register_cell",
    "shown_activation",
]

State = Tensor | tuple[Tensor, ...]
#: (p, x, s, hidden_size, φ or None, c_perturb or None) -> (s', gates): one float64 step.
ReferenceStep = Callable[..., tuple[Tensor, dict[str, Tensor]]]
#: (weights of one layer/direction, init, gain, bias_scale, generator) -> None, in place.
InitHook = Callable[..., None]


@dataclass(frozen=True)
class CellSpec:
    """Everything gradlab needs to know about one recurrent cell.

    * `model`: the nn.Module class (a `RecurrentModel`), built as
      `model(input_size, hidden_size, [activation,] num_layers=, bias=, batch_first=,
      bidirectional=, device=, dtype=)`; `trace`: its `Trace` subclass (the analytic calculus).
    * `gate_names`: gates recorded per step ((T, B, N) each); () for none.
    * `state_parts`: the recurrent state as the model takes it: ("h",) a tensor (L·D, B, N),
      ("h", "c") a tuple of two; S = len(state_parts)·N. `split_state` / `join_state` convert.
    * `takes_activation` / `default_activation`: whether φ is a constructor argument.
    * `init`: fills one layer/direction's weights for an init scheme (see `gradlab.cells.init`);
      `gate_biases`: init knob -> gate it sets (LSTM {"forget_bias": "f"}).
    * `reference_step`: the float64 step written out from the cell's equations, for the
      autograd twin (`gradlab._reference`).
    * `hidden_bounds`: (lo, hi) of h_t for a cell without an activation (saturation statistics).
    * `torch_classes`: torch modules with the same equations and parameters (`from_torch`).
    * Theory hooks (None: no theory): `rate_at_init(config dict)`, the predicted per-step
      log-rate of gradient norms at init (a float, None, or a `gradlab.theory.RatePrediction`
      with its assumptions; `gradlab.theory.predict_rate` calls it); `mean_field`: the theory
      of a random dense W_hh (critical line χ = 1) applies; `recurrent_norm(weight_hh)`, the
      spectral norm of the recurrent operator (the Pascanu bound is γ times it);
      `jacobian_at_zero(weight_hh, bias_ih, bias_hh)`, the state Jacobian at the zero state.
    * `display_name`, `color`, `order`: how figures, tables and exports show the cell.
    """

    name: str
    model: type[RecurrentModel]
    trace: type[Trace]
    reference_step: ReferenceStep
    init: InitHook
    gate_names: tuple[str, ...] = ()
    state_parts: tuple[str, ...] = ("h",)
    takes_activation: bool = False
    default_activation: str | None = None
    gate_biases: Mapping[str, str] = field(default_factory=dict)
    hidden_bounds: tuple[float, float] | None = None
    torch_classes: tuple[type, ...] = ()
    rate_at_init: Callable[[Mapping[str, Any]], Any] | None = None
    mean_field: bool = False
    recurrent_norm: Callable[[Any], float] | None = None
    jacobian_at_zero: Callable[..., Any] | None = None
    display_name: str = ""
    color: str = "#000000"
    order: int = 100

    def __post_init__(self) -> None:
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)
        if self.takes_activation != (self.default_activation is not None):
            raise ValueError(
                f"cell {self.name!r}: a cell that takes an activation needs a "
                "default_activation, and only such a cell may have one"
            )
        for knob, gate in self.gate_biases.items():
            if gate not in self.gate_names:
                raise ValueError(f"cell {self.name!r}: {knob} names gate {gate!r}, not a gate")

    @property
    def has_cell_state(self) -> bool:
        """Whether the state carries a cell state c_t beside h_t (LSTM)."""
        return "c" in self.state_parts

    def split_state(self, state: State) -> tuple[Tensor, ...]:
        """The model's state (a tensor or a tuple) as one tensor per part of `state_parts`."""
        parts = state if isinstance(state, tuple) else (state,)
        if len(parts) != len(self.state_parts):
            raise ValueError(
                f"a {self.name!r} state has {len(self.state_parts)} part(s) "
                f"{self.state_parts}, got {len(parts)}"
            )
        return tuple(parts)

    def join_state(self, parts: Sequence[Tensor]) -> State:
        """One tensor per part back to the model's convention (a tensor, or a tuple)."""
        parts = tuple(parts)
        if len(parts) != len(self.state_parts):
            raise ValueError(f"a {self.name!r} state needs {len(self.state_parts)} part(s)")
        return parts[0] if len(parts) == 1 else parts

    def activation_name(self, activation: str | None) -> str | None:
        """The activation a config's `activation` means for this cell (None: the default)."""
        if not self.takes_activation:
            return None
        return activation or self.default_activation

    def build(
        self, input_size: int, hidden_size: int, activation: Any = None, **kwargs: Any
    ) -> RecurrentModel:
        """A new model of this cell; `activation` only for cells that take one."""
        if self.takes_activation:
            return self.model(
                input_size, hidden_size, activation or self.default_activation, **kwargs
            )
        if activation is not None:
            raise ValueError(f"a {self.name!r} cell takes no activation, got {activation!r}")
        return self.model(input_size, hidden_size, **kwargs)

    def make_trace(
        self,
        model: RecurrentModel,
        weights: LayerWeights,
        inputs: Tensor,
        hidden: Tensor,
        initial: tuple[Tensor, ...] = (),
        recorded: tuple[Tensor, ...] | None = None,
    ) -> Trace:
        """The trace of one layer/direction: hidden (T+1, B, N), `initial` the other state
        parts' initial values ((B, N) each, e.g. c_0); `recorded`: see `Trace.build`."""
        return self.trace.build(
            weights, inputs, hidden, initial, getattr(model, "activation", None), recorded
        )


CELLS: dict[str, CellSpec] = {}


def register_cell(spec: CellSpec) -> CellSpec:
    """Add `spec` to the registry (a later call with the same name replaces it)."""
    if not isinstance(spec, CellSpec):
        raise TypeError(f"register_cell needs a CellSpec, got {type(spec).__name__}")
    CELLS[spec.name] = spec
    return spec


def cells() -> list[CellSpec]:
    """Every registered cell, in display order."""
    return sorted(CELLS.values(), key=lambda s: (s.order, s.name))


def cell_names() -> tuple[str, ...]:
    """The registered cell names, in display order."""
    return tuple(s.name for s in cells())


def get_cell(name: str | CellSpec | Any) -> CellSpec:
    """The registered cell called `name` (a CellSpec passes through; a model gives its cell)."""
    if isinstance(name, CellSpec):
        return name
    if not isinstance(name, str):
        name = getattr(name, "cell", name)
    try:
        return CELLS[str(name).lower()]
    except KeyError:
        known = ", ".join(cell_names())
        raise ValueError(
            f"unknown cell {name!r}; expected one of: {known} (register others with "
            "gradlab.cells.register_cell; in a sweep, list the registering module in the "
            "spec's plugins)"
        ) from None


def cell_of(model: Any) -> CellSpec:
    """The cell of a model: a gradlab model's `cell`, or the cell whose `torch_classes` the
    module is an instance of (torch.nn.LSTM, LSTMCell, ...); ValueError for anything else."""
    name = getattr(model, "cell", None)
    if isinstance(name, str):
        return get_cell(name)
    for spec in cells():
        if spec.torch_classes and isinstance(model, spec.torch_classes):
            return spec
    known = ", ".join(cell_names())
    raise ValueError(
        f"{type(model).__name__} is not a recurrent model of a registered cell ({known})"
    )


def shown_activation(cell: Any, activation: Any) -> str | None:
    """The activation a stored run used, for display: `activation`, else the default of its
    cell (None for a cell without one, or a cell not registered in this process)."""
    if isinstance(activation, str) and activation:
        return activation
    spec = CELLS.get(str(cell or "").lower())
    return spec.default_activation if spec is not None else None
