"""`RunConfig`: everything that defines one training run, validated before anything runs.

Validation is a pydantic model (:class:`_Schema`) over the same fields: every problem of a
config is reported at once, each naming its key, with "did you mean" for unknown keys.

Sizes have upper limits (:data:`LIMITS`) so that a typo (``steps = 2**63 - 1``, ``seq_len =
1e10``) is refused here rather than after minutes in a worker. A researcher who needs more sets
``GRADLAB_MAX_<KEY>`` (e.g. ``GRADLAB_MAX_STEPS=50000000``) in the environment of the sweep and
of its workers. ``device`` must be one this machine's torch sees; ``GRADLAB_DEVICE_CHECK=0``
turns that check off (a sweep sent from a login node to a cluster whose workers have GPUs).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from gradlab.cells import ACTIVATIONS, INITS, cell_names, get_cell
from gradlab.tasks import TASKS

__all__ = [
    "LIMITS",
    "OPTIMIZERS",
    "ConfigError",
    "RunConfig",
    "available_devices",
    "limit",
    "limit_env",
    "unknown_key_message",
]

OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")

LIMITS: dict[str, int] = {
    "steps": 10_000_000,
    "record_every": 10_000_000,
    "seq_len": 100_000,
    "hidden_size": 16_384,
    "num_layers": 64,
    "batch_size": 65_536,
    "probe_batch": 4_096,
}
"""Default upper limits of the size keys; ``GRADLAB_MAX_<KEY>`` raises one (see the module)."""

DEVICE_CHECK_ENV = "GRADLAB_DEVICE_CHECK"

#: Keys added after runs were stored: left out of the run id while at their default, so the
#: ids of those runs (and of every config that does not set them) do not change.
ID_OPTIONAL_AT_DEFAULT = ("fixed_point_every", "fixed_point_inits")


class ConfigError(ValueError):
    """A run configuration (or sweep spec) that cannot run; the message names the key."""


def limit_env(key: str) -> str:
    """The environment variable that overrides ``LIMITS[key]`` (``GRADLAB_MAX_STEPS``)."""
    return f"GRADLAB_MAX_{key.upper()}"


def limit(key: str) -> int:
    """The upper limit of ``key`` now: ``GRADLAB_MAX_<KEY>`` if set, else ``LIMITS[key]``."""
    name = limit_env(key)
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return LIMITS[key]
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"environment variable {name} must be a whole number >= 1, got {raw!r}")
    return value


def available_devices() -> list[str]:
    """The torch devices this process sees: ``cpu``, then ``cuda:0``..., ``mps``."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


@dataclass(frozen=True)
class RunConfig:
    """One run: task, model, optimiser and recording schedule. Every field has a default."""

    # --- task -----------------------------------------------------------------------------
    task: str = "adding"  # a name in gradlab.tasks.TASKS
    seq_len: int = 50  # sequence length T given to the task (copy: delay + 20)
    # --- model ----------------------------------------------------------------------------
    cell: str = "rnn"  # a registered cell: gradlab.cells.cell_names()
    activation: str | None = None  # cells that take one (None: the cell's default, tanh)
    hidden_size: int = 64  # N
    num_layers: int = 1
    bidirectional: bool = False
    init: str = "default"  # "default" (torch's uniform) | "gaussian" | "orthogonal" | "identity"
    gain: float = 1.0  # W_hh scale: σ_w for gaussian, g in g·Q and g·I
    bias_scale: float = 0.0  # σ_b of the biases under a non-default init (mean-field's σ_b)
    forget_bias: float | None = None  # LSTM forget-gate bias (None: as the init leaves it)
    update_bias: float | None = None  # GRU update-gate (z) bias (None: as the init leaves it)
    # --- optimisation ---------------------------------------------------------------------
    optimizer: str = "adam"  # "sgd" | "adam"
    lr: float = 1e-3
    batch_size: int = 32
    steps: int = 200  # optimiser steps
    clip: float | None = None  # max global gradient norm (Pascanu et al. 2013); None: no clipping
    truncate: int | None = None  # truncated-BPTT window in steps; None: full BPTT
    seed: int = 0  # seeds weights, data and probe batch: same config + seed, same numbers (CPU)
    # --- recording ------------------------------------------------------------------------
    record_every: int | str = 10  # record every k steps, or "log" for a log-spaced schedule
    probe_batch: int = 32  # size of the fixed batch every recording is made on
    jacobian_samples: int = 2  # batch rows whose spectral Jacobian norms are computed
    hidden_samples: int = 4  # batch rows whose hidden trajectories are kept as arrays
    # fixed points (gradlab.probes.fixed_points): searched at every k-th recording (and the
    # last; 0 = never), each search from `fixed_point_inits` states of the probe trajectories
    fixed_point_every: int = 1
    fixed_point_inits: int = 16
    dtype: str = "float32"  # "float32" | "float64"
    # dtype of the recorded adjoint (∂L/∂h, ∂L/∂c, contributions and their norms), computed on
    # the `dtype` trajectory (gradlab.record's adjoint_dtype): None = `dtype`; "float64" for a
    # float32 run keeps gradients below float32's range (~1e-45) instead of recording 0
    adjoint_dtype: str | None = None
    device: str = "cpu"
    sweep: str = ""  # the sweep this run belongs to (part of its identity)

    def __post_init__(self) -> None:
        problems = _problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def activation_name(self) -> str | None:
        """The activation (the cell's default when None); None for cells without one."""
        return get_cell(self.cell).activation_name(self.activation)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_id(self) -> str:
        """The store's id of this run, a hash of the whole configuration (seed included)."""
        from gradlab.store import run_id_for

        values = self.to_dict()
        for key in ID_OPTIONAL_AT_DEFAULT:  # runs stored before the key existed keep their id
            if values[key] == _DEFAULTS[key]:
                del values[key]
        return run_id_for(values)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> RunConfig:
        """Build from plain values (a TOML table); errors name `source` and every bad key.

        Optional keys take the string "none" for None (TOML has no null); ints given to float
        keys become floats (so a config's run id does not depend on ``1`` vs ``1.0``)."""
        hints = _hints()
        values = {k: _coerce(v, hints[k]) if k in hints else v for k, v in values.items()}
        problems = _problems(values)
        if problems:
            raise ConfigError(f"{source}: " + "; ".join(problems))
        return cls(**values)


# ------------------------------------------------------------------------------------------
# Validation: a pydantic model checks types (strictly: no "5" for 5, no True for 1) and each
# field's range; a model validator checks the rules between fields.


def _hints() -> dict[str, Any]:
    global _HINTS
    if _HINTS is None:
        _HINTS = typing.get_type_hints(RunConfig)
    return _HINTS


_HINTS: dict[str, Any] | None = None


def _type_names(hint: Any) -> list[Any]:
    args = typing.get_args(hint)
    return list(args) if args else [hint]


def _coerce(value: Any, hint: Any) -> Any:
    """TOML has no null: "none" stands for None in optional keys; ints become floats."""
    allowed = _type_names(hint)
    if type(None) in allowed and isinstance(value, str) and value.lower() == "none":
        return None
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


_REGISTER_HINT = (
    " (register others with gradlab.cells.register_{what}; a sweep imports the module that "
    "does it in every worker when the spec lists it in plugins)"
)


def _choice(key: str, allowed: Callable[[], Iterable[str]], hint: str = "") -> Any:
    """A validator: the value is one of ``allowed()`` (read when checked: registries grow)."""

    def check(value: str) -> str:
        names = list(allowed())
        if value not in names:
            raise ValueError(f"key {key!r} must be one of {names}, got {value!r}{hint}")
        return value

    return AfterValidator(check)


def _at_least(key: str, low: float, *, above: bool = False, null: bool = False) -> Any:
    """A validator: a finite number >= low (> low with ``above``); None passes with ``null``."""

    def check(value: float | None) -> float | None:
        if value is None:
            return value
        if not math.isfinite(value) or value < low or (above and value == low):
            what = f"> {low}" if above else f">= {low}"
            either = "null or " if null else ""
            raise ValueError(f"key {key!r} must be {either}a number {what}, got {value!r}")
        return value

    return AfterValidator(check)


def _size(key: str, low: int = 1) -> Any:
    """A validator: a whole number in ``[low, limit(key)]``; the message says how to go higher."""

    def check(value: int) -> int:
        if value < low:
            raise ValueError(f"key {key!r} must be a number >= {low}, got {value!r}")
        high = limit(key)
        if value > high:
            raise ValueError(
                f"key {key!r} must be <= {high} (gradlab's limit; set {limit_env(key)} "
                f"in the environment to allow more), got {value!r}"
            )
        return value

    return AfterValidator(check)


def _check_device(value: str) -> str:
    if os.environ.get(DEVICE_CHECK_ENV, "1").strip() == "0":
        return value
    import torch

    devices = available_devices()
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        device = None
    ok = device is not None and (
        device.type == "cpu"
        or (device.type == "cuda" and f"cuda:{device.index or 0}" in devices)
        or (device.type == "mps" and "mps" in devices)
    )
    if not ok:
        raise ValueError(
            f"key 'device' must be a device this machine's torch sees ({', '.join(devices)}), "
            f"got {value!r} (for workers on other machines, set {DEVICE_CHECK_ENV}=0 to skip "
            "this check)"
        )
    return value


class _Schema(BaseModel):
    """The fields of RunConfig with their types and ranges (validation only: values are kept
    as given, so run ids do not change)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    task: Annotated[str, _choice("task", lambda: TASKS)] = "adding"
    seq_len: Annotated[int, _size("seq_len")] = 50
    cell: Annotated[str, _choice("cell", cell_names, _REGISTER_HINT.format(what="cell"))] = "rnn"
    activation: str | None = None  # checked against the cell in _between
    hidden_size: Annotated[int, _size("hidden_size")] = 64
    num_layers: Annotated[int, _size("num_layers")] = 1
    bidirectional: bool = False
    init: Annotated[str, _choice("init", lambda: INITS)] = "default"
    gain: Annotated[float, _at_least("gain", 0)] = 1.0
    bias_scale: Annotated[float, _at_least("bias_scale", 0)] = 0.0
    forget_bias: float | None = None
    update_bias: float | None = None
    optimizer: Annotated[str, _choice("optimizer", lambda: OPTIMIZERS)] = "adam"
    lr: Annotated[float, _at_least("lr", 0, above=True)] = 1e-3
    batch_size: Annotated[int, _size("batch_size")] = 32
    steps: Annotated[int, _size("steps")] = 200
    clip: Annotated[float | None, _at_least("clip", 0, above=True, null=True)] = None
    truncate: Annotated[int | None, _at_least("truncate", 1)] = None
    seed: int = 0
    record_every: Annotated[int, _size("record_every")] | Literal["log"] = 10
    probe_batch: Annotated[int, _size("probe_batch")] = 32
    jacobian_samples: Annotated[int, _at_least("jacobian_samples", 0)] = 2
    hidden_samples: Annotated[int, _at_least("hidden_samples", 0)] = 4
    fixed_point_every: Annotated[int, _at_least("fixed_point_every", 0)] = 1
    fixed_point_inits: Annotated[int, _at_least("fixed_point_inits", 1)] = 16
    dtype: Annotated[str, _choice("dtype", lambda: DTYPES)] = "float32"
    adjoint_dtype: str | None = None
    device: Annotated[str, AfterValidator(_check_device)] = "cpu"
    sweep: str = ""

    @model_validator(mode="after")
    def _between(self) -> _Schema:
        problems = _between(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _between(c: _Schema) -> list[str]:
    """The rules that involve more than one key (run once every key is valid on its own)."""
    problems = []
    spec = get_cell(c.cell)
    if c.activation is not None:
        if not spec.takes_activation:
            takers = ", ".join(repr(n) for n in cell_names() if get_cell(n).takes_activation)
            problems.append(
                f"key 'activation' applies to cell {takers} only; a {c.cell!r} has its own "
                f"gates (remove it or pick one of those cells), got {c.activation!r}"
            )
        elif c.activation not in ACTIVATIONS:
            hint = _REGISTER_HINT.format(what="activation")
            problems.append(
                f"key 'activation' must be one of {list(ACTIVATIONS)}, got {c.activation!r}{hint}"
            )
    if c.adjoint_dtype is not None:
        wider = DTYPES[DTYPES.index(c.dtype) + 1 :]
        if c.adjoint_dtype not in wider:
            problems.append(
                f"key 'adjoint_dtype' must be null (the run's dtype) or a dtype wider than "
                f"dtype {c.dtype!r} ({', '.join(map(repr, wider)) or 'none is'}), "
                f"got {c.adjoint_dtype!r}"
            )
    if c.truncate is not None and c.bidirectional:
        problems.append(
            "key 'truncate' needs a forward-only model: a reverse direction's state comes from "
            "the future and cannot be carried across windows (set bidirectional = false)"
        )
    for knob in ("forget_bias", "update_bias"):
        if getattr(c, knob) is not None and knob not in spec.gate_biases:
            owners = ", ".join(repr(n) for n in cell_names() if knob in get_cell(n).gate_biases)
            problems.append(f"key {knob!r} applies to cell {owners} only, not {c.cell!r}")
    if c.task == "copy" and c.seq_len < 21:
        problems.append(
            f"key 'seq_len' must be >= 21 for the copy task (delay + 20), got {c.seq_len}"
        )
    elif c.task in TASKS:
        try:  # the task's own check of seq_len (seq_digits: 64 pixels; zen_chars: the text)
            TASKS[c.task](seq_len=c.seq_len)  # type: ignore[call-arg]
        except ValueError as exc:
            problems.append(f"key 'seq_len': {exc}")
    return problems


_TYPE_ERRORS = frozenset(
    {"int_type", "float_type", "string_type", "bool_type", "none_required", "literal_error"}
)


def _problems(values: dict[str, Any]) -> list[str]:
    """Every problem of ``values`` as a RunConfig, one message per key, in field order."""
    try:
        _Schema.model_validate(values)
    except ValidationError as exc:
        return _messages(exc, values)
    return []


def _messages(exc: ValidationError, values: dict[str, Any]) -> list[str]:
    hints = _hints()
    by_key: dict[str, list[Any]] = {}
    general: list[str] = []
    for error in exc.errors():
        if not error["loc"]:
            general.extend(str(error["ctx"]["error"]).split("\n"))
        else:
            by_key.setdefault(str(error["loc"][0]), []).append(error)
    order = [*hints, *(k for k in by_key if k not in hints)]
    out = []
    for key in (k for k in order if k in by_key):
        errors = by_key[key]
        value = values.get(key)
        if key not in hints:
            out.append(unknown_key_message(key, list(hints)))
        elif any(e["type"] == "value_error" for e in errors):
            error = next(e for e in errors if e["type"] == "value_error")
            out.append(str(error["ctx"]["error"]))
        elif all(e["type"] in _TYPE_ERRORS for e in errors):
            names = " or ".join(
                "null" if k is type(None) else k.__name__ for k in _type_names(hints[key])
            )
            if key == "record_every":
                names = 'int or "log"'
            out.append(f"key {key!r} must be {names}, got {value!r} ({type(value).__name__})")
        else:
            out.append(f"key {key!r}: {errors[0]['msg']}, got {value!r}")
    return out + general


def unknown_key_message(key: str, known: Iterable[str]) -> str:
    """``unknown key 'stpes' (did you mean 'steps'?); allowed keys: ...`` (sorted)."""
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{guess}; allowed keys: {', '.join(sorted(known))}"


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(RunConfig)}
