"""`init`: log your own training loop into a gradlab store — metrics, recordings, status.

    with gradlab.init(store="runs", name="digits-lstm", config={"lr": 1e-3}) as run:
        for step in range(steps):
            ...  # your forward, backward, optimiser step
            run.log({"loss": loss.item(), "acc": acc}, step=step)
            if step % 50 == 0:
                run.record(model, x_probe, loss_fn, step=step)

A run holds what `gradlab.train` writes, so `gradlab runs`, `Store.metrics` and the dashboard
read it like any other: `log` writes one `train` probe row per metric name (`loss` feeds the
loss curves), `record` records the model with `gradlab.record` and writes every probe's rows and
the run arrays (`gradlab.train.write_recording`).

Status: `running` while the loop runs; `complete` after `finish()` or at the end of the `with`
block; `failed` with the traceback when the block raises; `interrupted` when the process died
(killed, or it exited without `finish`): the store tells that from the run's lock, which the
kernel frees when the process dies. Rows are written to disk at every recording and at least every
`flush_every_s` seconds of `log` calls, so a killed run keeps what was flushed (a process that
exits without `finish` first lets its pending analyses end, so it keeps their rows too).

Background analysis (``init(..., background=True)``, the default). `record` runs only the
recording itself (`gradlab.record`: the forward pass, the adjoint, the contributions' factors;
what must see the model as it is at that step) on the caller's thread, snapshots the parameters
the recording reads later into it, and hands it to ONE worker thread owned by the run, which
runs every probe, computes the arrays and writes them, in submission order, while the loop goes
on. The stored rows are exactly those of a synchronous recording: updating the model in place
after `record` returns changes nothing. At most `MAX_PENDING` recordings wait for their analysis
(the one being analysed included); `record` then blocks until one is written, so memory stays
bounded. `flush`, `summary`, `finish` and leaving the `with` block wait for every pending
analysis. An exception in the worker is re-raised, with its traceback and a note naming the
step, at the next `log`, `record`, `flush` or `finish`, and the run ends `failed` with that
traceback (a crash of the loop inside `with` still ends it `failed`). The worker never changes
the caller's torch thread count (torch's intra-op count is per thread with its OpenMP backend).
The analysis runs on one thread in either mode (`gradlab.record.one_thread`: LAPACK on many
small matrices gains nothing from more, and the loop keeps the other cores), so a run's rows do
not depend on `background`. ``background=False`` runs the analysis inside `record`, as
`gradlab.train` does.
"""

from __future__ import annotations

import atexit
import math
import os
import queue
import secrets
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np
import torch

from gradlab.cells.models import RecurrentModel
from gradlab.cells.registry import get_cell
from gradlab.config import RunConfig
from gradlab.probes import PROBES, Probe, ProbeContext, TrainProbe
from gradlab.record import Recording, one_thread
from gradlab.store import RunWriter, Store, open_store
from gradlab.train import final_loss, write_recording

__all__ = ["MAX_PENDING", "Run", "init", "model_config"]

#: Hidden-state rows kept per recording and batch rows whose spectral Jacobian norms are
#: computed: the defaults of a training run (RunConfig).
HIDDEN_SAMPLES = RunConfig.hidden_samples
JACOBIAN_SAMPLES = RunConfig.jacobian_samples

#: Recordings of a run whose analysis may be pending at once (the one being analysed
#: included); `Run.record` blocks while there are this many.
MAX_PENDING = 2


def _check_json(value: Any, key: str) -> None:
    """Raise a TypeError naming `key` (dotted for nested mappings) unless `value` is JSON."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float | np.floating | np.integer | np.bool_):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"config key {k!r} under {key!r} must be a string")
            _check_json(v, f"{key}.{k}")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_json(v, f"{key}[{i}]")
        return
    raise TypeError(
        f"config[{key!r}] must be JSON (number, string, bool, None, list or dict), "
        f"got {type(value).__name__}: {value!r:.60}"
    )


def _real(key: str, value: Any) -> float:
    """A logged metric as a float; TypeError naming `key` unless it is one real number."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex():
            raise TypeError(
                f"metric {key!r} must be one real number, got a tensor of shape "
                f"{tuple(value.shape)} and dtype {value.dtype}"
            )
        return float(value.detach().cpu().reshape(()))
    if isinstance(value, bool | int | float | np.integer | np.floating | np.bool_):
        return float(value)
    raise TypeError(f"metric {key!r} must be a real number, got {type(value).__name__}")


def _new_run_id() -> str:
    """A fresh run id: UTC time and 6 random hex digits (``run-20261204-183614-1a2b3c``)."""
    return f"run-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def model_config(model: RecurrentModel) -> dict[str, Any]:
    """The run-config keys a recorded model shows (``cell``, ``activation`` for a cell that
    takes one, ``hidden_size``, ``num_layers``, ``bidirectional``, ``proj_size`` when set):
    :meth:`Run.record` adds the ones the user's config lacks, so titles, legends and the run
    page name the cell and offer every layer."""
    values: dict[str, Any] = {"cell": model.cell}
    activation = getattr(model, "activation", None)  # an Activation (or a cell's own name)
    activation = getattr(activation, "name", activation)
    if get_cell(model.cell).takes_activation and isinstance(activation, str):
        values["activation"] = activation
    values.update(
        hidden_size=int(model.hidden_size),
        num_layers=int(model.num_layers),
        bidirectional=bool(model.bidirectional),
    )
    proj_size = int(getattr(model, "proj_size", 0) or 0)
    if proj_size:
        values["proj_size"] = proj_size
    return values


class _Rows:
    """What `write_recording` writes for one recording, kept in memory until the worker writes
    it to the run under the run's lock (the analysis itself runs without holding it)."""

    def __init__(self) -> None:
        self.metrics: list[Any] = []
        self.arrays: list[tuple[str, int, np.ndarray]] = []

    def log_metrics(self, rows: Any) -> None:
        self.metrics.append(rows)

    def save_array(self, name: str, step: int, array: np.ndarray) -> None:
        self.arrays.append((name, step, array))

    def write_to(self, writer: RunWriter) -> None:
        for rows in self.metrics:
            writer.log_metrics(rows)
        for name, step, array in self.arrays:
            writer.save_array(name, step, array)


class _Job(NamedTuple):
    """One recording waiting for its analysis."""

    step: int
    rec: Recording
    context: ProbeContext
    probes: list[Probe]


class Run:
    """One run of a training loop you write. Made by :func:`init`; holds the run's writer lock
    until :meth:`finish`. Use as a context manager (see the module docstring)."""

    def __init__(
        self, store: Store, writer: RunWriter, flush_every_s: float, background: bool = True
    ) -> None:
        self.store = store
        self.run_id = writer.run_id
        self._writer = writer
        self._flush_every_s = flush_every_s
        self._last_flush = time.monotonic()
        self._losses: list[float] = []  # the values of metric "loss", in logging order
        self._last_step: int | None = None  # the highest step logged or recorded
        self._last_logged: int | None = None  # the highest step logged
        self._recorded: set[int] = set()
        self._summary: dict[str, float] = {}  # the latest recording's summary probe values
        self._initial_summary: dict[str, float] = {}  # the first recording's
        self._background = background
        # the worker and the caller both write: every writer call and summary update holds it
        self._lock = threading.RLock()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._slots = threading.Semaphore(MAX_PENDING)  # one per recording not yet written
        self._worker: threading.Thread | None = None
        self._failure: tuple[int, BaseException] | None = None  # (step, what the worker raised)

    @property
    def path(self) -> Path:
        """The run's folder in the store."""
        return self._writer.path

    @property
    def config(self) -> dict[str, Any]:
        """The run's config as stored."""
        return self._writer.config

    @property
    def status(self) -> str:
        """``running`` until finished, then the final status."""
        return self._writer.status

    @property
    def background(self) -> bool:
        """Whether recordings are analysed on the run's worker thread (module docstring)."""
        return self._background

    @property
    def pending(self) -> int:
        """Recordings handed to the worker whose rows are not written yet."""
        return self._jobs.unfinished_tasks

    @staticmethod
    def _step(step: Any) -> int:
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        return int(step)

    def _seen(self, step: int) -> None:
        self._last_step = step if self._last_step is None else max(self._last_step, step)

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalar metrics (name → real number: float, int, numpy scalar, one-element tensor)
        at `step` (default: one after the highest step logged so far, 0 first)."""
        self._raise_failure()
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics must be a mapping of name to number, got {metrics!r:.60}")
        if step is None:
            step = 0 if self._last_logged is None else self._last_logged + 1
        step = self._step(step)
        names, values = [], []
        for key, value in metrics.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"metric names must be non-empty strings, got {key!r}")
            names.append(key)
            values.append(_real(key, value))
        if not names:
            return
        with self._lock:
            self._writer.log_metrics(
                {"step": step, "probe": TrainProbe.probe, "name": names, "value": values}
            )
            if "loss" in metrics:
                self._losses.append(values[names.index("loss")])
            self._seen(step)
            self._last_logged = step if self._last_logged is None else max(self._last_logged, step)
            if time.monotonic() - self._last_flush >= self._flush_every_s:
                self._write_rows()  # what is written so far; pending analyses go on

    def record(
        self,
        model: Any,
        inputs: Any,
        loss_fn: Callable[..., torch.Tensor] | None = None,
        *,
        step: int | None = None,
        **kwargs: Any,
    ) -> Recording:
        """Record `model` on `inputs` with ``gradlab.record(model, inputs, loss_fn, **kwargs)``
        and write the probes' rows and arrays at `step` (default: the highest step logged, 0
        if none); returns the Recording. Pass the same fixed `inputs` every time so that the
        recordings compare. `model`: a gradlab model, or any nn.Module whose recurrent
        submodule `module=` names (see `gradlab.record`); the keys of `model_config` the run's
        config lacks (the cell first) are added to it.

        In the background (the default) only the recording runs here: the parameters it reads
        later are copied into it, so the model may be updated in place as soon as this returns,
        and the analysis and its writes run on the run's worker thread. This call BLOCKS while
        `MAX_PENDING` earlier recordings are still being analysed. The returned Recording is
        the one the worker reads; reading it meanwhile is safe. With ``background=False`` the
        analysis runs here and its rows are on disk when it returns."""
        import gradlab

        self._raise_failure()
        step = self._step((self._last_logged or 0) if step is None else step)
        if step in self._recorded:
            raise ValueError(f"step {step} of run {self.run_id!r} is already recorded")
        if self._writer.closed:
            raise RuntimeError(f"run {self.run_id!r} is finished ({self.status}); it is read-only")
        rec = gradlab.record(model, inputs, loss_fn, **kwargs)
        if isinstance(rec, Mapping):  # several recurrent submodules, one Recording each
            raise ValueError(
                f"the model has several recurrent submodules {list(rec)}; a run records one: "
                "pass module= (its name or the submodule) to run.record"
            )
        with self._lock:
            self._writer.add_config(model_config(rec.model))
            self._recorded.add(step)
            self._seen(step)
        batch = rec.hidden.shape[1]
        context = ProbeContext(jacobian_samples=tuple(range(min(JACOBIAN_SAMPLES, batch))))
        job = _Job(step, rec, context, [cls() for cls in PROBES.values()])
        if not self._background:
            self._analyse(job)
            return rec
        rec._snapshot_parameters()
        self._slots.acquire()  # blocks while MAX_PENDING recordings wait
        if self._failure is not None:  # an earlier analysis failed while this one waited
            self._slots.release()
            self._raise_failure()
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._work,
                args=(torch.get_num_threads(),),
                name=f"gradlab-run-{self.run_id}",
                daemon=True,  # an unfinished run must not keep the process alive
            )
            self._worker.start()
            _WORKING.add(self)
        self._jobs.put(job)
        return rec

    def _analyse(self, job: _Job) -> None:
        """Every probe's rows and the arrays of one recording, on one thread and without the
        lock (either mode: so the rows do not depend on `background`), then their writes, the
        summaries and a flush (under the lock)."""
        rows = _Rows()
        step, rec, context, probes = job
        with torch.no_grad(), one_thread():
            summary = write_recording(rows, rec, step, context, probes, HIDDEN_SAMPLES)  # type: ignore[arg-type]
        with self._lock:
            rows.write_to(self._writer)
            if not self._initial_summary:
                self._initial_summary = summary
            self._summary = summary
            self._write_rows()

    def _work(self, threads: int) -> None:
        """The worker: analyse the recordings in submission order until None comes; after a
        failure the rest are dropped (the run ends failed). `threads`: the caller's torch
        thread count, this thread's own between analyses (each runs on one, `one_thread`)."""
        torch.set_num_threads(threads)  # this thread's own count (OpenMP: per thread)
        while True:
            job = self._jobs.get()
            if job is None:
                self._jobs.task_done()
                return
            try:
                if self._failure is None:
                    self._analyse(job)
            except BaseException as exc:  # re-raised on the caller's thread
                self._failure = (job.step, exc)
            finally:
                del job  # the recording's memory goes now, not at the next one
                self._slots.release()
                self._jobs.task_done()

    def _wait(self) -> None:
        """Wait until every recording handed to the worker is written (or dropped)."""
        if self._worker is not None:
            self._jobs.join()

    def _raise_failure(self) -> None:
        """If the worker failed: end the run `failed` with its traceback and raise it here (once;
        the run is finished after that)."""
        if self._failure is None:
            return
        step, exc = self._failure
        self._failure = None
        self._stop_worker()
        with self._lock:
            if not self._writer.closed:
                error = (
                    f"the background analysis of the recording at step {step} failed:\n"
                    + "".join(traceback.format_exception(exc))
                )
                self._writer.finish("failed", summary=self._summary_now(), error=error)
        exc.add_note(
            f"raised by the background analysis of run {self.run_id!r}'s recording at step "
            f"{step}; the run is marked failed"
        )
        raise exc

    def _stop_worker(self) -> None:
        """End the worker thread once the recordings before this call are done."""
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join()
            self._worker = None

    def _write_rows(self) -> None:
        """Write the buffered rows and the progress so far (caller holds the lock)."""
        self._writer.flush()
        self._writer.note_progress(self._summary_now())
        self._last_flush = time.monotonic()

    def flush(self) -> None:
        """Wait for every pending analysis, then write the rows logged and recorded so far to
        disk (readers see them; a killed run keeps them) and the summary so far (steps done,
        loss, latest decay rate: the runs page's progress)."""
        self._raise_failure()
        self._wait()
        self._raise_failure()
        with self._lock:
            self._write_rows()

    def _summary_now(self) -> dict[str, float]:
        with self._lock:
            return {
                "final_loss": final_loss(self._losses),
                "steps_done": 0 if self._last_step is None else self._last_step + 1,
                "decay_rate": self._summary.get("decay_rate", math.nan),
                "decay_rate_init": self._initial_summary.get("decay_rate", math.nan),
                "adjoint_decay_rate": self._summary.get("adjoint_decay_rate", math.nan),
            }

    def summary(self) -> dict[str, float]:
        """What :meth:`finish` stores as the run's summary before your own values: the mean
        logged ``loss`` over the last 10% of its values (``final_loss``), ``steps_done`` (the
        highest step + 1) and the decay rates of the first and latest recordings (once every
        pending analysis is done: this waits for them)."""
        self._wait()
        return self._summary_now()

    def finish(
        self,
        summary: Mapping[str, Any] | None = None,
        *,
        status: str = "complete",
        error: str | None = None,
    ) -> None:
        """End the run: wait for every pending analysis, write every row, the summary
        (:meth:`summary` updated with yours) and `status` (``complete``, ``failed`` or
        ``diverged``), and release the run. Calling it again does nothing. A failed background
        analysis ends the run ``failed`` and is raised here (with ``status="failed"``, e.g. a
        crash inside ``with``, its traceback is added to `error` and nothing is raised)."""
        if self._writer.closed:
            return
        self._wait()
        if self._failure is not None and status != "failed":
            self._raise_failure()
        if self._failure is not None:  # the loop failed too: keep both tracebacks
            step, exc = self._failure
            self._failure = None
            worker = "".join(traceback.format_exception(exc))
            error = f"{error or ''}\nthe background analysis of step {step} failed too:\n{worker}"
        self._stop_worker()
        values = {**self._summary_now(), **dict(summary or {})}
        for key, value in values.items():
            _check_json(value, f"summary.{key}")
        with self._lock:
            self._writer.finish(status, summary=values, error=error)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer.closed:
            return
        if exc is None:
            self.finish()
        else:
            self.finish(status="failed", error="".join(traceback.format_exception(exc)))

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, status={self.status!r}, path={str(self.path)!r})"


#: Runs whose worker thread is alive: at exit each finishes its pending analyses (so their rows
#: are kept) before the interpreter stops; the run itself stays unfinished (`interrupted`).
_WORKING: weakref.WeakSet[Run] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    """Let every live worker finish its analyses and end, before the interpreter stops it in
    the middle of a torch call (which aborts the process)."""
    for run in list(_WORKING):
        run._stop_worker()


def init(
    store: Store | str | os.PathLike[str] = "runs",
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
    flush_every_s: float = 10.0,
    background: bool = True,
) -> Run:
    """Start a run of your own training loop in `store` (a Store or a folder, made if needed).

    `name`: the run id (1-128 of ``[A-Za-z0-9_-]``; default: UTC time and a random suffix).
    `config`: the run's settings, any JSON mapping (nested dicts and lists too; a value that is
    not JSON raises a TypeError naming its key). `overwrite`: redo a run of that name that is not
    complete (failed, interrupted, ...). `flush_every_s`: how often `log` writes to disk.
    `background`: analyse recordings on the run's worker thread while the loop goes on (see
    the module docstring); False analyses them inside `record`.
    """
    config = {} if config is None else config
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    for key, value in config.items():
        if not isinstance(key, str):
            raise TypeError(f"config keys must be strings, got {key!r}")
        _check_json(value, key)
    if not isinstance(store, Store):
        store = open_store(Path(store))
    run_id = _new_run_id() if name is None else name
    writer = store.create_run(run_id, config, overwrite=overwrite)
    return Run(store, writer, flush_every_s, background)
