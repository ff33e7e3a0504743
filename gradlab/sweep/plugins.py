"""Plugins: modules that register cells or activations, imported wherever runs are built.

A registration (`register_cell`, `register_activation`) lives in the process that made it; a
sweep's workers (a forkserver process pool, or Dask workers on other machines) never see it. So
a sweep names the modules that make its registrations, in the spec's top-level ``plugins`` list
(or with ``gradlab sweep --plugin``), and every process that builds a run imports them first:
the parent before it validates the spec, each worker before it builds a run's config::

    name = "softsign"
    plugins = ["softsign_activation.py"]   # a file, relative to the spec's folder
    # or plugins = ["mypackage.activations"] (an importable module)

An entry ending in ``.py`` is a file (made absolute against the spec's folder, so workers on
the same filesystem find it); any other entry is a module name importable in every worker.
Importing is idempotent: a module already imported is not run again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

__all__ = ["PluginError", "import_plugin", "load_plugins", "resolve_plugins"]


class PluginError(ImportError):
    """A plugin that cannot be imported; the message names it and says why."""


def resolve_plugins(entries: Iterable[object], base: Path | None = None) -> tuple[str, ...]:
    """The entries as workers should see them: files made absolute (against `base`), module
    names as given. TypeError/ValueError for anything but non-empty strings."""
    resolved = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"a plugin must be a module name or a .py file, got {entry!r}")
        entry = entry.strip()
        if entry.endswith(".py"):
            path = Path(entry).expanduser()
            if not path.is_absolute() and base is not None:
                path = base / path
            entry = str(path.resolve())
        resolved.append(entry)
    return tuple(dict.fromkeys(resolved))


def import_plugin(entry: str) -> ModuleType:
    """Import one plugin (a module name or an absolute .py path); PluginError if it fails."""
    try:
        if not entry.endswith(".py"):
            return importlib.import_module(entry)
        path = Path(entry)
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        name = f"gradlab_plugin_{path.stem}_{digest}"
        if name in sys.modules:
            return sys.modules[name]
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path} as a module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    except Exception as exc:
        raise PluginError(
            f"plugin {entry!r} cannot be imported: {type(exc).__name__}: {exc}"
        ) from exc


def load_plugins(entries: Iterable[str]) -> list[ModuleType]:
    """Import every plugin in order (see the module docstring)."""
    return [import_plugin(entry) for entry in entries]
