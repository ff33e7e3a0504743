"""Recurrent cells: the cell registry, the activation table, the models and their initialisers.

Each cell registers a `CellSpec` when its module is imported; the imports at the bottom are the
registry's one line per cell.
"""

from gradlab.cells.activations import (
    ACTIVATIONS,
    Activation,
    TheoryHooks,
    get_activation,
    register_activation,
)
from gradlab.cells.init import INITS, init_model
from gradlab.cells.models import GRU, LSTM, RNN, LayerWeights, RecurrentModel, from_torch
from gradlab.cells.registry import (
    CELLS,
    CellSpec,
    cell_names,
    cell_of,
    cells,
    get_cell,
    register_cell,
    shown_activation,
)
from gradlab.cells.traces import Trace

__all__ = [
    "ACTIVATIONS",
    "CELLS",
    "GRU",
    "INITS",
    "LSTM",
    "RNN",
    "Activation",
    "CellSpec",
    "LayerWeights",
    "RecurrentModel",
    "TheoryHooks",
    "Trace",
    "cell_names",
    "cell_of",
    "cells",
    "from_torch",
    "get_activation",
    "get_cell",
    "init_model",
    "register_activation",
    "register_cell",
    "shown_activation",
]

# The registered cells: one import per cell module (importing it registers its CellSpec).
from gradlab.cells import (
    builtin,  # noqa: F401  (rnn, lstm, gru)
    indrnn,  # noqa: F401
)
