"""What runs inside a sweep worker: one run, from a config dict, into a store folder.

Everything here is picklable by reference and imports torch only when a run starts, so the
parent process (the sweep's scheduler) stays light.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from gradlab.config import RunConfig

from .plugins import load_plugins

__all__ = [
    "DEFAULT_TRAIN",
    "init_worker",
    "record_failure",
    "resolve",
    "run_one",
    "start_parent_guard",
]

DEFAULT_TRAIN = "gradlab.train:train"
"""The train function every sweep uses unless told otherwise (``module:function``)."""

TrainFn = Callable[..., str]


def resolve(train_fn: TrainFn | str) -> TrainFn:
    """A train function from a callable or a ``"module:function"`` reference."""
    if callable(train_fn):
        return train_fn
    module, _, name = str(train_fn).partition(":")
    if not module or not name:
        raise ValueError(f"train_fn must be a callable or 'module:function', got {train_fn!r}")
    return getattr(importlib.import_module(module), name)


def init_worker(threads: int | None = 1) -> None:
    """Initializer of the process pool's workers.

    Ignores Ctrl-C (the sweep's parent decides what happens to the runs in flight), sets torch
    to ``threads`` threads so N workers on N cores do not oversubscribe them, and exits the
    worker as soon as its parent is gone (a sweep killed with -9 must not leave orphans writing
    runs that a resumed sweep would then see as busy).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads:
        _set_threads(threads)
    start_parent_guard()
    threading.Thread(target=_exit_with_parent, name="gradlab-parent-watch", daemon=True).start()


# The guard: a separate small process (not a thread, which needs the GIL: a run stuck in one
# long C call holds it) that SIGKILLs the worker once the sweep's process is gone, and dies with
# the worker (PR_SET_PDEATHSIG: the kernel kills it when its parent, the worker, exits).
_GUARD = """
import ctypes, os, select, signal, sys
worker, sentinel = int(sys.argv[1]), int(sys.argv[2])
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
if os.getppid() != worker:
    sys.exit(0)  # the worker is already gone
select.select([sentinel], [], [])  # readable (EOF) once every copy in the sweep is closed
os.kill(worker, signal.SIGKILL)
"""


def start_parent_guard() -> subprocess.Popen[bytes] | None:
    """Start the guard process of this pool worker (Linux; None elsewhere or outside a pool).

    The guard waits on multiprocessing's parent sentinel, a pipe whose write end only the
    sweep's process holds, so it sees the sweep die even under ``kill -9``."""
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return None
    sentinel = parent.sentinel
    command = [sys.executable, "-I", "-S", "-c", _GUARD, str(os.getpid()), str(sentinel)]
    return subprocess.Popen(command, pass_fds=(sentinel,), stdin=subprocess.DEVNULL)


def _exit_with_parent() -> None:
    """Block until the sweep's process is gone, then exit this worker at once.

    multiprocessing's parent sentinel is a pipe the parent holds open, so it is readable
    exactly when the parent has died (under forkserver the worker's OS parent is the server,
    which outlives a killed sweep, so os.getppid() would not notice)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
    else:  # pragma: no cover - not started by multiprocessing
        ppid = os.getppid()
        while os.getppid() == ppid:
            time.sleep(0.2)
    os._exit(70)


def _set_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def run_one(
    config: dict[str, Any],
    store_path: str,
    overwrite: bool = False,
    train_fn: TrainFn | str = DEFAULT_TRAIN,
    threads: int | None = None,
    plugins: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Train one run and report how it ended; never raises for a failing run.

    ``plugins`` (module names or absolute .py paths) are imported first, so cells and
    activations they register exist in this worker (see :mod:`gradlab.sweep.plugins`).

    Returns ``{"run_id", "status", "seconds", "error"}``: ``status`` is the store's final
    status (``complete``, ``failed``, ``diverged``) or ``skipped`` when another process owns
    the run or finished it first. ``seconds`` is the time spent in ``train_fn``. A train
    function that raises before it has recorded anything still leaves a ``failed`` run with
    the traceback in its record (the store's ``reason``).
    """
    from gradlab.store import RunExistsError, open_store

    if threads:
        _set_threads(threads)
    load_plugins(plugins)
    run_config = RunConfig.from_dict(config)
    run_id = run_config.run_id
    train = resolve(train_fn)
    error: str | None = None
    start = time.perf_counter()
    try:
        train(run_config, store_path, overwrite=overwrite, progress=None)
    except RunExistsError as exc:
        return {
            "run_id": run_id,
            "status": "skipped",
            "seconds": time.perf_counter() - start,
            "error": f"run exists with status {exc.status!r} (another process has it)",
        }
    except Exception:
        error = traceback.format_exc()
    seconds = time.perf_counter() - start
    store = open_store(store_path)
    status = store.run(run_id).status if run_id in store else None
    if error is not None and status not in ("failed", "diverged", "complete"):
        status = record_failure(store, run_config, error)
    elif status is None:
        status, error = "failed", f"{train!r} returned without writing run {run_id!r}"
    if status == "failed" and error is None:
        error = store.run(run_id).reason
    return {"run_id": run_id, "status": status, "seconds": seconds, "error": _last_line(error)}


def record_failure(store: Any, config: RunConfig, error: str) -> str:
    """Leave a ``failed`` run holding ``error`` (train raised before it created the run)."""
    from gradlab.store import RunExistsError

    try:
        writer = store.create_run(config.run_id, config.to_dict(), overwrite=True)
    except RunExistsError as exc:
        return "skipped" if exc.status in ("running", "complete") else "failed"
    writer.finish("failed", error=error)
    return "failed"


def _last_line(text: str | None) -> str | None:
    """The last non-empty line of a traceback (``ValueError: ...``)."""
    if not text:
        return None
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None
