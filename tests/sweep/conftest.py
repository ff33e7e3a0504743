"""Helpers for the sweep tests: tiny specs whose runs take a fraction of a second."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

TINY_BASE = """
[base]
hidden_size = 4
seq_len = 5
steps = 3
batch_size = 8
probe_batch = 4
"""


@pytest.fixture
def make_spec(tmp_path: Path) -> Callable[..., Path]:
    """make_spec(name, grid="seed = [0, 1]", extra="", base=TINY_BASE) -> path of a spec."""

    def make(name: str, grid: str = "seed = [0, 1]", extra: str = "", base: str = TINY_BASE):
        text = f'name = "{name}"\ndescription = "Test sweep."\n{textwrap.dedent(base)}\n'
        text += f"[grid]\n{textwrap.dedent(grid)}\n{textwrap.dedent(extra)}"
        path = tmp_path / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return make
