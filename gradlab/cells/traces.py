"""Analytic per-cell calculus over a recorded trajectory: the engine of `gradlab.record`.

A trace holds one layer and direction's trajectory in processing order — inputs x_1..x_T and
states h_0..h_T — and recomputes every gate for all t at once (h_{t-1} is known, so it is one
batched matmul over T·B). From the gates it precomputes the coefficients of the step Jacobian

    J_t = ∂s_t/∂s_{t-1} = Σ_k diag(u_{t,k}) W_k (+ diagonal terms),

where W_k is gate k's N×N block of W_hh. Everything else follows from those coefficients:
- `adjoint`: the BPTT scan t = T…1, one (B, G·N)×(G·N, N) matmul per step;
- `jvp` / `vjp`: J_t V and J_tᵀ U for a batch of (S, m) blocks, without forming J_t;
- `step_jacobian_fro`: ‖J_t‖_F for all t from row Gram matrices of W_hh, without forming J_t.

Shapes: T steps, B batch, N hidden units, I inputs, G gates (RNN 1, LSTM 4, GRU 3), S the state
size (N, or 2N for an LSTM whose state is (h, c)).
"""

from __future__ import annotations

import functools
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from gradlab.cells.activations import Activation
from gradlab.cells.models import LayerWeights

__all__ = [
    "GRUTrace",
    "LSTMTrace",
    "RNNTrace",
    "Trace",
    "activation_slope",
    "outer_product_norms",
]


def _gate_blocks(weight_hh: Tensor, gates: int) -> Tensor:
    """W_hh (G·N, N) as (G, N, N) gate blocks."""
    N = weight_hh.shape[1]
    return weight_hh.reshape(gates, N, N)


def _row_gram(weight_hh: Tensor, gates: int) -> Tensor:
    """M[k, l, i] = <W_k[i, :], W_l[i, :]>, (G, G, N): the row inner products of gate blocks."""
    blocks = _gate_blocks(weight_hh, gates)
    return torch.einsum("kij,lij->kli", blocks, blocks)


def _preactivations(weights: LayerWeights, inputs: Tensor, hidden: Tensor) -> Tensor:
    """W_ih x_t + b_ih + W_hh h_{t-1} + b_hh for all t at once: two GEMMs over T·B, (T, B, G·N)."""
    T, B = inputs.shape[0], inputs.shape[1]
    w = weights
    flat_inputs, flat_hidden = inputs.reshape(T * B, -1), hidden[:-1].reshape(T * B, -1)
    if w.bias_ih is None or w.bias_hh is None:
        pre = flat_inputs @ w.weight_ih.T
    else:
        pre = torch.addmm(w.bias_ih + w.bias_hh, flat_inputs, w.weight_ih.T)
    return pre.addmm_(flat_hidden, w.weight_hh.T).view(T, B, -1)


def activation_slope(
    activation: Activation, hidden: Tensor, preactivations: Callable[[], Tensor], twin: bool
) -> Tensor:
    """φ'(a_t) for t = 1..T, (T, B, N), of a cell h_t = φ(a_t) with states `hidden` (T+1, B, N).

    From the recorded h_t alone where the activation's output determines φ'
    (`Activation.output_derivative`), else from a_t = `preactivations()`. A `twin` (states
    recorded in another dtype, so h_t is not φ(a_t) in this one) always recomputes a_t."""
    if activation.output_derivative is not None and not twin:
        return activation.output_derivative(hidden[1:])
    pre = preactivations()
    return activation.derivative(pre, activation.fn(pre) if twin else hidden[1:])


# (steps, B, N) entries per chunk of elementwise work: 1 MB float32, within a core's L2, and
# big enough that one gate's slice of a chunk (>= 64K entries) is split across two threads
# (torch's grain is 32K entries). Measured on 2 cores (LSTM T=100 N=128 B=32, record / fused):
# 1.20x at 2 threads and 1.13x at 1 with 2^18, 1.62x and 1.20x with 2^16.
_CHUNK_ENTRIES = 1 << 18


def _step_chunks(T: int, per_step: int, device: torch.device) -> list[slice]:
    """Slices of the steps 0..T-1 of about `_CHUNK_ENTRIES` entries each (`per_step` a step):
    on a CPU a chain of elementwise ops run chunk by chunk stays in cache instead of streaming
    every (T, B, N) operand through memory once per op (the results are the same, entry by
    entry). Elsewhere (a GPU: one kernel launch per op and chunk) all steps are one chunk."""
    if device.type != "cpu":
        return [slice(0, T)]
    size = max(1, _CHUNK_ENTRIES // max(1, per_step))
    return [slice(start, min(T, start + size)) for start in range(0, T, size)]


def _unit_quadratic_form(coefs: Sequence[Tensor], gram: Tensor) -> Tensor:
    """Σ_{k,l} u_k gram[k, l] u_l per unit (no sum over units), u_k (T, B, N), gram (G, G, N).

    That is ‖Σ_k u_k,i W_k[i, :]‖² for every row i of a step Jacobian Σ_k diag(u_k) W_k.
    """
    total: Tensor | None = None
    for k, u_k in enumerate(coefs):
        weighted = gram[k, k] * u_k
        for l in range(k + 1, len(coefs)):
            weighted = weighted.addcmul_(coefs[l], gram[k, l], value=2.0)
        term = weighted.mul_(u_k)
        total = term if total is None else total.add_(term)
    if total is None:
        raise ValueError("no coefficients: a step Jacobian has at least one gate block")
    return total


def outer_product_norms(delta: Tensor, right: Tensor) -> Tensor:
    """‖Σ_b δ_t,b r_t,bᵀ‖_F for every step t, (T,), δ (T, B, R), r (T, B, K), without forming
    the (T, R, K) products where that is cheaper: ‖Σ_b δ_b r_bᵀ‖_F² = Σ_{b,b'} (δ_b·δ_b')(r_b·r_b'),
    two (B, B) Gram matrices per step."""
    B, rows, cols = delta.shape[1], delta.shape[2], right.shape[2]
    if B * (rows + cols) <= rows * cols:
        gram = (delta @ delta.transpose(1, 2)) * (right @ right.transpose(1, 2))
        return gram.sum((1, 2)).clamp_min(0).sqrt()
    chunk = max(1, (1 << 24) // (rows * cols))  # bound the (chunk, R, K) buffer
    return torch.cat(
        [
            torch.linalg.matrix_norm(d.transpose(1, 2) @ r)
            for d, r in zip(delta.split(chunk), right.split(chunk), strict=True)
        ]
    )


# ----- the per-step loops -------------------------------------------------------------------
# Each loop is a plain function that TorchScript compiles as it is (`_scripted`): the same
# kernels in the same order, so the results are bitwise the plain function's, without Python's
# per-op overhead (at B = 1 that overhead was most of a record's time). Every per-step view is
# made up front by one `unbind` per tensor (a list index in the loop, not a `select` op per step).
# Shapes as in the traces.


def _rnn_scan(direct: Tensor, slope: Tensor, weight_hh: Tensor) -> tuple[Tensor, Tensor]:
    """The vanilla RNN's adjoint scan: (grad (T+1, B, N), delta (T, B, N))."""
    T, B, N = slope.shape[0], slope.shape[1], slope.shape[2]
    grad = torch.empty((T + 1, B, N), dtype=direct.dtype, device=direct.device)
    delta = torch.empty((T, B, N), dtype=direct.dtype, device=direct.device)
    grad[T] = direct[T - 1]
    grads, deltas, slopes, directs = (
        grad.unbind(0),
        delta.unbind(0),
        slope.unbind(0),
        direct.unbind(0),
    )
    for t in range(T, 0, -1):  # the adjoint is written in place: grad[t-1] from grad[t]
        step = torch.mul(grads[t], slopes[t - 1], out=deltas[t - 1])
        if t > 1:
            torch.addmm(directs[t - 2], step, weight_hh, out=grads[t - 1])
        else:
            torch.mm(step, weight_hh, out=grads[0])
    return grad, delta


def _lstm_scan(
    direct: Tensor,
    direct_cell: Tensor | None,
    dc: Tensor,
    dh_c: Tensor,
    dh_o: Tensor,
    forget: Tensor,
    weight_hh: Tensor,
    projection: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The LSTM's adjoint scan: (grad_h (T+1, B, P), grad_c (T+1, B, H), delta (T, B, 4H)),
    all steps as one chunk (`LSTMTrace.adjoint` runs it chunk by chunk)."""
    T, B, H, P = dc.shape[0], dc.shape[1], dc.shape[3], direct.shape[2]
    grad_h = torch.empty((T + 1, B, P), dtype=direct.dtype, device=direct.device)
    grad_c = torch.empty((T + 1, B, H), dtype=direct.dtype, device=direct.device)
    delta = torch.empty((T, B, 4, H), dtype=direct.dtype, device=direct.device)
    grad_h[T] = direct[T - 1]
    gc_next = torch.zeros((B, H), dtype=direct.dtype, device=direct.device)
    coefs = (dc, dh_c, dh_o, forget, weight_hh, projection)
    gc_next = _lstm_scan_steps(grad_h, grad_c, delta, direct, direct_cell, *coefs, gc_next, None)
    grad_c[0] = gc_next
    return grad_h, grad_c, delta.view(T, B, 4 * H)


def _lstm_scan_steps(
    grad_h: Tensor,
    grad_c: Tensor,
    delta: Tensor,
    direct: Tensor,
    direct_cell: Tensor | None,
    dc: Tensor,
    dh_c: Tensor,
    dh_o: Tensor,
    forget: Tensor,
    weight_hh: Tensor,
    projection: Tensor | None,
    gc_next: Tensor,
    direct_before: Tensor | None,
) -> Tensor:
    """Steps t = T'..1 of a chunk of T' steps of the LSTM's adjoint scan, written in place:
    grad_h (T'+1, B, P) with grad_h[T'] given, grad_c (T'+1, B, H) (row 0 left to the caller),
    delta (T', B, 4, H); the chunk's direct terms and coefficients (T', ...); gc_next the ∂L/∂c
    flowing into its last step from the step after; direct_before the direct term of the step
    before the chunk (None for the first chunk). Returns the ∂L/∂c flowing out of its first."""
    T = dc.shape[0]
    grad_hs, grad_cs, directs = grad_h.unbind(0), grad_c.unbind(0), direct.unbind(0)
    dcs, dh_cs, dh_os, forgets = dc.unbind(0), dh_c.unbind(0), dh_o.unbind(0), forget.unbind(0)
    flats = delta.flatten(2).unbind(0)  # δ_t (B, 4H); its cell-path and o blocks:
    cell_parts, out_parts = delta[:, :, :3].unbind(0), delta[:, :, 3].unbind(0)
    for t in range(T, 0, -1):
        gh = grad_hs[t]
        if projection is not None:
            gh = gh @ projection
        if direct_cell is not None:
            gc_next = gc_next + direct_cell[t - 1]
        gc = torch.addcmul(gc_next, gh, dh_cs[t - 1], out=grad_cs[t])
        torch.mul(gc.unsqueeze(1), dcs[t - 1], out=cell_parts[t - 1])
        torch.mul(gh, dh_os[t - 1], out=out_parts[t - 1])
        gc_next = gc * forgets[t - 1]
        if t > 1:
            torch.addmm(directs[t - 2], flats[t - 1], weight_hh, out=grad_hs[t - 1])
        elif direct_before is not None:
            torch.addmm(direct_before, flats[0], weight_hh, out=grad_hs[0])
        else:
            torch.mm(flats[0], weight_hh, out=grad_hs[0])
    return gc_next


def _lstm_cells(ig: Tensor, forget: Tensor, c0: Tensor) -> Tensor:
    """c_0..c_T, (T+1, B, H): c_t = f_t c_{t-1} + i_t g_t from ig = i ⊙ g (T, B, H)."""
    T, B, H = ig.shape[0], ig.shape[1], ig.shape[2]
    cell = torch.empty((T + 1, B, H), dtype=ig.dtype, device=ig.device)
    cell[0] = c0
    cells, igs, forgets = cell.unbind(0), ig.unbind(0), forget.unbind(0)
    for t in range(T):
        torch.addcmul(igs[t], forgets[t], cells[t], out=cells[t + 1])
    return cell


def _gru_scan(
    direct: Tensor, coef_hh: Tensor, update: Tensor, weight_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """The GRU's adjoint scan: (grad (T+1, B, N), delta_hh (T, B, 3N))."""
    T, B, N = update.shape[0], update.shape[1], update.shape[2]
    grad = torch.empty((T + 1, B, N), dtype=direct.dtype, device=direct.device)
    delta = torch.empty((T, B, 3, N), dtype=direct.dtype, device=direct.device)
    grad[T] = direct[T - 1]
    grads, directs, coefs, updates = (
        grad.unbind(0),
        direct.unbind(0),
        coef_hh.unbind(0),
        update.unbind(0),
    )
    steps, flats = delta.unbind(0), delta.view(T, B, 3 * N).unbind(0)
    for t in range(T, 0, -1):
        g = grads[t]
        torch.mul(g.unsqueeze(1), coefs[t - 1], out=steps[t - 1])
        if t > 1:
            through = torch.addmm(directs[t - 2], flats[t - 1], weight_hh, out=grads[t - 1])
        else:
            through = torch.mm(flats[0], weight_hh, out=grads[0])
        through.addcmul_(g, updates[t - 1])
    return grad, delta.view(T, B, 3 * N)


@functools.cache
def _scripted(loop: Callable[..., Any]) -> Callable[..., Any]:
    """`loop` compiled by TorchScript once per process (on first use: importing stays cheap),
    or `loop` itself where TorchScript cannot compile it (it is deprecated in torch 2.x: its
    warning is silenced here, and a torch without it falls back to the plain loop)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(loop)
    except Exception:  # any failure to compile: the plain loop is the reference
        return loop


class Trace(ABC):
    """Common state of a trace; subclasses implement the cell's formulas.

    `inputs` (T, B, I) and `hidden` (T+1, B, N) are in processing order (a reverse direction's
    inputs are flipped before they get here).
    """

    gate_names: tuple[str, ...] = ()
    gates: dict[str, Tensor]

    def __init__(self, weights: LayerWeights, inputs: Tensor, hidden: Tensor) -> None:
        self.weights = weights
        self.inputs = inputs  # (T, B, I)
        self.hidden = hidden  # (T+1, B, N)
        self.T, self.B, self.N = hidden.shape[0] - 1, hidden.shape[1], hidden.shape[2]

    @classmethod
    def build(
        cls,
        weights: LayerWeights,
        inputs: Tensor,
        hidden: Tensor,
        initial: tuple[Tensor, ...] = (),
        activation: Activation | None = None,
        recorded: tuple[Tensor, ...] | None = None,
    ) -> Trace:
        """The trace from what `record` has: h_0..h_T (T+1, B, N), the other state parts'
        initial values `initial` (e.g. c_0 (B, N)) and the model's activation (or None).

        `recorded`: the other state parts' whole trajectories ((T+1, B, N) each, () for none)
        of a recording made in another dtype; the trace is then its *twin* on that trajectory
        in this dtype: every step starts from the recorded state and nothing is read off a
        recorded output (φ'(a_t) comes from a_t alone)."""
        return cls(weights, inputs, hidden)

    @property
    def state_size(self) -> int:
        return self.N

    @property
    def cell_state(self) -> Tensor | None:
        """LSTM c_0..c_T (T+1, B, N); None for cells without one."""
        return None

    def state(self) -> Tensor:
        """s_0..s_T, (T+1, B, S)."""
        return self.hidden

    @abstractmethod
    def adjoint(self, direct: Tensor) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
        """BPTT scan from the direct gradient into h_1..h_T, (T, B, N).

        Returns grad_hidden (T+1, B, N) = total ∂L/∂h_t, grad_cell (LSTM, else None), and the
        gradients at W_hh's and W_ih's pre-activations, delta_hh and delta_ih, (T, B, G·N).
        """

    @abstractmethod
    def jvp(self, t: int, V: Tensor, samples: Tensor | None = None) -> Tensor:
        """J_t V for V (B', S, m); `samples` picks the batch rows B' (all when None)."""

    @abstractmethod
    def vjp(self, t: int, U: Tensor, samples: Tensor | None = None) -> Tensor:
        """J_tᵀ U for U (B', S, m)."""

    @abstractmethod
    def step_jacobian_fro(self) -> Tensor:
        """‖J_t‖_F for t = 1..T, (T, B)."""

    def weight_hh_contributions(self, delta_hh: Tensor, previous: Tensor) -> Tensor:
        """Step k's term of ∂L/∂W_hh, (T, *weight_hh.shape), from δ_k (T, B, G·N) and h_{k-1}
        `previous` (T, B, N): Σ_b δ_k h_{k-1}ᵀ for a matrix W_hh (G·N, N). A cell whose W_hh has
        another shape overrides this and `weight_hh_contribution_norms`."""
        return torch.einsum("tbg,tbk->tgk", delta_hh, previous)

    def weight_hh_contribution_norms(self, delta_hh: Tensor, previous: Tensor) -> Tensor:
        """Frobenius norms of `weight_hh_contributions`, (T,), without forming them. Must be a
        norm of a form bilinear in (δ, h) (callers rescale both factors by powers of two)."""
        return outer_product_norms(delta_hh, previous)

    @staticmethod
    def _pick(x: Tensor, samples: Tensor | None) -> Tensor:
        return x if samples is None else x[samples]


class RNNTrace(Trace):
    """h_t = φ(a_t), a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh; J_t = diag(φ'(a_t)) W_hh."""

    def __init__(
        self,
        weights: LayerWeights,
        inputs: Tensor,
        hidden: Tensor,
        activation: Activation,
        twin: bool = False,
    ) -> None:
        """`twin`: the states come from a recording in another dtype, so h_t is not φ(a_t) in
        this dtype and φ'(a_t) is computed from a_t alone."""
        super().__init__(weights, inputs, hidden)
        preactivations = functools.partial(_preactivations, weights, inputs, hidden)
        self.slope = activation_slope(activation, hidden, preactivations, twin)  # (T, B, N)
        self.gates = {}

    @classmethod
    def build(cls, weights, inputs, hidden, initial=(), activation=None, recorded=None) -> RNNTrace:
        if activation is None:
            raise ValueError("a vanilla RNN trace needs the model's activation")
        return cls(weights, inputs, hidden, activation, twin=recorded is not None)

    def adjoint(self, direct: Tensor) -> tuple[Tensor, None, Tensor, Tensor]:
        grad, delta = _scripted(_rnn_scan)(direct, self.slope, self.weights.weight_hh)
        return grad, None, delta, delta

    def jvp(self, t: int, V: Tensor, samples: Tensor | None = None) -> Tensor:
        slope = self._pick(self.slope[t - 1], samples)
        return slope.unsqueeze(-1) * (self.weights.weight_hh @ V)

    def vjp(self, t: int, U: Tensor, samples: Tensor | None = None) -> Tensor:
        slope = self._pick(self.slope[t - 1], samples)
        return self.weights.weight_hh.T @ (slope.unsqueeze(-1) * U)

    def step_jacobian_fro(self) -> Tensor:
        row_norms2 = self.weights.weight_hh.square().sum(1)  # (N,)
        return (self.slope.square() @ row_norms2).sqrt()


class LSTMTrace(Trace):
    """LSTM, gates (i, f, g, o): c_t = f c_{t-1} + i g, h_t = o tanh(c_t); state s_t = (h_t, c_t).

    With gate pre-activations a = W_ih x + b_ih + W_hh h_{t-1} + b_hh:
      ∂c_t = dc_i ∂a_i + dc_f ∂a_f + dc_g ∂a_g + f ∂c_{t-1},
      ∂h_t = dh_c ∂c_t + dh_o ∂a_o,
    with dc_i = g·i(1-i), dc_f = c_{t-1}·f(1-f), dc_g = i(1-g²), dh_o = tanh(c_t)·o(1-o),
    dh_c = o(1-tanh²(c_t)).

    With a projection (torch's proj_size P): h_t = W_hr m_t, m_t = o tanh(c_t) (T, B, N), so
    h has P units, W_hh is (4N, P) and ∂h_t = W_hr (dh_c ∂c_t + dh_o ∂a_o); the state is
    (h_t, c_t) of size P + N. `N` is h's size (P), `H` the cell's (N).
    """

    gate_names = ("i", "f", "g", "o")

    def __init__(
        self,
        weights: LayerWeights,
        inputs: Tensor,
        hidden: Tensor,
        c0: Tensor,
        cell: Tensor | None = None,
    ) -> None:
        """`cell`: c_0..c_T (T+1, B, N) of a recording in another dtype, for its twin on the same
        trajectory: step t then starts from the recorded c_{t-1}, and its own f c_{t-1} + i g
        (not the recorded c_t) feeds h_t = o tanh(·). Without it c is computed from c0."""
        super().__init__(weights, inputs, hidden)
        pre = _preactivations(weights, inputs, hidden)
        H = self.H = weights.weight_hh.shape[0] // 4
        self.projection = weights.weight_hr  # (P, N) or None
        T, B = self.T, self.B
        i, f, _, o = pre.chunk(4, dim=-1)
        # g = tanh(a_g) in a contiguous buffer: at 2 threads torch's tanh of a strided slice
        # took 3x as long as a copy and the tanh of the copy
        g = pre.new_empty(T, B, H)
        ig = pre.new_empty(T, B, H)
        for steps in _step_chunks(T, B * 4 * H, pre.device):  # the gates, chunk by chunk
            g[steps].copy_(pre[steps, :, 2 * H : 3 * H]).tanh_()
            pre[steps, :, : 2 * H].sigmoid_()
            pre[steps, :, 3 * H :].sigmoid_()
            torch.mul(i[steps], g[steps], out=ig[steps])
        if cell is None:
            cell = _scripted(_lstm_cells)(ig, f, c0)  # c_t = f_t c_{t-1} + i_t g_t
            tanh_c = cell[1:].tanh()
        else:
            tanh_c = torch.addcmul(ig, f, cell[:-1]).tanh_()
        self.cell = cell
        self.gates = {"i": i, "f": f, "g": g, "o": o}
        self.forget = f
        # m_t = o tanh(c_t), what W_hr projects (its contributions' right factor)
        self.projected = None if self.projection is None else o * tanh_c
        # Coefficients of the cell path (i, f, g), (T, B, 3, N), and of h's own terms, filled
        # chunk by chunk when first needed: the adjoint scan fills each chunk right before it
        # scans it (last chunk first), so it reads them from cache.
        self._dc = pre.new_empty(T, B, 3, H)
        self._dh_o, self._dh_c = pre.new_empty(T, B, H), pre.new_empty(T, B, H)
        self._tanh_c: Tensor | None = tanh_c  # dropped once every chunk is filled
        self._chunks = _step_chunks(T, B * 4 * H, pre.device)
        self._unfilled = set(range(len(self._chunks)))

    def _fill(self, chunk: int) -> None:
        """The coefficients of the steps of chunk `chunk` (an index into `self._chunks`)."""
        if chunk not in self._unfilled:
            return
        steps, tanh_c = self._chunks[chunk], self._tanh_c
        assert tanh_c is not None
        g = self.gates
        i_, f_, g_, o_, t_ = (
            g["i"][steps],
            g["f"][steps],
            g["g"][steps],
            g["o"][steps],
            tanh_c[steps],
        )
        dc = self._dc
        one = i_.new_ones(())
        torch.mul(torch.addcmul(i_, i_, i_, value=-1.0), g_, out=dc[steps, :, 0])
        torch.mul(torch.addcmul(f_, f_, f_, value=-1.0), self.cell[steps], out=dc[steps, :, 1])
        torch.mul(torch.addcmul(one, g_, g_, value=-1.0), i_, out=dc[steps, :, 2])
        torch.addcmul(o_, o_, o_, value=-1.0, out=self._dh_o[steps]).mul_(t_)
        torch.addcmul(one, t_, t_, value=-1.0, out=self._dh_c[steps]).mul_(o_)
        self._unfilled.discard(chunk)
        if not self._unfilled:
            self._tanh_c = None

    def _filled(self) -> tuple[Tensor, Tensor, Tensor]:
        """(dc (T, B, 3, N), dh_o (T, B, N), dh_c (T, B, N)), every chunk filled."""
        for chunk in sorted(self._unfilled):
            self._fill(chunk)
        return self._dc, self._dh_o, self._dh_c

    @property
    def dc(self) -> Tensor:
        """∂c_t/∂a_k of the cell-path gates k = (i, f, g): g·i(1-i), c_{t-1}·f(1-f), i(1-g²),
        (T, B, 3, N)."""
        return self._filled()[0]

    @property
    def dh_o(self) -> Tensor:
        """∂h_t/∂a_o = tanh(c_t)·o(1-o), (T, B, N) (before a projection)."""
        return self._filled()[1]

    @property
    def dh_c(self) -> Tensor:
        """∂h_t/∂c_t = o(1-tanh²(c_t)), (T, B, N) (before a projection)."""
        return self._filled()[2]

    @classmethod
    def build(
        cls, weights, inputs, hidden, initial=(), activation=None, recorded=None
    ) -> LSTMTrace:
        (c0,) = initial
        return cls(weights, inputs, hidden, c0, None if recorded is None else recorded[0])

    @property
    def state_size(self) -> int:
        return self.N + self.H

    @property
    def cell_state(self) -> Tensor:
        return self.cell

    def state(self) -> Tensor:
        return torch.cat((self.hidden, self.cell), dim=-1)

    def adjoint(
        self, direct: Tensor, direct_cell: Tensor | None = None, final_cell: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """`direct_cell`: a direct term into c_1..c_T (T, B, N) too (∂L/∂c_n of a head that
        reads the final cell state of sequences of different lengths), or None; `final_cell`:
        one into c_T alone (B, N) (the same as a `direct_cell` that is 0 before step T), or
        None."""
        scan = _scripted(_lstm_scan_steps)
        T, B, H, P = self.T, self.B, self.H, direct.shape[2]
        grad_h = direct.new_empty(T + 1, B, P)
        grad_c = direct.new_empty(T + 1, B, H)
        delta = direct.new_empty(T, B, 4, H)
        grad_h[T] = direct[T - 1]
        gc_next = direct.new_zeros(B, H) if final_cell is None else final_cell
        W = self.weights.weight_hh
        for chunk in range(len(self._chunks) - 1, -1, -1):  # last chunk first
            self._fill(chunk)
            steps = self._chunks[chunk]
            first, stop = steps.start, steps.stop
            gc_next = scan(
                grad_h[first : stop + 1],
                grad_c[first : stop + 1],
                delta[steps],
                direct[steps],
                None if direct_cell is None else direct_cell[steps],
                self._dc[steps],
                self._dh_c[steps],
                self._dh_o[steps],
                self.forget[steps],
                W,
                self.projection,
                gc_next,
                direct[first - 1] if first > 0 else None,
            )
        grad_c[0] = gc_next
        flat = delta.view(T, B, 4 * H)
        return grad_h, grad_c, flat, flat

    def jvp(self, t: int, V: Tensor, samples: Tensor | None = None) -> Tensor:
        P, H = self.N, self.H
        dc = self._pick(self.dc[t - 1], samples).unsqueeze(-1)  # (B', 3, N, 1)
        f = self._pick(self.forget[t - 1], samples).unsqueeze(-1)
        dh_c = self._pick(self.dh_c[t - 1], samples).unsqueeze(-1)
        dh_o = self._pick(self.dh_o[t - 1], samples).unsqueeze(-1)
        Vh, Vc = V[:, :P], V[:, P:]
        da = (self.weights.weight_hh @ Vh).unflatten(1, (4, H))  # (B', 4, N, m)
        d_cell = (dc * da[:, :3]).sum(1) + f * Vc
        d_hidden = dh_c * d_cell + dh_o * da[:, 3]
        if self.projection is not None:
            d_hidden = self.projection @ d_hidden
        return torch.cat((d_hidden, d_cell), dim=1)

    def vjp(self, t: int, U: Tensor, samples: Tensor | None = None) -> Tensor:
        P = self.N
        dc = self._pick(self.dc[t - 1], samples).unsqueeze(-1)
        f = self._pick(self.forget[t - 1], samples).unsqueeze(-1)
        dh_c = self._pick(self.dh_c[t - 1], samples).unsqueeze(-1)
        dh_o = self._pick(self.dh_o[t - 1], samples).unsqueeze(-1)
        Uh, Uc = U[:, :P], U[:, P:]
        if self.projection is not None:
            Uh = self.projection.T @ Uh
        gc = Uh * dh_c + Uc
        delta = torch.cat((dc * gc.unsqueeze(1), (dh_o * Uh).unsqueeze(1)), dim=1)
        out_h = self.weights.weight_hh.T @ delta.flatten(1, 2)
        return torch.cat((out_h, gc * f), dim=1)

    def step_jacobian_fro(self) -> Tensor:
        if self.projection is not None:  # no closed form kept: J_t's columns, one step at a time
            S = self.state_size
            eye = torch.eye(S, dtype=self.hidden.dtype, device=self.hidden.device)
            eye = eye.expand(self.B, S, S)
            steps = range(1, self.T + 1)
            return torch.stack([torch.linalg.matrix_norm(self.jvp(t, eye)) for t in steps])
        # Rows of ∂h_t/∂h_{t-1}: Σ_k u_k W_k[i] with u = (dh_c·dc_i, dh_c·dc_f, dh_c·dc_g, dh_o);
        # rows of ∂c_t/∂h_{t-1}: Σ_k v_k W_k[i] with v = (dc_i, dc_f, dc_g, 0); the (h, c) and
        # (c, c) blocks are diagonal: dh_c·f and f.
        gram = _row_gram(self.weights.weight_hh, 4)  # (4, 4, N)
        squares = self.forget.new_empty(self.T, self.B)
        per_step = self.B * 4 * self.H
        for chunk in _step_chunks(self.T, per_step, squares.device):  # chunk by chunk (in cache)
            dc = self.dc[chunk].unbind(2)
            cell_rows = _unit_quadratic_form(dc, gram[:3, :3])  # ‖row of ∂c_t/∂h_{t-1}‖²
            cross = sum(c * gram[k, 3] for k, c in enumerate(dc))  # Σ_k dc_k <W_k[i], W_o[i]>
            dh_c, dh_o, f = self.dh_c[chunk], self.dh_o[chunk], self.forget[chunk]
            hidden_rows = dh_c.square().mul_(cell_rows).addcmul_(dh_c, dh_o * cross, value=2.0)
            hidden_rows.addcmul_(dh_o.square(), gram[3, 3].expand_as(dh_o))
            diagonal = (dh_c.square() + 1).mul_(f.square())  # (dh_c f)² + f²
            torch.sum(hidden_rows + cell_rows + diagonal, -1, out=squares[chunk])
        return squares.sqrt_()


class GRUTrace(Trace):
    """GRU, gates (r, z, n): n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1-z) n + z h.

    J_t = diag(u_r) W_hr + diag(u_z) W_hz + diag(u_n) W_hn + diag(z) with
    u_n = (1-z)(1-n²) r, u_r = (1-z)(1-n²)(W_hn h + b_hn) r(1-r), u_z = (h - n) z(1-z).
    """

    gate_names = ("r", "z", "n")

    def __init__(self, weights: LayerWeights, inputs: Tensor, hidden: Tensor) -> None:
        super().__init__(weights, inputs, hidden)
        T, B, N, w = self.T, self.B, self.N, weights
        # memory: the gates overwrite W_ih x + b_ih (one (T, B, 3N) buffer holds r, z, n)
        from_input = inputs.new_empty(T, B, 3 * N)
        rz, n = from_input[..., : 2 * N], from_input[..., 2 * N :]
        # J_t's coefficients (u_r, u_z, u_n), (T, B, 3, N), written in place (no stacked
        # copies); W_ih's pre-activation gradients take (u_r, u_z, dn): dn is kept apart
        self.coef_hh = coef = rz.new_empty(T, B, 3, N)
        self.dn = dn = rz.new_empty(T, B, N)  # ∂h'/∂(n's pre-activation)
        chunks = _step_chunks(T, B * N, rz.device)
        # per chunk: both GEMMs (W_hh h + b_hh into one reused buffer: on a CPU never a
        # (T, B, 3N) array) and the gates while the chunk is in cache; n's tanh runs on a
        # contiguous chunk, then goes back into its strided slot (at 2 threads torch's tanh of
        # the strided slice took 3x as long)
        rows = (chunks[0].stop - chunks[0].start) * B
        from_hidden = rz.new_empty(rows, 3 * N)  # W_hh h_{t-1} + b_hh of one chunk
        contiguous = rz.new_empty(rows * N)
        for steps in chunks:
            size = (steps.stop - steps.start) * B
            inp = from_input[steps].view(size, 3 * N)
            torch.mm(inputs[steps].reshape(size, -1), w.weight_ih.T, out=inp)
            hid = torch.mm(hidden[steps].reshape(size, -1), w.weight_hh.T, out=from_hidden[:size])
            if w.bias_ih is not None and w.bias_hh is not None:
                inp.add_(w.bias_ih)
                hid.add_(w.bias_hh)
            inp, hid = inp.view(-1, B, 3 * N), hid.view(-1, B, 3 * N)
            gate = inp[..., : 2 * N].add_(hid[..., : 2 * N]).sigmoid_()
            r, z, hn = gate[..., :N], gate[..., N:], hid[..., 2 * N :]
            slot = inp[..., 2 * N :]
            new = torch.addcmul(slot, r, hn, out=contiguous[: slot.numel()].view(slot.shape))
            slot.copy_(new.tanh_())  # the gates keep n; the rest of this chunk reads the copy
            one_minus_z = 1 - z
            d = torch.mul(new, new, out=dn[steps]).neg_().add_(1).mul_(one_minus_z)  # 1 - n²
            torch.mul(d, hn, out=coef[steps, :, 0]).mul_(r).mul_(1 - r)  # u_r
            torch.sub(hidden[steps], new, out=coef[steps, :, 1]).mul_(z).mul_(one_minus_z)
            torch.mul(d, r, out=coef[steps, :, 2])  # u_n
        r, z = rz[..., :N], rz[..., N:]
        self.gates = {"r": r, "z": z, "n": n}
        self.update = z

    def adjoint(self, direct: Tensor) -> tuple[Tensor, None, Tensor, Tensor]:
        scan = _scripted(_gru_scan)
        grad, delta = scan(direct, self.coef_hh, self.update, self.weights.weight_hh)
        T, B, N = self.T, self.B, self.N
        # δ_ih shares δ_hh's r and z blocks; its n block is ∂L/∂h_t ⊙ dn (no r factor)
        delta_ih = delta.new_empty(T, B, 3, N)
        delta_ih[:, :, :2] = delta.view(T, B, 3, N)[:, :, :2]
        torch.mul(grad[1:], self.dn, out=delta_ih[:, :, 2])
        return grad, None, delta, delta_ih.view(T, B, 3 * N)

    def jvp(self, t: int, V: Tensor, samples: Tensor | None = None) -> Tensor:
        coef = self._pick(self.coef_hh[t - 1], samples).unsqueeze(-1)  # (B', 3, N, 1)
        z = self._pick(self.update[t - 1], samples).unsqueeze(-1)
        da = (self.weights.weight_hh @ V).unflatten(1, (3, self.N))
        return (coef * da).sum(1) + z * V

    def vjp(self, t: int, U: Tensor, samples: Tensor | None = None) -> Tensor:
        coef = self._pick(self.coef_hh[t - 1], samples).unsqueeze(-1)
        z = self._pick(self.update[t - 1], samples).unsqueeze(-1)
        delta = (coef * U.unsqueeze(1)).flatten(1, 2)
        return self.weights.weight_hh.T @ delta + z * U

    def step_jacobian_fro(self) -> Tensor:
        W = self.weights.weight_hh
        gram = _row_gram(W, 3)
        block_diag = torch.diagonal(_gate_blocks(W, 3), dim1=1, dim2=2)  # (3, N): W_k[i, i]
        squares = self.update.new_empty(self.T, self.B)
        for steps in _step_chunks(self.T, self.B * self.N, squares.device):
            u, z = self.coef_hh[steps], self.update[steps]
            rows = _unit_quadratic_form(u.unbind(2), gram)
            cross = (u * block_diag).sum(2).mul_(z)
            torch.sum(rows.add_(cross, alpha=2).add_(z.square()), -1, out=squares[steps])
        return squares.sqrt_()
