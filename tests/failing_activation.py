"""A test plugin: registers the activation "failing", which passes every config check and raises
when a run first applies it, so a sweep has a run that fails inside its worker."""

from __future__ import annotations

from torch import Tensor

from gradlab.cells import Activation, register_activation

MESSAGE = "the failing activation raised on purpose"


def failing(a: Tensor) -> Tensor:
    raise RuntimeError(MESSAGE)


def failing_derivative(a: Tensor, h: Tensor) -> Tensor:
    raise RuntimeError(MESSAGE)


FAILING = register_activation(Activation("failing", failing, failing_derivative))
