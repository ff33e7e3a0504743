"""Shared fixtures for the engine tests (test_reference, test_record, tests/cells/*), and the
small REAL run store of tests/figures and tests/export (`fig_store`, at the end).

Models are built either from plain ``torch.nn`` (for the reference's own checks) or from
``gradlab`` (the engine under test); weights are re-drawn from a seeded generator so every test
sees the same, reasonably "interesting" (neither vanishing nor exploding at T ~ 6) dynamics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cell_cases import CELL_ACTS, TORCH_CELL_ACTS, cell_id, make_input
from store_cases import (
    CELLS_SWEEP,
    GRID_SWEEP,
    PHASE_CELLS,
    PHASE_SEQ_LENS,
    PHASE_SWEEP,
    PHASE_TASKS,
    RANGE_SWEEP,
)

from gradlab.cells import cell_of, get_cell


def randomize_(model: torch.nn.Module, seed: int = 0, gain: float = 1.0) -> torch.nn.Module:
    """Overwrite every parameter with N(0, gain^2 / N) draws from a private generator."""
    gen = torch.Generator().manual_seed(seed)
    std = gain / math.sqrt(model.hidden_size)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std)
    return model


def _build(
    lib: str,
    cell: str,
    act: str | None,
    *,
    input_size: int = 3,
    hidden_size: int = 4,
    num_layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = False,
    bias: bool = True,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    gain: float = 1.0,
) -> torch.nn.Module:
    kw = dict(
        num_layers=num_layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
        dtype=dtype,
    )
    spec = get_cell(cell)
    if lib == "torch":
        if not spec.torch_classes:
            pytest.skip(f"torch.nn has no {cell!r} module")
        module = spec.torch_classes[0]
        if spec.takes_activation:
            if act not in ("tanh", "relu"):
                pytest.skip(f"torch.nn.{module.__name__} has no {act!r} nonlinearity")
            m = module(input_size, hidden_size, nonlinearity=act, **kw)
        else:
            m = module(input_size, hidden_size, **kw)
    else:
        m = spec.build(input_size, hidden_size, act, **kw)
    return randomize_(m, seed=seed, gain=gain)


@pytest.fixture
def torch_model() -> Callable[..., torch.nn.Module]:
    """factory(cell, act, **kw) -> torch.nn.RNN/LSTM/GRU with seeded random weights."""
    return lambda cell, act, **kw: _build("torch", cell, act, **kw)


@pytest.fixture
def gradlab_model() -> Callable[..., torch.nn.Module]:
    """factory(cell, act, **kw) -> gradlab.RNN/LSTM/GRU with seeded random weights."""
    return lambda cell, act, **kw: _build("gradlab", cell, act, **kw)


def make_h0(model: torch.nn.Module, B: int, seed: int = 2):
    """A random initial state in torch's layout ((h0, c0) for LSTM), model dtype."""
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    shape = (model.num_layers * (2 if model.bidirectional else 1), B, model.hidden_size)
    h = (0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
    if get_cell(cell_of(model)).has_cell_state:
        c = (0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
        return (h, c)
    return h


def make_loss(
    kind: str, out_features: int, batch_first: bool, seed: int = 3
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A scalar loss of what ``model(x)[0]`` returns.

    kind "m2o": squared error of a linear read-out of the LAST step's output;
    kind "m2m": squared error of the read-out at EVERY step (targets fixed by ``seed``).
    """
    gen = torch.Generator().manual_seed(seed)
    R = torch.randn(out_features, 2, generator=gen, dtype=torch.float64)
    y_scale = torch.randn(2, generator=gen, dtype=torch.float64)

    def loss_fn(out: torch.Tensor) -> torch.Tensor:
        if kind == "m2o":
            last = out[:, -1] if batch_first else out[-1]  # (B, D*N)
            pred = last @ R.to(out.dtype)
            return 0.5 * ((pred - y_scale.to(out.dtype)) ** 2).sum()
        if kind == "m2m":
            pred = out @ R.to(out.dtype)  # (T, B, 2) or (B, T, 2)
            steps = torch.arange(pred.shape[1 if batch_first else 0], dtype=out.dtype)
            target = torch.sin(steps)[:, None] * y_scale.to(out.dtype)  # (T, 2)
            if batch_first:
                target = target[None]
            else:
                target = target[:, None]
            return 0.5 * ((pred - target) ** 2).mean() * pred.shape[-2]
        raise ValueError(kind)

    return loss_fn


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tiny-tensor torch calls on one intra-op thread, then restore.

    On a shared, loaded machine the thread pool's hand-offs cost far more than the (B x S x S,
    S <= 8) linear algebra itself: a 2-thread QR of a 3x8x8 batch took 16-100 ms instead of
    0.01 ms. Used (autouse) by the engine-vs-reference modules only.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def helpers():
    """Namespace of plain helper functions (so test modules need not import conftest)."""

    class H:
        make_input = staticmethod(make_input)
        make_h0 = staticmethod(make_h0)
        make_loss = staticmethod(make_loss)
        randomize_ = staticmethod(randomize_)
        build = staticmethod(_build)
        cell_id = staticmethod(cell_id)
        CELL_ACTS = CELL_ACTS
        TORCH_CELL_ACTS = TORCH_CELL_ACTS

    return H


# ---------------------------------------------------------------- figure / export run store
# Sweep "figtest-cells": an rnn (Gaussian init, σ_w = 0.9, so the mean-field theory has a rate),
# an lstm and a gru with the same task, seq_len and seed, clipping on. Sweep "figtest-grid":
# four tiny rnns on σ_w × σ_b for the phase diagram. Trained once per session with
# `gradlab.train.train` into the session's base temp folder.
_SMALL = dict(seq_len=10, hidden_size=6, batch_size=8, probe_batch=4, jacobian_samples=1)
_SMALL.update(hidden_samples=2, seed=0)


def store_configs() -> list:
    """The RunConfigs of the figure / export store."""
    from gradlab.config import RunConfig

    configs = [
        RunConfig(
            cell=cell,
            init="gaussian" if cell == "rnn" else "default",
            gain=0.9 if cell == "rnn" else 1.0,
            steps=7,
            record_every=3,
            clip=0.5,
            sweep=CELLS_SWEEP,
            **_SMALL,
        )
        for cell in ("rnn", "lstm", "gru")
    ]
    configs += [
        RunConfig(
            cell="rnn",
            init="gaussian",
            gain=gain,
            bias_scale=bias,
            steps=2,
            record_every=1,
            sweep=GRID_SWEEP,
            **_SMALL,
        )
        for gain in (0.8, 1.5)
        for bias in (0.0, 0.3)
    ]
    return configs


def build_store(base: Path):
    """Train the runs into `base`/gradlab-figure-store unless a previous session fixture did."""
    from gradlab.store import open_store
    from gradlab.train import train

    path = base / "gradlab-figure-store"
    done = path / ".trained"
    store = open_store(path, fsync=False)
    if not done.exists():
        for config in store_configs():
            if config.run_id not in store:
                train(config, store)
        done.touch()
    return store


@pytest.fixture(scope="session")
def fig_store(tmp_path_factory: pytest.TempPathFactory):
    """The figure / export store (gradlab.store.Store), trained once per session."""
    return build_store(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def cell_runs(fig_store) -> dict[str, str]:
    """cell type → run id in the cells sweep."""
    runs = fig_store.runs()
    runs = runs[runs["sweep"] == CELLS_SWEEP]
    return {str(r.cell): str(r.run_id) for r in runs.itertuples()}


@pytest.fixture(scope="session")
def grid_runs(fig_store) -> list[str]:
    """Run ids of the grid sweep, sorted."""
    runs = fig_store.runs()
    return sorted(runs.loc[runs["sweep"] == GRID_SWEEP, "run_id"].astype(str))


# ---------------------------------------------------------------- float-range run store
# Sweep "figtest-range" (store_cases.RANGE_RUNS): a float32 run whose adjoint underflows, the
# same run with a float64 adjoint, a relu run with true zeros (seed 11 draws biases that keep
# all four units at 0: ∂L/∂h_k = 0 for k < T, exactly, after a normal ∂L/∂h_T), an LSTM
# whose ∂L/∂h underflows while its ∂L/∂c does not, and a relu RNN with W_hh ~ N(0, 50²/N)
# whose states overflow float32 (the run ends diverged after its step-0 recording).
_RANGE = dict(task="adding", batch_size=4, probe_batch=4, steps=2, record_every=1)
_RANGE.update(jacobian_samples=1, hidden_samples=1, sweep=RANGE_SWEEP)


def range_configs() -> dict:
    """name → RunConfig of the float-range store."""
    from gradlab.config import RunConfig

    long = RunConfig(seq_len=300, hidden_size=16, **_RANGE)
    dead = RunConfig(seq_len=20, hidden_size=4, activation="relu", init="gaussian", gain=0.5,
                     bias_scale=2.0, seed=11, **_RANGE)  # fmt: skip
    return {
        "underflow": long,
        "float64": long.replace(adjoint_dtype="float64"),
        "dead-relu": dead,
        "lstm-underflow": long.replace(cell="lstm"),
        "overflow": dead.replace(seq_len=60, hidden_size=8, gain=50.0, bias_scale=0.0, seed=0),
    }


@pytest.fixture(scope="session")
def range_store(tmp_path_factory: pytest.TempPathFactory):
    """(Store, name → run id) of the float-range runs, trained once per session."""
    from gradlab.store import open_store
    from gradlab.train import train

    path = tmp_path_factory.getbasetemp() / "gradlab-range-store"
    store = open_store(path, fsync=False)
    ids = {}
    for name, config in range_configs().items():
        ids[name] = config.run_id if config.run_id in store else train(config, store)
    return store, ids


# ---------------------------------------------------------------- phase-diagram run store
# Sweep store_cases.PHASE_SWEEP: cell × task × seq_len, the RNN at seeds 0 and 1, one optimiser
# step each (the phase diagram reads each run's summary decay rate and final loss).
_PHASE = dict(hidden_size=4, batch_size=4, probe_batch=4, steps=1, record_every=1)
_PHASE.update(hidden_samples=1, jacobian_samples=1, sweep=PHASE_SWEEP)


def phase_configs() -> list:
    """The RunConfigs of the phase-diagram store."""
    from gradlab.config import RunConfig

    return [
        RunConfig(cell=cell, task=task, seq_len=seq_len, seed=seed, **_PHASE)
        for cell in PHASE_CELLS
        for task in PHASE_TASKS
        for seq_len in PHASE_SEQ_LENS
        for seed in ((0, 1) if cell == "rnn" else (0,))
    ]


@pytest.fixture(scope="session")
def phase_store(tmp_path_factory: pytest.TempPathFactory):
    """The phase-diagram store (gradlab.store.Store), trained once per session."""
    from gradlab.store import open_store
    from gradlab.train import train

    store = open_store(tmp_path_factory.getbasetemp() / "gradlab-phase-store", fsync=False)
    for config in phase_configs():
        if config.run_id not in store:
            train(config, store)
    return store
