"""The one activation table: every pointwise nonlinearity φ gradlab knows, with what each part of
gradlab needs from it.

Adding an activation is one `register_activation(Activation(...))` call. The engine needs the
torch function and its derivative (and, for saturation statistics, its bounds); `gradlab.theory`
reads the optional `TheoryHooks` (numpy φ, φ′, γ = sup|φ′|) and says "no theory for this
activation" (None) where an activation has none. Sweep workers see a registration made in a
module named in the spec's `plugins` list (see `gradlab.sweep.spec`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["ACTIVATIONS", "Activation", "TheoryHooks", "get_activation", "register_activation"]

NumpyFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TheoryHooks:
    """What `gradlab.theory` needs of φ: numpy `phi` and `dphi` (φ′, elementwise on float64
    arrays) and `gamma` = sup|φ′| (the constant of the Pascanu bound).

    Optional exact facts the mean-field theory uses instead of quadrature / iteration:
    `homogeneous_moments` = (E[φ(z)²], E[φ′(z)²]), z ~ N(0, 1), for a positively homogeneous φ
    (φ(λu) = λφ(u), λ > 0: linear, relu), which makes q* and χ closed forms;
    `sub_identity`: φ(0) = 0 and |φ(u)| < |u| for u ≠ 0 (tanh, softsign), so without bias or
    input and σ_w·|φ′(0)| <= 1 the only fixed point is q* = 0.
    """

    phi: NumpyFn
    dphi: NumpyFn
    gamma: float
    homogeneous_moments: tuple[float, float] | None = None
    sub_identity: bool = False


@dataclass(frozen=True)
class Activation:
    """A pointwise nonlinearity φ with its derivative.

    `derivative(a, h)` returns φ'(a) given the pre-activation `a` and `h = φ(a)` (so tanh can use
    1 - h² without recomputing). `output_derivative(h)`, where φ' is a function of h = φ(a) alone
    (tanh 1 - h², sigmoid h(1 - h), relu [h > 0], linear 1), returns it from the recorded states:
    a trace then never recomputes the pre-activations (two GEMMs over all T·B steps); with None
    (the default; needed where h does not determine a, e.g. GELU) it recomputes them.
    `bounds` is `(lo, hi)` for a bounded φ, else None.
    `torch_kernel` names the fused torch.nn.RNN nonlinearity that computes the same φ, if any.
    `dead_at_zero`: φ is exactly 0 on a half-line (relu), so an exact 0 counts as a dead unit.
    `theory`: the hooks `gradlab.theory` reads; None means "no theory for this activation".
    `aliases`: other names that mean this activation (e.g. "identity" for "linear").
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor, Tensor], Tensor]
    bounds: tuple[float, float] | None = None
    torch_kernel: str | None = None
    dead_at_zero: bool = False
    theory: TheoryHooks | None = None
    aliases: tuple[str, ...] = ()
    output_derivative: Callable[[Tensor], Tensor] | None = None


ACTIVATIONS: dict[str, Activation] = {}
_ALIASES: dict[str, str] = {}


def register_activation(activation: Activation) -> Activation:
    """Add `activation` to the table (a later call with the same name replaces it)."""
    ACTIVATIONS[activation.name] = activation
    for alias in activation.aliases:
        _ALIASES[alias] = activation.name
    return activation


def get_activation(name: str | Activation) -> Activation:
    """The registered activation called `name` (or an alias; an Activation passes through)."""
    if isinstance(name, Activation):
        return name
    key = str(name).strip().lower()
    try:
        return ACTIVATIONS[_ALIASES.get(key, key)]
    except KeyError:
        allowed = ", ".join(ACTIVATIONS)
        raise ValueError(
            f"unknown activation {name!r}; expected one of: {allowed} (register others with "
            "gradlab.cells.register_activation; in a sweep, list the registering module in "
            "the spec's plugins)"
        ) from None


# Module-level functions (not lambdas) so models stay picklable.
def _tanh_output_derivative(h: Tensor) -> Tensor:
    return 1.0 - h * h


def _tanh_derivative(a: Tensor, h: Tensor) -> Tensor:
    return _tanh_output_derivative(h)


def _relu_derivative(a: Tensor, h: Tensor) -> Tensor:
    return (a > 0).to(a.dtype)


def _relu_output_derivative(h: Tensor) -> Tensor:
    return (h > 0).to(h.dtype)  # relu(a) > 0 exactly where a > 0 (NaN: neither)


def _sigmoid_output_derivative(h: Tensor) -> Tensor:
    return h * (1.0 - h)


def _sigmoid_derivative(a: Tensor, h: Tensor) -> Tensor:
    return _sigmoid_output_derivative(h)


def _identity(a: Tensor) -> Tensor:
    return a


def _identity_derivative(a: Tensor, h: Tensor) -> Tensor:
    return torch.ones_like(a)


def _identity_output_derivative(h: Tensor) -> Tensor:
    return torch.ones_like(h)


def _np_sigmoid(u: np.ndarray) -> np.ndarray:
    # Numerically stable logistic: 1/(1+e^-u) without overflow for large |u|.
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _np_dtanh(u: np.ndarray) -> np.ndarray:
    return 1.0 - np.tanh(u) ** 2


def _np_dsigmoid(u: np.ndarray) -> np.ndarray:
    return _np_sigmoid(u) * (1.0 - _np_sigmoid(u))


def _np_relu(u: np.ndarray) -> np.ndarray:
    return np.maximum(u, 0.0)


def _np_drelu(u: np.ndarray) -> np.ndarray:
    """The right derivative (1 at 0): see `gradlab.theory.lyapunov_at_fixed_point`."""
    return (np.asarray(u) >= 0).astype(np.float64)


def _np_identity(u: np.ndarray) -> np.ndarray:
    return np.asarray(u, dtype=np.float64)


def _np_one(u: np.ndarray) -> np.ndarray:
    return np.ones_like(np.asarray(u, dtype=np.float64))


register_activation(
    Activation(
        "tanh",
        torch.tanh,
        _tanh_derivative,
        output_derivative=_tanh_output_derivative,
        bounds=(-1.0, 1.0),
        torch_kernel="tanh",
        theory=TheoryHooks(np.tanh, _np_dtanh, gamma=1.0, sub_identity=True),
    )
)
register_activation(
    Activation(
        "sigmoid",
        torch.sigmoid,
        _sigmoid_derivative,
        output_derivative=_sigmoid_output_derivative,
        bounds=(0.0, 1.0),
        theory=TheoryHooks(_np_sigmoid, _np_dsigmoid, gamma=0.25),
    )
)
register_activation(
    Activation(
        "relu",
        torch.relu,
        _relu_derivative,
        output_derivative=_relu_output_derivative,
        torch_kernel="relu",
        dead_at_zero=True,
        theory=TheoryHooks(_np_relu, _np_drelu, gamma=1.0, homogeneous_moments=(0.5, 0.5)),
    )
)
register_activation(
    Activation(
        "linear",
        _identity,
        _identity_derivative,
        output_derivative=_identity_output_derivative,
        theory=TheoryHooks(_np_identity, _np_one, gamma=1.0, homogeneous_moments=(1.0, 1.0)),
        aliases=("identity",),
    )
)
