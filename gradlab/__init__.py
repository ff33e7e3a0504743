"""gradlab: see how gradients flow back through time in recurrent networks."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

from gradlab.cells import GRU, LSTM, RNN, from_torch, init_model
from gradlab.config import RunConfig
from gradlab.record import LayerRecording, NonFiniteWarning, Recording, record
from gradlab.store import open_store
from gradlab.train import train

try:  # the one version number is pyproject.toml's, read from the installed package
    __version__ = _distribution_version("gradlab")
except PackageNotFoundError:  # a source tree used without `pip install -e .`
    __version__ = "0+unknown"

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
