"""Run a sweep: plan against the store (resume), submit runs to an executor, report progress.

Resume rules (read from ``store.runs()`` before anything is submitted):

============================  ==============================================================
store status                  what the sweep does
============================  ==============================================================
absent                        run it
``complete``, ``diverged``    skip it (a diverged run is a finished result, not an error)
``failed``, ``corrupt``       redo it from scratch (``overwrite=True``)
``interrupted`` (writer dead) redo it from scratch (``overwrite=True``)
``running``, writer alive     skip it with a note: another sweep is on it
============================  ==============================================================

A run id is the hash of its config (sweep name included) and the store locks a run while it is
written, so two sweeps never write the same run twice.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gradlab.config import RunConfig

from .bounds import DEFAULT_MAX_RUNS
from .executors import ExecutorHandle, make_executor
from .spec import SweepSpec, load_spec
from .worker import DEFAULT_TRAIN, record_failure, run_one

__all__ = ["PlannedRun", "SweepResult", "plan_sweep", "run_sweep"]

RUN, REDO, SKIP, BUSY = "run", "redo", "skip", "busy"


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep and what the sweep will do with it (``action``: run, redo, skip,
    busy) given what the store holds (``stored``: its status there, or None)."""

    config: RunConfig
    run_id: str
    action: str
    stored: str | None = None
    reason: str = ""

    @property
    def submit(self) -> bool:
        return self.action in (RUN, REDO)


def plan_sweep(spec: SweepSpec, store_path: str | os.PathLike[str] | None) -> list[PlannedRun]:
    """What a sweep of ``spec`` would do in the store at ``store_path``; writes nothing.

    A store folder that does not exist (or None) means every run is new.
    """
    from gradlab.store import is_store, open_store

    rows: dict[str, tuple[str, bool]] = {}
    if store_path is not None and is_store(store_path):
        runs = open_store(store_path).runs()
        rows = {
            r: (s, bool(a))
            for r, s, a in zip(runs["run_id"], runs["status"], runs["alive"], strict=True)
        }
    plan = []
    for config in spec.configs:
        run_id = config.run_id
        status, alive = rows.get(run_id, (None, False))
        if status is None:
            plan.append(PlannedRun(config, run_id, RUN))
        elif status in ("complete", "diverged"):
            plan.append(PlannedRun(config, run_id, SKIP, status, f"already {status}"))
        elif status == "running" and alive:
            why = "another process is writing it"
            plan.append(PlannedRun(config, run_id, BUSY, status, why))
        else:
            why = "writer died" if status == "interrupted" else status
            plan.append(PlannedRun(config, run_id, REDO, status, f"redo ({why})"))
    return plan


@dataclass
class SweepResult:
    """How a sweep went. Counts are of runs finished by this call; ``skipped`` counts runs that
    were already finished in the store or that another process is writing."""

    name: str
    total: int
    complete: int = 0
    failed: int = 0
    diverged: int = 0
    skipped: int = 0
    cancelled: int = 0  # not run because the sweep was interrupted
    interrupted: bool = False
    wall_s: float = 0.0
    run_s: float = 0.0  # sum of the time spent inside the train function, over runs
    failures: list[tuple[str, str]] = field(default_factory=list)  # (run_id, last error line)
    notes: list[str] = field(default_factory=list)

    @property
    def ran(self) -> int:
        """Runs finished by this call."""
        return self.complete + self.failed + self.diverged

    @property
    def ok(self) -> bool:
        """No run failed and the sweep was not interrupted."""
        return self.failed == 0 and not self.interrupted

    @property
    def exit_code(self) -> int:
        """130 if interrupted, 1 if a run failed, else 0 (what ``gradlab sweep`` exits with)."""
        return 130 if self.interrupted else (1 if self.failed else 0)

    def summary(self) -> str:
        """One line: ``sweep NAME: 24 runs: 20 complete, 1 diverged, ... in 1m02s``."""
        parts = [f"{self.complete} complete", f"{self.diverged} diverged", f"{self.failed} failed"]
        parts.append(f"{self.skipped} skipped")
        if self.cancelled:
            parts.append(f"{self.cancelled} not run")
        head = "interrupted" if self.interrupted else "done"
        return (
            f"sweep {self.name} {head}: {self.total} runs: {', '.join(parts)} "
            f"in {_duration(self.wall_s)}"
        )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def run_sweep(
    spec: SweepSpec | str | os.PathLike[str],
    store_path: str | os.PathLike[str],
    executor: str | Executor | Any | None = None,
    workers: int | None = None,
    dask_address: str | None = None,
    progress: bool = True,
    train_fn: Callable[..., str] | str = DEFAULT_TRAIN,
    *,
    scale: str = "demo",
    max_runs: int | None = DEFAULT_MAX_RUNS,
    out: TextIO | None = None,
) -> SweepResult:
    """Run every run of ``spec`` that the store does not already hold; resume-safe.

    ``spec``: a SweepSpec or a path to a spec file (loaded at ``scale``, refused past
    ``max_runs`` runs). ``executor``: None or
    ``"process"`` (a process pool of ``workers``, default one per CPU), ``"dask"`` with
    ``dask_address``, or any ``concurrent.futures.Executor`` (used as is, left running).
    ``progress``: a rich progress bar when ``out`` is a terminal; otherwise (or with False) one
    line per finished run. ``train_fn``: ``train(config, store_path, *, overwrite, progress)``,
    a picklable callable or ``"module:function"`` (default ``gradlab.train.train``).

    A run that raises ends ``failed`` and the sweep goes on. Ctrl-C cancels the runs not yet
    started, lets the ones in flight finish (a second Ctrl-C stops them too; they are redone on
    the next sweep) and returns with ``interrupted`` set. See :class:`SweepResult`.
    """
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec, scale=scale, max_runs=max_runs)
    out = out or sys.stdout
    start = time.perf_counter()
    store_path = str(Path(store_path).absolute())
    plan = plan_sweep(spec, store_path)
    todo = [p for p in plan if p.submit]
    result = SweepResult(spec.name, len(plan), skipped=len(plan) - len(todo))
    busy = [p for p in plan if p.action == BUSY]
    if busy:
        ids = ", ".join(p.run_id for p in busy[:5]) + (" ..." if len(busy) > 5 else "")
        result.notes.append(
            f"{len(busy)} run(s) skipped because another process is writing them ({ids}); "
            "run the sweep again once it is done to pick up any that it did not finish"
        )
    from gradlab.store import open_store

    open_store(store_path)  # create the folder now that the spec is known to be valid
    reporter = _reporter(spec, out, progress, len(todo))
    reporter.start(result, plan)
    handle: ExecutorHandle | None = None
    pending: dict[Future[Any], PlannedRun] = {}
    ctrl_c = _CtrlC()
    try:
        with ctrl_c:
            try:
                queue = todo
                while queue:
                    handle = make_executor(executor, workers, dask_address)
                    for p in queue:
                        args = (
                            p.config.to_dict(),
                            store_path,
                            p.action == REDO,
                            train_fn,
                            handle.threads,
                            spec.plugins,
                        )
                        pending[handle.executor.submit(run_one, *args)] = p
                    if queue is todo:  # once every run is submitted: a Ctrl-C after this line
                        # finds them all in `pending` (the interrupt tests wait for it)
                        reporter.note(f"running {len(todo)} run(s) on {handle.description}")
                    lost = _collect(pending, result, reporter, handle, ctrl_c)
                    # A worker died and broke the pool: the runs it had started end failed
                    # with the reason; those that never started go to a fresh pool.
                    queue = _settle_lost(lost, handle, store_path, result, reporter) if lost else []
                    if queue:
                        handle.close(wait=True)
                        reporter.note(
                            f"a worker died: {len(queue)} run(s) not yet started go to a new pool"
                        )
            except KeyboardInterrupt:
                result.interrupted = True
                _interrupt(pending, result, reporter, handle, ctrl_c)
    finally:
        if handle is not None:
            try:
                handle.close(wait=True)
            except KeyboardInterrupt:  # pragma: no cover - a third Ctrl-C: leave now
                handle.terminate()
                handle.close(wait=False)
        result.wall_s = time.perf_counter() - start
        for note in result.notes:
            reporter.note(note)
        reporter.stop(result)
    return result


class _CtrlC:
    """Ctrl-C (SIGINT) while a sweep runs, counted by a handler and raised as KeyboardInterrupt
    only where the sweep looks for it (`check`, between waits for its runs): raised wherever the
    main thread happens to be, it could land inside concurrent.futures' locking and leave a lock
    held. The handler is installed only on the main thread (signals reach no other) and only
    over Python's own SIGINT handler: an ignored SIGINT (a sweep started with ``nohup`` or with
    ``&`` from a script inherits it) or a custom handler is left as it is."""

    def __init__(self) -> None:
        self.presses = 0  # SIGINTs received
        self.raised = 0  # of those, raised as KeyboardInterrupt by `check`
        self.previous: Any = None
        self.installed = False

    def __enter__(self) -> _CtrlC:
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._press)
            self.installed = True
        return self

    def _press(self, signum: int, frame: Any) -> None:
        self.presses += 1

    def check(self) -> None:
        """KeyboardInterrupt once per Ctrl-C not raised yet (two presses: two raises)."""
        if self.raised < self.presses:
            self.raised += 1
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)
            self.installed = False


#: Seconds between looks for a Ctrl-C while waiting for runs (`_collect`).
_POLL_S = 0.1


def _collect(
    pending: dict[Future[Any], PlannedRun],
    result: SweepResult,
    reporter: _Reporter,
    handle: ExecutorHandle | None = None,
    ctrl_c: _CtrlC | None = None,
) -> list[PlannedRun]:
    """Wait for the futures in ``pending``, recording each as it finishes; returns the runs
    lost to a broken process pool (a worker died), for :func:`_settle_lost`. With ``ctrl_c``
    installed, a Ctrl-C is raised here, between waits of at most `_POLL_S` seconds."""
    lost: list[PlannedRun] = []
    polling = ctrl_c is not None and ctrl_c.installed
    while pending:
        if ctrl_c is not None:
            ctrl_c.check()
        if handle is not None:
            handle.remember_processes()
        timeout = _POLL_S if polling else None
        done, _ = wait(list(pending), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            p = pending.pop(future)
            if not future.cancelled() and isinstance(future.exception(), BrokenExecutor):
                lost.append(p)
            else:
                _record(future, p, result, reporter)
    return lost


def _record(future: Future[Any], p: PlannedRun, result: SweepResult, reporter: _Reporter) -> None:
    if future.cancelled():
        result.cancelled += 1
        return
    try:
        outcome = future.result()
    except Exception as exc:  # the worker itself died (dask's KilledWorker, unpicklable, ...)
        outcome = {"run_id": p.run_id, "status": "failed", "seconds": 0.0, "error": repr(exc)}
    _tally(p, outcome, result, reporter)


def _settle_lost(
    lost: list[PlannedRun],
    handle: ExecutorHandle,
    store_path: str,
    result: SweepResult,
    reporter: _Reporter,
) -> list[PlannedRun]:
    """Runs whose future a broken pool failed: a run the store holds as ``running`` (its
    worker died with it) ends ``failed`` with how the worker died; a finished one is counted
    as it finished; the runs never started are returned, to be run again. If none of them had
    started (workers die before any run), they all end failed instead."""
    from gradlab.store import open_store

    handle.close(wait=True)  # the pool has stopped its workers: their exit codes are known
    exits = handle.exit_codes()
    store = open_store(store_path)
    # A run this pool started names one of its workers as its writer (a run being redone may
    # still hold an earlier sweep's failed or abandoned record: that one never started here).
    started = [p for p in lost if _writer_pid(store, p.run_id) in exits]
    unstarted = [p for p in lost if p not in started]
    if not started:
        started, unstarted = lost, []
    for p in started:
        status = store.run(p.run_id).status if p.run_id in store else None
        if status in ("complete", "diverged", "failed"):
            error = store.run(p.run_id).reason if status == "failed" else None
            outcome = {"run_id": p.run_id, "status": status, "seconds": 0.0, "error": error}
        else:
            pid = _writer_pid(store, p.run_id)
            reason = _death_reason(pid, exits)
            status = record_failure(store, p.config, reason)
            outcome = {"run_id": p.run_id, "status": status, "seconds": 0.0, "error": reason}
        _tally(p, outcome, result, reporter)
    return unstarted


def _writer_pid(store: Any, run_id: str) -> int | None:
    writer = store.run(run_id).meta.get("writer") if run_id in store else None
    pid = writer.get("pid") if isinstance(writer, dict) else None
    return pid if isinstance(pid, int) else None


def _death_reason(pid: int | None, exits: dict[int, int | None]) -> str:
    """Why a run in flight on a broken pool stopped, from its worker's exit code."""
    dead = {q: c for q, c in exits.items() if c not in (0, -signal.SIGTERM)}
    culprits = "; ".join(_exit_text(q, c) for q, c in dead.items()) or "a worker process died"
    if pid is not None and exits.get(pid) == -signal.SIGTERM and pid not in dead:
        return f"stopped when the process pool broke ({culprits}); redone by the next sweep"
    mine = _exit_text(pid, exits.get(pid)) if pid is not None else culprits
    return f"the worker process running it died: {mine}"


def _exit_text(pid: int | None, code: int | None) -> str:
    if code is None:
        return f"worker pid {pid} died (exit status unknown)"
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (as the out-of-memory killer does)" if -code == signal.SIGKILL else ""
        return f"worker pid {pid} was killed by {name}{hint}"
    return f"worker pid {pid} exited with code {code}"


def _tally(
    p: PlannedRun, outcome: dict[str, Any], result: SweepResult, reporter: _Reporter
) -> None:
    status = outcome["status"]
    result.run_s += float(outcome.get("seconds") or 0.0)
    if status == "complete":
        result.complete += 1
    elif status == "diverged":
        result.diverged += 1
    elif status == "skipped":
        result.skipped += 1
        result.notes.append(f"run {p.run_id} skipped: {outcome.get('error')}")
    else:
        result.failed += 1
        result.failures.append((p.run_id, str(outcome.get("error"))))
    reporter.finished(p, outcome, result)


def _interrupt(
    pending: dict[Future[Any], PlannedRun],
    result: SweepResult,
    reporter: _Reporter,
    handle: ExecutorHandle | None,
    ctrl_c: _CtrlC | None = None,
) -> None:
    """First Ctrl-C: cancel what has not started, wait for the runs in flight."""
    for future in pending:
        future.cancel()
    for future in [f for f in pending if f.cancelled()]:
        _record(future, pending.pop(future), result, reporter)
    if pending:
        reporter.note(
            f"interrupted: waiting for the {len(pending)} run(s) in flight to finish "
            "(Ctrl-C again to stop them now; they will be redone on the next sweep)"
        )
    try:
        lost = _collect(pending, result, reporter, ctrl_c=ctrl_c)
        result.cancelled += len(lost)  # lost to a broken pool
    except KeyboardInterrupt:
        if handle is not None:
            handle.terminate()
        result.cancelled += len(pending)
        pending.clear()


# ------------------------------------------------------------------------------------------
# Progress reporting: a rich bar on a terminal, one line per run otherwise.


class _Reporter:
    """Plain lines: one per finished run, notes, and the summary."""

    def __init__(self, spec: SweepSpec, out: TextIO, todo: int) -> None:
        self.spec, self.out, self.todo = spec, out, todo
        self.done = 0
        self.t0 = time.perf_counter()

    def print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, result: SweepResult, plan: list[PlannedRun]) -> None:
        self.t0 = time.perf_counter()
        done = sum(p.action == SKIP for p in plan)
        busy = sum(p.action == BUSY for p in plan)
        redo = sum(p.action == REDO for p in plan)
        extra = [f"{done} already done"] if done else []
        extra += [f"{busy} being run elsewhere"] if busy else []
        extra += [f"{redo} to redo"] if redo else []
        tail = f" ({', '.join(extra)})" if extra else ""
        self.print(f"sweep {self.spec.name}: {result.total} runs, {self.todo} to run{tail}")

    def note(self, text: str) -> None:
        self.print(text)

    def line(self, p: PlannedRun, outcome: dict[str, Any]) -> str:
        label = self.spec.label(p.config)
        error = outcome.get("error")
        tail = f"  {error}" if outcome["status"] == "failed" and error else ""
        seconds = float(outcome.get("seconds") or 0.0)
        return (
            f"[{self.done}/{self.todo}] {p.run_id} {outcome['status']:<8} {label} "
            f"({seconds:.1f}s){tail}"
        )

    def finished(self, p: PlannedRun, outcome: dict[str, Any], result: SweepResult) -> None:
        self.done += 1
        self.print(self.line(p, outcome))

    def stop(self, result: SweepResult) -> None:
        self.print(result.summary())


class _RichReporter(_Reporter):
    """A rich progress bar: runs done / failed / diverged, elapsed, ETA, runs per minute."""

    def start(self, result: SweepResult, plan: list[PlannedRun]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Throughput(ProgressColumn):
            def render(self, task: Any) -> Text:
                elapsed = task.elapsed or 0.0
                rate = task.completed / elapsed * 60 if elapsed > 0 and task.completed else 0.0
                return Text(f"{rate:.1f} runs/min", style="progress.data.speed")

        self.console = Console(file=self.out)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[red]{task.fields[failed]} failed[/] [yellow]{task.fields[diverged]} diverged[/]"
            ),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            Throughput(),
            console=self.console,
        )
        self.progress.start()
        super().start(result, plan)
        self.task = self.progress.add_task(self.spec.name, total=self.todo, failed=0, diverged=0)

    def print(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def finished(self, p: PlannedRun, outcome: dict[str, Any], result: SweepResult) -> None:
        self.done += 1
        self.progress.update(self.task, advance=1, failed=result.failed, diverged=result.diverged)
        if outcome["status"] not in ("complete",):
            self.print(self.line(p, outcome))

    def stop(self, result: SweepResult) -> None:
        self.progress.stop()
        super().stop(result)


def _reporter(spec: SweepSpec, out: TextIO, progress: bool, todo: int) -> _Reporter:
    if progress and getattr(out, "isatty", lambda: False)():
        return _RichReporter(spec, out, todo)
    return _Reporter(spec, out, todo)
