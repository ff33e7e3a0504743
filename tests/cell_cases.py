"""(cell, activation) cases of the engine tests, enumerated from the cell registry (so a newly
registered cell is covered by the contract suites without editing them)."""

from __future__ import annotations

import torch

from gradlab.cells import cells, get_cell

#: The built-in activations every cell that takes one is tested with.
BUILTIN_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
# (cell, activation) pairs: every registered cell x built-in activation the engine supports.
CELL_ACTS = [
    (spec.name, act)
    for spec in cells()
    for act in (BUILTIN_ACTIVATIONS if spec.takes_activation else (None,))
]
#: The pairs torch.nn has a module for (the reference's own checks against torch).
TORCH_CELL_ACTS = [
    (cell, act)
    for cell, act in CELL_ACTS
    if get_cell(cell).torch_classes and act not in ("sigmoid", "linear")
]


def cell_id(cell: str, act: str | None) -> str:
    """A readable test id: "rnn-tanh", "lstm"."""
    return f"{cell}-{act}" if act else cell


def make_input(
    T: int,
    B: int,
    input_size: int,
    *,
    batch_first: bool = False,
    dtype: torch.dtype = torch.float64,
    seed: int = 1,
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, input_size, generator=gen, dtype=torch.float64).to(dtype)
    return x.transpose(0, 1).contiguous() if batch_first else x
