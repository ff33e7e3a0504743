"""Slow, obviously-correct twin of the recording engine. Used only by tests.

Everything here is built from torch's *documented* recurrences, written out one step at a
time, and differentiated with ``torch.autograd`` / ``torch.func``. Nothing is shared with the
fast engine (``gradlab.record``, ``gradlab.cells``' traces): the models are only read for their
weights and hyper-parameters (``num_layers``, ``bidirectional``, ``batch_first``, ``bias``,
the cell kind and the activation). Each cell's one step comes from its registry entry,
``CellSpec.reference_step``, written out from the cell's documented equations; activations come
from the one activation table.

Conventions (the same as the engine's contract, see ``docs/contracts.md``):

* Everything is float64 and time-major. ``T`` steps, batch ``B``, hidden size ``N``, layer input
  size ``I`` (``input_size`` for layer 0, ``D * N`` above, ``D`` = number of directions).
* The recurrent state ``s_t`` is ``h_t`` (RNN, GRU, IndRNN) or ``cat(h_t, c_t)`` (LSTM; a cell whose
  ``state_parts`` are ("h", "c")); ``S`` = N or 2N.
* A direction is indexed by *processing* step ``s = 0..T``: ``s = 0`` is the initial state and
  ``s`` the state after consuming the s-th input it sees. For the reverse direction the s-th input
  is ``x[T - s]`` (0-based), so its state after step ``s`` is its output at time ``T - s``.
* ``contributions[name][k]`` is the gradient of the loss w.r.t. a private copy of the parameter
  that is used *only* at processing step ``k + 1`` (the unroll makes one copy per step); summed
  over ``k`` it is the ordinary parameter gradient.
* ``grad_hidden[s]`` is the total adjoint dL/dh_s, obtained as the gradient w.r.t. a zero
  perturbation added to h_s (so it collects every path: recurrence, layer above, direct output).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import jacrev, vmap

from gradlab.cells.activations import get_activation
from gradlab.cells.models import RecurrentModel
from gradlab.cells.registry import CellSpec, cell_of, get_cell

__all__ = [
    "PARAM_NAMES",
    "ModelSpec",
    "ReferenceRecord",
    "cell_step",
    "frobenius",
    "full_name",
    "layer_params",
    "lyapunov_from_step_jacobians",
    "matrix_norms",
    "model_spec",
    "reference_forward",
    "reference_gate_means",
    "reference_hidden_stats",
    "reference_jacobian",
    "reference_jacobians_to",
    "reference_lyapunov",
    "reference_record",
    "reference_step_jacobian",
    "reference_step_jacobians",
]

DTYPE = torch.float64
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _act(name: str) -> Callable[[Tensor], Tensor]:
    """h = act(a): the activation table's torch function."""
    return get_activation(name).fn


def _sigmoid(a: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-a))


# --------------------------------------------------------------------------------------------
# Reading a model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    cell: str  # a registered cell name
    activation: str | None  # cells that take an activation only
    input_size: int
    hidden_size: int
    num_layers: int
    num_directions: int
    bias: bool
    batch_first: bool

    @property
    def cell_spec(self) -> CellSpec:
        return get_cell(self.cell)

    @property
    def has_cell_state(self) -> bool:
        return self.cell_spec.has_cell_state

    @property
    def gate_names(self) -> tuple[str, ...]:
        return self.cell_spec.gate_names

    @property
    def state_size(self) -> int:
        return len(self.cell_spec.state_parts) * self.hidden_size

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.hidden_size

    @property
    def bounds(self) -> tuple[float, float] | None:
        if self.activation is None:
            return self.cell_spec.hidden_bounds
        return get_activation(self.activation).bounds


def model_spec(model: torch.nn.Module) -> ModelSpec:
    """Hyper-parameters of a gradlab model or a torch.nn.RNN/LSTM/GRU."""
    try:
        spec = cell_of(model)
    except ValueError:
        raise TypeError(f"not a recurrent model: {type(model).__name__}") from None
    if not isinstance(model, RecurrentModel | torch.nn.RNNBase):  # e.g. torch.nn.LSTMCell
        raise TypeError(f"not a recurrent model: {type(model).__name__}")
    cell = spec.name
    activation = None
    if spec.takes_activation:
        act = getattr(model, "activation", None)
        activation = str(act.name if act is not None else model.nonlinearity)
    if getattr(model, "proj_size", 0):
        raise TypeError("proj_size > 0 is not supported by the reference")
    return ModelSpec(
        cell=cell,
        activation=activation,
        input_size=model.input_size,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
        num_directions=2 if model.bidirectional else 1,
        bias=bool(model.bias),
        batch_first=bool(model.batch_first),
    )


def full_name(short: str, layer: int, reverse: bool) -> str:
    """'weight_hh', 1, True -> 'weight_hh_l1_reverse' (torch's naming)."""
    return f"{short}_l{layer}{'_reverse' if reverse else ''}"


def layer_params(model: torch.nn.Module, layer: int, reverse: bool) -> dict[str, Tensor]:
    """Detached float64 copies of one layer/direction's parameters, keyed by short name."""
    spec = model_spec(model)
    names = PARAM_NAMES if spec.bias else PARAM_NAMES[:2]
    return {n: getattr(model, full_name(n, layer, reverse)).detach().to(DTYPE) for n in names}


# --------------------------------------------------------------------------------------------
# One step of each cell, from torch's documentation
# --------------------------------------------------------------------------------------------
def cell_step(
    spec: ModelSpec,
    p: dict[str, Tensor],
    x: Tensor,
    s: Tensor,
    c_perturb: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """s_t = f(s_{t-1}, x_t) for one layer/direction: the cell's `reference_step`.

    x: (..., I); s: (..., S). Returns the new state (..., S) and the post-nonlinearity gates
    (each (..., N)). ``c_perturb`` (cells with a cell state only, a zero tensor in practice) is
    added to c_t *before* h_t = o ⊙ tanh(c_t) is formed, so that its gradient is the total dL/dc_t.
    """
    phi = _act(spec.activation) if spec.activation is not None else None
    return spec.cell_spec.reference_step(p, x, s, spec.hidden_size, phi, c_perturb)


# --------------------------------------------------------------------------------------------
# The unrolled forward + autograd
# --------------------------------------------------------------------------------------------
class ReferenceRecord(dict):
    """dict (layer, reverse) -> per-direction results, plus ``output`` / ``loss`` / ``spec``.

    Each per-direction entry is a dict with (processing order, see the module docstring):
      hidden (T+1, B, N), cell (T+1, B, N) or None, gates {name: (T, B, N)},
      states (T+1, B, S), inputs (T, B, I) (the inputs in the order this direction consumes them),
      grad_hidden (T+1, B, N): total dL/dh_s; grad_cell (T+1, B, N) or None: total dL/dc_s
      (including the path c_s -> h_s = o ⊙ tanh(c_s)); grad_state (T+1, B, S): the adjoint of
      s_s = (h_s, c_s) taken as independent coordinates (equal to grad_hidden for RNN/GRU; for
      the LSTM its c part omits the c_s -> h_s path), the one that obeys
      grad_state[s-1] = direct[s-1] + J_sᵀ grad_state[s];
      contributions {short name: (T, *shape)}.
    grad_* and contributions are None when no loss_fn was given.
    """

    output: Tensor
    loss: float | None
    spec: ModelSpec


def _initial_states(spec: ModelSpec, h0, B: int) -> Tensor:
    """(L*D, B, S) float64 initial states from torch's h0 / (h0, c0) convention."""
    LD, N = spec.num_layers * spec.num_directions, spec.hidden_size
    if h0 is None:
        return torch.zeros(LD, B, spec.state_size, dtype=DTYPE)
    if spec.has_cell_state:
        h, c = h0
        return torch.cat([h.detach().to(DTYPE), c.detach().to(DTYPE)], dim=-1)
    h = h0.detach().to(DTYPE)
    assert h.shape == (LD, B, N), h.shape
    return h


def reference_forward(model: torch.nn.Module, x: Tensor, h0=None) -> Tensor:
    """Just the output, in the model's layout (float64)."""
    return reference_record(model, x, None, h0).output


def reference_record(
    model: torch.nn.Module,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor] | None = None,
    h0=None,
) -> ReferenceRecord:
    """Unroll ``model`` on ``x`` one step at a time in float64 and differentiate with autograd.

    x: (T, B, I) or (B, T, I) if batch_first. ``loss_fn`` receives the output in the model's
    layout ((T, B, D*N) or (B, T, D*N)) and must return a scalar.
    """
    spec = model_spec(model)
    if x.dim() != 3:
        raise ValueError(f"reference expects a 3-D input, got shape {tuple(x.shape)}")
    xt = x.detach().to(DTYPE)
    if spec.batch_first:
        xt = xt.transpose(0, 1)
    T, B, _ = xt.shape
    N, D = spec.hidden_size, spec.num_directions
    want_grad = loss_fn is not None
    s0_all = _initial_states(spec, h0, B)

    leaves: list[Tensor] = []  # everything autograd differentiates w.r.t.
    per_dir: dict[tuple[int, bool], dict] = {}
    layer_in = xt  # (T, B, I_l), time order
    with torch.enable_grad():
        for layer in range(spec.num_layers):
            outs = []
            for d in range(D):
                reverse = d == 1
                base = layer_params(model, layer, reverse)
                # one private leaf copy of each parameter per processing step
                copies = {
                    n: [w.clone().requires_grad_(want_grad) for _ in range(T)]
                    for n, w in base.items()
                }
                seq = layer_in.flip(0) if reverse else layer_in  # processing order
                # zero perturbations. eps[s] is added to the state s_s after the step, so
                # d loss / d eps[s] is the adjoint of s_s with h_s and c_s as independent
                # coordinates (the state-space view the Jacobians use). For the LSTM, c_eps[s]
                # is added to c_s *before* h_s = o ⊙ tanh(c_s) is formed, so d loss / d c_eps[s]
                # is the total dL/dc_s (it also flows through h_s). At s = 0, h_0 and c_0 are
                # both given, so the two coincide.
                eps = [torch.zeros(B, spec.state_size, dtype=DTYPE) for _ in range(T + 1)]
                c_eps = [torch.zeros(B, N, dtype=DTYPE) for _ in range(T + 1)]
                if want_grad:
                    eps = [e.requires_grad_(True) for e in eps]
                    if spec.has_cell_state:
                        c_eps = [e.requires_grad_(True) for e in c_eps]
                s = s0_all[layer * D + d] + eps[0]
                states, gates = [s], []
                for k in range(T):
                    p = {n: copies[n][k] for n in copies}
                    cp = c_eps[k + 1] if spec.has_cell_state else None
                    s, g = cell_step(spec, p, seq[k], s, c_perturb=cp)
                    s = s + eps[k + 1]
                    states.append(s)
                    gates.append(g)
                st = torch.stack(states)  # (T+1, B, S)
                h = st[..., :N]
                # time order output: forward o_t = h_{t+1}; reverse o_t = h_{T - t}
                outs.append(h[1:].flip(0) if reverse else h[1:])
                per_dir[(layer, reverse)] = {
                    "_states": st,
                    "_eps": eps,
                    "_c_eps": c_eps,
                    "_copies": copies,
                    "_gates": gates,
                    "inputs": seq.detach().clone(),
                }
                leaves.extend(eps)
                if spec.has_cell_state:
                    leaves.extend(c_eps[1:])
                for n in copies:
                    leaves.extend(copies[n])
            layer_in = torch.cat(outs, dim=-1)
        output = layer_in.transpose(0, 1) if spec.batch_first else layer_in

        loss = None
        grads: dict[int, Tensor] = {}
        if loss_fn is not None:
            loss_t = loss_fn(output)
            if not (isinstance(loss_t, Tensor) and loss_t.numel() == 1):
                raise ValueError("loss_fn must return a scalar tensor")
            loss = float(loss_t.detach())
            gs = torch.autograd.grad(loss_t.reshape(()), leaves, allow_unused=True)
            grads = {
                id(leaf): g if g is not None else torch.zeros_like(leaf)
                for leaf, g in zip(leaves, gs, strict=True)
            }

    rec = ReferenceRecord()
    for key, e in per_dir.items():
        st = e["_states"].detach()
        out = {
            "states": st,
            "hidden": st[..., :N],
            "cell": st[..., N:] if spec.has_cell_state else None,
            "gates": {
                name: torch.stack([g[name] for g in e["_gates"]]).detach()
                for name in spec.gate_names
            },
            "inputs": e["inputs"],
            "grad_state": None,
            "grad_hidden": None,
            "grad_cell": None,
            "contributions": None,
        }
        if want_grad:
            grad_state = torch.stack([grads[id(leaf)] for leaf in e["_eps"]])
            out["grad_state"] = grad_state
            out["grad_hidden"] = grad_state[..., :N]
            if spec.has_cell_state:
                gc = [grad_state[0, :, N:]] + [grads[id(leaf)] for leaf in e["_c_eps"][1:]]
                out["grad_cell"] = torch.stack(gc)
            out["contributions"] = {
                n: torch.stack([grads[id(c)] for c in cs]) for n, cs in e["_copies"].items()
            }
        rec[key] = out
    rec.output = output.detach()
    rec.loss = loss
    rec.spec = spec
    return rec


# --------------------------------------------------------------------------------------------
# Jacobians (torch.func)
# --------------------------------------------------------------------------------------------
def _step_fn(model, layer: int, reverse: bool):
    spec = model_spec(model)
    p = layer_params(model, layer, reverse)

    def f(s: Tensor, x: Tensor) -> Tensor:  # one sample: s (S,), x (I,)
        return cell_step(spec, p, x, s)[0]

    return f


def reference_step_jacobians(model, layer: int, reverse: bool, states, inputs) -> Tensor:
    """All step Jacobians ds_t/ds_{t-1}, t = 1..T, stacked: (T, B, S, S)."""
    states = states.to(DTYPE)
    inputs = inputs.to(DTYPE)
    T, B, S = inputs.shape[0], states.shape[1], states.shape[2]
    f = _step_fn(model, layer, reverse)
    J = vmap(jacrev(f, argnums=0))(states[:-1].reshape(T * B, S), inputs.reshape(T * B, -1))
    return J.reshape(T, B, S, S)


def reference_step_jacobian(model, layer: int, reverse: bool, states, inputs, t: int) -> Tensor:
    """ds_t/ds_{t-1} at the recorded s_{t-1}, x_t: (B, S, S), t = 1..T.

    states: (T+1, B, S) and inputs: (T, B, I), both in processing order.
    """
    T = inputs.shape[0]
    if not 1 <= t <= T:
        raise ValueError(f"t must be in 1..{T}")
    f = _step_fn(model, layer, reverse)
    return vmap(jacrev(f, argnums=0))(states[t - 1].to(DTYPE), inputs[t - 1].to(DTYPE))


def reference_jacobian(model, layer: int, reverse: bool, states, inputs, t: int, k: int) -> Tensor:
    """ds_t/ds_k (B, S, S) by jacrev of the unrolled map s_k -> s_t (identity when k == t)."""
    T = inputs.shape[0]
    if not 0 <= k <= t <= T:
        raise ValueError(f"need 0 <= k <= t <= {T}")
    B, S = states.shape[1], states.shape[2]
    if k == t:
        return torch.eye(S, dtype=DTYPE).expand(B, S, S).clone()
    f = _step_fn(model, layer, reverse)
    xs = inputs[k:t].to(DTYPE).transpose(0, 1)  # (B, t-k, I)

    def unrolled(s: Tensor, xseq: Tensor) -> Tensor:
        for j in range(xseq.shape[0]):
            s = f(s, xseq[j])
        return s

    return vmap(jacrev(unrolled, argnums=0))(states[k].to(DTYPE), xs)


def reference_jacobians_to(model, layer: int, reverse: bool, states, inputs, t: int) -> Tensor:
    """ds_t/ds_k for every k = 0..t at once: (t+1, B, S, S).

    Unrolls from s_0 with a zero perturbation added to every s_k and differentiates s_t w.r.t.
    the perturbations (one jacrev for all k). An independent route to ``reference_jacobian``.
    """
    B, S = states.shape[1], states.shape[2]
    f = _step_fn(model, layer, reverse)
    xs = inputs[:t].to(DTYPE).transpose(0, 1)  # (B, t, I)

    def unrolled(eps: Tensor, s0: Tensor, xseq: Tensor) -> Tensor:  # eps (t+1, S)
        s = s0 + eps[0]
        for j in range(xseq.shape[0]):
            s = f(s, xseq[j]) + eps[j + 1]
        return s

    eps = torch.zeros(B, t + 1, S, dtype=DTYPE)
    J = vmap(jacrev(unrolled, argnums=0))(eps, states[0].to(DTYPE), xs)  # (B, S, t+1, S)
    return J.permute(2, 0, 1, 3).contiguous()


def reference_lyapunov(
    model, layer: int, reverse: bool, states, inputs, n: int = 1, burn_in: int = 0
) -> Tensor:
    """Leading n Lyapunov exponents (n,) by the QR method along the recorded trajectory.

    Q_0 = first n columns of I; Z = J_t Q_{t-1}; Q_t R_t = qr(Z); exponents = mean over
    t > burn_in of log|diag R_t|, then mean over the batch.
    """
    J = reference_step_jacobians(model, layer, reverse, states, inputs)  # (T, B, S, S)
    return lyapunov_from_step_jacobians(J, n=n, burn_in=burn_in)


def lyapunov_from_step_jacobians(J: Tensor, n: int = 1, burn_in: int = 0) -> Tensor:
    """The QR method of ``reference_lyapunov`` on given step Jacobians J (T, B, S, S)."""
    T, B, S, _ = J.shape
    Q = torch.eye(S, dtype=DTYPE)[:, :n].expand(B, S, n)
    logs = []
    for t in range(1, T + 1):
        Q, R = torch.linalg.qr(J[t - 1] @ Q)
        if t > burn_in:
            logs.append(torch.log(torch.diagonal(R, dim1=-2, dim2=-1).abs()))
    return torch.stack(logs).mean(0).mean(0)


# --------------------------------------------------------------------------------------------
# Simple statistics
# --------------------------------------------------------------------------------------------
def reference_hidden_stats(spec: ModelSpec, hidden: Tensor) -> dict[str, Tensor]:
    """mean_abs, saturation, dead, each (T+1,), from hidden (T+1, B, N)."""
    h = hidden.to(DTYPE)
    mean_abs = h.abs().mean(dim=(1, 2))
    bounds = spec.bounds
    if bounds is None:
        saturation = torch.zeros(h.shape[0], dtype=DTYPE)
    else:
        lo, hi = bounds
        m = 0.01 * (hi - lo)
        saturation = ((h > hi - m) | (h < lo + m)).to(DTYPE).mean(dim=(1, 2))
    if spec.activation is not None and get_activation(spec.activation).dead_at_zero:
        dead = (h == 0).to(DTYPE).mean(dim=(1, 2))
    else:
        dead = torch.zeros(h.shape[0], dtype=DTYPE)
    return {"mean_abs": mean_abs, "saturation": saturation, "dead": dead}


def reference_gate_means(gates: dict[str, Tensor]) -> dict[str, Tensor]:
    """gate -> (T,) means over batch and units."""
    return {k: v.to(DTYPE).mean(dim=(1, 2)) for k, v in gates.items()}


def frobenius(x: Tensor, lead: int = 1) -> Tensor:
    """Frobenius norm over all but the first ``lead`` dims."""
    return torch.linalg.vector_norm(x.reshape(*x.shape[:lead], -1), dim=-1)


def matrix_norms(J: Tensor, ord: int | str) -> Tensor:
    """Norms of (..., S, S) matrices: ord 2 -> largest singular value, 'fro'."""
    if ord == 2:
        return torch.linalg.svdvals(J)[..., 0]
    if ord == "fro":
        return torch.linalg.matrix_norm(J, ord="fro")
    raise ValueError(ord)


# --------------------------------------------------------------------------------------------
# The adjoint along a given (recorded) trajectory
# --------------------------------------------------------------------------------------------
def reference_trajectory_adjoint(
    model: torch.nn.Module,
    x: Tensor,
    states: dict[tuple[int, bool], Tensor],
    grad_output: Tensor,
) -> dict[tuple[int, bool], dict[str, Tensor | dict[str, Tensor] | None]]:
    """The float64 adjoint of the linearisation at a GIVEN trajectory, by autograd.

    ``states[(layer, reverse)]``: the trajectory s_0..s_T (T+1, B, S) in processing order (for
    an LSTM (h, c) concatenated), e.g. a float32 recording's states; ``grad_output``: ∂L/∂output
    in the model's layout. Each step is "teacher-forced": s̃_k = s_k + ε_k + f(s̃_{k-1}, x̃_k) −
    f(s_{k-1}, x_k), so s̃ equals the given states exactly while its derivatives are the step
    Jacobians there (a layer's input x̃ is the teacher-forced output of the layer below). The loss
    is linearised, L̃ = <grad_output, output(s̃)>. Returns per layer/direction grad_hidden (T+1,
    B, N), grad_cell (LSTM, total ∂L/∂c_k as in ``reference_record``, else None) and
    contributions {short name: (T, *shape)}.
    """
    spec = model_spec(model)
    xt = x.detach().to(DTYPE)
    if spec.batch_first:
        xt = xt.transpose(0, 1)
    T, B, _ = xt.shape
    N, D = spec.hidden_size, spec.num_directions
    per_dir: dict[tuple[int, bool], dict] = {}
    layer_in = xt
    with torch.enable_grad():
        for layer in range(spec.num_layers):
            outs = []
            for d in range(D):
                reverse = d == 1
                given = states[(layer, reverse)].detach().to(DTYPE)
                base = layer_params(model, layer, reverse)
                copies = {
                    n: [w.clone().requires_grad_(True) for _ in range(T)] for n, w in base.items()
                }
                seq = layer_in.flip(0) if reverse else layer_in
                eps = [
                    torch.zeros(B, spec.state_size, dtype=DTYPE, requires_grad=True)
                    for _ in range(T + 1)
                ]
                c_eps = [torch.zeros(B, N, dtype=DTYPE, requires_grad=True) for _ in range(T + 1)]
                s = given[0] + eps[0]
                hs = [s[..., :N]]
                for k in range(T):
                    p = {n: copies[n][k] for n in copies}
                    cp = c_eps[k + 1] if spec.has_cell_state else None
                    moved = cell_step(spec, p, seq[k], s, c_perturb=cp)[0]
                    fixed = cell_step(spec, base, seq[k].detach(), given[k])[0].detach()
                    s = given[k + 1] + eps[k + 1] + (moved - fixed)
                    hs.append(s[..., :N])
                h = torch.stack(hs)
                outs.append(h[1:].flip(0) if reverse else h[1:])
                per_dir[(layer, reverse)] = {"eps": eps, "c_eps": c_eps, "copies": copies}
            layer_in = torch.cat(outs, dim=-1)
        output = layer_in.transpose(0, 1) if spec.batch_first else layer_in
        loss = (grad_output.detach().to(DTYPE) * output).sum()
        leaves = [
            leaf
            for e in per_dir.values()
            for leaf in [
                *e["eps"],
                *e["c_eps"][1:],
                *(c for cs in e["copies"].values() for c in cs),
            ]
        ]
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        grad_of = {
            id(leaf): torch.zeros_like(leaf) if g is None else g
            for leaf, g in zip(leaves, grads, strict=True)
        }
    out: dict[tuple[int, bool], dict[str, Tensor | dict[str, Tensor] | None]] = {}
    for key, e in per_dir.items():
        grad_state = torch.stack([grad_of[id(leaf)] for leaf in e["eps"]])
        grad_cell = None
        if spec.has_cell_state:
            rest = [grad_of[id(leaf)] for leaf in e["c_eps"][1:]]
            grad_cell = torch.stack([grad_state[0, :, N:], *rest])
        out[key] = {
            "grad_hidden": grad_state[..., :N],
            "grad_cell": grad_cell,
            "contributions": {
                n: torch.stack([grad_of[id(c)] for c in cs]) for n, cs in e["copies"].items()
            },
        }
    return out
