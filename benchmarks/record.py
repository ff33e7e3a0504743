"""How fast is `gradlab.record` against torch's fused kernels and against the obvious way?

Prints, measured side by side in this process (interleaved repetitions, medians):
(a) record + contribution_norms of every parameter + step_jacobian_norms("fro") over the fused
    torch forward+backward of the same batch and loss (T=1000, N=128, B=32, float32) for a tanh
    RNN and an LSTM — target <= 1.25x;
(b) the same per-step quantities the obvious way (torch.autograd.functional.jacobian per step,
    per-step gradient clones through autograd) over gradlab — target >= 50x;
(c) how (a) grows with T (100..2000) and N (32..512);
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

Run: `.venv/bin/python benchmarks/record.py [--quick] [--threads K] [--only-model]`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator

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


def ratio_row(cell: str, T: int, N: int, B: int, repeats: int) -> tuple[float, float, float]:
    model = make(cell, N)
    x = torch.randn(T, B, N)
    medians = bench(
        {"fused": lambda: fused(model, x), "gradlab": lambda: gradlab_full(model, x)}, repeats
    )
    return medians["fused"], medians["gradlab"], medians["gradlab"] / medians["fused"]


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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU\n")
    if args.only_model:
        print_model_rows(repeats * 3, max(1, repeats // 2))
        return

    print("(a) record + all contribution norms + step-Jacobian norms vs fused fwd+bwd")
    print("    T=1000 N=128 B=32                 fused      gradlab    ratio (target <= 1.25)")
    for cell in ("rnn", "lstm", "gru"):
        f, g, r = ratio_row(cell, 1000, 128, 32, repeats)
        print(f"    {cell:<30} {f * 1e3:8.1f} ms {g * 1e3:8.1f} ms {r:6.2f}x")

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

    print("\n(c) ratio (a) as T and N grow (B=32)")
    Ts = (100, 500, 1000, 2000) if not args.quick else (100, 1000)
    Ns = (32, 128, 256, 512) if not args.quick else (32, 256)
    for cell in ("rnn", "lstm"):
        row = [f"T={T}: {ratio_row(cell, T, 128, 32, max(3, repeats // 2))[2]:.2f}x" for T in Ts]
        print(f"    {cell:<5} N=128   " + "  ".join(row))
        row = [f"N={N}: {ratio_row(cell, 1000, N, 32, max(3, repeats // 2))[2]:.2f}x" for N in Ns]
        print(f"    {cell:<5} T=1000  " + "  ".join(row))

    print()
    print_model_rows(repeats * 3, max(1, repeats // 2))


if __name__ == "__main__":
    main()
