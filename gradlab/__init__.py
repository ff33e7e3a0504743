"""gradlab: see how gradients flow back through time in recurrent networks.

The names below are loaded on first use (PEP 562), so ``import gradlab`` (and the ``gradlab``
command's ``--help``, ``runs`` and ``show``) never imports torch; ``gradlab.record`` and
``from gradlab import RNN`` import what they need then. Submodules (``gradlab.cells``, ...) are
loaded on first attribute access as well.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads these
    from gradlab.cells import GRU, LSTM, RNN, from_torch, init_model
    from gradlab.config import RunConfig
    from gradlab.fixed_points import FixedPoints, fixed_points
    from gradlab.notebook import figure
    from gradlab.record import LayerRecording, NonFiniteWarning, Recording, record
    from gradlab.record_module import record_module, recurrent_submodules
    from gradlab.record_stream import StreamingRecording, record_streaming
    from gradlab.store import open_store
    from gradlab.tracking import Run, init
    from gradlab.train import train

    __version__: str

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "GRU": "gradlab.cells",
    "LSTM": "gradlab.cells",
    "RNN": "gradlab.cells",
    "from_torch": "gradlab.cells",
    "init_model": "gradlab.cells",
    "RunConfig": "gradlab.config",
    "FixedPoints": "gradlab.fixed_points",
    "fixed_points": "gradlab.fixed_points",
    "figure": "gradlab.notebook",
    "LayerRecording": "gradlab.record",
    "NonFiniteWarning": "gradlab.record",
    "Recording": "gradlab.record",
    "record": "gradlab.record",
    "record_module": "gradlab.record_module",
    "StreamingRecording": "gradlab.record_stream",
    "record_streaming": "gradlab.record_stream",
    "recurrent_submodules": "gradlab.record_module",
    "open_store": "gradlab.store",
    "train": "gradlab.train",
    "Run": "gradlab.tracking",
    "init": "gradlab.tracking",
}

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "FixedPoints",
    "LayerRecording",
    "NonFiniteWarning",
    "Recording",
    "Run",
    "RunConfig",
    "StreamingRecording",
    "__version__",
    "figure",
    "fixed_points",
    "from_torch",
    "init",
    "init_model",
    "open_store",
    "record",
    "record_module",
    "record_streaming",
    "recurrent_submodules",
    "train",
]


def _version() -> str:
    """The one version number, pyproject.toml's, read from the installed package."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradlab")
    except PackageNotFoundError:  # a source tree used without `pip install -e .`
        return "0+unknown"


def __getattr__(name: str) -> Any:
    """Load a public name, ``__version__`` or a submodule on first access, then keep it."""
    if name == "__version__":
        value: Any = _version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif not name.startswith("_"):
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":  # the submodule exists but its import failed
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names and the submodules loaded so far."""
    loaded = (k for k, v in globals().items() if isinstance(v, types.ModuleType) and k[0] != "_")
    return sorted({*__all__, *(k for k in loaded if f"{__name__}.{k}" in sys.modules)})


class _Package(types.ModuleType):
    """gradlab's module type. Importing a submodule sets it as an attribute of its package;
    where the submodule is named like the function it exports (``gradlab.record``,
    ``gradlab.train``) the package keeps the function, whichever is imported first."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
