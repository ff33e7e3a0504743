"""`RunConfig`: everything that defines one training run, validated before anything runs."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, fields
from typing import Any

from gradlab.cells import ACTIVATIONS, INITS
from gradlab.tasks import TASKS

__all__ = ["CELLS", "OPTIMIZERS", "ConfigError", "RunConfig"]

CELLS = ("rnn", "lstm", "gru")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")


class ConfigError(ValueError):
    """A run configuration (or sweep spec) that cannot run; the message names the key."""


@dataclass(frozen=True)
class RunConfig:
    """One run: task, model, optimiser and recording schedule. Every field has a default."""

    # --- task -----------------------------------------------------------------------------
    task: str = "adding"  # a name in gradlab.tasks.TASKS
    seq_len: int = 50  # sequence length T given to the task (copy: delay + 20)
    # --- model ----------------------------------------------------------------------------
    cell: str = "rnn"  # "rnn" | "lstm" | "gru"
    activation: str | None = None  # vanilla RNN only (tanh when None): tanh|relu|sigmoid|linear
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
    dtype: str = "float32"  # "float32" | "float64"
    # dtype of the recorded adjoint (∂L/∂h, ∂L/∂c, contributions and their norms), computed on
    # the `dtype` trajectory (gradlab.record's adjoint_dtype): None = `dtype`; "float64" for a
    # float32 run keeps gradients below float32's range (~1e-45) instead of recording 0
    adjoint_dtype: str | None = None
    device: str = "cpu"
    sweep: str = ""  # the sweep this run belongs to (part of its identity)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def activation_name(self) -> str | None:
        """The RNN's activation (tanh by default); None for LSTM and GRU."""
        if self.cell != "rnn":
            return None
        return self.activation or "tanh"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def run_id(self) -> str:
        """The store's id of this run, a hash of the whole configuration (seed included)."""
        from gradlab.store import run_id_for

        return run_id_for(self.to_dict())

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> RunConfig:
        """Build from plain values (a TOML table); errors name `source` and the key.

        Optional keys take the string "none" for None (TOML has no null)."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(
                    f"{source}: unknown key {key!r}; allowed keys: {', '.join(sorted(known))}"
                )
        hints = typing.get_type_hints(cls)
        values = {key: _coerce(value, hints[key]) for key, value in values.items()}
        for key, value in values.items():
            _check_type(key, value, hints[key], source)
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None


def _type_names(hint: Any) -> list[type]:
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


def _check_type(key: str, value: Any, hint: Any, source: str) -> None:
    allowed = _type_names(hint)
    if value is None and type(None) in allowed:
        return
    for kind in allowed:
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if kind in (str, bool) and type(value) is kind:
            return
    names = " or ".join("null" if k is type(None) else k.__name__ for k in allowed)
    raise ConfigError(
        f"{source}: key {key!r} must be {names}, got {value!r} ({type(value).__name__})"
    )


def _choice(key: str, value: Any, allowed: typing.Iterable[str]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"key {key!r} must be one of {allowed}, got {value!r}")


def _at_least(key: str, value: float | None, low: float, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or not math.isfinite(value) or value < low:
        raise ConfigError(f"key {key!r} must be a number >= {low}, got {value!r}")


def _validate(c: RunConfig) -> None:
    _choice("task", c.task, TASKS)
    _choice("cell", c.cell, CELLS)
    if c.activation is not None:
        if c.cell != "rnn":
            raise ConfigError(
                f"key 'activation' applies to cell 'rnn' only; a {c.cell!r} has its own gates "
                f"(remove it or set cell = 'rnn'), got {c.activation!r}"
            )
        _choice("activation", c.activation, ACTIVATIONS)
    _choice("init", c.init, INITS)
    _choice("optimizer", c.optimizer, OPTIMIZERS)
    _choice("dtype", c.dtype, DTYPES)
    if c.adjoint_dtype is not None:
        wider = DTYPES[DTYPES.index(c.dtype) + 1 :]
        if c.adjoint_dtype not in wider:
            raise ConfigError(
                f"key 'adjoint_dtype' must be null (the run's dtype) or a dtype wider than "
                f"dtype {c.dtype!r} ({', '.join(map(repr, wider)) or 'none is'}), "
                f"got {c.adjoint_dtype!r}"
            )
    for key in ("seq_len", "hidden_size", "num_layers", "batch_size", "steps", "probe_batch"):
        _at_least(key, getattr(c, key), 1)
    _at_least("jacobian_samples", c.jacobian_samples, 0)
    _at_least("hidden_samples", c.hidden_samples, 0)
    _at_least("gain", c.gain, 0)
    _at_least("bias_scale", c.bias_scale, 0)
    if not (math.isfinite(c.lr) and c.lr > 0):
        raise ConfigError(f"key 'lr' must be a number > 0, got {c.lr!r}")
    if c.clip is not None and not (math.isfinite(c.clip) and c.clip > 0):
        raise ConfigError(f"key 'clip' must be null or a number > 0, got {c.clip!r}")
    _at_least("truncate", c.truncate, 1, optional=True)
    if c.truncate is not None and c.bidirectional:
        raise ConfigError(
            "key 'truncate' needs a forward-only model: a reverse direction's state comes from "
            "the future and cannot be carried across windows (set bidirectional = false)"
        )
    if c.forget_bias is not None and c.cell != "lstm":
        raise ConfigError(f"key 'forget_bias' applies to cell 'lstm' only, not {c.cell!r}")
    if c.update_bias is not None and c.cell != "gru":
        raise ConfigError(f"key 'update_bias' applies to cell 'gru' only, not {c.cell!r}")
    if isinstance(c.record_every, str):
        _choice("record_every", c.record_every, ["log"])
    else:
        _at_least("record_every", c.record_every, 1)
    if c.task == "copy" and c.seq_len < 21:
        raise ConfigError(
            f"key 'seq_len' must be >= 21 for the copy task (delay + 20), got {c.seq_len}"
        )
