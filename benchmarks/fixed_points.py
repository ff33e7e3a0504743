"""How fast is `gradlab.fixed_points` against the obvious per-point loop?

A GRU with N = 128 (input size 8, float32, torch's init with W_hh scaled by `--gain`), 1,024
initial states drawn from its trajectories on random inputs (T = 200, B = 16) plus noise. Both
sides find the points under the same zero input from the same initial states:

* gradlab: one call of `gradlab.fixed_points` (batched Levenberg–Marquardt on the cell's exact
  step map, then deduplication, eigenvalues and stability of every point): solver "auto" (at
  S = 128: up to 10 matrix-free CGLS steps, then dense Cholesky steps from the points not yet
  fixed), and "dense" alone beside it;
* the obvious way, per initial state: `scipy.optimize.minimize` (BFGS) on q(s) = ½‖F(s) − s‖²
  with q and ∇q from torch autograd through the model's one-step forward, then the step Jacobian
  at the end point by `torch.autograd.functional.jacobian` and its eigenvalues. It is measured on
  `--naive-points` (16) of the initial states and scaled linearly to all of them; the printout
  says so.

Targets (issue 19): >= 50x over the obvious loop and <= 5 s for gradlab on 2 threads.
`gradlab.fixed_points` runs its search on one thread for states up to 256 (its ops are too small
to gain from a second thread, and on a loaded machine lost 2-3x on two), so it takes about the
same time at --threads 1 and 2; the obvious loop runs at --threads, so on a loaded machine its
2-thread time (and the ratio) also counts its threading loss: --threads 1 gives the fair ratio.
Run: `.venv/bin/python benchmarks/fixed_points.py [--threads 2] [--naive-points 16]`.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import scipy.optimize
import torch

import gradlab

N, INPUTS, T, B, INITS = 128, 8, 200, 16, 1024


def make(gain: float) -> tuple[gradlab.GRU, torch.Tensor]:
    torch.manual_seed(0)
    model = gradlab.GRU(INPUTS, N)
    with torch.no_grad():
        model.weight_hh_l0.mul_(gain)
    return model, torch.randn(T, B, INPUTS)


def one_step(model: gradlab.GRU, s: torch.Tensor) -> torch.Tensor:
    """F(s, 0) for one state s (N,), through the model's forward (differentiable)."""
    x = s.new_zeros(1, 1, INPUTS)
    return torch.nn.Module.__call__(model, x, s.view(1, 1, N))[1].view(N)


def obvious(model: gradlab.GRU, starts: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per initial state: BFGS on q with autograd gradients, then the autograd Jacobian and its
    eigenvalues at the end point. Returns the q reached (P,) and the eigenvalues."""
    qs, spectra = [], []
    for start in starts:

        def q_and_grad(v: np.ndarray) -> tuple[float, np.ndarray]:
            s = torch.tensor(v, dtype=starts.dtype, requires_grad=True)
            q = 0.5 * (one_step(model, s) - s).square().sum()
            (grad,) = torch.autograd.grad(q, s)
            return float(q.detach()), grad.double().numpy()

        found = scipy.optimize.minimize(
            q_and_grad, start.double().numpy(), jac=True, method="BFGS", options={"gtol": 1e-7}
        )
        s = torch.tensor(found.x, dtype=start.dtype)
        jacobian = torch.autograd.functional.jacobian(lambda v: one_step(model, v), s)
        spectra.append(torch.linalg.eigvals(jacobian).numpy())
        qs.append(found.fun)
    return np.array(qs), spectra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--naive-points", type=int, default=16)
    parser.add_argument("--gain", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, x = make(args.gain)
    rec = gradlab.record(model, x)
    gradlab.fixed_points(model, rec, n_inits=32)  # warm-up

    def timed(solver: str) -> tuple[float, float, gradlab.FixedPoints]:
        """Best wall-clock seconds, the CPU seconds of that run, and the result."""
        best = (float("inf"), float("inf"), None)
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            fp = gradlab.fixed_points(model, rec, n_inits=INITS, seed=0, solver=solver)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best = min(best, (wall, cpu, fp), key=lambda b: b[0])
        return best

    results = {solver: timed(solver) for solver in ("auto", "dense")}
    fast = results["auto"][0]

    # the same initial states the solver started from (same seed, same draw)
    from gradlab.fixed_points import _trajectory_states

    starts = _trajectory_states(rec, 0, False, INITS, 0.01, torch.Generator().manual_seed(0),
                                torch.float32)  # fmt: skip
    subset = starts[: args.naive_points]
    start, cpu = time.perf_counter(), time.process_time()
    naive_q, _ = obvious(model, subset)
    naive_subset, naive_cpu = time.perf_counter() - start, time.process_time() - cpu
    naive = naive_subset * INITS / len(subset)

    print(
        f"GRU N={N}, {INITS} initial states, float32, {args.threads} threads, gain {args.gain}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (CPU seconds of this "
        "process shown too: on a shared machine they are what an idle one would take per thread)"
    )
    for solver, (wall, cpu, found) in results.items():
        name = "auto (matrix-free, then dense)" if solver == "auto" else solver
        print(
            f"gradlab.fixed_points, solver {name}: {wall:.2f} s wall, {cpu:.2f} s CPU "
            f"(best of {args.repeats}); {len(found)} points ({int(found.is_fixed.sum())} fixed, "
            f"q <= {found.tol:g}), max q {float(found.q.max()) if len(found) else math.nan:.2e}, "
            f"stability {sorted(set(found.stability))}"
        )
    print(
        f"obvious loop (BFGS + autograd Jacobian per point): {naive_subset:.2f} s wall, "
        f"{naive_cpu:.2f} s CPU for {len(subset)} points; scaled linearly to {INITS}: "
        f"{naive:.1f} s wall; its median q {float(np.median(naive_q)):.2e}"
    )
    fast_cpu = results["auto"][1]
    print(
        f"ratio: {naive / fast:.0f}x wall, {naive_cpu * INITS / len(subset) / fast_cpu:.0f}x CPU "
        f"(target >= 50x); gradlab {fast:.2f} s wall, {fast_cpu:.2f} s CPU (target <= 5 s)"
    )


if __name__ == "__main__":
    main()
