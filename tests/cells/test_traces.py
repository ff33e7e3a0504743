"""gradlab.cells.traces: the TorchScript-compiled per-step loops are the plain loops, bitwise."""

from __future__ import annotations

import pytest
import torch

from gradlab.cells import traces
from gradlab.cells.models import LayerWeights

T, B, N, P = 6, 3, 5, 2


LOOPS = {
    "rnn_scan": traces._rnn_scan,
    "lstm_scan": traces._lstm_scan,
    "lstm_scan_projected": traces._lstm_scan,
    "lstm_cells": traces._lstm_cells,
    "gru_scan": traces._gru_scan,
}


def _args(name: str, dtype: torch.dtype) -> tuple:
    """Random arguments of the loop `name` in `dtype` (T steps, B rows, N units)."""
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=dtype)

    if name == "rnn_scan":
        return rand(T, B, N), rand(T, B, N), rand(N, N)
    if name == "lstm_scan":
        coefs = (rand(T, B, 3, N), rand(T, B, N), rand(T, B, N), rand(T, B, N))
        return rand(T, B, N), None, *coefs, rand(4 * N, N), None
    if name == "lstm_scan_projected":  # h has P units, and a direct term into c
        coefs = (rand(T, B, 3, N), rand(T, B, N), rand(T, B, N), rand(T, B, N))
        return rand(T, B, P), rand(T, B, N), *coefs, rand(4 * N, P), rand(P, N)
    if name == "lstm_cells":
        return rand(T, B, N), rand(T, B, N), rand(B, N)
    return rand(T, B, N), rand(T, B, 3, N), rand(T, B, N), rand(3 * N, N)  # gru_scan


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(LOOPS))
def test_compiled_loop_is_the_plain_loop_bitwise(name, dtype):
    loop = LOOPS[name]
    plain = loop(*_args(name, dtype))
    scripted = traces._scripted(loop)
    assert scripted is not loop, "TorchScript did not compile the loop"
    compiled = scripted(*_args(name, dtype))
    plain = plain if isinstance(plain, tuple) else (plain,)
    compiled = compiled if isinstance(compiled, tuple) else (compiled,)
    assert len(plain) == len(compiled)
    for expected, got in zip(plain, compiled, strict=True):
        assert got.dtype == dtype
        assert torch.equal(got, expected)


def _lstm_trace(T: int, B: int, H: int, dtype: torch.dtype, proj: int = 0) -> traces.LSTMTrace:
    """The trace of a random LSTM layer on a random trajectory (T steps, B rows, H units)."""
    gen = torch.Generator().manual_seed(1)
    P = proj or H

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=dtype)

    weights = LayerWeights(
        rand(4 * H, 3) / 2,
        rand(4 * H, P) / 3,
        rand(4 * H),
        rand(4 * H),
        rand(P, H) if proj else None,
    )
    hidden = torch.tanh(rand(T + 1, B, P))
    return traces.LSTMTrace(weights, rand(T, B, 3), hidden, rand(B, H))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("proj", [0, 2], ids=["plain", "projected"])
def test_lstm_adjoint_chunk_by_chunk_is_the_one_chunk_scan_bitwise(monkeypatch, proj, dtype):
    """`LSTMTrace.adjoint` fills the coefficients and scans chunk by chunk (last chunk first);
    with chunks of 3 steps over T = 10 it returns what the scan of all steps at once does."""
    monkeypatch.setattr(traces, "_CHUNK_ENTRIES", 3 * B * 4 * N)  # 3 steps a chunk
    trace = _lstm_trace(10, B, N, dtype, proj)
    assert len(trace._chunks) == 4 and trace._unfilled == {0, 1, 2, 3}
    gen = torch.Generator().manual_seed(2)
    direct = torch.randn(10, B, proj or N, generator=gen, dtype=dtype)
    direct_cell = torch.randn(10, B, N, generator=gen, dtype=dtype)
    grad_h, grad_c, delta, _ = trace.adjoint(direct, direct_cell)
    assert trace._unfilled == set() and trace._tanh_c is None  # every chunk filled
    coefs = (trace.dc, trace.dh_c, trace.dh_o, trace.forget, trace.weights.weight_hh)
    expected = traces._lstm_scan(direct, direct_cell, *coefs, trace.projection)
    for got, want in zip((grad_h, grad_c, delta), expected, strict=True):
        assert torch.equal(got, want)


def test_lstm_final_cell_is_a_direct_cell_term_at_the_last_step_bitwise():
    trace = _lstm_trace(7, B, N, torch.float64)
    gen = torch.Generator().manual_seed(3)
    direct, final = torch.randn(7, B, N, generator=gen), torch.randn(B, N, generator=gen)
    direct, final = direct.double(), final.double()
    direct_cell = torch.zeros_like(direct)
    direct_cell[-1] = final
    by_term = trace.adjoint(direct, direct_cell)
    by_final = trace.adjoint(direct, final_cell=final)
    for got, want in zip(by_final, by_term, strict=True):
        assert torch.equal(got, want)


def test_lstm_coefficients_read_before_the_adjoint_are_the_ones_it_uses():
    """Reading dc / dh_o / dh_c fills every chunk at once; the adjoint then fills none again."""
    fresh, read = _lstm_trace(9, B, N, torch.float64), _lstm_trace(9, B, N, torch.float64)
    dc, dh_o, dh_c = read.dc.clone(), read.dh_o.clone(), read.dh_c.clone()
    assert read._unfilled == set()
    direct = torch.ones(9, B, N, dtype=torch.float64)
    for got, want in zip(read.adjoint(direct), fresh.adjoint(direct), strict=True):
        assert torch.equal(got, want)
    assert torch.equal(fresh.dc, dc) and torch.equal(fresh.dh_o, dh_o)
    assert torch.equal(fresh.dh_c, dh_c)


def _gru_reference(weights: LayerWeights, inputs: torch.Tensor, hidden: torch.Tensor) -> dict:
    """r, z, n, J_t's coefficients (u_r, u_z, u_n) and dn from the GRU's equations, step by
    step (GRUTrace's docstring), each (T, B, N)."""
    w, H = weights, weights.weight_hh.shape[1]
    b_ih = torch.zeros(3 * H, dtype=inputs.dtype) if w.bias_ih is None else w.bias_ih
    b_hh = torch.zeros(3 * H, dtype=inputs.dtype) if w.bias_hh is None else w.bias_hh
    out: dict[str, list] = {k: [] for k in ("r", "z", "n", "u_r", "u_z", "u_n", "dn")}
    for t in range(inputs.shape[0]):
        x, h = inputs[t], hidden[t]
        a = x @ w.weight_ih.T + b_ih  # (B, 3N)
        c = h @ w.weight_hh.T + b_hh
        r = torch.sigmoid(a[:, :H] + c[:, :H])
        z = torch.sigmoid(a[:, H : 2 * H] + c[:, H : 2 * H])
        n = torch.tanh(a[:, 2 * H :] + r * c[:, 2 * H :])
        dn = (1 - z) * (1 - n * n)
        values = (r, z, n, dn * c[:, 2 * H :] * r * (1 - r), (h - n) * z * (1 - z), dn * r, dn)
        for name, value in zip(out, values, strict=True):
            out[name].append(value)
    return {name: torch.stack(values) for name, values in out.items()}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_gru_trace_chunk_by_chunk_is_the_gru_equations(monkeypatch, bias, layout):
    """GRUTrace runs both gate GEMMs and the gates chunk by chunk (3 steps a chunk over T = 10,
    the last chunk shorter): its gates and J_t's coefficients are the GRU's equations, with and
    without biases, from contiguous or strided (batch-first, transposed) inputs."""
    monkeypatch.setattr(traces, "_CHUNK_ENTRIES", 3 * B * N)  # 3 steps a chunk
    gen = torch.Generator().manual_seed(4)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    steps = 10
    weights = LayerWeights(
        rand(3 * N, 4) / 2,
        rand(3 * N, N) / 3,
        rand(3 * N) if bias else None,
        rand(3 * N) if bias else None,
        None,
    )
    inputs = rand(steps, B, 4) if layout == "contiguous" else rand(B, steps, 4).transpose(0, 1)
    hidden = torch.tanh(rand(steps + 1, B, N))
    trace = traces.GRUTrace(weights, inputs, hidden)
    assert len(traces._step_chunks(steps, B * N, inputs.device)) == 4
    want = _gru_reference(weights, inputs, hidden)
    got = {**trace.gates, "dn": trace.dn}
    got |= dict(zip(("u_r", "u_z", "u_n"), trace.coef_hh.unbind(2), strict=True))
    for name, value in want.items():
        torch.testing.assert_close(got[name], value, rtol=1e-12, atol=1e-14, msg=name)
