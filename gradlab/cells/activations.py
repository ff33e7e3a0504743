"""Activation functions of the vanilla RNN, each declared with its derivative.

Adding an activation is one `register_activation(Activation(...))` call: the engine only needs
the function, its derivative and (for saturation statistics) its bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ACTIVATIONS", "Activation", "get_activation", "register_activation"]


@dataclass(frozen=True)
class Activation:
    """A pointwise nonlinearity φ with its derivative.

    `derivative(a, h)` returns φ'(a) given the pre-activation `a` and `h = φ(a)` (so tanh can use
    1 - h² without recomputing). `bounds` is `(lo, hi)` for a bounded φ, else None.
    `torch_kernel` names the fused torch.nn.RNN nonlinearity that computes the same φ, if any.
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor, Tensor], Tensor]
    bounds: tuple[float, float] | None = None
    torch_kernel: str | None = None


ACTIVATIONS: dict[str, Activation] = {}


def register_activation(activation: Activation) -> Activation:
    """Add `activation` to the registry (a later call with the same name replaces it)."""
    ACTIVATIONS[activation.name] = activation
    return activation


def get_activation(name: str | Activation) -> Activation:
    """The registered activation called `name` (an Activation passes through)."""
    if isinstance(name, Activation):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        allowed = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}; expected one of: {allowed}") from None


# Module-level functions (not lambdas) so models stay picklable.
def _tanh_derivative(a: Tensor, h: Tensor) -> Tensor:
    return 1.0 - h * h


def _relu_derivative(a: Tensor, h: Tensor) -> Tensor:
    return (a > 0).to(a.dtype)


def _sigmoid_derivative(a: Tensor, h: Tensor) -> Tensor:
    return h * (1.0 - h)


def _identity(a: Tensor) -> Tensor:
    return a


def _identity_derivative(a: Tensor, h: Tensor) -> Tensor:
    return torch.ones_like(a)


register_activation(
    Activation("tanh", torch.tanh, _tanh_derivative, bounds=(-1.0, 1.0), torch_kernel="tanh")
)
register_activation(Activation("relu", torch.relu, _relu_derivative, torch_kernel="relu"))
register_activation(Activation("sigmoid", torch.sigmoid, _sigmoid_derivative, bounds=(0.0, 1.0)))
register_activation(Activation("linear", _identity, _identity_derivative))
