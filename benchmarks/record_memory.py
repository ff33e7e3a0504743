"""How much memory does `gradlab.record` take beside torch's fused forward + backward?

Prints, for tanh, relu, LSTM and GRU at (T, N, B) = (1000, 128, 32), float32, one thread:
the peak memory of torch's fused forward + backward of a many-to-one loss, of `gradlab.record`
alone, and of "full" (record + `contribution_norms` of every parameter + `step_jacobian_norms
("fro")`, what the dashboard needs), in MB and as a ratio to fused (target record <= 1.5x);
then the streaming mode (`gradlab.record_streaming`) at T = 100,000, N = 128, B = 8 (target
peak < 2 GB) with its time.

How it is measured (`peak_memory_mb`): each case runs in a fresh subprocess (multiprocessing
"spawn"), so one case's peak, allocator caches or freed-but-kept pages never reach another.
In the child the case's setup runs first (imports, model, inputs); then the kernel's peak-RSS
mark is reset (writing "5" to /proc/self/clear_refs sets VmHWM to the current RSS) and the
current RSS taken as the baseline; the work runs; the result is VmHWM minus the baseline: the
resident memory the work itself added at its peak, whatever allocated it (torch's CPU
allocator, BLAS / OpenMP workspaces, Python objects). Resident memory is what a user runs out
of, and it needs no instrumentation of the work: torch.profiler's `profile_memory` counts only
torch's allocator and records every operator (a T = 100,000 scan would hold millions of events,
which is itself memory), and `tracemalloc` does not see torch's allocations. Where clear_refs
cannot be written (not Linux), the rise of `ru_maxrss` over the baseline is used instead (then a
setup peak above the baseline may hide part of the work's).

Run: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/record_memory.py [--quick]`.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import resource
import time
from collections.abc import Callable

import torch

import gradlab

Work = Callable[[], object]


def _status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _measure_here(setup: Callable[[], Work]) -> tuple[float, float]:
    """(peak MB over the baseline, seconds) of `setup()`'s work, in this process."""
    torch.set_num_threads(1)
    work = setup()
    if _reset_peak():
        base = _status_kb("VmRSS")
        start = time.perf_counter()
        work()
        seconds = time.perf_counter() - start
        peak = _status_kb("VmHWM")
    else:  # ru_maxrss is in kB on Linux
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        work()
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(0, peak - base) / 1024, seconds


def _child(setup: Callable[[], Work], queue: multiprocessing.Queue) -> None:
    queue.put(_measure_here(setup))


def peak_memory_and_time(setup: Callable[[], Work]) -> tuple[float, float]:
    """(peak MB, seconds) of the work `setup()` returns, measured in a fresh subprocess (see the
    module docstring). `setup` must be picklable (a module-level function, or a
    functools.partial of one): it builds the model and inputs and returns the zero-argument
    work to measure, so that what it builds is in the baseline, not in the peak."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child, args=(setup, queue))
    child.start()
    try:
        result = queue.get()
    finally:
        child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"the measuring subprocess exited with {child.exitcode}")
    return result


def peak_memory_mb(setup: Callable[[], Work]) -> float:
    """Peak resident memory (MB) the work `setup()` returns adds over its baseline, in a fresh
    subprocess (`peak_memory_and_time`; `setup` picklable, it builds what the work needs)."""
    return peak_memory_and_time(setup)[0]


# ----- the cases ---------------------------------------------------------------------------
def make(cell: str, n: int, input_size: int | None = None) -> torch.nn.Module:
    """A float32 gradlab model of `cell` ("tanh", "relu", "lstm", "gru"), seeded."""
    torch.manual_seed(0)
    size = n if input_size is None else input_size
    if cell in ("tanh", "relu"):
        return gradlab.RNN(size, n, cell)
    return getattr(gradlab, cell.upper())(size, n)


def loss_fn(output: torch.Tensor) -> torch.Tensor:
    """Many-to-one regression on the last step's output."""
    return output[-1].square().mean()


def _inputs(T: int, B: int, size: int) -> torch.Tensor:
    return torch.randn(T, B, size, generator=torch.Generator().manual_seed(1))


def fused_case(cell: str, T: int, N: int, B: int) -> Work:
    """torch's fused forward + backward of the same module and loss."""
    model, x = make(cell, N), _inputs(T, B, N)

    def work() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(torch.nn.Module.__call__(model, x)[0]).backward()

    return work


def record_case(cell: str, T: int, N: int, B: int, full: bool = False) -> Work:
    """`gradlab.record`, and with `full` every contribution norm and the step-Jacobian
    Frobenius norms (all held at once, as the dashboard's probes hold them)."""
    model, x = make(cell, N), _inputs(T, B, N)

    def work() -> object:
        rec = gradlab.record(model, x, loss_fn)
        if not full:
            return rec
        norms = [rec.contribution_norms(name) for name, _ in model.named_parameters()]
        return rec, norms, rec.step_jacobian_norms("fro")

    return work


def streaming_case(cell: str, T: int, N: int, B: int) -> Work:
    """`gradlab.record_streaming` with its default chunk (≈ √T steps)."""
    model, x = make(cell, N), _inputs(T, B, N)
    return functools.partial(gradlab.record_streaming, model, x, loss_fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter streaming case")
    parser.add_argument("--skip-streaming", action="store_true", help="only the table")
    args = parser.parse_args()
    T, N, B = 1000, 128, 32
    print(f"torch {torch.__version__}, 1 thread, float32, CPU; peak RSS over the baseline\n")
    print(f"(a) T={T} N={N} B={B}: peak MB (ratio to fused; target record <= 1.5x)")
    print(f"    {'cell':<6}{'fused':>10}{'record':>18}{'full':>18}")
    for cell in ("tanh", "relu", "lstm", "gru"):
        fused = peak_memory_mb(functools.partial(fused_case, cell, T, N, B))
        rec = peak_memory_mb(functools.partial(record_case, cell, T, N, B))
        full = peak_memory_mb(functools.partial(record_case, cell, T, N, B, True))
        print(
            f"    {cell:<6}{fused:>8.1f}  {rec:>8.1f} ({rec / fused:4.2f}x)"
            f"  {full:>8.1f} ({full / fused:4.2f}x)"
        )
    if args.skip_streaming:
        return
    T_long, B_long = (10_000 if args.quick else 100_000), 8
    print(f"\n(b) record_streaming, T={T_long:,} N={N} B={B_long} (target < 2048 MB)")
    for cell in ("tanh", "lstm", "gru"):
        peak, seconds = peak_memory_and_time(
            functools.partial(streaming_case, cell, T_long, N, B_long)
        )
        print(f"    {cell:<6}{peak:>8.1f} MB  {seconds:7.1f} s")


if __name__ == "__main__":
    main()
