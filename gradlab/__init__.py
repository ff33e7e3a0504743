"""gradlab: see how gradients flow back through time in recurrent networks."""

from gradlab.cells import GRU, LSTM, RNN, from_torch, init_model
from gradlab.record import LayerRecording, NonFiniteWarning, Recording, record

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "LayerRecording",
    "NonFiniteWarning",
    "Recording",
    "__version__",
    "from_torch",
    "init_model",
    "record",
]
