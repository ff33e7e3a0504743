"""How fast is `gradlab.record` against torch's fused kernels and against the obvious way?

Prints, measured side by side in this process (interleaved repetitions, medians):
(a) the grid: cells tanh, relu, LSTM, GRU x (T, N, B) in (100,128,32), (1000,128,32),
    (5000,128,32), (1000,512,32), (1000,128,1), (1000,128,256), plus 2 layers and
    bidirectional at (1000,128,32): "record" (`gradlab.record`) and "full" (record +
    contribution_norms of every parameter + step_jacobian_norms("fro") of every layer and
    direction) over torch's fused forward+backward of the same module and loss (float32), at 1
    thread and at the default threads, median of >= 5 interleaved rounds with the per-round
    range (min-max of the per-round ratio), and the peak memory of each beside fused — targets
    record <= 1.0x, full <= 1.25x; then the dashboard recording: a (T=100, N=256, B=32) tanh RNN
    with every probe the dashboard shows and the arrays a run keeps (spectral norms included)
    over its fused forward+backward — target <= 2x. `--markdown PATH` writes the tables with
    the machine (docs/record_benchmark.md); `--device cuda` measures on a GPU (cuDNN is the
    fused baseline there);
(b) the same per-step quantities the obvious way (torch.autograd.functional.jacobian per step,
    per-step gradient clones through autograd) over gradlab — target >= 50x;
(d) a whole torch model (nn.Embedding + nn.LSTM(N=128) + nn.Linear, T=100, B=32, float32), at
    one thread and at the default threads side by side, over the model's plain forward +
    backward: `gradlab.record(model, ..., module="lstm")`; `run.record`'s blocking time, what
    the training loop waits for (the recording; its analysis runs on the run's worker thread)
    — target <= 1.5x; that analysis's time per recording (every probe, the arrays, the
    writes); a 40-step training loop recording every 10th step, wall time to `run.finish`
    (every analysis included) with a background run, a synchronous one and no gradlab; and
    every part of the analysis. What dominates it is dense linear algebra whose size the model
    does not set: the saved spectrum of every step Jacobian of row 0 (T exact SVDs of S x S,
    S = 2N) and the `jacobian` probe's ‖∂s_T/∂s_k‖₂ (per Jacobian sample, T dense S x S
    products, each 2·4N·N·S flops, and their SVDs); the spectral step norms of the other rows
    run by Lanczos with the step map's JVP / VJP (no J_t formed).

Run: `.venv/bin/python benchmarks/record.py [--quick] [--threads K] [--only-model]
[--only-grid] [--device cuda] [--markdown docs/record_benchmark.md]`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import itertools
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import gradlab


def make(cell: str, n: int, dtype=torch.float32) -> gradlab.RNN | gradlab.LSTM:
    torch.manual_seed(0)
    if cell == "rnn":
        return gradlab.RNN(n, n, "tanh", dtype=dtype)
    return getattr(gradlab, cell.upper())(n, n, dtype=dtype)


def loss_fn(output: torch.Tensor) -> torch.Tensor:
    """Many-to-one regression on the last step's output."""
    return output[-1].square().mean()


def fused(model, x) -> None:
    """torch's fused forward + backward of the same loss (the baseline)."""
    model.zero_grad(set_to_none=True)
    loss_fn(torch.nn.Module.__call__(model, x)[0]).backward()


def gradlab_full(model, x) -> None:
    """record + every contribution norm + all step-Jacobian Frobenius norms."""
    rec = gradlab.record(model, x, loss_fn)
    for name, _ in model.named_parameters():
        rec.contribution_norms(name)
    rec.step_jacobian_norms("fro")


def obvious(model, x) -> None:
    """The obvious way: a Python unroll with a copy of every parameter per step (autograd's
    gradient w.r.t. step k's copies is step k's contribution), each h_t's grad retained, and
    torch.autograd.functional.jacobian (its defaults) per step for the step Jacobians."""
    T, B, _ = x.shape
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    copies = [
        [getattr(model, n).detach().clone().requires_grad_(True) for n in names] for _ in range(T)
    ]
    h = x.new_zeros(B, model.hidden_size)
    states = []

    def step(h_prev, x_t, W_ih, W_hh, b_ih, b_hh):
        return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)

    for t in range(T):
        h = step(h, x[t], *copies[t])
        h.retain_grad()
        states.append(h)
    loss_fn(torch.stack(states)).backward()
    for params in copies:  # per-step contribution norms of every parameter
        [p.grad.norm() for p in params]
    for t in range(1, T):
        prev = states[t - 1].detach()
        jac = torch.autograd.functional.jacobian(
            lambda hp, t=t: step(hp, x[t], *copies[t]).sum(0), prev
        )  # (N, B, N): the batch rows are independent, so this holds every per-sample J_t
        jac.norm(dim=(0, 2))


def bench(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, repetitions interleaved."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


# ----- (a) the grid --------------------------------------------------------------------------
#: (T, N, B) of the grid's one-layer rows; 2 layers and bidirectional run at the second.
SHAPES = ((100, 128, 32), (1000, 128, 32), (5000, 128, 32), (1000, 512, 32), (1000, 128, 1),
          (1000, 128, 256))  # fmt: skip
GRID_CELLS = ("tanh", "relu", "lstm", "gru")
#: (T, N, B) of the dashboard recording (a tanh RNN, every probe the dashboard shows).
DASHBOARD_SHAPE = (100, 256, 32)
DASHBOARD_LABEL = "tanh T=100 N=256 B=32 dashboard recording"
RECORD_TARGET, FULL_TARGET, DASHBOARD_TARGET = 1.0, 1.25, 2.0


@dataclass(frozen=True)
class GridRow:
    """One row of the grid: a cell (tanh / relu RNN, LSTM, GRU) and its sizes."""

    cell: str
    T: int
    N: int
    B: int
    layers: int = 1
    bidirectional: bool = False

    @property
    def label(self) -> str:
        """e.g. "lstm T=1000 N=128 B=32 2 layers" (what the docs table's first column says)."""
        extra = " 2 layers" if self.layers == 2 else ""
        extra += " bidirectional" if self.bidirectional else ""
        return f"{self.cell} T={self.T} N={self.N} B={self.B}{extra}"


def grid_rows(quick: bool = False) -> list[GridRow]:
    """The grid's rows, cell by cell; `quick`: T <= 1000, N = 128, B <= 32, one layer only."""
    rows = []
    for cell in GRID_CELLS:
        shapes = [s for s in SHAPES if not quick or (s[0] <= 1000 and s[1] == 128 and s[2] <= 32)]
        rows += [GridRow(cell, *shape) for shape in shapes]
        if not quick:
            rows += [GridRow(cell, *SHAPES[1], layers=2)]
            rows += [GridRow(cell, *SHAPES[1], bidirectional=True)]
    return rows


def make_grid_model(row: GridRow, device: torch.device) -> torch.nn.Module:
    """The row's gradlab model (input size N, float32, seeded) on `device`."""
    torch.manual_seed(0)
    sizes = dict(num_layers=row.layers, bidirectional=row.bidirectional, device=device)
    if row.cell in ("tanh", "relu"):
        return gradlab.RNN(row.N, row.N, row.cell, **sizes)
    return getattr(gradlab, row.cell.upper())(row.N, row.N, **sizes)


def grid_record(model, x) -> None:
    """`gradlab.record` alone."""
    gradlab.record(model, x, loss_fn)


def grid_full(model, x) -> None:
    """record + contribution_norms of every parameter + step_jacobian_norms("fro") of every
    layer and direction (what the dashboard's cheap probes need)."""
    rec = gradlab.record(model, x, loss_fn)
    for name, _ in model.named_parameters():
        rec.contribution_norms(name)
    for view in rec.layers.values():
        view.step_jacobian_norms("fro")


def dashboard_recording(model, x) -> None:
    """What a run keeps of one recording (`gradlab.train.write_recording`, without the store's
    writes): record, the arrays (row 0's step-Jacobian singular values, the hidden sample) and
    every probe of `gradlab.probes.PROBES` (spectral step and long-range norms included)."""
    from gradlab.probes import PROBES, ProbeContext, run_probes
    from gradlab.tracking import HIDDEN_SAMPLES, JACOBIAN_SAMPLES
    from gradlab.train import _step_singular_values

    rec = gradlab.record(model, x, loss_fn)
    context = ProbeContext(jacobian_samples=tuple(range(min(JACOBIAN_SAMPLES, x.shape[1]))))
    _step_singular_values(rec).cpu().numpy()  # first, as write_recording: probes reuse row 0's
    rec.hidden[:, :HIDDEN_SAMPLES].cpu().numpy()
    run_probes(rec, context, [cls() for cls in PROBES.values()])


@dataclass
class Timing:
    """Median seconds of the fused baseline and, per measured function, the median and range
    (min, max) of its per-round ratio over fused."""

    fused_s: float
    ratios: dict[str, tuple[float, float, float]]  # name -> (median, min, max)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (CUDA); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_rounds(
    fns: dict[str, Callable[[], None]], rounds: int, device: torch.device, warm_up: bool = True
) -> Timing:
    """Interleaved rounds of `fns` ("fused" first, then the others): one warm-up call each
    (`warm_up`), then per round one call of each; ratios are per round, over that round's
    fused time."""
    for fn in fns.values() if warm_up else ():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    ratios = {}
    for name, ts in times.items():
        if name == "fused":
            continue
        per_round = [t / f for t, f in zip(ts, times["fused"], strict=True)]
        ratios[name] = (statistics.median(per_round), min(per_round), max(per_round))
    return Timing(statistics.median(times["fused"]), ratios)


def _memory_probe() -> Callable[[Callable[[], Callable[[], None]]], float] | None:
    """`peak_memory_mb(setup)` of benchmarks/record_memory.py (a fresh subprocess per case), or
    None where that module cannot be imported (this file loaded from elsewhere)."""
    try:
        from record_memory import peak_memory_mb  # type: ignore[import-not-found]
    except ImportError:
        return None
    return peak_memory_mb


def cuda_peak_memory_mb(fn: Callable[[], None], device: torch.device) -> float:
    """MB of device memory allocated at the peak of `fn` above what was allocated before it."""
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


#: Steps of the warm-up each memory case runs before its baseline (as record_memory.py does).
MEMORY_WARM_UP_STEPS = 8


def memory_case(what: str, row: GridRow | None, device: str = "cpu") -> Callable[[], None]:
    """Setup of one memory case (picklable with functools.partial): runs `what` once on a
    MEMORY_WARM_UP_STEPS-step copy of the case (one-time costs, e.g. compiling the scan's
    TorchScript loops, stay out of the peak), builds the model and inputs of `row` (None: the
    dashboard recording's) and returns the work `what` ("fused", "record", "full",
    "dashboard")."""
    where = torch.device(device)
    if row is None:
        _, N, B = DASHBOARD_SHAPE
        dashboard_fns(where, (MEMORY_WARM_UP_STEPS, N, B))[what]()
        return dashboard_fns(where)[what]
    grid_fns(replace(row, T=min(row.T, MEMORY_WARM_UP_STEPS)), where)[what]()
    return grid_fns(row, where)[what]


def peak_memory(
    names: tuple[str, ...],
    row: GridRow | None,
    fns: dict[str, Callable[[], None]],
    device: torch.device,
) -> dict[str, float | None]:
    """Peak memory (MB) of each function, one call each: on a GPU the device memory it
    allocates; on the CPU the resident memory it adds, each in a fresh subprocess at one thread
    (`peak_memory_mb` of benchmarks/record_memory.py; None where it cannot run)."""
    if device.type == "cuda":
        return {name: cuda_peak_memory_mb(fns[name], device) for name in names}
    probe = _memory_probe()
    return {
        name: None if probe is None else probe(functools.partial(memory_case, name, row))
        for name in names
    }


@dataclass
class GridResult:
    """One row measured: its timing per thread count and the peak memory of each function."""

    label: str
    timings: dict[int, Timing]  # thread count -> timing
    memory: dict[str, float | None]  # "fused", "record", "full" -> MB


def thread_counts(device: torch.device) -> list[int]:
    """1 and the default threads on CPU (the host threads do not matter on a GPU)."""
    default = torch.get_num_threads()
    return [default] if device.type == "cuda" or default == 1 else [1, default]


def measure(
    row: GridRow | None, rounds: int, device: torch.device, memory: bool = True
) -> GridResult:
    """A grid row (None: the dashboard recording): interleaved rounds at each thread count,
    then the peak memory of each function (`memory`; else None)."""
    fns = dashboard_fns(device) if row is None else grid_fns(row, device)
    timings = {}
    for i, count in enumerate(thread_counts(device)):
        with threads(count):  # one warm-up: the allocations are made by then
            timings[count] = timed_rounds(fns, rounds, device, warm_up=i == 0)
    label = DASHBOARD_LABEL if row is None else row.label
    if not memory:
        return GridResult(label, timings, dict.fromkeys(fns))
    return GridResult(label, timings, peak_memory(tuple(fns), row, fns, device))


def grid_fns(row: GridRow, device: torch.device) -> dict[str, Callable[[], None]]:
    """fused, record and full of the row's model on a fixed random batch."""
    model = make_grid_model(row, device)
    x = torch.randn(row.T, row.B, row.N, generator=torch.Generator().manual_seed(1)).to(device)
    return {
        "fused": lambda: fused(model, x),
        "record": lambda: grid_record(model, x),
        "full": lambda: grid_full(model, x),
    }


def dashboard_fns(
    device: torch.device, shape: tuple[int, int, int] = DASHBOARD_SHAPE
) -> dict[str, Callable[[], None]]:
    """fused and the dashboard recording of a tanh RNN of `shape` (T, N, B)."""
    model = make_grid_model(GridRow("tanh", *shape), device)
    T, N, B = shape
    x = torch.randn(T, B, N, generator=torch.Generator().manual_seed(1)).to(device)
    return {"fused": lambda: fused(model, x), "dashboard": lambda: dashboard_recording(model, x)}


def _ratio(cell: tuple[float, float, float]) -> str:
    median, low, high = cell
    return f"{median:.2f}x ({low:.2f}-{high:.2f})"


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _threads_name(count: int) -> str:
    return f"{count} thread" + ("s" if count > 1 else "")


def table_lines(results: list[GridResult], names: tuple[str, ...], markdown: bool) -> list[str]:
    """The results as text (aligned columns) or a markdown table: per thread count the fused
    time and each function's ratio (median, per-round min-max), then peak memory MB."""
    counts = list(results[0].timings)
    head = ["row"]
    for count in counts:
        head += [f"fused ms ({_threads_name(count)})"]
        head += [f"{name} ({_threads_name(count)})" for name in names]
    head += ["peak MB fused"] + [f"peak MB {name}" for name in names]
    rows = []
    for result in results:
        cells = [result.label]
        for count in counts:
            timing = result.timings[count]
            cells += [f"{timing.fused_s * 1e3:.1f}"] + [_ratio(timing.ratios[n]) for n in names]
        cells += [_mb(result.memory["fused"])] + [_mb(result.memory[n]) for n in names]
        rows.append(cells)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return lines + ["| " + " | ".join(cells) + " |" for cells in rows]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]


def targets_met(results: list[GridResult], targets: dict[str, float]) -> list[str]:
    """One line per thread count: how many rows meet each target (median ratio)."""
    lines = []
    for count in results[0].timings:
        parts = []
        for name, target in targets.items():
            met = sum(r.timings[count].ratios[name][0] <= target for r in results)
            parts.append(f"{name} <= {target}x: {met}/{len(results)} rows")
        lines.append(f"{_threads_name(count)}: " + ", ".join(parts))
    return lines


def machine_lines(device: torch.device, default_threads: int) -> list[str]:
    """CPU model, cores, torch version, threads (the machine's default and the ones measured),
    device, date and load average."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    lines = [
        f"- CPU: {model}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"{default_threads} threads by default; measured at "
        + ", ".join(_threads_name(count) for count in thread_counts(device))
        + "; float32",
        f"- device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
    ]
    with contextlib.suppress(OSError):
        lines.append("- load average (1, 5, 15 min) at the start: " + ", ".join(
            f"{v:.2f}" for v in os.getloadavg()))  # fmt: skip
    return lines


def run_grid(
    rows: list[GridRow],
    rounds: int,
    device: torch.device,
    done: Callable[[list[GridResult], GridResult], None] = lambda results, dashboard: None,
) -> tuple[list[GridResult], GridResult]:
    """The dashboard recording, then every grid row, printed as they come; `done(results so
    far, dashboard)` after each row (the markdown is rewritten, so a long run keeps its part)."""
    dashboard = measure(None, rounds, device)
    print("    " + table_lines([dashboard], ("dashboard",), markdown=False)[1], flush=True)
    results: list[GridResult] = []
    for row in rows:
        result = measure(row, rounds, device)
        print("    " + table_lines([result], ("record", "full"), markdown=False)[1], flush=True)
        results.append(result)
        done(results, dashboard)
    return results, dashboard


def print_grid(results: list[GridResult], dashboard: GridResult) -> None:
    for line in table_lines(results, ("record", "full"), markdown=False):
        print("    " + line)
    for line in targets_met(results, {"record": RECORD_TARGET, "full": FULL_TARGET}):
        print("    targets, " + line)
    print("\n    the dashboard recording (every probe, spectral norms, the run's arrays):")
    for line in table_lines([dashboard], ("dashboard",), markdown=False):
        print("    " + line)
    for line in targets_met([dashboard], {"dashboard": DASHBOARD_TARGET}):
        print("    target, " + line)


def write_markdown(
    path: Path,
    results: list[GridResult],
    dashboard: GridResult,
    rounds: int,
    device: torch.device,
    machine: list[str],
    notes: list[str],
    expected: int | None = None,
) -> None:
    """The tables with the machine they ran on, as docs/record_benchmark.md keeps them
    (`expected`: the grid's row count, when `results` may be only the first of them)."""
    where = "GPU (cuDNN is the fused baseline)" if device.type == "cuda" else "CPU"
    lines = [
        f"# `gradlab.record` against torch's fused forward+backward, {where}",
        "",
        "Written by `benchmarks/record.py --markdown` (do not edit by hand; rerun it to keep "
        "this current). Ratios over torch's fused forward+backward of the same module and loss, "
        f"median of {rounds} interleaved rounds, in brackets the per-round range (min-max). "
        '"record" is `gradlab.record`; "full" is record + `contribution_norms` of every '
        'parameter + `step_jacobian_norms("fro")` of every layer and direction. Peak memory: '
        + (
            "MB of device memory allocated at the call's peak above what was allocated before. "
            if device.type == "cuda"
            else "MB of resident memory the call adds at its peak, one call in a fresh "
            "subprocess at 1 thread (`peak_memory_mb` of benchmarks/record_memory.py). "
        )
        + f"Targets: record <= {RECORD_TARGET}x, full <= {FULL_TARGET}x, dashboard recording <= "
        f"{DASHBOARD_TARGET}x.",
        "",
        *machine,
    ]
    lines += [f"- {line}" for line in notes]
    with contextlib.suppress(OSError):
        lines.append("- load average (1, 5, 15 min) at this write: " + ", ".join(
            f"{v:.2f}" for v in os.getloadavg()))  # fmt: skip
    if expected is not None and len(results) < expected:
        lines.append(f"- {PARTIAL} {len(results)} of {expected} grid rows measured so far")
    lines += ["", "## Grid", "", *table_lines(results, ("record", "full"), markdown=True), ""]
    lines += [
        f"- {line}" for line in targets_met(results, {"record": RECORD_TARGET, "full": FULL_TARGET})
    ]
    lines += [
        "",
        "## Dashboard recording",
        "",
        "A (T=100, N=256, B=32) tanh RNN: record, every probe of `gradlab.probes.PROBES` "
        "(spectral step and long-range Jacobian norms included) and the arrays a run keeps "
        "(row 0's step-Jacobian singular values, the hidden sample), as "
        "`gradlab.train.write_recording` makes them, without the store's writes.",
        "",
        *table_lines([dashboard], ("dashboard",), markdown=True),
        "",
        *(f"- {line}" for line in targets_met([dashboard], {"dashboard": DASHBOARD_TARGET})),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


#: A ratio cell of the tables: median, then the per-round range.
#: The header line of a markdown written before the grid's last row was measured.
PARTIAL = "partial run:"
RATIO_CELL = re.compile(r"^(\d+\.\d+)x \((\d+\.\d+)-(\d+\.\d+)\)$")


def read_markdown_table(text: str, heading: str) -> dict[str, dict[str, str]]:
    """The markdown table under `## heading` of a file `write_markdown` wrote: row label ->
    column header -> cell text."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(head, cells, strict=True))
    return table


class CharModel(nn.Module):
    """A user's model: tokens (T, B) → logits (T, B, vocab) through an nn.LSTM."""

    def __init__(self, vocab: int = 100, embedding: int = 64, hidden: int = 128) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, embedding)
        self.lstm = nn.LSTM(embedding, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.emb(tokens))[0])


def char_batch(T: int, B: int) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Tokens (T, B) and a next-token cross-entropy loss_fn on fixed random targets."""
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 100, (T, B), generator=gen)
    targets = torch.randint(0, 100, (T, B), generator=gen)

    def loss_fn(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    return tokens, loss_fn


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to `count` inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def model_rows(repeats: int, T: int = 100, B: int = 32) -> dict[str, float]:
    """(d): median seconds at the current torch threads, repetitions interleaved: the model's
    forward + backward, `gradlab.record` of its LSTM, `run.record` (background: what the loop
    waits for) and, right after it, `run.flush()`'s wait for that recording's analysis and
    writes on the run's worker while the caller idles (the analysis alone)."""
    model = CharModel()
    tokens, loss_fn = char_batch(T, B)
    times: dict[str, list[float]] = {"plain": [], "record": [], "run.record": [], "analysis": []}
    steps = itertools.count()

    def timed(name: str, fn: Callable[[], object]) -> None:
        start = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - start)

    def plain() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model(tokens)).backward()

    with tempfile.TemporaryDirectory() as tmp, gradlab.init(tmp, name="bench") as run:
        for repeat in range(repeats + 1):  # the first is a warm-up
            timed("plain", plain)
            timed("record", lambda: gradlab.record(model, tokens, loss_fn, module="lstm"))
            timed("run.record", lambda: run.record(model, tokens, loss_fn, step=next(steps),
                                                   module="lstm"))  # fmt: skip
            timed("analysis", run.flush)
            if repeat == 0:
                times = {name: [] for name in times}
    return {name: statistics.median(ts) for name, ts in times.items()}


def loop_seconds(mode: str, steps: int = 40, every: int = 10, T: int = 100, B: int = 32) -> float:
    """Wall seconds of a training loop of the model: `steps` Adam steps on fresh batches.
    mode "plain": no gradlab; "background" / "synchronous": in a run (`gradlab.init`, that
    `background`), `run.log` of the loss every step, `run.record` of a fixed probe batch every
    `every`-th step, and `run.finish()` (it waits for every analysis, so all are counted)."""
    model = CharModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    probe, probe_loss = char_batch(T, B)
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 100, (T + 1, B), generator=gen) for _ in range(steps)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run = None if mode == "plain" else gradlab.init(tmp, background=mode == "background")
        for step, batch in enumerate(batches):
            if run is not None and step % every == 0:
                run.record(model, probe, probe_loss, step=step, module="lstm")
            logits = model(batch[:-1])
            loss = F.cross_entropy(logits.reshape(-1, 100), batch[1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if run is not None:
                run.log({"loss": loss}, step=step)
        if run is not None:
            run.finish()
        return time.perf_counter() - start


def loop_rows(repeats: int) -> dict[str, float]:
    """Median seconds of `loop_seconds` per mode, repetitions interleaved."""
    modes = ("plain", "background", "synchronous")
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            times[mode].append(loop_seconds(mode))
    return {mode: statistics.median(ts) for mode, ts in times.items()}


def run_record_parts(T: int = 100, B: int = 32) -> dict[str, float]:
    """Seconds of each part of one `run.record`, in its order, at the current torch threads,
    on the caller's thread: `gradlab.record` (the blocking part), then what the worker runs:
    the arrays (row 0's step-Jacobian singular values, which the step_jacobian probe then
    reuses), every probe and the store's writes."""
    from gradlab.arrays import HIDDEN_SAMPLE, STEP_JACOBIAN_SV
    from gradlab.probes import PROBES, ProbeContext
    from gradlab.tracking import HIDDEN_SAMPLES, JACOBIAN_SAMPLES
    from gradlab.train import _step_singular_values

    tokens, loss_fn = char_batch(T, B)
    parts = {}
    start = time.perf_counter()
    rec = gradlab.record(CharModel(), tokens, loss_fn, module="lstm")
    parts["gradlab.record"] = time.perf_counter() - start
    context = ProbeContext(jacobian_samples=tuple(range(min(JACOBIAN_SAMPLES, B))))
    results = []
    with torch.no_grad():
        start = time.perf_counter()  # first, as write_recording: the probes reuse row 0's
        sv = _step_singular_values(rec).numpy()
        hidden = rec.hidden[:, :HIDDEN_SAMPLES].numpy()
        parts["arrays"] = time.perf_counter() - start
        for name, cls in PROBES.items():
            start = time.perf_counter()
            results.append((name, cls().rows(rec, context)))
            parts[f"probe {name}"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp, gradlab.init(tmp, name="parts") as run:
        writer = run._writer
        start = time.perf_counter()
        for name, rows in results:
            writer.log_metrics({**rows, "step": 0, "probe": name})
        writer.save_array(HIDDEN_SAMPLE, 0, hidden)
        writer.save_array(STEP_JACOBIAN_SV, 0, sv)
        writer.flush()
        parts["store writes"] = time.perf_counter() - start
    return parts


def print_model_rows(repeats: int, loop_repeats: int) -> None:
    """(d) at one thread and at the machine's default threads, side by side."""
    default = torch.get_num_threads()
    print("(d) a torch model: nn.Embedding + nn.LSTM(N=128) + nn.Linear, T=100 B=32")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"    {os.cpu_count()} cores, load average {load} (a busy machine leaves no core free)")
    counts = [1] if default == 1 else [1, default]
    results = {}
    for count in counts:
        with threads(count):
            results[count] = (model_rows(repeats), run_record_parts(), loop_rows(loop_repeats))
    head = "".join(f"{f'{count} thread' + ('s' if count > 1 else ''):>24}" for count in counts)
    print(f"    {'':<40}{head}")
    print(f"    {'plain forward + backward':<40}" + "".join(
        f"{results[c][0]['plain'] * 1e3:>15.1f} ms      " for c in counts))  # fmt: skip
    named = (
        ("record", "gradlab.record(module=)"),
        ("run.record", "run.record: the loop waits (background)"),
        ("analysis", "  its analysis on the worker (idle)"),
    )
    for name, what in named:
        cells = []
        for count in counts:
            medians = results[count][0]
            ratio = medians[name] / medians["plain"]
            cells.append(f"{medians[name] * 1e3:>11.1f} ms {ratio:6.2f}x ")
        print(f"    {what:<40}" + "".join(cells))
    met = {c: results[c][0]["run.record"] <= 1.5 * results[c][0]["plain"] for c in counts}
    print("    target run.record (what the loop waits for) <= 1.5x plain: " + ", ".join(
        f"{c} thread(s) {'yes' if met[c] else 'NO'}" for c in counts))  # fmt: skip
    for count in counts:
        medians = results[count][0]
        steps = medians["analysis"] / medians["plain"]
        print(f"    at {count} thread(s) one recording's analysis is {steps:.0f} forward + "
              f"backward passes: recording every 10th step adds {steps / 10:.1f}x the loop's "
              "own work, which the worker hides only on a free core")  # fmt: skip
    print("    a training loop, 40 Adam steps recording every 10th (4 recordings), wall time")
    print("    to run.finish (every analysis included), x the same loop without gradlab:")
    for mode, what in (("plain", "without gradlab"), ("background", "gradlab.init (background)"),
                       ("synchronous", "gradlab.init(background=False)")):  # fmt: skip
        cells = []
        for count in counts:
            loops = results[count][2]
            cells.append(f"{loops[mode]:>12.2f} s {loops[mode] / loops['plain']:6.2f}x ")
        print(f"      {what:<38}" + "".join(cells))
    print("    the analysis's parts (one call each, on the caller's thread), ms and x plain:")
    for part in results[counts[0]][1]:
        cells = []
        for count in counts:
            medians, parts = results[count][0], results[count][1]
            cells.append(f"{parts[part] * 1e3:>11.1f} ms {parts[part] / medians['plain']:6.2f}x ")
        print(f"      {part:<38}" + "".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sizes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--only-model", action="store_true", help="only (d), the torch model")
    parser.add_argument("--only-grid", action="store_true", help="only (a), the grid")
    parser.add_argument("--device", default="cpu", help="where the models live (cpu, cuda)")
    parser.add_argument("--rounds", type=int, default=None, help="grid rounds (default 5)")
    parser.add_argument("--rows", default="", help="only grid rows whose label has this text")
    parser.add_argument("--markdown", type=Path, default=None, help="write (a) there as markdown")
    parser.add_argument(
        "--note", action="append", default=[], help="a line for the markdown's header (repeat)"
    )
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeats = 3 if args.quick else 7
    where = "CPU" if device.type == "cpu" else str(device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, {where}\n")
    if args.only_model:
        print_model_rows(repeats * 3, max(1, repeats // 2))
        return

    rounds = args.rounds or (3 if args.quick else 5)
    machine = machine_lines(device, default_threads)
    print(f"(a) record and full over fused fwd+bwd, median of {rounds} rounds (min-max)")
    rows = [row for row in grid_rows(args.quick) if args.rows in row.label + " "]

    def write(results: list[GridResult], dashboard: GridResult) -> None:
        if args.markdown is not None:
            write_markdown(
                args.markdown, results, dashboard, rounds, device, machine, args.note, len(rows)
            )

    results, dashboard = run_grid(rows, rounds, device, write)
    print()
    print_grid(results, dashboard)
    if args.markdown is not None:
        print(f"\n    written to {args.markdown}")
    if args.only_grid or device.type != "cpu":  # (b) and (d) measure on the CPU
        return

    print("\n(b) the obvious way (autograd.functional.jacobian per step, per-step clones)")
    T_b = 100 if args.quick else 200
    model = make("rnn", 128)
    x = torch.randn(T_b, 32, 128)
    medians = bench(
        {"gradlab": lambda: gradlab_full(model, x), "obvious": lambda: obvious(model, x)},
        max(1, repeats // 3),
    )
    print(
        f"    tanh RNN T={T_b} N=128 B=32: gradlab {medians['gradlab'] * 1e3:.1f} ms, "
        f"obvious {medians['obvious'] * 1e3:.0f} ms -> "
        f"{medians['obvious'] / medians['gradlab']:.0f}x faster (target >= 50)"
    )

    print()
    print_model_rows(repeats * 3, max(1, repeats // 2))


if __name__ == "__main__":
    main()
