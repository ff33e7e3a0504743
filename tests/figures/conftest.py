"""A small REAL run store, trained once per session with `gradlab.train.train`.

Sweep "figtest-cells": an rnn (Gaussian init, σ_w = 0.9, so the mean-field theory has a rate),
an lstm and a gru with the same task, seq_len and seed, clipping on. Sweep "figtest-grid": four
tiny rnns on σ_w × σ_b for the phase diagram. The store lives in the session's base temp folder
and is shared with tests/export (its conftest builds the same store the same way; whichever
runs first trains it, the other reuses it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from gradlab.config import RunConfig
from gradlab.figures import FigureData
from gradlab.store import Store, open_store

CELLS_SWEEP, GRID_SWEEP = "figtest-cells", "figtest-grid"
SEQ_LEN = 10
_SMALL = dict(seq_len=SEQ_LEN, hidden_size=6, batch_size=8, probe_batch=4, jacobian_samples=1)
_SMALL.update(hidden_samples=2, seed=0)


def store_configs() -> list[RunConfig]:
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


def build_store(base: Path) -> Store:
    """Train the runs into `base`/gradlab-figure-store unless a previous fixture did."""
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
def fig_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_store(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def cell_runs(fig_store: Store) -> dict[str, str]:
    """cell type → run id in the cells sweep."""
    runs = fig_store.runs()
    runs = runs[runs["sweep"] == CELLS_SWEEP]
    return {str(r.cell): str(r.run_id) for r in runs.itertuples()}


@pytest.fixture(scope="session")
def grid_runs(fig_store: Store) -> list[str]:
    runs = fig_store.runs()
    return sorted(runs.loc[runs["sweep"] == GRID_SWEEP, "run_id"].astype(str))


@pytest.fixture(scope="session")
def figure_data(fig_store: Store) -> Callable[[Sequence[str]], FigureData]:
    """run ids → FigureData with every metric and array of those runs (as a dashboard would
    read them through the store), cached."""
    cache: dict[tuple[str, ...], FigureData] = {}

    def make(run_ids: Sequence[str]) -> FigureData:
        key = tuple(run_ids)
        if key not in cache:
            runs = fig_store.runs().set_index("run_id", drop=False).loc[list(key)]
            arrays = {}
            for rid in key:
                info = fig_store.run(rid)
                for name in info.array_names():
                    for step in info.array_steps(name):
                        arrays[(rid, name, step)] = info.array(name, step)
            cache[key] = FigureData(
                metrics=fig_store.metrics(list(key)),
                runs=runs.reset_index(drop=True),
                arrays=arrays,
            )
        return cache[key]

    return make
