"""Run ids: validation of names that become folder names, and content-hash ids for configs."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
ID_LENGTH = 12


def validate_id(value: Any, what: str = "run_id") -> str:
    """Return ``value`` if it is a safe id (1-128 of ``[A-Za-z0-9_-]``), else raise ValueError.

    Ids become folder and file names, so separators, ``..``, dots and empty strings are refused.
    """
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(
            f"invalid {what} {value!r}: use 1-128 characters from [A-Za-z0-9_-] "
            "(no path separators, dots or spaces)"
        )
    return value


def _canonical(value: Any, path: str) -> Any:
    """Normalise a config value for hashing (see :func:`run_id_for`)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"config value at {path or '<root>'} is {value!r}; not hashable")
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"config keys must be strings, got {key!r} at {path or '<root>'}")
            out[key] = _canonical(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, list | tuple):
        return [_canonical(item, f"{path}[{i}]") for i, item in enumerate(value)]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return _canonical(item(), path)
    raise TypeError(
        f"config value at {path or '<root>'} has type {type(value).__name__}; "
        "use JSON types (str, int, float, bool, None, list, dict)"
    )


def canonical_json(config: Mapping[str, Any]) -> str:
    """Canonical JSON text of a config: sorted keys, no spaces, normalised numbers."""
    return json.dumps(
        _canonical(config, ""), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )


def run_id_for(config: Mapping[str, Any]) -> str:
    """Stable short id for a config: the first 12 hex digits of sha256(canonical JSON).

    The same config (seed included) always maps to the same id. Key order does not matter;
    integral floats hash as ints (``1.0`` == ``1``, ``-0.0`` == ``0``); other floats by their
    shortest round-trip repr; tuples as lists; numpy scalars as Python numbers; ``True`` is not
    ``1``. NaN/inf, non-string keys and non-JSON types raise.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    digest = hashlib.sha256(canonical_json(config).encode("ascii")).hexdigest()
    return digest[:ID_LENGTH]
