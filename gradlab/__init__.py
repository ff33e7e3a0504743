"""gradlab: see how gradients flow back through time in recurrent networks."""

from gradlab.cells import GRU, LSTM, RNN, from_torch, init_model
from gradlab.config import RunConfig
from gradlab.record import LayerRecording, NonFiniteWarning, Recording, record
from gradlab.store import open_store
from gradlab.train import train

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "LayerRecording",
    "NonFiniteWarning",
    "Recording",
    "RunConfig",
    "__version__",
    "from_torch",
    "init_model",
    "open_store",
    "record",
    "train",
]
