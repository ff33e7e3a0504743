"""What two of issue 18's targets cost at the least, measured beside torch's fused kernels.

Each part below is timed in the same interleaved rounds as torch's fused forward+backward of
the same model (median of the per-round ratios, min-max beside it), at the machine's default
threads. A "floor" adds parts that an implementation of the target cannot skip; it leaves
out everything else the real code does, so the real cost is above it.

(1) The dashboard recording: a (T=100, N=256, B=32) tanh RNN (benchmarks/record.py's), target
    <= 2x fused. Parts: the fused kernel's forward alone (no autograd: the trajectory every
    probe reads); row 0's step spectrum (the singular values of its T step Jacobians, the
    array the singular-value figure draws), two ways: LAPACK's svdvals of the formed J_t in
    float32, and the tanh RNN's own structure, J_t = D_t W, so σ(J_t)² = eig(D_t W Wᵀ D_t)
    with W Wᵀ formed once and each D_t G D_t elementwise, eigvalsh in float64 (as accurate as
    float32 svdvals for every σ above ~1e-9 σ_max), each with its batch split over one
    worker per thread, each on one thread; the long-range products J_T ... J_{k+1},
    k = 0..T-1, of the `jacobian` probe's rows (their T - 1 batched GEMMs alone, on formed
    Jacobians). Floor: forward + the faster spectrum + long-range products. Beside them, not
    in the floor: `gradlab.record` as implemented, the products' spectral norms
    (`gradlab.record.spectral_norms`) and the fixed-point probe (a Levenberg-Marquardt
    search, its cost set by convergence).
(2) LSTM T=1000 N=128 B=1 (the grid's row), target record <= 1x fused. Parts: the fused
    kernel's forward alone (no autograd: the trajectory a recording describes); the adjoint
    scan alone (`gradlab.cells.traces._lstm_scan_steps`, TorchScript, on preallocated
    buffers and coefficients, no trace, no contributions): per step one (1 x 4N)(4N x N)
    product and four elementwise ops (∂L/∂c_t, the cell-path and output-gate blocks of δ_t,
    ∂L/∂c carried back), each a torch op with its dispatch. Floor: forward + scan, for any
    record whose adjoint is a loop of torch ops; torch's own backward runs each step inside
    one compiled kernel.

Run: `.venv/bin/python benchmarks/record_floors.py [--rounds 11] [--markdown
docs/record_floors.md]`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record as bench  # benchmarks/record.py: the fused baseline and its rounds

import gradlab
from gradlab.cells.traces import _lstm_scan_steps, _scripted
from gradlab.probes import ProbeContext, run_probes
from gradlab.probes.fixed_points import FixedPointProbe
from gradlab.record import one_thread, spectral_norms
from gradlab.tracking import JACOBIAN_SAMPLES

#: (T, N, B) of the LSTM row whose floor (2) measures.
LSTM_SHAPE = (1000, 128, 1)


@dataclass(frozen=True)
class Floor:
    """One target's parts, measured: per part the (median, min, max) ratio over fused, and
    the parts the floor adds (of two ways to one result, the faster)."""

    label: str
    target: float
    fused_ms: float
    parts: dict[str, tuple[float, float, float]]
    floor_parts: tuple[str, ...]

    @property
    def floor(self) -> float:
        """The sum of the median ratios of the parts the target cannot skip."""
        return sum(self.parts[name][0] for name in self.floor_parts)


def split_over_threads(
    decompose: Callable[[torch.Tensor], torch.Tensor], matrices: torch.Tensor, workers: int
) -> torch.Tensor:
    """`decompose` of a batch (M, ...) split over `workers` threads, each LAPACK call on one
    thread (bitwise the same as one call on one thread)."""
    with one_thread(), ThreadPoolExecutor(workers) as pool:
        return torch.cat(list(pool.map(decompose, matrices.chunk(workers))))


def structured_tanh_spectrum(weight_hh: torch.Tensor, hidden: torch.Tensor, workers: int):
    """Singular values (ascending) of a tanh RNN's step Jacobians J_t = D_t W, D_t = diag(1 -
    h_t²), from `hidden` h_1..h_T (T, N): √ of the eigenvalues of D_t (W Wᵀ) D_t, in float64
    (W Wᵀ formed once; each D_t G D_t is elementwise), (T, N). float64 keeps the small σ that
    squaring would cost float32."""
    slope = 1 - hidden.double().square()  # (T, N)
    weight = weight_hh.double()
    gram = (weight @ weight.T) * (slope.unsqueeze(2) * slope.unsqueeze(1))  # (T, N, N)
    return split_over_threads(torch.linalg.eigvalsh, gram, workers).clamp_min(0).sqrt()


def long_range_products(jacobians: torch.Tensor, products: torch.Tensor) -> None:
    """∂s_T/∂s_k = J_T ⋯ J_{k+1} into products[k], k = 0..T-1, from jacobians[t-1] = J_t,
    (T, B', S, S) each: T - 1 batched GEMMs."""
    T = jacobians.shape[0]
    products[T - 1].copy_(jacobians[T - 1])
    for k in range(T - 2, -1, -1):  # ∂s_T/∂s_k = ∂s_T/∂s_{k+1} J_{k+1}
        torch.matmul(products[k + 1], jacobians[k], out=products[k])


def kernel_forward(model: torch.nn.Module, x: torch.Tensor) -> None:
    """The model's forward alone, through torch's fused kernel, without autograd."""
    with torch.no_grad():
        model(x)


#: The two ways (1) measures to row 0's step spectrum; its floor adds the faster.
SPECTRUM_WAYS = (
    "step spectrum (row 0), svdvals float32",
    "step spectrum (row 0), eigvalsh of D_t W Wᵀ D_t float64",
)


def dashboard_parts(
    shape: tuple[int, int, int] = bench.DASHBOARD_SHAPE,
) -> dict[str, Callable[[], object]]:
    """fused and the parts of (1) for a tanh RNN of `shape` (T, N, B)."""
    T, N, B = shape
    model = bench.make_grid_model(bench.GridRow("tanh", *shape), torch.device("cpu"))
    x = torch.randn(T, B, N, generator=torch.Generator().manual_seed(1))
    rec = gradlab.record(model, x, bench.loss_fn)
    samples = list(range(min(JACOBIAN_SAMPLES, B)))
    jacobians = rec.step_jacobians(samples=samples)  # (T, samples, S, S); row 0 first
    row0 = jacobians[:, 0].contiguous()  # (T, S, S)
    hidden0 = rec.hidden[1:, 0]  # h_1..h_T of row 0
    weight_hh = model.weight_hh_l0.detach()
    products = torch.empty_like(jacobians)  # ∂s_T/∂s_k at [k]
    workers = torch.get_num_threads()
    context = ProbeContext(jacobian_samples=tuple(samples))
    long_range_products(jacobians, products)

    return {
        "fused": lambda: bench.fused(model, x),
        "forward (kernel, no autograd)": lambda: kernel_forward(model, x),
        "record (as implemented)": lambda: gradlab.record(model, x, bench.loss_fn),
        SPECTRUM_WAYS[0]: lambda: split_over_threads(torch.linalg.svdvals, row0, workers),
        SPECTRUM_WAYS[1]: lambda: structured_tanh_spectrum(weight_hh, hidden0, workers),
        "long-range products": lambda: long_range_products(jacobians, products),
        "long-range spectral norms": lambda: spectral_norms(products),
        "fixed points (probe)": lambda: run_probes(rec, context, [FixedPointProbe()]),
    }


def lstm_parts(shape: tuple[int, int, int] = LSTM_SHAPE) -> dict[str, Callable[[], object]]:
    """fused and the parts of (2) for an LSTM of `shape` (T, N, B)."""
    T, N, B = shape
    model = bench.make_grid_model(bench.GridRow("lstm", *shape), torch.device("cpu"))
    x = torch.randn(T, B, N, generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)

    def uniform(*size: int) -> torch.Tensor:
        return torch.rand(*size, generator=generator)

    buffers = {
        "grad_h": torch.zeros(T + 1, B, N),
        "grad_c": torch.zeros(T + 1, B, N),
        "delta": torch.empty(T, B, 4, N),
        "direct": uniform(T, B, N),
        "direct_cell": None,
        "dc": uniform(T, B, 3, N),
        "dh_c": uniform(T, B, N),
        "dh_o": uniform(T, B, N),
        "forget": uniform(T, B, N),
        "weight_hh": model.weight_hh_l0.detach(),
        "projection": None,
        "gc_next": torch.zeros(B, N),
        "direct_before": None,
    }
    scan = _scripted(_lstm_scan_steps)

    return {
        "fused": lambda: bench.fused(model, x),
        "forward (kernel, no autograd)": lambda: kernel_forward(model, x),
        "adjoint scan": lambda: scan(**buffers),
    }


def measure(
    label: str,
    target: float,
    fns: dict[str, Callable[[], object]],
    floor_parts: tuple[str | tuple[str, ...], ...],
    rounds: int,
) -> Floor:
    """Interleaved rounds of `fns` ("fused" first), as benchmarks/record.py times its grid;
    `floor_parts`: the names the floor adds, a tuple of names for ways to one result (the one
    with the smaller median counts)."""
    timing = bench.timed_rounds(fns, rounds, torch.device("cpu"))
    ratios = timing.ratios
    chosen = tuple(
        part if isinstance(part, str) else min(part, key=lambda name: ratios[name][0])
        for part in floor_parts
    )
    return Floor(label, target, timing.fused_s * 1e3, ratios, chosen)


def measure_all(
    rounds: int,
    dashboard_shape: tuple[int, int, int] = bench.DASHBOARD_SHAPE,
    lstm_shape: tuple[int, int, int] = LSTM_SHAPE,
) -> list[Floor]:
    """(1) and (2) at the given shapes."""
    T, N, B = dashboard_shape
    dashboard = measure(
        f"dashboard recording, tanh T={T} N={N} B={B}",
        bench.DASHBOARD_TARGET,
        dashboard_parts(dashboard_shape),
        ("forward (kernel, no autograd)", SPECTRUM_WAYS, "long-range products"),
        rounds,
    )
    T, N, B = lstm_shape
    lstm = measure(
        f"record, lstm T={T} N={N} B={B}, its adjoint a loop of torch ops",
        bench.RECORD_TARGET,
        lstm_parts(lstm_shape),
        ("forward (kernel, no autograd)", "adjoint scan"),
        rounds,
    )
    return [dashboard, lstm]


def lines(floors: list[Floor], markdown: bool) -> list[str]:
    """Per floor: its parts (median ratio, min-max), the floor and the target."""
    out = []
    for floor in floors:
        if markdown:
            out += [f"## {floor.label}", "", "| part | x fused (median, min-max) | in the floor |"]
            out += ["|---|---|---|"]
        else:
            out.append(floor.label)
        for name, (median, low, high) in floor.parts.items():
            counted = "yes" if name in floor.floor_parts else "no"
            if markdown:
                out.append(f"| {name} | {median:.2f}x ({low:.2f}-{high:.2f}) | {counted} |")
            else:
                out.append(f"    {name:<32} {median:7.2f}x ({low:.2f}-{high:.2f})  {counted}")
        verdict = "above" if floor.floor > floor.target else "within"
        summary = (
            f"fused {floor.fused_ms:.1f} ms; floor {floor.floor:.2f}x, {verdict} the target "
            f"{floor.target}x"
        )
        out += ["", f"- {summary}", ""] if markdown else [f"    {summary}", ""]
    return out


def write_markdown(path: Path, floors: list[Floor], rounds: int) -> None:
    """The floors with the machine they ran on, as docs/record_floors.md keeps them."""
    threads = torch.get_num_threads()
    machine = bench.machine_lines(torch.device("cpu"), threads)
    # measured at the default threads only (the targets'), not at each of the grid's counts
    machine[0] = re.sub(r"measured at [^;]*", f"measured at {threads} threads", machine[0])
    text = [
        "# Floors of two issue-18 targets",
        "",
        "Written by `benchmarks/record_floors.py --markdown` (do not edit by hand; rerun it). "
        f"Median of {rounds} interleaved rounds with torch's fused forward+backward, at the "
        "default threads; what each part is and why the floor cannot be skipped: the script's "
        "docstring.",
        "",
        *machine,
        "",
        *lines(floors, markdown=True),
    ]
    path.write_text("\n".join(text).rstrip() + "\n", encoding="utf-8")


def read_markdown(text: str) -> dict[str, dict]:
    """label -> {"parts": {part: (median ratio, in the floor)}, "floor", "target", "verdict"}
    of a file `write_markdown` wrote (its tables read by benchmarks/record.py's reader)."""
    out: dict[str, dict] = {}
    for label in re.findall(r"^## (.+)$", text, flags=re.MULTILINE):
        table = bench.read_markdown_table(text, label)
        parts = {}
        for name, row in table.items():
            match = bench.RATIO_CELL.match(row["x fused (median, min-max)"])
            assert match is not None, (label, name)
            parts[name] = (float(match.group(1)), row["in the floor"] == "yes")
        summary = re.search(
            r"- fused .* ms; floor ([0-9.]+)x, (\w+) the target ([0-9.]+)x",
            text.split(f"## {label}\n", 1)[1],
        )
        assert summary is not None, label
        floor, verdict, target = summary.groups()
        out[label] = {
            "parts": parts,
            "floor": float(floor),
            "verdict": verdict,
            "target": float(target),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11, help="interleaved rounds (default 11)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables there")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU\n")
    floors = measure_all(args.rounds)
    print("\n".join(lines(floors, markdown=False)))
    if args.markdown is not None:
        write_markdown(args.markdown, floors, args.rounds)
        print(f"written to {args.markdown}")


if __name__ == "__main__":
    main()
