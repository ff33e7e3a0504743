"""`record`: one exact pass over a batch that keeps every per-timestep quantity of BPTT.

record = forward trace + adjoint scan (see DESIGN.md):
1. Each layer runs through torch's fused kernel (a plain loop only for activations torch has no
   kernel for); the gates are then recomputed for all t at once, or a vanilla cell's φ'(a_t) is
   read off the recorded states (`gradlab.cells.traces`).
2. The loss's gradient with respect to the model's output comes from one autograd call on
   `loss_fn` alone; from there one backward scan per layer and direction, top layer first,
   carries the BPTT adjoint with each cell's analytic vector-Jacobian product.
3. Contributions, Jacobians and their norms are computed on request from the stored trace.

Adjoint dtype. By default the adjoint scan runs in the model's dtype. With
`adjoint_dtype=torch.float64` a float32 model's adjoint (∂L/∂h, ∂L/∂c, the pre-activation
gradients and so the contributions and their norms) is computed in float64 on the float32
trajectory: the recorded states (h_0..h_T, an LSTM's c_0..c_T) and inputs are cast to float64 and
the gates recomputed from them in float64, so the scan is the exact float64 adjoint of the
linearisation at the recorded trajectory, and gradients that fall below float32's range (about
1e-45) after a long decay are kept. The forward quantities and the Jacobians stay in the model's
dtype, and so does ∂L/∂output (autograd through `loss_fn` and whatever head it holds), which the
scan takes cast. A log-space scan would keep the range too, but a sign-carrying log adjoint costs
a logsumexp per matrix product and is still only float32-accurate; float64 reaches down to about
1e-308 (a decay of −0.57/step over more than 1,000 steps) and is exact, for about 2.5–3× the time
of a float32 record (measured at T=1000, N=128, B=32 on one CPU thread, tanh RNN and LSTM).

Conventions: everything is time-major, (T+1, B, N) for states h_0..h_T. For a reverse direction,
index s counts processing steps: hidden[s] is the state after consuming x_{T-s+1}.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from gradlab.cells.models import LayerWeights, RecurrentModel
from gradlab.cells.registry import get_cell
from gradlab.cells.traces import Trace, outer_product_norms

__all__ = [
    "LayerRecording",
    "NonFiniteWarning",
    "Recording",
    "largest_singular_values",
    "one_thread",
    "record",
    "spectral_norms",
]

PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
_FULL_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")
_SATURATION_TOLERANCE = 0.01  # a unit is saturated within 1% of its range from a bound
_FORWARD_CHUNK = 64  # steps per call of torch's kernel in the forward pass (`_forward_states`),
_FORWARD_ENTRIES = 1 << 18  # or more while a call's (steps, B, N) output stays under this: at
# B = 1 each call's set-up cost counted (LSTM T=1000 N=128 B=1 record 2.36x -> 2.18x fused)
_RESCALE_CHUNK = 1 << 20  # entries of (δ, r) rescaled at once in `contribution_norms`


class NonFiniteWarning(RuntimeWarning):
    """The recorded dynamics produced NaN or Inf (exploding states or gradients)."""


Samples = Sequence[int] | Tensor | None


class LayerRecording:
    """Everything recorded for one layer and direction. Shapes: (T+1, B, N) for states.

    Made by `record` (the forward trace first, then `_set_adjoint` when there is a loss);
    read-only from outside.
    """

    def __init__(
        self,
        model: RecurrentModel,
        layer: int,
        reverse: bool,
        trace: Trace,
        lengths: Tensor | None = None,
    ) -> None:
        """`lengths`: each sequence's number of real steps, (B,) (None: all T)."""
        self._model = model
        self._layer = layer
        self._reverse = reverse
        self._trace = trace
        self._lengths = lengths
        self._grad_hidden: Tensor | None = None  # (T+1, B, N)
        self._grad_cell: Tensor | None = None  # (T+1, B, N), LSTM only
        self._delta_hh: Tensor | None = None  # (T, B, G·N)
        self._scale_checks: dict[str, Tensor] = {}  # factor -> (T,) out of scale, see below
        self._delta_ih: Tensor | None = None  # (T, B, G·N)
        self._step_sv: dict[int, Tensor] = {}  # batch row -> (T, S) singular values of J_t

    def _set_adjoint(
        self,
        grad_hidden: Tensor,
        grad_cell: Tensor | None,
        delta_hh: Tensor,
        delta_ih: Tensor,
    ) -> None:
        """Keep the adjoint scan's results (`Trace.adjoint`): ∂L/∂h, ∂L/∂c and the δ's."""
        self._grad_hidden, self._grad_cell = grad_hidden, grad_cell
        self._delta_hh, self._delta_ih = delta_hh, delta_ih
        self._scale_checks = {}

    def __repr__(self) -> str:
        return f"LayerRecording(layer={self._layer}, reverse={self._reverse})"

    @property
    def model(self) -> RecurrentModel:
        """The recorded model."""
        return self._model

    @property
    def layer(self) -> int:
        """Which layer (0 is the one reading x)."""
        return self._layer

    @property
    def reverse(self) -> bool:
        """Whether this is the reverse direction of a bidirectional layer."""
        return self._reverse

    @property
    def trace(self) -> Trace:
        """The forward trace (states, gates, inputs; JVP / VJP of the step map)."""
        return self._trace

    # ----- forward quantities -------------------------------------------------------------
    @property
    def hidden(self) -> Tensor:
        """h_0..h_T, (T+1, B, N)."""
        return self.trace.hidden

    @property
    def cell(self) -> Tensor:
        """LSTM c_0..c_T, (T+1, B, N)."""
        if self.trace.cell_state is None:
            raise AttributeError(f"a {self.model.cell!r} layer has no cell state")
        return self.trace.cell_state

    @property
    def gates(self) -> dict[str, Tensor]:
        """Gate activations per step, name → (T, B, N) (LSTM i, f, g, o; GRU r, z, n)."""
        return self.trace.gates

    @property
    def inputs(self) -> Tensor:
        """The layer's inputs x_1..x_T in processing order, (T, B, I)."""
        return self.trace.inputs

    @property
    def T(self) -> int:
        """Number of timesteps."""
        return self.trace.T

    @property
    def state_size(self) -> int:
        """S: N, or 2N for an LSTM (state (h, c))."""
        return self.trace.state_size

    @property
    def lengths(self) -> Tensor:
        """Each sequence's number of real steps, (B,) (all T unless the input was packed)."""
        if self._lengths is None:
            return torch.full((self.trace.B,), self.T, dtype=torch.long)
        return self._lengths

    @property
    def step_mask(self) -> Tensor:
        """(T, B) bool, True where step k = 1..T of sequence b is real (k <= its length), in
        processing order for either direction. Past its length a sequence contributes exactly
        0 and holds its state: its step Jacobians there are the identity."""
        return self._running(torch.device("cpu"))

    # ----- backward quantities ------------------------------------------------------------
    def _need_loss(self) -> tuple[Tensor, Tensor, Tensor]:
        """(∂L/∂h, δ_hh, δ_ih), or RuntimeError when the record has no loss."""
        if self._grad_hidden is None or self._delta_hh is None or self._delta_ih is None:
            raise RuntimeError("this quantity needs a loss: call record(model, x, loss_fn=...)")
        return self._grad_hidden, self._delta_hh, self._delta_ih

    @property
    def grad_hidden(self) -> Tensor:
        """Total BPTT adjoint ∂L/∂h_t for t = 0..T, (T+1, B, N)."""
        return self._need_loss()[0]

    @property
    def grad_cell(self) -> Tensor:
        """LSTM total ∂L/∂c_t for t = 0..T, (T+1, B, N)."""
        self._need_loss()
        if self._grad_cell is None:
            raise AttributeError(f"a {self.model.cell!r} layer has no cell state")
        return self._grad_cell

    def _short_name(self, name: str) -> str:
        match = _FULL_NAME.match(name)
        if match:
            if int(match[2]) != self.layer or bool(match[3]) != self.reverse:
                raise ValueError(f"{name!r} is not a parameter of this layer view")
            name = match[1]
        if name not in PARAM_NAMES:
            raise ValueError(f"unknown parameter {name!r}; expected one of {PARAM_NAMES}")
        if name.startswith("bias") and not self.model.bias:
            raise ValueError(f"the model has bias=False, so it has no {name!r}")
        if name == "weight_hr" and self.trace.weights.weight_hr is None:
            raise ValueError("only an LSTM with proj_size > 0 has 'weight_hr'")
        return name

    def _factors(self, name: str) -> tuple[Tensor, Tensor | None]:
        """(δ (T, B, G·N), right factor (T, B, K) or None for a bias) of step k's term δ_kᵀ r_k
        (W_hr of a projected LSTM: δ = ∂L/∂h_k (T, B, P), r = o_k ⊙ tanh c_k (T, B, N))."""
        grad_hidden, delta_hh, delta_ih = self._need_loss()
        name = self._short_name(name)
        if name == "weight_hr":
            projected = getattr(self.trace, "projected", None)
            assert projected is not None
            return grad_hidden[1:], projected.to(grad_hidden.dtype)
        delta = delta_hh if name.endswith("hh") else delta_ih
        if name == "weight_hh":
            return delta, self.hidden[:-1].to(delta.dtype)
        if name == "weight_ih":
            return delta, self.inputs.to(delta.dtype)
        return delta, None

    @torch.no_grad()
    def contributions(self, name: str) -> Tensor:
        """Step k's term of ∂L/∂param for k = 1..T, (T, *param.shape); summed over k it is the
        gradient. Name: "weight_hh", "weight_ih", "bias_hh", "bias_ih" (or a full torch name)."""
        delta, right = self._factors(name)
        if right is None:
            return delta.sum(1)
        if self._short_name(name) == "weight_hh":  # the cell's own recurrence (may be a vector)
            return self.trace.weight_hh_contributions(delta, right)
        return torch.einsum("tbg,tbk->tgk", delta, right)

    @torch.no_grad()
    def contribution_norms(self, name: str) -> Tensor:
        """Frobenius norms of the step-k terms, (T,), without forming (T, *param.shape).

        ‖Σ_b δ_b r_bᵀ‖_F² = Σ_{b,b'} (δ_b·δ_b')(r_b·r_b'): two (B, B) Gram matrices per step when
        that is cheaper than the (G·N, K) product itself. Steps whose factors are so small (or
        large) that their squares would leave the dtype's range are redone with both factors
        scaled by a power of two (exact): a norm is 0 only where the step's term is 0 or the
        norm itself is below the dtype's range.
        """
        delta, right = self._factors(name)
        # the cell's own recurrence may not be a (G·N, N) matrix (IndRNN: a vector): its trace
        # knows the norms; any bilinear form in (δ, r) survives the exact rescaling below
        own_recurrence = self._short_name(name) == "weight_hh"

        def product(delta: Tensor, right: Tensor) -> Tensor:
            if own_recurrence:
                return self.trace.weight_hh_contribution_norms(delta, right)
            return outer_product_norms(delta, right)

        if right is None:  # a bias: step k's term is the vector Σ_b δ_k,b
            terms = delta.sum(1)  # (T, G·N)
            norms = terms.norm(dim=-1)
            # out of scale exactly where its squares may have left the range (zero terms aside)
            redo = _norm_out_of_scale(norms) & (_step_absmax(terms) > 0)
            if bool(redo.any()):
                steps = redo.nonzero().flatten()
                scaled, scale = _rescaled(terms[steps])
                norms[steps] = scaled.norm(dim=-1) * scale
            return norms
        # two factors: each is screened once per recording (their squares meet in Gram matrices)
        short = self._short_name(name)
        redo = self._factor_out_of_scale(f"delta_{short[-2:]}", delta)
        redo = redo | self._factor_out_of_scale(short, right)
        if not bool(redo.any()):
            return product(delta, right)
        # some steps would lose their squares: scale every step's factors by powers of two
        # (exact) and take the one product on them; cheaper than redoing the steps apart.
        # In chunks of steps, so the scaled copies stay small beside the recording.
        chunk = max(1, _RESCALE_CHUNK // max(1, delta[0].numel() + right[0].numel()))
        norms = []
        for first in range(0, delta.shape[0], chunk):
            scaled, scale = _rescaled(delta[first : first + chunk])
            scaled_right, right_scale = _rescaled(right[first : first + chunk])
            norms.append(product(scaled, scaled_right) * (scale * right_scale))
        return torch.cat(norms)

    def _factor_out_of_scale(self, key: str, factor: Tensor) -> Tensor:
        """`_out_of_scale(factor)`, (T,) bool, computed once per factor of this recording
        (`key` names it: "delta_hh", "delta_ih", "weight_hh" for h_{k-1}, "weight_ih" for x_k)."""
        checked = self._scale_checks.get(key)
        if checked is None:
            checked = self._scale_checks[key] = _out_of_scale(factor)
        return checked

    # ----- Jacobians ----------------------------------------------------------------------
    def _samples(self, samples: Samples) -> Tensor | None:
        if samples is None:
            return None
        index = torch.as_tensor(samples, dtype=torch.long, device=self.hidden.device).reshape(-1)
        B = self.hidden.shape[1]
        if index.numel() == 0 or int(index.min()) < -B or int(index.max()) >= B:
            raise ValueError(f"samples must be batch indices in 0..{B - 1}, got {samples}")
        return index

    def _check_step(self, t: int, name: str = "t", low: int = 1) -> int:
        if not isinstance(t, int | torch.SymInt) or isinstance(t, bool) or not low <= t <= self.T:
            raise ValueError(f"{name} must be an integer in {low}..{self.T}, got {t!r}")
        return int(t)

    def _running(self, device: torch.device) -> Tensor:
        """(T, B) bool: step t = 1..T of sequence b happened (t <= its length)."""
        steps = torch.arange(1, self.T + 1, device=device).unsqueeze(1)
        return steps <= self.lengths.to(device).unsqueeze(0)

    def _jvp(
        self, t: int, V: Tensor, index: Tensor | None = None, transposed: bool = False
    ) -> Tensor:
        """J_t V (J_tᵀ V when `transposed`) for V (B', S, m); a sequence that has finished by
        step t holds its state, so its J_t is the identity."""
        out = self.trace.vjp(t, V, index) if transposed else self.trace.jvp(t, V, index)
        if self._lengths is None:
            return out
        running = self._running(V.device)[t - 1]
        running = running if index is None else running[index]
        return torch.where(running.view(-1, 1, 1), out, V)

    def _identity(self, index: Tensor | None) -> Tensor:
        B = self.hidden.shape[1] if index is None else index.numel()
        S, h = self.state_size, self.hidden
        return torch.eye(S, dtype=h.dtype, device=h.device).expand(B, S, S).clone()

    @torch.no_grad()
    def step_jacobian(self, t: int, samples: Samples = None) -> Tensor:
        """J_t = ∂s_t/∂s_{t-1}, (B, S, S), t = 1..T."""
        t = self._check_step(t)
        index = self._samples(samples)
        return self._jvp(t, self._identity(index), index)

    @torch.no_grad()
    def step_jacobian_norms(self, ord: int | str = 2, samples: Samples = None) -> Tensor:
        """‖J_t‖ for t = 1..T, (T, B); ord "fro" (no Jacobian is formed) or 2, the spectral
        norm: the largest of `step_singular_values` for the rows already decomposed, else
        `largest_singular_values` (Lanczos with J_t's JVP / VJP, no J_t formed; relative
        residual <= 100·eps, checked against svdvals in the tests)."""
        index = self._samples(samples)
        if ord == "fro":
            norms = self.trace.step_jacobian_fro()
            if self._lengths is not None:  # a finished sequence's J_t = I: ‖I‖_F = √S
                held = torch.full_like(norms, math.sqrt(self.state_size))
                norms = torch.where(self._running(norms.device), norms, held)
            return norms if index is None else norms[:, index]
        _check_ord(ord)
        B = self.trace.B
        wanted = list(range(B)) if index is None else [int(b) % B for b in index.tolist()]
        missing = [b for b in dict.fromkeys(wanted) if b not in self._step_sv]
        by_row: dict[int, Tensor] = {
            b: self._step_sv[b][:, 0] for b in wanted if b in self._step_sv
        }
        if missing:  # σ_max alone: Golub-Kahan-Lanczos on J_t's products, no J_t formed
            rows = torch.tensor(missing, dtype=torch.long, device=self.hidden.device)
            trace, n, S = self._step_map_trace(rows), len(missing), self.state_size
            running: Tensor | None = None
            if self._lengths is not None:  # a finished sequence holds its state: J_t = I
                running = self._running(rows.device)[:, rows].reshape(-1, 1)
            chunk = max(1, (1 << 24) // (S * S))  # maps per call: its basis <= 2^24 entries
            tops = []
            for start in range(0, self.T * n, chunk):
                flat = torch.arange(start, min(self.T * n, start + chunk), device=rows.device)
                held_rows = None if running is None else running[flat]

                def apply(
                    v: Tensor,
                    transposed: bool,
                    flat: Tensor = flat,
                    held: Tensor | None = held_rows,
                ) -> Tensor:
                    step = trace.vjp if transposed else trace.jvp  # J v or Jᵀ v, v (maps, S)
                    out = step(1, v.unsqueeze(-1), flat).squeeze(-1)
                    return out if held is None else torch.where(held, out, v)

                tops.append(
                    largest_singular_values(
                        functools.partial(apply, transposed=False),
                        functools.partial(apply, transposed=True),
                        flat.numel(), S, self.hidden,
                    )
                )  # fmt: skip
            top = torch.cat(tops).view(self.T, n)
            by_row.update({b: top[:, j] for j, b in enumerate(missing)})
        return torch.stack([by_row[b] for b in wanted], dim=1)

    def _step_map_trace(self, rows: Tensor) -> Trace:
        """The trace of every step map (t, b), t = 1..T, b in `rows` (B',) as ONE step of a
        batch of T·B' sequences started from s_{t-1} (row (t-1)·B' + j is step t of row
        rows[j]): its J_1 of that row is J_t of row rows[j], so one `jvp` forms every J_t."""
        trace = self.trace
        T, n = self.T, rows.numel()
        if trace.cell_state is None:
            hidden, *others = trace.state().split(trace.N, dim=-1)
        else:  # h and c may differ in size (a projected LSTM)
            hidden, others = trace.hidden, [trace.cell_state]
        hidden = hidden[:, rows]  # (T+1, B', N)
        pairs = torch.stack((hidden[:-1].reshape(T * n, -1), hidden[1:].reshape(T * n, -1)))
        initial = tuple(part[:-1, rows].reshape(T * n, -1) for part in others)
        inputs = trace.inputs[:, rows].reshape(1, T * n, -1)
        return get_cell(self.model.cell).make_trace(
            self.model, trace.weights, inputs, pairs, initial
        )

    @torch.no_grad()
    def step_jacobians(self, samples: Samples = None) -> Tensor:
        """Every J_t = ∂s_t/∂s_{t-1}, (T, B', S, S), t = 1..T, from one batched `jvp` (mind the
        size: T·B'·S² entries; `step_jacobian(t)` forms one step)."""
        index = self._samples(samples)
        rows = torch.arange(self.trace.B, device=self.hidden.device) if index is None else index
        return self._step_jacobian_rows(self._step_map_trace(rows), rows, 0, self.T)

    def _step_jacobian_rows(self, trace: Trace, rows: Tensor, first: int, stop: int) -> Tensor:
        """J_t of batch rows `rows` (B',) for t = first+1..stop, (stop-first, B', S, S), from
        `trace` = `_step_map_trace(rows)`."""
        n, S = rows.numel(), self.state_size
        flat = torch.arange(first * n, stop * n, device=rows.device)
        eye = torch.eye(S, dtype=self.hidden.dtype, device=self.hidden.device)
        eye = eye.expand(flat.numel(), S, S).clone()
        jacobians = trace.jvp(1, eye, flat)
        if self._lengths is not None:  # a finished sequence holds its state: J_t = I
            running = self._running(rows.device)[first:stop, rows].reshape(-1, 1, 1)
            jacobians = torch.where(running, jacobians, eye)
        return jacobians.view(stop - first, n, S, S)

    @torch.no_grad()
    def step_singular_values(self, samples: Samples = None) -> Tensor:
        """Singular values (descending) of every step Jacobian J_t, (T, B', S), t = 1..T: exact
        (`torch.linalg.svdvals` of the formed J_t on one thread, in chunks of about 2^22
        entries), computed once per batch row of this recording and shared by
        `step_jacobian_norms(2)` and every later call."""
        index = self._samples(samples)
        B = self.trace.B
        wanted = list(range(B)) if index is None else [int(b) % B for b in index.tolist()]
        missing = [b for b in dict.fromkeys(wanted) if b not in self._step_sv]
        if missing:
            rows = torch.tensor(missing, dtype=torch.long, device=self.hidden.device)
            trace = self._step_map_trace(rows)
            chunk = max(1, (1 << 22) // (len(missing) * self.state_size**2))  # steps per call
            parts = []
            with one_thread():
                for first in range(0, self.T, chunk):
                    stop = min(self.T, first + chunk)
                    jacobians = self._step_jacobian_rows(trace, rows, first, stop)
                    parts.append(torch.linalg.svdvals(jacobians))
            values = torch.cat(parts)  # (T, B'', S)
            for j, b in enumerate(missing):
                self._step_sv[b] = values[:, j]
        return torch.stack([self._step_sv[b] for b in wanted], dim=1)

    @torch.no_grad()
    def jacobian(self, t: int, k: int, samples: Samples = None) -> Tensor:
        """∂s_t/∂s_k = J_t ⋯ J_{k+1}, (B, S, S), for 0 <= k <= t <= T."""
        t = self._check_step(t, "t", 0)
        k = self._check_step(k, "k", 0)
        if k > t:
            raise ValueError(f"k must be <= t, got t={t}, k={k}")
        index = self._samples(samples)
        product = self._identity(index)
        for step in range(k + 1, t + 1):
            product = self._jvp(step, product, index)
        return product

    @torch.no_grad()
    def jacobian_norms(
        self, t: int | None = None, ord: int | str = 2, samples: Samples = None
    ) -> Tensor:
        """‖∂s_t/∂s_k‖ for k = 0..t-1, (t, B), in one backward accumulation (t defaults to T)."""
        t = self.T if t is None else self._check_step(t)
        _check_ord(ord)
        index = self._samples(samples)
        eye = self._identity(index)

        def transposed_products() -> Iterator[Tensor]:  # (∂s_t/∂s_k)ᵀ for k = t-1 down to 0
            product = eye
            for k in range(t - 1, -1, -1):
                product = self._jvp(k + 1, product, index, transposed=True)
                yield product

        return _batched_norms(transposed_products(), ord, eye.numel()).flip(0)

    @torch.no_grad()
    def singular_values(self, t: int, k: int | None = None, samples: Samples = None) -> Tensor:
        """Singular values (descending) of ∂s_t/∂s_k (k defaults to t-1), (B, S)."""
        t = self._check_step(t)
        return torch.linalg.svdvals(self.jacobian(t, t - 1 if k is None else k, samples))

    @torch.no_grad()
    def lyapunov(self, n: int = 1, burn_in: int = 0) -> Tensor:
        """The n leading Lyapunov exponents (per step, natural log, batch mean), (n,).

        QR method (Engelken, Wolf & Abbott 2020; Vogt et al. 2022): Q_0 = I[:, :n];
        Q_t R_t = qr(J_t Q_{t-1}); λ = mean over t > burn_in of log|diag R_t|.
        """
        if not 1 <= n <= self.state_size:
            raise ValueError(f"n must be in 1..{self.state_size}, got {n}")
        if not 0 <= burn_in < self.T:
            raise ValueError(f"burn_in must be in 0..{self.T - 1}, got {burn_in}")
        q = self._identity(None)[:, :, :n]
        total = torch.zeros(q.shape[0], n, dtype=q.dtype, device=q.device)
        for t in range(1, self.T + 1):
            q, r = torch.linalg.qr(self._jvp(t, q))
            if t > burn_in:
                total += torch.diagonal(r, dim1=1, dim2=2).abs().log()
        return (total / (self.T - burn_in)).mean(0)

    # ----- statistics ---------------------------------------------------------------------
    @torch.no_grad()
    def hidden_stats(self) -> dict[str, Tensor]:
        """Per step t = 0..T, (T+1,) each: "mean_abs" mean |h|; "saturation" fraction of units
        within 1% of the range from a bound of a bounded activation (tanh bounds for LSTM/GRU);
        "dead" fraction of exact zeros of a relu. Means over the sequences still running at t
        (all of them unless the input was packed)."""
        h = self.hidden
        mean = self._step_mean
        activation = self.model.activation
        bounds = (
            get_cell(self.model.cell).hidden_bounds if activation is None else activation.bounds
        )
        zero = h.new_zeros(h.shape[0])
        if bounds is None or self.trace.weights.weight_hr is not None:  # projected: unbounded
            saturation = zero
        else:
            lo, hi = bounds
            margin = _SATURATION_TOLERANCE * (hi - lo)
            saturated = (h > hi - margin) | (h < lo + margin)
            saturation = mean(saturated.to(h.dtype), first=0)
        dead = zero
        if activation is not None and activation.dead_at_zero:
            dead = mean((h == 0).to(h.dtype), first=0)
        return {"mean_abs": mean(h.abs(), first=0), "saturation": saturation, "dead": dead}

    @torch.no_grad()
    def gate_means(self) -> dict[str, Tensor]:
        """Batch-and-unit mean of each gate per step t = 1..T, name → (T,) (over the sequences
        still running at t when the input was packed)."""
        return {name: self._step_mean(gate, first=1) for name, gate in self.gates.items()}

    def _step_mean(self, x: Tensor, first: int) -> Tensor:
        """Mean over batch and units of x (steps first.., B, N) per step, counting only the
        sequences whose length reaches that step."""
        if self._lengths is None:
            return x.mean((1, 2))
        steps = torch.arange(first, first + x.shape[0], device=x.device).unsqueeze(1)
        real = (steps <= self._lengths.to(x.device).unsqueeze(0)).to(x.dtype)  # (steps, B)
        total = (x.sum(2) * real).sum(1)
        return total / (real.sum(1) * x.shape[2]).clamp_min(1)


def _step_absmax(x: Tensor) -> Tensor:
    """max|x_t| per step of x (T, ...), (T,); NaN where a step has a NaN. (Two plain reductions:
    on CPU an order of magnitude faster than abs().amax() or an inf-norm.)"""
    flat = x.flatten(1)
    return torch.maximum(flat.amax(1), flat.amin(1).neg())


def _out_of_scale(x: Tensor) -> Tensor:
    """Steps t of x (T, ...) whose max|x_t| is finite, nonzero and outside [√tiny/eps, √max·eps]
    (float32: about 1e-12..2e12), (T,) bool: there, squares of the entries (and sums of up to
    1/eps² of them) may leave the dtype's range or lose digits above eps."""
    amax = _step_absmax(x)
    info = torch.finfo(x.dtype)
    low, high = math.sqrt(info.tiny) / info.eps, math.sqrt(info.max) * info.eps
    return torch.isfinite(amax) & (amax > 0) & ((amax < low) | (amax > high))


def _norm_out_of_scale(norms: Tensor) -> Tensor:
    """Steps whose norm ‖v_t‖ (T,) may have lost its squares: not finite, or outside
    [√tiny/eps, √max·eps]. Above √tiny/eps the squares that underflowed (each below tiny) change
    the norm by less than eps for vectors of up to 1/eps entries; one square that overflowed
    makes the norm Inf."""
    info = torch.finfo(norms.dtype)
    low, high = math.sqrt(info.tiny) / info.eps, math.sqrt(info.max) * info.eps
    return ~torch.isfinite(norms) | (norms < low) | (norms > high)


def _rescaled(x: Tensor) -> tuple[Tensor, Tensor]:
    """x (T, ...) divided per step t by 2^e_t, e_t the binary exponent of max|x_t| (0 where the
    step is all zero or not finite), and the scales 2^e_t, (T,). Powers of two only move
    exponents, so x_t = x̂_t·2^e_t exactly."""
    amax = _step_absmax(x)
    finite = torch.isfinite(amax) & (amax > 0)
    exponent = torch.where(finite, torch.frexp(amax).exponent, 0)
    limit = math.frexp(torch.finfo(x.dtype).max)[1] - 3  # 2^±limit is a normal number
    scale = torch.exp2(exponent.clamp(-limit, limit).to(x.dtype))  # (T,)
    return x / scale.view(-1, *([1] * (x.dim() - 1))), scale


def largest_singular_values(
    matvec: Callable[[Tensor], Tensor],
    rmatvec: Callable[[Tensor], Tensor],
    count: int,
    size: int,
    like: Tensor,
    rtol: float | None = None,
) -> Tensor:
    """σ_max of `count` linear maps A_j of R^size, (count,), from their products alone:
    `matvec(V)` = A_j v_j and `rmatvec(U)` = A_jᵀ u_j for V, U (count, size), all maps at once.

    Golub-Kahan-Lanczos bidiagonalisation, the right vectors fully reorthogonalised (one-sided,
    Simon & Zha 2000: enough for the singular values), from a fixed random
    start (seeded, so repeatable): after k steps A V_k = U_k B_k and Aᵀ U_k = V_k B_kᵀ +
    β_k v_{k+1} e_kᵀ, so B_k's largest singular value θ (left vector x) is within the residual
    β_k |x_k| of a singular value of A, and it is below σ_max. It stops once every map's
    residual is <= rtol·θ (default 100·eps of the dtype: float32 1.2e-5, float64 2.2e-14) or
    after `size` steps (then the Krylov space is all of R^size and θ is σ_max up to rounding).
    Ritz values converge to the largest first; a start with no component along the top
    singular vector has probability 0. Dtype and device of `like`."""
    dtype, device = like.dtype, like.device
    rtol = 100 * torch.finfo(dtype).eps if rtol is None else rtol
    tiny = torch.finfo(dtype).tiny
    generator = torch.Generator(device=device).manual_seed(0)
    v = torch.randn(count, size, generator=generator, dtype=dtype, device=device)
    v = v / v.norm(dim=1, keepdim=True)
    vs = _Basis(count, size, like)  # one-sided: the v's are reorthogonalised (Simon & Zha)
    vs.add(v)
    u = like.new_zeros(count, size)
    beta = like.new_zeros(count)
    alphas = like.new_zeros(count, size)
    betas = like.new_zeros(count, size)
    top = like.new_zeros(count)
    todo = torch.arange(count, device=device)  # the maps not yet converged
    checks = {size, *(k for k in (8, 16, 24, 32, 48, 64, 96, 128, 192) if k < size)}
    # each map scaled by a power of two (exact) near the size of A v_1, so that no square
    # in a norm leaves the dtype's range (a float32 map with σ ~ 1e-20 would lose them all)
    first = matvec(v)
    _, scale = _rescaled(first)
    scale = scale.unsqueeze(1)
    for k in range(1, size + 1):
        applied = first / scale if k == 1 else matvec(v) / scale
        u = applied - beta.unsqueeze(1) * u
        alpha = u.norm(dim=1)
        u = u / alpha.clamp_min(tiny).unsqueeze(1)
        w = vs.orthogonalised(rmatvec(u) / scale - alpha.unsqueeze(1) * v)
        beta = w.norm(dim=1)
        v = w / beta.clamp_min(tiny).unsqueeze(1)
        vs.add(v)
        alphas[:, k - 1], betas[:, k - 1] = alpha, beta
        if k not in checks:
            continue
        # B_k (k, k): α on the diagonal, β_1..β_{k-1} above; its SVD in float64 (small)
        a, b = alphas[todo, :k].double(), betas[todo, : k - 1].double()
        bidiagonal = torch.diag_embed(a) + torch.diag_embed(b, offset=1)
        x, sigma, _ = torch.linalg.svd(bidiagonal)
        top[todo] = sigma[:, 0].to(dtype)
        residual = betas[todo, k - 1].double() * x[:, -1, 0].abs()
        todo = todo[residual > rtol * sigma[:, 0]]
        if todo.numel() == 0:
            break
    return top * scale.squeeze(1)


class _Basis:
    """The orthonormal rows of `count` Krylov bases, (count, k, size), kept contiguous in a
    buffer that doubles when full (one batched product projects a vector out of all k)."""

    def __init__(self, count: int, size: int, like: Tensor) -> None:
        self._buffer = like.new_empty(count, min(size + 1, 16), size)
        self._k = 0

    def add(self, row: Tensor) -> None:
        if self._k == self._buffer.shape[1]:
            grown = self._buffer.new_empty(
                self._buffer.shape[0], 2 * self._k, self._buffer.shape[2]
            )
            grown[:, : self._k] = self._buffer
            self._buffer = grown
        self._buffer[:, self._k] = row
        self._k += 1

    def orthogonalised(self, w: Tensor) -> Tensor:
        """w (count, size) minus its projection on the rows, twice (Kahan: twice is enough)."""
        if self._k == 0:
            return w
        rows = self._buffer[:, : self._k]
        for _ in range(2):
            w = w - ((w.unsqueeze(1) @ rows.transpose(1, 2)) @ rows).squeeze(1)
        return w


def spectral_norms(matrices: Tensor) -> Tensor:
    """‖A‖₂ of matrices (..., m, n), (...): √λ_max of the Gram matrix of the smaller side, by
    `torch.linalg.eigvalsh` on one thread. The largest eigenvalue of a symmetric matrix is
    perfectly conditioned, so this is σ_max to rounding, as svdvals gives it (1.7x faster
    for 100 matrices of 256 x 256 on one thread). Each matrix is first scaled by a power of
    two (exact) so that its squares stay in the dtype's range."""
    flat = matrices.reshape(-1, *matrices.shape[-2:])
    scaled, scale = _rescaled(flat)
    gram = scaled.mT @ scaled if flat.shape[-1] <= flat.shape[-2] else scaled @ scaled.mT
    with one_thread():
        largest = torch.linalg.eigvalsh(gram)[..., -1]
    return (largest.clamp_min(0).sqrt() * scale).reshape(matrices.shape[:-2])


@contextmanager
def one_thread() -> Iterator[None]:
    """torch's intra-op threads set to 1 inside the block (restored after). LAPACK's batched
    SVD of many small matrices gains nothing from a second thread and, on a loaded 2-core
    machine, ran 3-45x slower on 2 than on 1 (issue 18); the batch itself is the parallelism."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _batched_norms(matrices: Iterator[Tensor], ord: int | str, size: int) -> Tensor:
    """Matrix norms of a stream of (B, S, S) matrices, (count, B): stacked into chunks of about
    2^24 elements so one batched decomposition (`spectral_norms`, on one thread) serves many
    steps without holding them all."""
    chunk = max(1, (1 << 24) // max(1, size))
    norms, batch = [], []

    def norm(batch: list[Tensor]) -> Tensor:
        if ord == "fro":
            return torch.linalg.matrix_norm(torch.stack(batch), ord=ord)
        return spectral_norms(torch.stack(batch))

    for matrix in matrices:
        batch.append(matrix)
        if len(batch) == chunk:
            norms.append(norm(batch))
            batch = []
    if batch:
        norms.append(norm(batch))
    return torch.cat(norms)


def _check_ord(ord: int | str) -> None:
    if ord not in (2, "fro"):
        raise ValueError(f"ord must be 2 or 'fro', got {ord!r}")


class Recording:
    """The record of one batch. Its quantities describe layer 0, forward direction
    (`rec.hidden`, `rec.contributions("weight_hh")`, ...); `rec.layer(i, reverse)` gives the
    same view for any layer and direction. Read-only; made by `record`."""

    def __init__(
        self,
        model: RecurrentModel,
        layers: Mapping[tuple[int, bool], LayerRecording],
        output: Any,
        loss: float | None,
    ) -> None:
        self._model = model
        self._layers = MappingProxyType(dict(layers))
        self._output = output
        self._loss = loss

    @property
    def model(self) -> RecurrentModel:
        """The recorded model."""
        return self._model

    @property
    def layers(self) -> Mapping[tuple[int, bool], LayerRecording]:
        """(layer, reverse) → LayerRecording, every layer and direction."""
        return self._layers

    @property
    def output(self) -> Any:
        """Exactly what ``model(x, h0)[0]`` returns (for a recorded submodule: what it returned
        to the rest of the model, a tensor or a PackedSequence, detached)."""
        return self._output

    @property
    def lengths(self) -> Tensor:
        """Each sequence's number of real steps, (B,) (all T unless the input was packed)."""
        return self._first.lengths

    @property
    def step_mask(self) -> Tensor:
        """(T, B) bool, True where step k = 1..T of sequence b is real (k <= its length)."""
        return self._first.step_mask

    @property
    def loss(self) -> float | None:
        """The loss's value (None when recorded without ``loss_fn``)."""
        return self._loss

    def layer(self, i: int = 0, reverse: bool = False) -> LayerRecording:
        """The record of layer i, forward or reverse direction."""
        try:
            return self._layers[(i, bool(reverse))]
        except KeyError:
            directions = "forward and reverse" if self.model.bidirectional else "forward only"
            raise ValueError(
                f"no layer ({i}, reverse={reverse}): layers 0..{self.model.num_layers - 1}, "
                f"{directions}"
            ) from None

    @property
    def _first(self) -> LayerRecording:
        return self._layers[(0, False)]

    # ----- layer 0, forward: see LayerRecording for each quantity -------------------------
    @property
    def hidden(self) -> Tensor:
        """h_0..h_T, (T+1, B, N)."""
        return self._first.hidden

    @property
    def cell(self) -> Tensor:
        """LSTM c_0..c_T, (T+1, B, N)."""
        return self._first.cell

    @property
    def gates(self) -> dict[str, Tensor]:
        """Gate activations per step, name → (T, B, N) (LSTM i, f, g, o; GRU r, z, n)."""
        return self._first.gates

    @property
    def inputs(self) -> Tensor:
        """The inputs x_1..x_T, (T, B, I)."""
        return self._first.inputs

    @property
    def T(self) -> int:
        """Number of timesteps."""
        return self._first.T

    @property
    def state_size(self) -> int:
        """S: N, or 2N for an LSTM (state (h, c))."""
        return self._first.state_size

    @property
    def grad_hidden(self) -> Tensor:
        """Total BPTT adjoint ∂L/∂h_t for t = 0..T, (T+1, B, N)."""
        return self._first.grad_hidden

    @property
    def grad_cell(self) -> Tensor:
        """LSTM total ∂L/∂c_t for t = 0..T, (T+1, B, N)."""
        return self._first.grad_cell

    def step_jacobian(self, t: int, samples: Samples = None) -> Tensor:
        """J_t = ∂s_t/∂s_{t-1}, (B, S, S), t = 1..T."""
        return self._first.step_jacobian(t, samples)

    def step_jacobian_norms(self, ord: int | str = 2, samples: Samples = None) -> Tensor:
        """‖J_t‖ for t = 1..T, (T, B); ord 2 (spectral, by Lanczos to 100·eps) or "fro" (no
        Jacobian is formed)."""
        return self._first.step_jacobian_norms(ord, samples)

    def step_jacobians(self, samples: Samples = None) -> Tensor:
        """Every J_t = ∂s_t/∂s_{t-1}, (T, B', S, S), t = 1..T, in one batched pass."""
        return self._first.step_jacobians(samples)

    def step_singular_values(self, samples: Samples = None) -> Tensor:
        """Singular values (descending) of every J_t, (T, B', S), exact, computed once per row."""
        return self._first.step_singular_values(samples)

    def jacobian(self, t: int, k: int, samples: Samples = None) -> Tensor:
        """∂s_t/∂s_k = J_t ⋯ J_{k+1}, (B, S, S), for 0 <= k <= t <= T."""
        return self._first.jacobian(t, k, samples)

    def jacobian_norms(
        self, t: int | None = None, ord: int | str = 2, samples: Samples = None
    ) -> Tensor:
        """‖∂s_t/∂s_k‖ for k = 0..t-1, (t, B) (t defaults to T)."""
        return self._first.jacobian_norms(t, ord, samples)

    def singular_values(self, t: int, k: int | None = None, samples: Samples = None) -> Tensor:
        """Singular values (descending) of ∂s_t/∂s_k (k defaults to t-1), (B, S)."""
        return self._first.singular_values(t, k, samples)

    def lyapunov(self, n: int = 1, burn_in: int = 0) -> Tensor:
        """The n leading Lyapunov exponents (per step, natural log, batch mean), (n,)."""
        return self._first.lyapunov(n, burn_in)

    def hidden_stats(self) -> dict[str, Tensor]:
        """Per step t = 0..T, (T+1,) each: "mean_abs", "saturation", "dead"."""
        return self._first.hidden_stats()

    def gate_means(self) -> dict[str, Tensor]:
        """Batch-and-unit mean of each gate per step t = 1..T, name → (T,)."""
        return self._first.gate_means()

    def _route(self, name: str) -> tuple[LayerRecording, str]:
        match = _FULL_NAME.match(name)
        if match:
            return self.layer(int(match[2]), bool(match[3])), match[1]
        return self._first, name

    def contributions(self, name: str) -> Tensor:
        """(T, *param.shape) per-step terms of ∂L/∂param; full torch names pick the layer."""
        layer, short = self._route(name)
        return layer.contributions(short)

    def contribution_norms(self, name: str) -> Tensor:
        """(T,) Frobenius norms of `contributions(name)`, computed without forming them."""
        layer, short = self._route(name)
        return layer.contribution_norms(short)

    @property
    def is_finite(self) -> bool:
        """False when any recorded state or adjoint is NaN or Inf."""
        return _first_nonfinite(self) is None

    def _snapshot_parameters(self) -> None:
        """Give every layer's trace its own copies (detached clones) of what it reads later
        and the caller may change in place: the parameters (an optimiser step updates them)
        and the layer inputs (layer 0's may be the caller's tensor). Every quantity computed
        lazily afterwards (Jacobians, their norms, contributions) is then the one of the model
        as recorded, to the last bit: a copy keeps `requires_grad` (torch's matmul picks its
        kernel by it). The model itself is copied too (what a probe runs the model's own step
        map on, e.g. the fixed-point search, sees it as recorded); a trace reading a parameter
        of the model reads the model's copy of it. Costs one copy of the parameters and of the
        inputs."""
        original = self._model
        with torch.no_grad():
            self._model = copy.deepcopy(original)
        copied = dict(zip(map(id, original.parameters()), self._model.parameters(), strict=True))
        for lr in self._layers.values():
            lr._model = self._model
            trace = lr.trace
            kept = [t for t in (*trace.weights, trace.inputs) if t is not None]
            copies = {
                id(t): copied[id(t)]
                if id(t) in copied
                else t.detach().clone().requires_grad_(t.requires_grad)
                for t in kept
            }
            for name, value in vars(trace).items():  # e.g. an LSTM trace's projection W_hr
                if isinstance(value, Tensor) and id(value) in copies:
                    setattr(trace, name, copies[id(value)])
            w = trace.weights
            trace.weights = w._replace(
                **{name: copies[id(t)] for name, t in w._asdict().items() if t is not None}
            )

    def __repr__(self) -> str:
        T, B, N = self.hidden.shape[0] - 1, self.hidden.shape[1], self.hidden.shape[2]
        return (
            f"Recording({self.model.cell}, layers={self.model.num_layers}, "
            f"directions={self.model.num_directions}, T={T}, B={B}, N={N}, loss={self.loss})"
        )


def _first_nonfinite(rec: Recording) -> str | None:
    """Where the first NaN/Inf is, as words, or None. One host sync when all is finite (the
    usual case): NaN and Inf survive a sum, so one reduction per tensor, stacked, screens every
    state and adjoint at once; a tensor that fails the screen (or a finite one whose sum
    overflows) then gets the exact per-step check."""
    named: list[tuple[str, Tensor]] = []
    for (layer, reverse), lr in rec.layers.items():
        direction = "reverse" if reverse else "forward"
        parts = [("hidden state", lr.hidden), ("cell state", lr.trace.cell_state)]
        parts += [("gradient ∂L/∂h", lr._grad_hidden), ("gradient ∂L/∂c", lr._grad_cell)]
        named += [
            (f"{what} of layer {layer} ({direction})", v) for what, v in parts if v is not None
        ]
    if not named:
        return None
    screen = torch.stack([torch.isfinite(values.sum()) for _, values in named])
    if bool(screen.all()):
        return None
    for (where, values), finite in zip(named, screen.tolist(), strict=True):
        if finite:
            continue
        bad = ~torch.isfinite(values).flatten(1).all(1)
        if bool(bad.any()):
            return f"{where} at t={int(bad.nonzero()[0])}"
    return None


def _forward_states(
    model: RecurrentModel, layer: int, inputs: Tensor, initial: tuple[Tensor, ...]
) -> Tensor:
    """h_0..h_T (T+1, B, N) of a one-direction layer: torch's kernel run on chunks of
    `_FORWARD_CHUNK` steps (more at small B·N, see `_FORWARD_ENTRIES`), each from the kernel's
    final state of the one before, written into one buffer. The kernel builds its output from
    per-step tensors (and a plain loop stacks them): chunks bound those temporaries, and no
    second (T, B, N) copy is made. `initial`: the state parts' initial values, (1, B, ·) each."""
    spec = get_cell(model.cell)
    T = inputs.shape[0]
    hidden = inputs.new_empty(T + 1, *initial[0].shape[1:])
    hidden[0] = initial[0][0]
    state = spec.join_state(initial)
    chunk = max(_FORWARD_CHUNK, _FORWARD_ENTRIES // (inputs.shape[1] * hidden.shape[2]))
    for first in range(0, T, chunk):
        output, *final = model.layer_forward(inputs[first : first + chunk], state, layer)
        hidden[first + 1 : first + 1 + output.shape[0]] = output
        state = spec.join_state(final)
    return hidden


def _make_trace(
    model: RecurrentModel,
    layer: int,
    reverse: bool,
    inputs: Tensor,
    hidden: Tensor,
    initial: tuple[Tensor, ...],
    weights: LayerWeights | None = None,
    recorded: tuple[Tensor, ...] | None = None,
) -> Trace:
    """The cell's trace of one layer/direction: hidden (T+1, B, N), `initial` the other state
    parts' initial values (e.g. c_0 (B, N)). `weights` and `recorded` make the twin of a
    recorded trace in another dtype (see `_adjoint_trace`)."""
    weights = model.layer_weights(layer, reverse) if weights is None else weights
    return get_cell(model.cell).make_trace(model, weights, inputs, hidden, initial, recorded)


def _adjoint_trace(model: RecurrentModel, lr: LayerRecording, dtype: torch.dtype) -> Trace:
    """The trace the adjoint scan of `lr` runs on: its own trace, or a twin in `dtype` on the
    same recorded trajectory (inputs and every state part s_0..s_T cast to `dtype`, the gates
    and φ'(a_t) recomputed from them in `dtype`)."""
    trace = lr.trace
    if trace.hidden.dtype == dtype:
        return trace

    def cast(w: Tensor) -> Tensor:
        return w.detach().to(dtype)

    def cast_optional(w: Tensor | None) -> Tensor | None:
        return None if w is None else cast(w)

    w = trace.weights
    weights = LayerWeights(
        cast(w.weight_ih),
        cast(w.weight_hh),
        cast_optional(w.bias_ih),
        cast_optional(w.bias_hh),
        cast_optional(w.weight_hr),
    )
    if trace.cell_state is None:
        hidden, *others = trace.state().to(dtype).split(trace.N, dim=-1)
    else:  # h and c may differ in size (a projected LSTM)
        hidden, others = trace.hidden.to(dtype), [trace.cell_state.to(dtype)]
    initial = tuple(part[0] for part in others)
    inputs = trace.inputs.to(dtype)
    return _make_trace(model, lr.layer, lr.reverse, inputs, hidden, initial, weights, tuple(others))


def _check_adjoint_dtype(adjoint_dtype: torch.dtype | None, dtype: torch.dtype) -> torch.dtype:
    """The dtype the adjoint scan runs in: `adjoint_dtype`, or the model's `dtype` when None."""
    if adjoint_dtype is None:
        return dtype
    allowed = (torch.float32, torch.float64)
    if adjoint_dtype not in allowed or torch.finfo(adjoint_dtype).bits < torch.finfo(dtype).bits:
        raise ValueError(
            f"adjoint_dtype must be None, or torch.float32 / torch.float64 at least as wide as "
            f"the model's {dtype}, got {adjoint_dtype!r}"
        )
    return adjoint_dtype


def record(
    model: torch.nn.Module,
    x: Any,
    loss_fn: Callable[[Any], Tensor] | None = None,
    h0: Tensor | tuple[Tensor, Tensor] | None = None,
    *,
    module: str | torch.nn.Module | None = None,
    adjoint_dtype: torch.dtype | None = None,
) -> Any:
    """Record one pass of `model` over `x` and, with `loss_fn`, the exact BPTT adjoint.

    A gradlab model (and no `module`): x (T, B, I), or (B, T, I) when the model is batch_first
    (also unbatched (T, I), or a PackedSequence); loss_fn maps exactly what `model(x, h0)[0]`
    returns to a scalar (many-to-one, many-to-many, one-to-many and one-to-one problems all use
    it); h0: (L·D, B, N), for an LSTM a tuple (h0, c0). Returns a Recording.

    Any other nn.Module, or `module` given: x is what the model takes (a tensor, a
    PackedSequence, a tuple of positional arguments), loss_fn maps what `model(x)` returns to
    a scalar, and `module` names the recurrent submodule to record (default: every nn.RNN /
    LSTM / GRU inside); the whole model runs once and the record is of the real loss through
    the real head (`gradlab.record_module.record_module`: one Recording, or name → Recording
    when several submodules are recorded).

    adjoint_dtype: the dtype of the adjoint scan and everything derived from it (None: the
    model's dtype; torch.float64 for a float32 model keeps gradients below float32's range,
    see the module docstring).
    """
    if module is not None or not isinstance(model, RecurrentModel):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"record needs a gradlab recurrent model or an nn.Module with a recurrent "
                f"submodule, got {type(model).__name__}"
            )
        if h0 is not None:
            raise ValueError(
                "h0 is for a gradlab model recorded alone; pass the initial state inside x "
                "(the model's inputs)"
            )
        from gradlab.record_module import record_module

        return record_module(model, x, loss_fn, module, adjoint_dtype=adjoint_dtype)
    if isinstance(x, PackedSequence) or (isinstance(x, Tensor) and x.dim() == 2):
        # a PackedSequence or one unbatched sequence: the model recorded as its own submodule
        from gradlab.record_module import record_module

        on_output = None if loss_fn is None else (lambda result: loss_fn(result[0]))
        return record_module(model, (x, h0), on_output, model, adjoint_dtype=adjoint_dtype)
    return _record_model(model, x, loss_fn, h0, adjoint_dtype=adjoint_dtype)


@torch.no_grad()
def _record_model(
    model: RecurrentModel,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor] | None,
    h0: Tensor | tuple[Tensor, Tensor] | None,
    *,
    adjoint_dtype: torch.dtype | None,
) -> Recording:
    """`record` of a gradlab model alone (see `record`)."""
    model.check_input(x, h0)
    dtype = model.weight_hh_l0.dtype
    if x.dtype != dtype:
        raise ValueError(f"x has dtype {x.dtype} but the model's parameters are {dtype}")
    adjoint_dtype = _check_adjoint_dtype(adjoint_dtype, dtype)
    # NaN and Inf survive a sum: one reduction screens x without a temporary of its size
    # (isfinite makes two); a finite x whose sum overflows gets the exact check
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf; expected finite inputs")
    xs = x.transpose(0, 1) if model.batch_first else x  # time-major (T, B, I)
    T, B = xs.shape[0], xs.shape[1]
    if T < 1:
        raise ValueError("x must have at least one timestep")
    if B < 1:
        raise ValueError(f"x has batch size B = 0 (shape {tuple(x.shape)}); expected B >= 1")
    L, D, N = model.num_layers, model.num_directions, model.output_size
    spec = get_cell(model.cell)
    if h0 is None:
        state = spec.join_state([xs.new_zeros(L * D, B, size) for size in model.state_sizes()])
    else:
        state = h0
    h0_parts = spec.split_state(state)  # (L·D, B, N) each: h, then c for an LSTM

    # 1. Forward trace, layer by layer, through the fused kernel.
    layers: dict[tuple[int, bool], LayerRecording] = {}
    layer_input = xs
    for layer in range(L):
        initial = tuple(part[layer * D : (layer + 1) * D] for part in h0_parts)
        if D == 1:  # h_0..h_T in one buffer; the layer's output is the view h_1..h_T
            one_direction = _forward_states(model, layer, layer_input, initial)
            output = one_direction[1:]
        else:
            output = model.layer_forward(layer_input, spec.join_state(initial), layer)[0]
        for d in range(D):  # output (T, B, D·N)
            reverse = d == 1
            steps = layer_input.flip(0) if reverse else layer_input
            if D == 1:
                hidden = one_direction
            else:
                out = output[..., d * N : (d + 1) * N]
                hidden = torch.cat((initial[0][d].unsqueeze(0), out.flip(0) if reverse else out))
                del out
            rest = tuple(part[d] for part in initial[1:])
            trace = _make_trace(model, layer, reverse, steps, hidden, rest)
            layers[(layer, reverse)] = LayerRecording(model, layer, reverse, trace)
        layer_input = output
    output = layer_input.transpose(0, 1) if model.batch_first else layer_input
    output = output.contiguous()

    loss_value = None
    if loss_fn is not None:
        # 2. ∂L/∂output from one autograd call on the loss alone, then the adjoint scans.
        leaf = output.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(leaf)
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
                raise ValueError(f"loss_fn must return a scalar tensor, got {shape}")
            grad_output = None
            if loss.requires_grad:
                (grad_output,) = torch.autograd.grad(loss.reshape(()), leaf, allow_unused=True)
        loss_value = float(loss)
        if grad_output is None:  # a loss that does not depend on the output
            grad_output = torch.zeros_like(leaf)
        grad_layer = grad_output.transpose(0, 1) if model.batch_first else grad_output
        grad_layer = grad_layer.to(adjoint_dtype)
        for layer in range(L - 1, -1, -1):
            grad_input: Tensor | None = None
            for d in range(D):
                lr = layers[(layer, d == 1)]
                direct = grad_layer[..., d * N : (d + 1) * N]
                direct = direct.flip(0) if d == 1 else direct
                trace = _adjoint_trace(model, lr, adjoint_dtype)
                lr._set_adjoint(*trace.adjoint(direct.contiguous()))
                if layer > 0:
                    delta_ih = lr._need_loss()[2]
                    delta = delta_ih.flip(0) if d == 1 else delta_ih
                    term = delta @ trace.weights.weight_ih
                    grad_input = term if grad_input is None else grad_input + term
            if grad_input is not None:  # None after layer 0: nothing below it
                grad_layer = grad_input

    rec = Recording(model, layers, output, loss_value)
    where = _first_nonfinite(rec)
    if where is not None or (loss_value is not None and not math.isfinite(loss_value)):
        warnings.warn(
            f"non-finite values in the record: {where or 'the loss'}; they are kept as they are",
            NonFiniteWarning,
            stacklevel=3,
        )
    return rec
