"""gradlab.sweep: grids of runs from a TOML spec, run on a process pool or a dask cluster.

``load_spec(path, scale)`` → :class:`SweepSpec` (validated before anything runs);
``run_sweep(spec, store_path, ...)`` → :class:`SweepResult` (skips what the store holds).

Names are imported from their submodules on first use (PEP 562), so ``import gradlab.sweep``
(and :data:`DEFAULT_MAX_RUNS`, which the CLI's parser reads) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .bounds import DEFAULT_MAX_RUNS

if TYPE_CHECKING:
    from .executors import ExecutorHandle, SweepError, make_executor, process_pool
    from .runner import PlannedRun, SweepResult, plan_sweep, run_sweep
    from .spec import SCALES, SpecError, SweepSpec, load_spec, parse_spec

_WHERE = {
    "ExecutorHandle": "executors",
    "SweepError": "executors",
    "make_executor": "executors",
    "process_pool": "executors",
    "PlannedRun": "runner",
    "SweepResult": "runner",
    "plan_sweep": "runner",
    "run_sweep": "runner",
    "SCALES": "spec",
    "SpecError": "spec",
    "SweepSpec": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
}

__all__ = [
    "DEFAULT_MAX_RUNS",
    "SCALES",
    "ExecutorHandle",
    "PlannedRun",
    "SpecError",
    "SweepError",
    "SweepResult",
    "SweepSpec",
    "load_spec",
    "make_executor",
    "parse_spec",
    "plan_sweep",
    "process_pool",
    "run_sweep",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gradlab.sweep' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
