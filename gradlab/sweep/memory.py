"""A lower bound on one run's memory, shown by ``gradlab sweep --dry-run`` before anything runs.

It counts only the largest tensors a run must hold (from the config, not a measurement), so it
flags a run that cannot fit (``seq_len = 100000, hidden_size = 16384``) but under-counts the
process's peak: on CPU (torch 2.13, T=400, N=256, B=P=64, a recording every step) the peak RSS
above that of a tiny run was 3.7× this bound for an RNN and 5.5× for an LSTM. Counted, with
T = seq_len, B = batch_size, P = probe_batch, N = hidden_size,
L = num_layers, D = 1 or 2 directions, K = max(1, gate blocks) (rnn 1, gru 3, lstm 4) and
S = state parts (lstm: h and c):

- parameters, gradients and two Adam moments: 4 · L·D·K·N·(2N + 2) values;
- the training graph: T·B·L·D·(K + S)·N values (each step's gates and states, kept for backward);
- the recording: the forward trace (T+1)·P·L·D·(K + S)·N values in ``dtype``, plus the adjoint
  and the per-timestep Gram matrices, 2·(T+1)·P·L·D·(S·N + P) values in ``adjoint_dtype``.
"""

from __future__ import annotations

from gradlab.cells import get_cell
from gradlab.config import RunConfig

__all__ = ["format_bytes", "run_memory_bytes"]

_BYTES = {"float32": 4, "float64": 8}


def run_memory_bytes(config: RunConfig) -> int:
    """Estimated peak bytes of ``config``'s largest tensors (see the module docstring)."""
    cell = get_cell(config.cell)
    k = max(1, len(cell.gate_names))
    s = len(cell.state_parts)
    t, b, p, n = config.seq_len, config.batch_size, config.probe_batch, config.hidden_size
    ld = config.num_layers * (2 if config.bidirectional else 1)
    size = _BYTES[config.dtype]
    adjoint = _BYTES[config.adjoint_dtype or config.dtype]
    params = 4 * ld * k * n * (2 * n + 2) * size
    graph = t * b * ld * (k + s) * n * size
    trace = (t + 1) * p * ld * (k + s) * n * size
    adjoint_part = 2 * (t + 1) * p * ld * (s * n + p) * adjoint
    return params + graph + trace + adjoint_part


def format_bytes(count: int) -> str:
    """``1536`` → ``"1.5 KiB"``; binary units up to TiB."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
