"""Executors for sweeps: a local process pool (default) or a dask.distributed cluster.

Both are ``concurrent.futures.Executor``; a sweep submits :func:`gradlab.sweep.worker.run_one`
with plain arguments (a config dict and the store's path), never models or tensors.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .worker import init_worker

__all__ = ["ExecutorHandle", "SweepError", "available_cpus", "make_executor", "process_pool"]


class SweepError(RuntimeError):
    """A sweep could not start (bad executor settings, cluster unreachable, ...)."""


def available_cpus() -> int:
    """CPUs this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _context() -> Any:
    """forkserver where the OS has it (workers fork from a warm, torch-free-of-threads server),
    else spawn. Never plain fork: the parent may hold torch's thread pools."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Applies when the forkserver starts (once per process); later calls are no-ops.
        ctx.set_forkserver_preload(["gradlab.sweep.preload"])
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover


def process_pool(workers: int | None = None, threads: int = 1) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` (default: the CPUs available) sweep workers,
    each with ``threads`` torch threads, ignoring Ctrl-C and exiting with their parent."""
    if workers is not None and workers < 1:
        raise SweepError(f"workers must be >= 1, got {workers}")
    return ProcessPoolExecutor(
        max_workers=workers or available_cpus(),
        mp_context=_context(),
        initializer=init_worker,
        initargs=(threads,),
    )


@dataclass
class ExecutorHandle:
    """An executor plus what the sweep needs to know about it.

    ``owned``: the sweep made it and shuts it down. ``threads``: torch threads each run sets
    (None: leave as is). ``description``: for messages (``"2 local processes"``).
    """

    executor: Executor
    owned: bool
    kind: str
    description: str
    threads: int | None = None
    client: Any = None

    processes: dict[int, Any] = field(default_factory=dict)  # pid -> worker Process, ever seen

    def remember_processes(self) -> None:
        """Note the pool's worker processes now (so their exit codes can be read once the
        pool has broken and forgotten them)."""
        if isinstance(self.executor, ProcessPoolExecutor):
            self.processes.update(getattr(self.executor, "_processes", None) or {})

    def exit_codes(self) -> dict[int, int | None]:
        """pid -> exit code (negative: killed by that signal; None: still running) of every
        worker process seen by :meth:`remember_processes`."""
        return {pid: process.exitcode for pid, process in self.processes.items()}

    def terminate(self) -> None:
        """Stop runs in flight now (owned process pools only); their runs are redone later."""
        if self.owned and isinstance(self.executor, ProcessPoolExecutor):
            for process in list(getattr(self.executor, "_processes", {}).values()):
                if process.is_alive():
                    process.terminate()

    def close(self, wait: bool = True) -> None:
        """Shut down what the sweep made (pending work is cancelled)."""
        if not self.owned:
            return
        if isinstance(self.executor, ProcessPoolExecutor):
            self.executor.shutdown(wait=wait, cancel_futures=True)
        else:
            self.executor.shutdown(wait=wait)
        if self.client is not None:
            self.client.close()


def make_executor(
    executor: str | Executor | Any | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
) -> ExecutorHandle:
    """The executor a sweep runs on.

    ``executor``: None or ``"process"`` (a process pool of ``workers``), ``"dask"`` (needs
    ``dask_address``), an ``Executor`` (used as is, not shut down) or a dask ``Client``.
    ``dask_address``: a dask scheduler address (``tcp://host:8786``); connects a Client and
    uses ``client.get_executor()``.
    """
    if dask_address is not None or executor == "dask":
        if dask_address is None:
            raise SweepError("executor 'dask' needs a scheduler address (--dask tcp://host:8786)")
        return _dask(dask_address)
    if executor is None or executor == "process":
        pool = process_pool(workers)  # validates workers
        n = workers if workers is not None else available_cpus()
        return ExecutorHandle(pool, True, "process", f"{n} local process{'es' * (n != 1)}")
    if isinstance(executor, Executor):
        return ExecutorHandle(executor, False, "custom", type(executor).__name__)
    if hasattr(executor, "get_executor"):  # a dask Client
        return ExecutorHandle(
            executor.get_executor(pure=False), False, "dask", f"dask {executor!r}", threads=1
        )
    raise SweepError(
        f"executor must be None, 'process', 'dask' or a concurrent.futures.Executor, "
        f"got {executor!r}"
    )


def _dask(address: str) -> ExecutorHandle:
    try:
        from distributed import Client
    except ImportError:
        raise SweepError(
            "--dask needs dask.distributed, which is not installed: "
            "pip install 'gradlab[dask]' (or: pip install distributed)"
        ) from None
    try:
        client = Client(address)  # waits distributed.comm.timeouts.connect (dask config)
    except (OSError, TimeoutError) as exc:
        raise SweepError(f"cannot connect to the dask scheduler at {address!r}: {exc}") from None
    n = len(client.nthreads())
    return ExecutorHandle(
        client.get_executor(pure=False),
        True,
        "dask",
        f"dask cluster {address} ({n} worker{'s' * (n != 1)})",
        threads=1,
        client=client,
    )
