"""gradlab.sweep: grids of runs from a TOML spec, run on a process pool or a dask cluster.

``load_spec(path, scale)`` → :class:`SweepSpec` (validated before anything runs);
``run_sweep(spec, store_path, ...)`` → :class:`SweepResult` (skips what the store holds).
"""

from .executors import ExecutorHandle, SweepError, make_executor, process_pool
from .runner import PlannedRun, SweepResult, plan_sweep, run_sweep
from .spec import SCALES, SpecError, SweepSpec, load_spec, parse_spec

__all__ = [
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
