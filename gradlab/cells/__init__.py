"""Recurrent models with torch's parameters and equations, their activations and initialisers."""

from gradlab.cells.activations import ACTIVATIONS, Activation, get_activation, register_activation
from gradlab.cells.init import INITS, init_model
from gradlab.cells.models import GRU, LSTM, RNN, LayerWeights, RecurrentModel, from_torch

__all__ = [
    "ACTIVATIONS",
    "GRU",
    "INITS",
    "LSTM",
    "RNN",
    "Activation",
    "LayerWeights",
    "RecurrentModel",
    "from_torch",
    "get_activation",
    "init_model",
    "register_activation",
]
