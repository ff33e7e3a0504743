"""Fixtures of the figure tests: FigureData over the small REAL store `fig_store` of
tests/conftest.py (shared with tests/export; trained once per session)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from gradlab.figures import FigureData
from gradlab.store import Store


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
