"""Fixed points and slow points of one recurrent layer (Sussillo & Barak 2013).

For a layer and direction with step map s' = F(s, x) over its FULL state s (h; (h, c) for an
LSTM) and a constant input x*, `fixed_points` minimises q(s) = ½‖F(s, x*) − s‖² from many
initial states at once with Levenberg–Marquardt steps on exact step Jacobians, keeps the points
with q ≤ `slow_tol`, merges the ones that coincide, and linearises F at each: the eigenvalues of
∂F/∂s there, the stability class and the time constants τ = −1/ln|λ| of its modes.

Everything about a cell comes from the registry: F is the model's own one-step forward
(`layer_forward`, the fused kernel where torch has one), ∂F/∂s the cell's trace (`Trace.jvp`,
the analytic Jacobian `record` uses), so every registered cell works, with no per-cell code here.

Shapes: P points, S the state size (N, or N + N for an LSTM), I the layer's input size.

The solver, per initial state and batched over all of them: Levenberg–Marquardt on
r = F(s) − s, A = ∂F/∂s − I, the step δ minimising ‖Aδ + r‖² + μ‖δ‖²; a step that lowers q is
taken and μ shrinks (Nielsen's rule), otherwise μ grows. `solver="dense"` forms ∂F/∂s (the
trace's `jvp` on the identity) and solves (AᵀA + μI)δ = −Aᵀr by Cholesky, O(S³) per point and
step, in chunks of ≤ 2^24 Jacobian entries; `solver="matrix-free"` never forms it: CGLS on the
trace's JVP / VJP (at most min(S, 64) products per step, to a relative tolerance min(0.1, ‖r‖)),
O(G·N·S) per product. "auto": dense for S ≤ 32; for 32 < S ≤ 256 at most 10 matrix-free
steps (enough where every start runs into a root, about 4x cheaper than dense there), then
dense steps from the end points not yet fixed (where slow points abound, inexact steps find
fewer fixed points); matrix-free alone for S > 256. A point stops when
q reaches the rounding floor (S·eps²), when a taken step is below 4·eps·(1 + ‖s‖∞), when no
step of size ≥ eps·(1 + ‖s‖∞) is left to try, at a slow point (r orthogonal to A's range within
√eps, or q falling by less than √eps·q on a nearly undamped step), or after `max_iter` steps.
At a root (a fixed point) the steps become Newton's, so q falls to rounding; at a local
minimum with q > 0 (a slow point) it converges linearly, and many slow points (a slow
manifold, saturated gates) make the search cost grow with `max_iter`.

On a slow manifold (a line or plane attractor of a trained memory, where q is tiny everywhere)
the search run to convergence slides a point along it, towards the saturated edge of the state
space where q → 0. `q_target` gives the operational definition of FixedPointFinder (Golub &
Sussillo 2018, its tol_q): a point stops descending once q ≤ q_target; then Newton's method
(minimum-norm steps −A⁺r, at most 20) polishes it inside a ball of `polish_radius` around that
point: iterates that reach q ≤ tol inside it make it a fixed point (an isolated root is found
exactly, as without q_target); otherwise (A near-singular, Newton's steps run far along the
manifold) it stays where q ≤ q_target was reached, a slow point. The batched small-matrix
linear algebra (Cholesky factorisations and solves, pseudo-inverses, eigenvalues) runs on one
thread (`gradlab.record.one_thread`): the batch is the parallelism.

Defaults (float64 / float32, for the dtype the search runs in):
* `tol` 1e-20 / 1e-10: a point with q ≤ tol is "fixed" (‖F(s) − s‖ ≤ 1.4e-10 / 1.4e-5),
  otherwise "slow";
* `slow_tol` 1e-4: points with larger q are dropped (neither fixed nor slow);
* `dedup_tol` 1e-7 / 1e-3: two points within this max-abs distance are one (the lower q kept);
* `marginal_tol` 1e-9 / 1e-5: a mode with ||λ| − 1| ≤ marginal_tol is marginal.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from gradlab.cells.models import RecurrentModel, from_torch
from gradlab.cells.registry import CellSpec, get_cell
from gradlab.cells.traces import Trace
from gradlab.record import one_thread

if TYPE_CHECKING:
    import pandas as pd

    from gradlab.record import Recording

__all__ = ["FixedPoints", "fixed_points"]

#: dtype -> (tol, dedup_tol, marginal_tol)
_DEFAULTS = {torch.float64: (1e-20, 1e-7, 1e-9), torch.float32: (1e-10, 1e-3, 1e-5)}
_SLOW_TOL = 1e-4
#: steps the lower layers run under a constant input before their output is layer l's x*
_SETTLE_STEPS = 400
_DENSE_ONLY_STATE = 32  # solver="auto": dense steps alone up to this state size,
_DENSE_MAX_STATE = 256  # matrix-free then dense up to this one, matrix-free alone above
_ONE_THREAD_STATE = 256  # the whole search on one thread up to this state size
_CHUNK_ENTRIES = 1 << 24  # Jacobian entries per solver chunk (128 MiB in float64)
_POLISH_STEPS = 20  # Newton steps of the polish (q_target): quadratic convergence needs few
STABILITY_CLASSES = ("stable", "unstable", "saddle", "marginal")


@dataclass(frozen=True, eq=False)
class FixedPoints:
    """The fixed and slow points of one layer and direction, P points sorted by q ascending.

    * `states` (P, S): the points s* (h, then c for an LSTM); `q` (P,): ½‖F(s*) − s*‖²;
      `is_fixed` (P,) bool: q ≤ `tol` (else a slow point, q ≤ `slow_tol`);
      `counts` (P,): how many initial states ended at the point.
    * `jacobians` (P, S, S): ∂F/∂s at s*; `eigenvalues` (P, S) complex, by modulus descending;
      `slowest` (P,): max |λ|; `time_constants` (P, S): τ = −1/ln|λ| in steps for |λ| < 1
      (0 at λ = 0), inf at |λ| = 1, NaN for |λ| > 1 (a growing mode has no decay time);
      `stability`: per point "stable" (every |λ| < 1), "unstable" (every |λ| > 1), "saddle"
      (both) or "marginal" (some ||λ| − 1| ≤ `marginal_tol`, checked first).
    * `constant_input` (I,): the input x* the layer was held at; `cell`, `layer`, `reverse`,
      `dtype`, and the tolerances used.
    """

    states: Tensor
    q: Tensor
    is_fixed: Tensor
    counts: Tensor
    jacobians: Tensor
    eigenvalues: Tensor
    slowest: Tensor
    time_constants: Tensor
    stability: tuple[str, ...]
    constant_input: Tensor
    cell: str
    layer: int
    reverse: bool
    dtype: torch.dtype
    tol: float
    slow_tol: float
    dedup_tol: float
    marginal_tol: float
    n_inits: int

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def direction(self) -> str:
        """ "forward" or "reverse"."""
        return "reverse" if self.reverse else "forward"

    @property
    def kind(self) -> tuple[str, ...]:
        """Per point "fixed" (q ≤ tol) or "slow"."""
        return tuple("fixed" if f else "slow" for f in self.is_fixed.tolist())

    @property
    def n_unstable(self) -> Tensor:
        """Per point, the number of modes with |λ| > 1 + marginal_tol, (P,)."""
        return (self.eigenvalues.abs() > 1 + self.marginal_tol).sum(-1)

    @property
    def tau_slowest(self) -> Tensor:
        """Per point, τ of the slowest decaying mode (the largest |λ| ≤ 1), (P,); NaN where
        every |λ| > 1."""
        tau = self.time_constants
        if tau.shape[-1] == 0:
            return tau.new_full(tau.shape[:1], math.nan)
        return torch.where(tau.isnan(), -math.inf, tau).amax(-1).nan_to_num(neginf=math.nan)

    def nearest(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """For states (M, S) (e.g. a recorded trajectory's, flattened), the index of the
        nearest point (M,) and the Euclidean distance to it (M,): which fixed or slow point a
        trajectory visits. ValueError when there are no points or S differs."""
        S = self.states.shape[1]
        if not isinstance(states, Tensor) or states.dim() != 2 or states.shape[1] != S:
            shape = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
            raise ValueError(f"states must be a tensor (M, S) with S = {S}, got {shape}")
        if len(self) == 0:
            raise ValueError("there are no points to be near to")
        distances = torch.cdist(states.to(self.states), self.states)
        distance, index = distances.min(dim=1)
        return index, distance

    def table(self) -> pd.DataFrame:
        """One row per point: point, q, kind, stability, max_abs_eigenvalue, tau_slowest,
        n_unstable, count, and the meta (cell, layer, direction, dtype)."""
        import pandas as pd

        P = len(self)
        return pd.DataFrame(
            {
                "point": list(range(P)),
                "q": self.q.double().tolist(),
                "kind": list(self.kind),
                "stability": list(self.stability),
                "max_abs_eigenvalue": self.slowest.double().tolist(),
                "tau_slowest": self.tau_slowest.double().tolist(),
                "n_unstable": self.n_unstable.tolist(),
                "count": self.counts.tolist(),
                "cell": [self.cell] * P,
                "layer": [self.layer] * P,
                "direction": [self.direction] * P,
                "dtype": [str(self.dtype).removeprefix("torch.")] * P,
            }
        ).astype({"point": "int64", "n_unstable": "int64", "count": "int64", "layer": "int64"})

    def __repr__(self) -> str:
        kinds = {k: list(self.stability).count(k) for k in STABILITY_CLASSES}
        shown = ", ".join(f"{n} {k}" for k, n in kinds.items() if n)
        return (
            f"FixedPoints({self.cell}, layer={self.layer}, {self.direction}: {len(self)} points"
            f" ({int(self.is_fixed.sum())} fixed){': ' + shown if shown else ''})"
        )


@torch.no_grad()
def fixed_points(
    model: nn.Module | None,
    inputs: Tensor | Recording | None = None,
    *,
    constant_input: Tensor | str | None = None,
    initial_states: Tensor | None = None,
    n_inits: int = 256,
    tol: float | None = None,
    slow_tol: float | None = None,
    seed: int = 0,
    layer: int = 0,
    reverse: bool = False,
    dtype: torch.dtype | None = None,
    max_iter: int = 200,
    noise: float = 0.01,
    dedup_tol: float | None = None,
    marginal_tol: float | None = None,
    solver: str = "auto",
    q_target: float | None = None,
    polish_radius: float | None = None,
    outlier_scale: float | None = None,
) -> FixedPoints:
    """The fixed and slow points of layer `layer` (direction `reverse`) of `model`.

    model: a gradlab model of any registered cell (a torch nn.RNN / LSTM / GRU is converted
    with `from_torch`). inputs: the model's input x ((T, B, I), as the model takes it), run
    through the model, or a `gradlab.Recording` of it; initial states are drawn from the
    layer's recorded states s_0..s_T (real steps only), plus Gaussian `noise` (std). Without
    `inputs` and `initial_states`, `n_inits` random states: each unit uniform on its bounded
    range (tanh / LSTM / GRU h in (−1, 1), sigmoid (0, 1)), standard normal where unbounded
    (relu, linear, an LSTM's c). `initial_states` (P, S): start there instead (no noise).

    constant_input: the input held constant, x*: None (zeros) or a tensor (I,) of the
    model's input, or "mean": the mean over real steps and batch of what the layer read
    along `inputs`. For layer l > 0 a model input x* (None or a tensor) reaches layer l as the
    output of the layers below after they have run 400 steps from the zero state under x*
    (the middle step for a bidirectional layer), i.e. their state on their attractor; a
    RuntimeWarning says so when that output still moves (no settled state below); "mean" uses
    layer l's own recorded input.

    dtype: the dtype of the search (None: the model's; torch.float64 runs a float64 copy).
    solver: "auto", "dense" or "matrix-free". See the module docstring for the solver, the
    tolerances and their defaults.

    q_target: None (every point descends until a stopping rule of the search) or the
    operational slow-point threshold of FixedPointFinder (Golub & Sussillo 2018): a point stops
    descending once q ≤ q_target, then Newton's method polishes it inside a trust radius
    `polish_radius` around where it stopped: if the Newton iterates reach q ≤ tol without
    leaving the radius, the point is a fixed point (an isolated root is found exactly);
    otherwise (A = ∂F/∂s − I near-singular: a slow manifold, where Newton's steps run far along
    it) the point stays where q ≤ q_target was reached, a slow point near its initial state.
    polish_radius: None: 0.1 × the initial states' spread (the RMS distance from their
    centroid, sqrt(mean ‖s − s̄‖²); √S·(1 + max|s|) in its place for a single start).
    outlier_scale: None (keep every point) or FixedPointFinder's outlier rule: points farther
    than outlier_scale × that spread from the initial states' centroid are dropped.
    """
    rec = _recording_of(inputs)
    model = _check_model(rec.model if rec is not None and model is None else model)
    if rec is not None and rec.model is not model:
        raise ValueError("inputs is a Recording of another model than `model`")
    spec = get_cell(model.cell)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < model.num_layers:
        raise ValueError(f"layer must be an integer in 0..{model.num_layers - 1}, got {layer!r}")
    if reverse and not model.bidirectional:
        raise ValueError("reverse=True needs a bidirectional model")
    if solver not in ("auto", "dense", "matrix-free"):
        raise ValueError(f"solver must be 'auto', 'dense' or 'matrix-free', got {solver!r}")
    if isinstance(n_inits, bool) or not isinstance(n_inits, int) or n_inits < 1:
        raise ValueError(f"n_inits must be an integer >= 1, got {n_inits!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not (isinstance(noise, int | float) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if q_target is not None:
        q_target = _positive("q_target", q_target)
    if polish_radius is not None:
        polish_radius = _positive("polish_radius", polish_radius)
    if outlier_scale is not None:
        outlier_scale = _positive("outlier_scale", outlier_scale)
    own_dtype = model.weight_hh_l0.dtype
    dtype = own_dtype if dtype is None else dtype
    if dtype not in _DEFAULTS:
        raise ValueError(f"dtype must be None, torch.float32 or torch.float64, got {dtype!r}")
    default_tol, default_dedup, default_marginal = _DEFAULTS[dtype]
    tol = _positive("tol", default_tol if tol is None else tol)
    slow_tol = _positive("slow_tol", max(_SLOW_TOL, tol) if slow_tol is None else slow_tol)
    if slow_tol < tol:
        raise ValueError(f"slow_tol ({slow_tol}) must be >= tol ({tol})")
    dedup_tol = _positive("dedup_tol", default_dedup if dedup_tol is None else dedup_tol)
    marginal_tol = _positive(
        "marginal_tol", default_marginal if marginal_tol is None else marginal_tol
    )

    work = model if dtype == own_dtype else copy.deepcopy(model).to(dtype)
    if rec is None and inputs is not None:
        from gradlab.record import record

        rec = record(work, _check_inputs(inputs, model).to(dtype))

    generator = torch.Generator().manual_seed(int(seed))
    x_star = _constant_input(work, spec, constant_input, rec, layer, reverse, dtype)
    S = work.state_size
    if initial_states is not None:
        starts = _check_initial_states(initial_states, S).to(dtype)
    elif rec is not None:
        starts = _trajectory_states(rec, layer, reverse, n_inits, noise, generator, dtype)
    else:
        starts = _random_states(work, spec, n_inits, generator, dtype)

    step = _StepMap(work, spec, layer, reverse, x_star)
    # small states: every op (the step's matmuls, elementwise gates, the batched solves) is
    # too small to gain from a second thread, and loses on a loaded machine (module docstring)
    with one_thread() if S <= _ONE_THREAD_STATE else contextlib.nullcontext():
        end, q = _search(step, starts, max_iter, tol, solver, q_target)
        if q_target is not None:
            radius = _polish_radius(starts) if polish_radius is None else polish_radius
            end, q = _polish(step, end, q, tol, q_target, radius)
        kept = q <= slow_tol
        if outlier_scale is not None:
            centroid = starts.mean(0)
            kept &= (end - centroid).norm(dim=-1) <= outlier_scale * _spread(starts)
        keep = kept.nonzero().squeeze(1)
        points, counts = _deduplicate(end[keep], q[keep], dedup_tol)
        states = end[keep][points]
        q_kept = q[keep][points]
        jac = step.evaluate(states)[1] if len(points) else states.new_zeros(0, S, S)
    # eigenvalues in float64 (LAPACK's float32 eigensolver is slower here), sorted there
    with one_thread():
        values = (
            torch.linalg.eigvals(jac.double())
            if len(points)
            else jac.new_zeros(0, S, dtype=torch.complex128)
        )
    modulus = values.abs()
    order = torch.sort(modulus, dim=-1, descending=True, stable=True).indices
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    eigenvalues = values.gather(-1, order).to(complex_dtype)
    modulus = modulus.gather(-1, order).to(dtype)
    return FixedPoints(
        states=states,
        q=q_kept,
        is_fixed=q_kept <= tol,
        counts=counts,
        jacobians=jac,
        eigenvalues=eigenvalues,
        slowest=modulus[:, 0] if S else modulus.new_zeros(len(points)),
        time_constants=_time_constants(modulus),
        stability=tuple(_stability(row, marginal_tol) for row in modulus),
        constant_input=x_star,
        cell=spec.name,
        layer=layer,
        reverse=bool(reverse),
        dtype=dtype,
        tol=float(tol),
        slow_tol=float(slow_tol),
        dedup_tol=float(dedup_tol),
        marginal_tol=float(marginal_tol),
        n_inits=int(starts.shape[0]),
    )


# ----- the step map ---------------------------------------------------------------------------
class _StepMap:
    """F(s, x*) and ∂F/∂s for a batch of states (P, S) of one layer/direction: F from the
    model's one-step `layer_forward`, ∂F/∂s from the cell's trace of that step."""

    def __init__(
        self, model: RecurrentModel, spec: CellSpec, layer: int, reverse: bool, x_star: Tensor
    ) -> None:
        self.model, self.spec, self.layer, self.reverse = model, spec, layer, reverse
        self.weights = model.layer_weights(layer, reverse)
        self.x_star = x_star  # (I,)
        self.sizes = model.state_sizes()
        self.S = sum(self.sizes)

    def value(self, s: Tensor) -> Tensor:
        """F(s) (P, S) at states s (P, S): one step of the model's forward."""
        P, D, d = s.shape[0], self.model.num_directions, int(self.reverse)
        parts = s.split(list(self.sizes), dim=-1)
        inputs = self.x_star.expand(1, P, -1)
        h0 = self.spec.join_state([p.unsqueeze(0).expand(D, P, -1).contiguous() for p in parts])
        finals = self.model.layer_forward(inputs, h0, self.layer)[1:]  # h_n (D, P, N) [, c_n]
        return torch.cat([f[d] for f in finals], dim=-1)

    def trace(self, s: Tensor, new: Tensor) -> Trace:
        """The cell's trace of the step s -> new (P, S) each: its `jvp` / `vjp` at t = 1 are
        ∂F/∂s and its transpose at s, batched over P."""
        parts = s.split(list(self.sizes), dim=-1)
        inputs = self.x_star.expand(1, s.shape[0], -1)
        hidden = torch.stack((parts[0], new[:, : self.sizes[0]]))  # (2, P, N): h_0, h_1
        return self.spec.make_trace(self.model, self.weights, inputs, hidden, tuple(parts[1:]))

    def jacobian(self, s: Tensor, new: Tensor) -> Tensor:
        """∂F/∂s (P, S, S) at states s (P, S), where F(s) = `new` (P, S): the cell's trace of
        the step s -> new, its `jvp` applied to the identity."""
        P, S = s.shape
        trace = self.trace(s, new)
        eye = torch.eye(S, dtype=s.dtype, device=s.device)
        try:  # the step is linear in V: one identity broadcast over the batch where it can be
            jac = trace.jvp(1, eye.unsqueeze(0))
        except RuntimeError:
            jac = None
        if jac is None or tuple(jac.shape) != (P, S, S):
            jac = trace.jvp(1, eye.expand(P, S, S).contiguous())
        return jac

    def evaluate(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """F(s) (P, S) and ∂F/∂s (P, S, S) at states s (P, S)."""
        new = self.value(s)
        return new, self.jacobian(s, new)


def _levenberg_marquardt(
    step: _StepMap, s: Tensor, max_iter: int, q_target: float | None = None
) -> tuple[Tensor, Tensor]:
    """Minimise q(s) = ½‖F(s) − s‖² from every row of s (P, S); returns the end points (P, S)
    and their q (P,). A row stops once q ≤ q_target (when given). See the module docstring."""
    P, S = s.shape
    eps = torch.finfo(s.dtype).eps
    s = s.clone()

    def normal_equations(states: Tensor, new: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        """Aᵀr (P', S) and AᵀA (P', S, S), A = ∂F/∂s − I at `states` (F(states) = `new`)."""
        A = step.jacobian(states, new)
        A.diagonal(dim1=1, dim2=2).sub_(1.0)
        At = A.transpose(1, 2)
        return torch.bmm(At, r.unsqueeze(-1)).squeeze(-1), torch.bmm(At, A)

    new = step.value(s)
    r = new - s
    q = 0.5 * r.square().sum(-1)
    q = torch.where(q.isfinite(), q, math.inf)
    g, H = normal_equations(s, new, r)
    mu = 1e-3 * H.diagonal(dim1=1, dim2=2).amax(-1).nan_to_num(0.0).clamp_min(eps)
    nu = torch.full_like(mu, 2.0)
    floor = S * eps * eps
    rtol = math.sqrt(eps)
    reached = floor if q_target is None else max(floor, q_target)
    active = q.isfinite() & (q > reached)
    for _ in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        full = idx.numel() == P
        si, gi, qi, mui, nui = (x if full else x[idx] for x in (s, g, q, mu, nu))
        damped = H.clone() if full else H[idx]
        damped.diagonal(dim1=1, dim2=2).add_(mui.unsqueeze(-1))
        with one_thread():  # many small factorisations: the batch is the parallelism
            chol, info = torch.linalg.cholesky_ex(damped)
            delta = torch.cholesky_solve(gi.unsqueeze(-1), chol).squeeze(-1).neg_()
        ok = (info == 0) & delta.isfinite().all(-1)
        delta = torch.where(ok.unsqueeze(-1), delta, torch.zeros_like(delta))
        trial = si + delta
        trial_new = step.value(trial)
        trial_r = trial_new - trial
        q_new = 0.5 * trial_r.square().sum(-1)
        accept = ok & q_new.isfinite() & (q_new < qi)
        predicted = 0.5 * (delta * (mui.unsqueeze(-1) * delta - gi)).sum(-1)
        rho = (qi - q_new) / predicted.clamp_min(torch.finfo(s.dtype).tiny)
        # Nielsen's damping update
        shrink = torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3)
        mu_next = torch.where(accept, mui * shrink, mui * nui)
        nu_next = torch.where(accept, torch.full_like(mui, 2.0), nui * 2)
        # stop: at the rounding floor, a taken step at rounding size, no step left to try, or
        # (a slow point) r orthogonal to A's columns, or q barely falling on a nearly
        # Gauss-Newton step (damping below A's largest column norm²)
        scale = 1 + si.abs().amax(-1)
        tiny_step = accept & (delta.abs().amax(-1) <= 4 * eps * scale)
        stuck = ~accept & (gi.abs().amax(-1) / mu_next <= eps * scale)
        done = tiny_step | stuck | (accept & (q_new <= reached))
        taken = accept.nonzero().squeeze(1)
        if taken.numel():
            g_new, H_new = normal_equations(trial[taken], trial_new[taken], trial_r[taken])
            column_norms = H_new.diagonal(dim1=1, dim2=2).sqrt()
            residual_norm = (2 * q_new[taken]).sqrt().unsqueeze(-1)
            cosine = (g_new.abs() / (column_norms * residual_norm)).nan_to_num(0.0).amax(-1)
            undamped = mui[taken] <= column_norms.square().amax(-1)
            stalled = undamped & ((qi[taken] - q_new[taken]) <= rtol * qi[taken])
            done[taken] |= (cosine <= rtol) | stalled
            rows = idx[taken]
            if rows.numel() == P:
                s, q, g, H = trial, q_new, g_new, H_new
            else:
                s[rows], q[rows], g[rows], H[rows] = trial[taken], q_new[taken], g_new, H_new
        mu[idx], nu[idx] = mu_next, nu_next
        active[idx[done]] = False
    return s, q


def _cgls(
    apply: Callable[[Tensor], Tensor],
    adjoint: Callable[[Tensor], Tensor],
    b: Tensor,
    mu: Tensor,
    iterations: int,
    tolerance: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """min_x ‖A x − b‖² + μ‖x‖² for a batch (b (P, S), μ (P,)) by CGLS with A's products only:
    x (P, S), the residual b − A x (P, S), and the largest ‖A p‖/‖p‖ seen (P,), a lower
    bound of ‖A‖₂. A row stops once ‖Aᵀ(b − A x) − μx‖ <= tolerance (P,) · ‖Aᵀb‖."""
    x = torch.zeros_like(b)
    residual = b.clone()
    normal = adjoint(b)
    direction = normal.clone()
    gamma = normal.square().sum(-1)
    stop = tolerance.square() * gamma
    largest = torch.zeros_like(mu)
    for _ in range(iterations):
        running = gamma > stop
        if not bool(running.any()):
            break
        image = apply(direction)
        image2, direction2 = image.square().sum(-1), direction.square().sum(-1)
        largest = torch.maximum(largest, (image2 / direction2).nan_to_num(0.0).sqrt())
        alpha = torch.where(running, gamma / (image2 + mu * direction2), 0.0).nan_to_num(0.0)
        x.addcmul_(alpha.unsqueeze(-1), direction)
        residual.addcmul_(alpha.unsqueeze(-1), image, value=-1.0)
        normal = adjoint(residual).addcmul_(mu.unsqueeze(-1), x, value=-1.0)
        gamma_next = normal.square().sum(-1)
        beta = torch.where(running, gamma_next / gamma, 0.0).nan_to_num(0.0)
        direction = torch.where(
            running.unsqueeze(-1), normal + beta.unsqueeze(-1) * direction, direction
        )
        gamma = torch.where(running, gamma_next, gamma)
    return x, residual, largest


def _levenberg_marquardt_matrix_free(
    step: _StepMap, s: Tensor, max_iter: int, q_target: float | None = None
) -> tuple[Tensor, Tensor]:
    """`_levenberg_marquardt` without forming ∂F/∂s: each step solves the damped least-squares
    problem min ‖Aδ + r‖² + μ‖δ‖² by CGLS on the trace's JVP / VJP (at most min(S, 64)
    products each, to a relative tolerance min(0.1, ‖r‖)), so a step costs O(P·G·N²) per
    product instead of O(P·S³). The same stopping rules; the slow-point test uses ‖Aᵀr‖ /
    (‖A‖‖r‖) with ‖A‖ from the products seen."""
    S = s.shape[1]
    eps = torch.finfo(s.dtype).eps
    rtol = math.sqrt(eps)
    floor = S * eps * eps
    s = s.clone()
    new = step.value(s)
    r = new - s
    q = 0.5 * r.square().sum(-1)
    q = torch.where(q.isfinite(), q, math.inf)
    mu = torch.full_like(q, math.nan)
    nu = torch.full_like(q, 2.0)
    reached = floor if q_target is None else max(floor, q_target)
    active = q.isfinite() & (q > reached)
    for _ in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        si, newi, ri, qi = s[idx], new[idx], r[idx], q[idx]
        trace = step.trace(si, newi)

        def apply(v: Tensor, trace: Trace = trace) -> Tensor:
            return trace.jvp(1, v.unsqueeze(-1)).squeeze(-1) - v

        def adjoint(u: Tensor, trace: Trace = trace) -> Tensor:
            return trace.vjp(1, u.unsqueeze(-1)).squeeze(-1) - u

        mui = mu[idx]
        fresh = mui.isnan()
        if bool(fresh.any()):  # μ_0 = 1e-3 · ‖A g‖² / ‖g‖², g = Aᵀr: A's scale along g
            g = adjoint(ri)
            scale = (apply(g).square().sum(-1) / g.square().sum(-1)).nan_to_num(1.0)
            mui = torch.where(fresh, 1e-3 * scale.clamp_min(eps), mui)
        tolerance = torch.clamp(ri.norm(dim=-1), max=0.1).clamp_min(eps)
        delta, left, a_norm = _cgls(apply, adjoint, -ri, mui, min(S, 64), tolerance)
        gradient = adjoint(ri)
        trial = si + delta
        trial_new = step.value(trial)
        trial_r = trial_new - trial
        q_new = 0.5 * trial_r.square().sum(-1)
        predicted = qi - 0.5 * left.square().sum(-1)  # the model ½‖r + Aδ‖²'s reduction
        accept = delta.isfinite().all(-1) & q_new.isfinite() & (q_new < qi)
        rho = (qi - q_new) / predicted.clamp_min(torch.finfo(s.dtype).tiny)
        shrink = torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3)
        mu_next = torch.where(accept, mui * shrink, mui * nu[idx])
        nu_next = torch.where(accept, torch.full_like(mui, 2.0), nu[idx] * 2)
        scale = 1 + si.abs().amax(-1)
        cosine = (gradient.norm(dim=-1) / (a_norm * ri.norm(dim=-1))).nan_to_num(0.0)
        stalled = accept & (mui <= a_norm.square()) & ((qi - q_new) <= rtol * qi)
        done = (
            (accept & (delta.abs().amax(-1) <= 4 * eps * scale))
            | (~accept & (gradient.abs().amax(-1) / mu_next <= eps * scale))
            | (accept & (q_new <= reached))
            | (cosine <= rtol)
            | stalled
        )
        taken = accept.nonzero().squeeze(1)
        rows = idx[taken]
        s[rows], new[rows], r[rows], q[rows] = (
            trial[taken],
            trial_new[taken],
            trial_r[taken],
            q_new[taken],
        )
        mu[idx], nu[idx] = mu_next, nu_next
        active[idx[done]] = False
    return s, q


def _search(
    step: _StepMap,
    starts: Tensor,
    max_iter: int,
    tol: float,
    solver: str,
    q_target: float | None = None,
) -> tuple[Tensor, Tensor]:
    """End points (P, S) and their q (P,) from `starts` (P, S) with the chosen solver; "auto":
    dense for S <= 32, matrix-free for S > 256, and between them a matrix-free phase of at most
    10 steps (cheap, enough where every start runs into a root), then dense steps from its end
    points that are not yet fixed (q > tol)."""
    S = starts.shape[1]
    if solver == "auto":
        if S <= _DENSE_ONLY_STATE:
            solver = "dense"
        elif S > _DENSE_MAX_STATE:
            solver = "matrix-free"
        else:
            end, q = _levenberg_marquardt_matrix_free(step, starts, min(max_iter, 10), q_target)
            left = (q > (tol if q_target is None else max(tol, q_target))).nonzero().squeeze(1)
            if left.numel():
                end[left], q[left] = _dense_search(step, end[left], max_iter, q_target)
            return end, q
    if solver == "dense":
        return _dense_search(step, starts, max_iter, q_target)
    return _levenberg_marquardt_matrix_free(step, starts, max_iter, q_target)


def _dense_search(
    step: _StepMap, starts: Tensor, max_iter: int, q_target: float | None = None
) -> tuple[Tensor, Tensor]:
    """`_levenberg_marquardt` in chunks of at most 2^24 Jacobian entries."""
    S = starts.shape[1]
    results = [
        _levenberg_marquardt(step, part, max_iter, q_target)
        for part in starts.split(max(1, _CHUNK_ENTRIES // (S * S)))
    ]
    return torch.cat([s for s, _ in results]), torch.cat([q for _, q in results])


def _polish_radius(starts: Tensor) -> float:
    """The default trust radius of the Newton polish: 0.1 × the initial states' spread."""
    return 0.1 * _spread(starts)


def _spread(starts: Tensor) -> float:
    """The initial states' (P, S) RMS distance from their centroid, sqrt(mean ‖s − s̄‖²);
    √S·(1 + max|s|) when it is 0 (a single start)."""
    spread = float((starts - starts.mean(0)).square().sum(-1).mean().sqrt())
    if not spread > 0:
        spread = math.sqrt(starts.shape[1]) * (1 + float(starts.abs().max()))
    return spread


def _polish(
    step: _StepMap, s: Tensor, q: Tensor, tol: float, q_target: float, radius: float
) -> tuple[Tensor, Tensor]:
    """Newton's method on F(s) = s (minimum-norm steps −A⁺r, so a line of roots is reached
    too) from the points (P, S) with tol < q ≤ q_target, inside a ball of `radius` around
    each: a point whose iterates reach q ≤ tol without leaving it is replaced by the last
    iterate inside (Newton continues past tol while q falls, to the rounding floor); any other
    (an iterate outside the ball or not finite, or no root within `_POLISH_STEPS` steps) keeps
    its point and q. Returns (s, q), updated copies."""
    s, q = s.clone(), q.clone()
    rows = ((q > tol) & (q <= q_target)).nonzero().squeeze(1)
    S = s.shape[1]
    floor = S * torch.finfo(s.dtype).eps ** 2
    for part in rows.split(max(1, _CHUNK_ENTRIES // max(1, S * S))):
        origin = s[part]
        x = origin.clone()
        qx = q[part].clone()
        running = torch.ones(len(part), dtype=torch.bool, device=s.device)
        for _ in range(_POLISH_STEPS):
            idx = running.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xi = x[idx]
            new, A = step.evaluate(xi)
            A.diagonal(dim1=1, dim2=2).sub_(1.0)
            with one_thread():  # the minimum-norm step: a continuum of roots (A singular)
                delta = torch.linalg.pinv(A) @ (xi - new).unsqueeze(-1)
            trial = xi + delta.squeeze(-1)
            r = step.value(trial) - trial
            q_trial = 0.5 * r.square().sum(-1)
            inside = (
                trial.isfinite().all(-1)
                & q_trial.isfinite()
                & ((trial - origin[idx]).norm(dim=-1) <= radius)
            )
            take = inside & (q_trial < qx[idx])
            x[idx] = torch.where(take.unsqueeze(-1), trial, xi)
            qx[idx] = torch.where(take, q_trial, qx[idx])
            running[idx] = take & (q_trial > floor)
        root = qx <= tol
        s[part[root]], q[part[root]] = x[root], qx[root]
    return s, q


# ----- inputs, initial states -----------------------------------------------------------------
def _recording_of(inputs: Any) -> Recording | None:
    from gradlab.record import Recording

    return inputs if isinstance(inputs, Recording) else None


def _check_model(model: Any) -> RecurrentModel:
    if isinstance(model, RecurrentModel):
        return model
    if isinstance(model, nn.RNN | nn.LSTM | nn.GRU):
        return from_torch(model)
    raise TypeError(
        "model must be a gradlab recurrent model (gradlab.RNN, LSTM, GRU, any registered cell) "
        f"or a torch nn.RNN / LSTM / GRU, got {type(model).__name__}"
    )


def _check_inputs(inputs: Any, model: RecurrentModel) -> Tensor:
    layout = "(B, T, I)" if model.batch_first else "(T, B, I)"
    if not isinstance(inputs, Tensor):
        raise ValueError(
            f"inputs must be a tensor {layout}, a gradlab Recording or None, "
            f"got {type(inputs).__name__}"
        )
    if inputs.dim() != 3 or inputs.shape[-1] != model.input_size or 0 in inputs.shape:
        raise ValueError(
            f"inputs must be {layout} with I = input_size = {model.input_size} and T, B >= 1, "
            f"got shape {tuple(inputs.shape)}"
        )
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs contains NaN or Inf")
    return inputs


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _check_initial_states(states: Any, S: int) -> Tensor:
    if not isinstance(states, Tensor) or states.dim() != 2 or states.shape[1] != S:
        shape = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
        raise ValueError(f"initial_states must be a tensor (P, S) with S = {S}, got {shape}")
    if states.shape[0] < 1 or not torch.isfinite(states).all():
        raise ValueError("initial_states must hold at least one finite state")
    return states.detach()


def _layer_states(rec: Recording, layer: int, reverse: bool) -> tuple[Tensor, Tensor]:
    """The layer's recorded s_0..s_T (T+1, B, S) and which of them are real (T+1, B) bool."""
    lr = rec.layer(layer, reverse)
    states = lr.trace.state()
    mask = torch.cat((torch.ones_like(lr.step_mask[:1]), lr.step_mask)).to(states.device)
    return states, mask


def _trajectory_states(
    rec: Recording,
    layer: int,
    reverse: bool,
    n: int,
    noise: float,
    generator: torch.Generator,
    dtype: torch.dtype,
) -> Tensor:
    """n states drawn from the recorded trajectory (without replacement while there are
    enough), plus N(0, noise²) per coordinate, (n, S)."""
    states, mask = _layer_states(rec, layer, reverse)
    pool = states[mask].to(dtype)  # (M, S)
    M = pool.shape[0]
    if n <= M:
        pick = torch.randperm(M, generator=generator)[:n]
    else:
        pick = torch.randint(0, M, (n,), generator=generator)
    drawn = pool[pick.to(pool.device)]
    jitter = torch.randn(drawn.shape, generator=generator, dtype=dtype).to(drawn.device)
    return drawn + noise * jitter


def _random_states(
    model: RecurrentModel, spec: CellSpec, n: int, generator: torch.Generator, dtype: torch.dtype
) -> Tensor:
    """n random states (n, S): uniform on each part's bounded range, else standard normal."""
    activation = getattr(model, "activation", None)
    projected = bool(getattr(model, "proj_size", 0))
    parts = []
    for name, size in zip(spec.state_parts, model.state_sizes(), strict=True):
        bounds = None
        if name == "h" and not projected:
            bounds = spec.hidden_bounds or getattr(activation, "bounds", None)
        if bounds is None:
            parts.append(torch.randn(n, size, generator=generator, dtype=dtype))
        else:
            lo, hi = bounds
            parts.append(lo + (hi - lo) * torch.rand(n, size, generator=generator, dtype=dtype))
    device = model.weight_hh_l0.device
    return torch.cat(parts, dim=-1).to(device)


def _constant_input(
    model: RecurrentModel,
    spec: CellSpec,
    constant_input: Any,
    rec: Recording | None,
    layer: int,
    reverse: bool,
    dtype: torch.dtype,
) -> Tensor:
    """x* for the layer, (I_l,) (see `fixed_points`)."""
    device = model.weight_hh_l0.device
    if isinstance(constant_input, str):
        if constant_input != "mean":
            raise ValueError(
                f"constant_input must be None, a tensor (I,) or 'mean', got {constant_input!r}"
            )
        if rec is None:
            raise ValueError("constant_input='mean' needs inputs (a tensor or a Recording)")
        lr = rec.layer(layer, reverse)
        return lr.inputs[lr.step_mask.to(lr.inputs.device)].to(dtype).mean(0).to(device)
    I = model.input_size
    if constant_input is None:
        x = torch.zeros(I, dtype=dtype, device=device)
    elif isinstance(constant_input, Tensor):
        if tuple(constant_input.shape) != (I,):
            raise ValueError(
                f"constant_input must have shape (I,) = ({I},), the model's input size, "
                f"got {tuple(constant_input.shape)}"
            )
        if not torch.isfinite(constant_input).all():
            raise ValueError("constant_input contains NaN or Inf")
        x = constant_input.detach().to(dtype=dtype, device=device)
    else:
        raise ValueError(
            "constant_input must be None, a tensor (I,) or 'mean', "
            f"got {type(constant_input).__name__}"
        )
    return _settled_input(model, spec, x, layer) if layer > 0 else x


def _settled_input(model: RecurrentModel, spec: CellSpec, x: Tensor, layer: int) -> Tensor:
    """Layer `layer`'s input when the model's input is held at x (I,): the output of the layers
    below after `_SETTLE_STEPS` steps from the zero state (the middle step when they are
    bidirectional), (D·N,)."""
    D, K = model.num_directions, _SETTLE_STEPS
    seq = x.expand(2 * K + 1 if D == 2 else K, 1, -1).contiguous()
    for below in range(layer):
        zeros = [seq.new_zeros(D, 1, size) for size in model.state_sizes()]
        seq = model.layer_forward(seq, spec.join_state(zeros), below)[0]
    at = K if D == 2 else seq.shape[0] - 1
    settled, before = seq[at, 0], seq[at - 1, 0]
    change = float((settled - before).abs().max())
    if not change <= math.sqrt(torch.finfo(x.dtype).eps) * (1 + float(settled.abs().max())):
        warnings.warn(
            f"the layers below layer {layer} have not settled under the constant input "
            f"(their output still moves by {change:.3g} per step after {K} steps); layer "
            f"{layer}'s x* is a snapshot of it. constant_input='mean' with inputs uses the "
            "layer's mean recorded input instead",
            RuntimeWarning,
            stacklevel=5,  # the caller of fixed_points (under its no_grad wrapper)
        )
    return settled.clone()


# ----- deduplication and the linearisation ----------------------------------------------------
def _deduplicate(states: Tensor, q: Tensor, tolerance: float) -> tuple[Tensor, Tensor]:
    """Greedy merge, lowest q first: the indices of the kept points (into `states`, sorted by
    q) and how many end points each absorbed, (P',) each."""
    n = states.shape[0]
    if n == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    order = torch.sort(q, stable=True).indices
    ordered = states[order]
    close = (torch.cdist(ordered, ordered, p=math.inf) <= tolerance).cpu().numpy()
    owner = [-1] * n
    kept, counts = [], []
    for i in range(n):
        if owner[i] != -1:
            continue
        members = [j for j in close[i].nonzero()[0].tolist() if owner[j] == -1]
        for j in members:
            owner[j] = i
        kept.append(int(order[i]))
        counts.append(len(members))
    return torch.tensor(kept, dtype=torch.long), torch.tensor(counts, dtype=torch.long)


def _time_constants(modulus: Tensor) -> Tensor:
    """τ = −1/ln|λ| (P, S): 0 at λ = 0, inf at |λ| = 1, NaN for |λ| > 1."""
    tau = -1.0 / torch.log(modulus)
    tau = torch.where(modulus == 1, math.inf, tau)
    return torch.where(modulus > 1, math.nan, tau)


def _stability(modulus: Tensor, marginal_tol: float) -> str:
    """The class of one point from its |λ| (S,)."""
    if bool(((modulus - 1).abs() <= marginal_tol).any()):
        return "marginal"
    if bool((modulus < 1).all()):
        return "stable"
    if bool((modulus > 1).all()):
        return "unstable"
    return "saddle"
