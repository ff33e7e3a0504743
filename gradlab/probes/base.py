"""The probe interface: a probe turns a `Recording` into tidy metric rows.

A probe is a small stateless class with three class constants and one method:

- `probe`: the value of the store's `probe` column (figures use the constant, not a string);
- `names`: every series (`name` column) it may write;
- `needs_loss`: whether it reads backward quantities (∂L/∂h, contributions), so it needs
  `record(model, x, loss_fn)` with a loss;
- `rows(rec, context)`: a mapping of columns `name, layer, direction, t, value`, ready for
  `RunWriter.log_metrics` once the trainer adds `step` and `probe`.

Conventions for the columns (see docs/contracts.md, "Metric catalogue"): `layer` is the layer
index and `direction` 0 (forward) or 1 (reverse); `t` is the Recording's own index, so for a
reverse direction it counts processing steps (t = 1 consumes the last input). Columns that do
not apply are None (null in the store). Values are float64 and may be NaN or Inf: a diverging
recording is data.

Padded steps (a PackedSequence input): a per-step aggregate over the batch counts only the
sequences still running at that step (`running`, from `LayerRecording.step_mask`), so a padded
step is never shown as data; a step where no counted sequence runs has no row.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from gradlab.config import RunConfig
from gradlab.record import LayerRecording, Recording

__all__ = [
    "COLUMNS",
    "Probe",
    "ProbeContext",
    "Rows",
    "layer_views",
    "masked_mean",
    "masked_norms",
    "present",
    "run_probes",
    "running",
    "state_jacobian_norms",
]

#: The columns every probe returns, in order.
COLUMNS: tuple[str, ...] = ("name", "layer", "direction", "t", "value")


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may need besides the Recording.

    `config`: the run's configuration; `jacobian_samples`: the probe-batch rows whose spectral
    Jacobian norms are computed (the long-range ones cost one dense S×S product and SVD per
    row and step, so only a few);
    `theory_rate`: `gradlab.theory.theory_rate(config)`, the rate at initialisation driven by
    the task's inputs (None where no theory applies).
    """

    config: RunConfig = field(default_factory=RunConfig)
    jacobian_samples: tuple[int, ...] = (0,)
    theory_rate: float | None = None

    @classmethod
    def from_config(cls, config: RunConfig) -> ProbeContext:
        """The context of a training run: rows 0..jacobian_samples-1 of the probe batch, and the
        theory's rate for the config."""
        from gradlab.theory import theory_rate

        n = min(config.jacobian_samples, config.probe_batch)
        return cls(config, tuple(range(n)), theory_rate(config.to_dict()))


class Probe:
    """Base class of every probe (see the module docstring). Subclasses set the constants and
    implement `rows`; instances hold no state."""

    probe: ClassVar[str] = ""
    names: ClassVar[tuple[str, ...]] = ()
    needs_loss: ClassVar[bool] = True

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        """Columns `name, layer, direction, t, value` (equal lengths) for one recording."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Rows:
    """Collects series into the columns a probe returns.

    `add(name, values, t0=...)` appends one series: values (n,) at t = t0..t0+n-1 (or t None when
    t0 is None), all with the same name, layer and direction.
    """

    def __init__(self) -> None:
        self.name: list[str] = []
        self.layer: list[int | None] = []
        self.direction: list[int | None] = []
        self.t: list[int | None] = []
        self._values: list[np.ndarray] = []

    def add(
        self,
        name: str,
        values: torch.Tensor | np.ndarray | Sequence[float],
        *,
        t0: int | None = None,
        layer: int | None = None,
        direction: int | None = None,
        keep: torch.Tensor | None = None,
    ) -> None:
        """`keep`: (n,) bool, the values to write (None: all); t counts every value."""
        if isinstance(values, torch.Tensor):
            values = values.detach().to("cpu", torch.float64).numpy()
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        t: list[int | None] = (
            [None] * array.size if t0 is None else list(range(t0, t0 + array.size))
        )
        if keep is not None:
            kept = keep.detach().cpu().numpy().reshape(-1)
            array, t = array[kept], [v for v, k in zip(t, kept, strict=True) if k]
        n = array.size
        self.name.extend([name] * n)
        self.layer.extend([layer] * n)
        self.direction.extend([direction] * n)
        self.t.extend(t)
        self._values.append(array)

    def columns(self) -> dict[str, list | np.ndarray]:
        value = np.concatenate(self._values) if self._values else np.empty(0, np.float64)
        return {
            "name": self.name,
            "layer": self.layer,
            "direction": self.direction,
            "t": self.t,
            "value": value,
        }


def running(view: LayerRecording, first: int, n: int) -> torch.Tensor | None:
    """(n, B) bool: which sequences run at steps first..first+n-1 (step 0, the initial state,
    belongs to every sequence); None when every sequence runs every step (no padding)."""
    mask = view.step_mask  # (T, B), steps 1..T
    if bool(mask.all()):
        return None
    mask = torch.cat((torch.ones_like(mask[:1]), mask))  # (T+1, B), steps 0..T
    return mask[first : first + n]


def present(view: LayerRecording, first: int, n: int) -> torch.Tensor | None:
    """(n,) bool: the steps first..first+n-1 where some sequence runs (None: all of them)."""
    mask = running(view, first, n)
    return None if mask is None else mask.any(1)


def masked_norms(x: torch.Tensor, view: LayerRecording, first: int) -> torch.Tensor:
    """Per step, the Frobenius norm over the running sequences of x (n, B, ...) at steps
    first..first+n-1, in float64, (n,): √(Σ_b running ‖x_t,b‖²); NaN where none runs."""
    x = x.to(torch.float64)  # float64: squares of a float32 adjoint below ~1e-23 would underflow
    mask = running(view, first, x.shape[0])
    if mask is None:
        return x.flatten(1).norm(dim=1)
    mask = mask.to(x.device)
    shaped = mask.view(*mask.shape, *([1] * (x.dim() - 2)))
    norms = torch.where(shaped, x, 0).flatten(1).norm(dim=1)
    return torch.where(mask.any(1), norms, torch.nan)


def masked_mean(
    values: torch.Tensor, view: LayerRecording, first: int, samples: Sequence[int] | None = None
) -> torch.Tensor:
    """Per step, the mean of values (n, B') over the running sequences (B' = the batch, or the
    rows `samples` of it), (n,); NaN where none runs."""
    mask = running(view, first, values.shape[0])
    if mask is None:
        return values.mean(1)
    mask = mask.to(values.device)
    if samples is not None:
        mask = mask[:, list(samples)]
    count = mask.sum(1)
    total = torch.where(mask, values, 0).sum(1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.nan)


def layer_views(rec: Recording) -> Iterator[tuple[int, int, LayerRecording]]:
    """(layer, direction, view) for every layer and direction, layer 0 forward first."""
    for (layer, reverse), view in sorted(rec.layers.items()):
        yield layer, int(reverse), view


#: Recording → {(layer, direction, samples): norms}: the long-range Jacobian norms of one
#: recording, shared by the probes that read them (dropped with the recording).
_JACOBIAN_NORMS: weakref.WeakKeyDictionary[Recording, dict[tuple, torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def state_jacobian_norms(
    rec: Recording, context: ProbeContext, layer: int = 0, direction: int = 0
) -> torch.Tensor:
    """‖∂s_T/∂s_k‖ for k = 0..T-1, (T,): the spectral norm averaged over
    `context.jacobian_samples`, or, when there are none, the Frobenius norm averaged over the
    whole batch (no SVD); with padding, over the sequences whose step k+1 is real (NaN where
    none is). Computed once per recording, layer, direction and samples."""
    samples = tuple(context.jacobian_samples)
    key = (layer, direction, samples)
    cache = _JACOBIAN_NORMS.setdefault(rec, {})
    if key not in cache:
        view = rec.layer(layer, bool(direction))
        # sequence b's ∂s_T/∂s_k counts while step k+1 is real (k < its length)
        if samples:
            norms = view.jacobian_norms(ord=2, samples=list(samples))
            cache[key] = masked_mean(norms, view, 1, samples)
        else:
            cache[key] = masked_mean(view.jacobian_norms(ord="fro"), view, 1)
    return cache[key]


def run_probes(
    rec: Recording, context: ProbeContext, probes: Sequence[Probe]
) -> list[tuple[Probe, dict[str, list | np.ndarray]]]:
    """Run each probe on `rec` (skipping those that need a loss when it has none), without
    building autograd graphs."""
    has_loss = rec.loss is not None
    with torch.no_grad():
        return [(p, p.rows(rec, context)) for p in probes if has_loss or not p.needs_loss]
