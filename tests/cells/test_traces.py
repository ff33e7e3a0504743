"""gradlab.cells.traces: the TorchScript-compiled per-step loops are the plain loops, bitwise."""

from __future__ import annotations

import pytest
import torch

from gradlab.cells import traces

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
