"""`train`: one training run — task, model, optimiser, clipping — recorded on a schedule.

Every optimiser step writes `train` rows (loss, gradient norm before clipping, clipped). At each
scheduled step the model is recorded with `gradlab.record` (its adjoint in
`config.adjoint_dtype` when set) on a FIXED probe batch, every probe in
`gradlab.probes.PROBES` turns the recording into rows, and two arrays are saved (`hidden_sample`,
`step_jacobian_sv`); the `fixed_points` probe, the costly one, runs only at the recordings
`fixed_point_recordings(recorded, config.fixed_point_every)` picks, and saves two arrays more
there. A recording at step s measures the parameters that step s's update starts from (step 0
is the initialisation), so the `train` rows and the recording of a step describe the same model.

What is measured vs what is trained. The optimiser follows the gradient of the configured
scheme: full BPTT, or truncated BPTT with `truncate` = k. The recorded quantities always measure
the *full*-BPTT gradient of the probe batch: they describe how gradients would flow through the
whole sequence in the current model, whatever the optimiser used.

Truncated BPTT (`truncate` = k). Each training sequence is split into windows of k steps (the
last one may be shorter); the model runs window by window and the state passed from one window to
the next is detached, so no gradient crosses a window boundary. The task's loss is computed on the
whole output sequence and one optimiser step is taken per batch. A loss term at step t therefore
back-propagates only to the start of its own window. For a many-to-one task (adding,
temporal_order, identity: the loss reads only the last output) only the last window receives any
gradient, so nothing before step T - k can be learnt, which is the point of comparing it with
full BPTT. Truncation needs a forward-only model (a reverse direction's state flows from the
future, so carrying it forward across windows has no meaning): a bidirectional model raises.

Randomness. Weights (`init_model`), readout, training batches and the probe batch each come from
a private `torch.Generator` whose seed derives from `config.seed`; nothing touches torch's global
generator, so the same config on CPU gives bit-identical metrics.

Divergence. A NaN/Inf training loss or gradient norm, or a recording whose states or adjoints
are NaN/Inf, ends the run with status `diverged`: the rows of every earlier step (and the train
row of the diverging step, whose loss is data) are kept.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gradlab.arrays import (
    FIXED_POINT_EIGENVALUES,
    FIXED_POINT_STATES,
    HIDDEN_SAMPLE,
    STEP_JACOBIAN_SV,
)
from gradlab.cells import get_activation, get_cell, init_model
from gradlab.cells.models import RecurrentModel
from gradlab.config import RunConfig
from gradlab.probes import (
    PROBES,
    FixedPointProbe,
    Probe,
    ProbeContext,
    SummaryProbe,
    TrainProbe,
    run_probes,
)
from gradlab.probes.fixed_points import (
    fixed_point_recordings,
    fixed_point_values,
    found_fixed_points,
)
from gradlab.record import NonFiniteWarning, Recording, one_thread, record
from gradlab.store import RunWriter, Store, open_store
from gradlab.tasks import Task, make
from gradlab.theory import pascanu_bound

__all__ = [
    "LOG_RECORDINGS",
    "bptt_forward",
    "build_model",
    "build_readout",
    "final_loss",
    "record_steps",
    "train",
    "write_recording",
]

#: How many recordings the "log" schedule aims at.
LOG_RECORDINGS = 30

# Independent random streams derived from config.seed (weights use config.seed itself).
_STREAM_READOUT, _STREAM_DATA, _STREAM_PROBE = 1, 2, 3


def _stream_seed(seed: int, stream: int) -> int:
    """A 63-bit seed for one named random stream of a run (numpy's SeedSequence mixing)."""
    state = np.random.SeedSequence([int(seed), stream]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _generator(seed: int, stream: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(_stream_seed(seed, stream))


def record_steps(steps: int, every: int | str) -> list[int]:
    """The steps (0-based, < steps) at which a run records, sorted and unique.

    `every` = k: 0, k, 2k, ... and the last step, steps - 1. `every` = "log": about
    `LOG_RECORDINGS` log-spaced steps, always including 0 and steps - 1.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    last = steps - 1
    if every == "log":
        points = np.geomspace(1, steps, LOG_RECORDINGS) - 1
        chosen = {0, last, *np.rint(points).astype(int).tolist()}
    elif isinstance(every, int) and not isinstance(every, bool) and every >= 1:
        chosen = {*range(0, steps, every), last}
    else:
        raise ValueError(f"record_every must be an integer >= 1 or 'log', got {every!r}")
    return sorted(chosen)


def build_model(config: RunConfig, task: Task) -> RecurrentModel:
    """The run's recurrent model, initialised by `init_model` from `config.seed`."""
    dtype, device = getattr(torch, config.dtype), torch.device(config.device)
    kwargs = dict(
        num_layers=config.num_layers,
        bidirectional=config.bidirectional,
        dtype=dtype,
        device=device,
    )
    spec = get_cell(config.cell)
    model = spec.build(task.input_size, config.hidden_size, config.activation_name, **kwargs)
    return init_model(
        model,
        config.init,
        gain=config.gain,
        seed=config.seed,
        bias_scale=config.bias_scale,
        forget_bias=config.forget_bias,
        update_bias=config.update_bias,
    )


@torch.no_grad()
def build_readout(config: RunConfig, task: Task) -> nn.Linear:
    """Linear readout D·N → task.output_size; torch's U(±1/√fan_in) drawn from the run's seed."""
    fan_in = config.hidden_size * (2 if config.bidirectional else 1)
    dtype, device = getattr(torch, config.dtype), torch.device(config.device)
    readout = nn.Linear(fan_in, task.output_size, dtype=dtype, device=device)
    generator = torch.Generator().manual_seed(_stream_seed(config.seed, _STREAM_READOUT))
    bound = 1.0 / math.sqrt(fan_in)
    for p in readout.parameters():
        u = torch.rand(p.shape, generator=generator, dtype=torch.float64)
        p.copy_(((2 * u - 1) * bound).to(dtype))
    return readout


def bptt_forward(model: RecurrentModel, x: Tensor, truncate: int | None) -> Tensor:
    """model(x)[0], or the truncated-BPTT forward: windows of `truncate` steps with the state
    detached between them (see the module docstring). x, output time-major."""
    if truncate is None or truncate >= x.shape[0]:
        return model(x)[0]
    outputs, state = [], None
    for window in x.split(truncate):
        out, state = model(window, state)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        outputs.append(out)
    return torch.cat(outputs)


def _pascanu_bound(model: RecurrentModel) -> float:
    """γ·σ_max of layer 0's recurrence (Pascanu et al. 2013) for a cell with a `recurrent_norm`
    hook whose activation has theory hooks (γ); NaN otherwise (gated cells, no theory)."""
    activation = model.activation
    if (
        get_cell(model.cell).recurrent_norm is None
        or activation is None
        or get_activation(activation).theory is None
        or not torch.isfinite(model.weight_hh_l0).all()
    ):
        return math.nan
    return pascanu_bound(model).bound


def final_loss(losses: list[float]) -> float:
    """Mean training loss over the last 10% of the steps done (at least one)."""
    if not losses:
        return math.nan
    n = max(1, math.ceil(0.1 * len(losses)))
    return float(np.mean(losses[-n:]))


class _Recorder:
    """Records the model on the fixed probe batch and writes rows and arrays to the run."""

    def __init__(
        self,
        config: RunConfig,
        task: Task,
        model: RecurrentModel,
        readout: nn.Linear,
        writer: RunWriter,
        probes: list[Probe],
    ) -> None:
        dtype, device = getattr(torch, config.dtype), torch.device(config.device)
        generator = _generator(config.seed, _STREAM_PROBE, device)
        self.x, self.y = task.sample(config.probe_batch, generator, dtype=dtype)
        self.config, self.task, self.model, self.readout = config, task, model, readout
        self.writer, self.probes = writer, probes
        self.context = ProbeContext.from_config(config)
        self.adjoint_dtype = (
            None if config.adjoint_dtype is None else getattr(torch, config.adjoint_dtype)
        )
        self.summary: dict[str, float] = {}  # the latest recording's summary probe values
        self.initial_summary: dict[str, float] = {}  # the first recording's (step 0)
        recorded = record_steps(config.steps, config.record_every)
        self.fixed_point_steps = set(fixed_point_recordings(recorded, config.fixed_point_every))
        self.fixed_points: dict[str, float] = {}  # the latest search's per-step values

    def _loss(self, out: Tensor) -> Tensor:
        return self.task.loss(self.readout(out), self.y)

    def __call__(self, step: int) -> Recording:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonFiniteWarning)  # NaN is data; train() decides
            rec = record(self.model, self.x, self._loss, adjoint_dtype=self.adjoint_dtype)
        probes = self.probes
        if step not in self.fixed_point_steps:
            probes = [p for p in probes if p.probe != FixedPointProbe.probe]
        self.summary = write_recording(
            self.writer, rec, step, self.context, probes, self.config.hidden_samples
        )
        if step in self.fixed_point_steps:
            self.fixed_points = fixed_point_values(rec)
        if step == 0:
            self.initial_summary = self.summary
        return rec


#: How often (s of training) a live run's progress is noted in its record for readers.
PROGRESS_EVERY_S = 1.0


def write_recording(
    writer: RunWriter,
    rec: Recording,
    step: int,
    context: ProbeContext,
    probes: list[Probe],
    hidden_samples: int,
) -> dict[str, float]:
    """Write what a run keeps of one recording made at `step`: every probe's rows (buffered in
    `writer`) and the arrays `hidden_sample` (rows 0..hidden_samples-1 of h_0..h_T) and
    `step_jacobian_sv` (and, when the `fixed_points` probe ran, `fixed_point_states` and
    `fixed_point_eigenvalues`). Returns the summary probe's values by name ({} when it did not
    run). The analysis runs on one torch thread (`one_thread`), so a run's rows do not depend on
    the caller's thread count (`gradlab.train`, `gradlab.init` runs and `gradlab.figure` agree).
    """
    summary: dict[str, float] = {}
    with one_thread():
        singular_values = _numpy(_step_singular_values(rec))  # first: the probes reuse row 0's
        analysed = run_probes(rec, context, probes)
    for probe, rows in analysed:
        writer.log_metrics({**rows, "step": step, "probe": probe.probe})
        if probe.probe == SummaryProbe.probe:
            values = np.asarray(rows["value"], dtype=np.float64).tolist()
            summary = dict(zip(rows["name"], values, strict=True))
    n = min(hidden_samples, rec.hidden.shape[1])
    writer.save_array(HIDDEN_SAMPLE, step, _numpy(rec.hidden[:, :n]))
    writer.save_array(STEP_JACOBIAN_SV, step, singular_values)
    found = found_fixed_points(rec)
    if found is not None:
        eigenvalues = found.eigenvalues.detach().cpu().numpy()
        writer.save_array(FIXED_POINT_STATES, step, _numpy(found.states))
        writer.save_array(
            FIXED_POINT_EIGENVALUES, step, np.stack((eigenvalues.real, eigenvalues.imag), -1)
        )
    return summary


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def _step_singular_values(rec: Recording) -> Tensor:
    """Singular values of every step Jacobian of layer 0 forward for probe row 0, (T, S): the
    recording computes them once per row, so the `step_jacobian` probe's spectral norms of
    row 0 (its largest) and this array share one batched SVD."""
    return rec.step_singular_values(samples=[0])[:, 0]


def train(
    config: RunConfig | dict[str, Any],
    store: Store | str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Train one run into `store` and return its run_id (`config.run_id`).

    `config`: a RunConfig or a dict for `RunConfig.from_dict`. `store`: a Store or a folder
    (opened with `open_store`). `overwrite`: redo a run that exists but is not complete (a
    complete run raises `RunExistsError` either way). `progress(done, total)` is called after
    every optimiser step. The run ends `complete`, `diverged` (NaN/Inf loss, gradient or
    recording) or `failed` (any exception, with its traceback in the run's record; re-raised).
    """
    if not isinstance(config, RunConfig):
        config = RunConfig.from_dict(dict(config))
    if not isinstance(store, Store):
        store = open_store(Path(store))
    task = make(config.task, seq_len=config.seq_len)
    run_id = config.run_id
    meta = {"task": task.params}  # the task's full parameters (e.g. the copy task's delay)
    with store.create_run(run_id, config.to_dict(), meta=meta, overwrite=overwrite) as writer:
        _train(config, task, writer, progress)
    return run_id


def _train(
    config: RunConfig,
    task: Task,
    writer: RunWriter,
    progress: Callable[[int, int], None] | None,
) -> None:
    device, dtype = torch.device(config.device), getattr(torch, config.dtype)
    model = build_model(config, task)
    bound_at_init = _pascanu_bound(model)
    readout = build_readout(config, task)
    params = [*model.parameters(), *readout.parameters()]
    optimizer: torch.optim.Optimizer
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.lr)
    else:
        optimizer = torch.optim.Adam(params, lr=config.lr)
    data = _generator(config.seed, _STREAM_DATA, device)
    recorder = _Recorder(config, task, model, readout, writer, [cls() for cls in PROBES.values()])
    scheduled = set(record_steps(config.steps, config.record_every))
    max_norm = math.inf if config.clip is None else config.clip

    losses: list[float] = []
    grad_norms: list[float] = []
    clipped: list[bool] = []
    updates = 0  # optimiser steps taken
    logged = 0  # train rows of steps < logged are in the writer's buffer

    def log_train_rows() -> None:
        nonlocal logged
        if len(losses) > logged:
            steps = range(logged, len(losses))
            writer.log_metrics(
                TrainProbe.rows(steps, losses[logged:], grad_norms[logged:], clipped[logged:])
            )
            logged = len(losses)

    theory = recorder.context.theory_rate
    noted = time.monotonic()

    def note_progress() -> None:
        """The run's summary so far (steps done, loss, latest decay rates) for live readers."""
        nonlocal noted
        noted = time.monotonic()
        writer.note_progress(
            {
                "steps_done": updates,
                "final_loss": final_loss(losses) if losses else math.nan,
                "baseline_loss": task.baseline_loss,
                "decay_rate": recorder.summary.get("decay_rate", math.nan),
                "decay_rate_init": recorder.initial_summary.get("decay_rate", math.nan),
                "adjoint_decay_rate": recorder.summary.get("adjoint_decay_rate", math.nan),
                "theory_rate": math.nan if theory is None else theory,
            }
        )

    diverged: str | None = None
    for step in range(config.steps):
        if step in scheduled:
            rec = recorder(step)
            log_train_rows()
            writer.flush()
            note_progress()
            if not rec.is_finite or (rec.loss is not None and not math.isfinite(rec.loss)):
                diverged = f"the recording of step {step} has NaN/Inf states or gradients"
                break
        x, y = task.sample(config.batch_size, data, dtype=dtype)
        loss = task.loss(readout(bptt_forward(model, x, config.truncate)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        losses.append(float(loss.detach()))
        grad_norms.append(norm)
        clipped.append(config.clip is not None and norm > config.clip)
        if not (math.isfinite(losses[-1]) and math.isfinite(norm)):
            diverged = f"loss {losses[-1]} and gradient norm {norm} at step {step}"
            break
        optimizer.step()
        updates += 1
        if time.monotonic() - noted >= PROGRESS_EVERY_S:
            note_progress()
        if progress is not None:
            progress(step + 1, config.steps)

    log_train_rows()
    summary = {
        "final_loss": final_loss(losses),
        "baseline_loss": task.baseline_loss,
        "steps_done": updates,
        "final_grad_norm": grad_norms[-1] if grad_norms else math.nan,
        # State decay rate (slope of ln ‖∂s_T/∂s_k‖ in the lag) at the last recording and at
        # step 0, the adjoint's (‖∂L/∂h_t‖) at the last, and the theory's rate at initialisation.
        "decay_rate": recorder.summary.get("decay_rate", math.nan),
        "decay_rate_init": recorder.initial_summary.get("decay_rate", math.nan),
        "adjoint_decay_rate": recorder.summary.get("adjoint_decay_rate", math.nan),
        "theory_rate": math.nan if theory is None else theory,
        "pascanu_bound_init": bound_at_init,
        "pascanu_bound": _pascanu_bound(model),
        # At the last fixed-point search (layer 0 forward): the mean ln|λ_max| at the points the
        # probe trajectories visit, e^ of it, and the top Lyapunov exponent of that recording.
        "fixed_point_rate": recorder.fixed_points.get("rate", math.nan),
        "slowest_fixed_point_modulus": recorder.fixed_points.get("modulus", math.nan),
        "lyapunov_exponent": recorder.fixed_points.get("lyapunov", math.nan),
    }
    if diverged is not None:
        writer.finish("diverged", summary=summary, error=f"diverged: {diverged}")
    else:
        writer.finish("complete", summary=summary)
