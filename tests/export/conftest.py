"""Fixtures of the export tests: the same small REAL store as tests/figures (trained once per
session with `gradlab.train.train`, shared through the session's base temp folder), and one
browser for every test (gradlab.export's shared renderer), closed at the end of the session.
"""

from __future__ import annotations

import pytest
from export_cases import CELLS_SWEEP, GRID_SWEEP, build_store

from gradlab.export import close_default_renderer
from gradlab.store import Store


@pytest.fixture(scope="session")
def fig_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_store(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def cell_runs(fig_store: Store) -> dict[str, str]:
    runs = fig_store.runs()
    runs = runs[runs["sweep"] == CELLS_SWEEP]
    return {str(r.cell): str(r.run_id) for r in runs.itertuples()}


@pytest.fixture(scope="session")
def grid_runs(fig_store: Store) -> list[str]:
    runs = fig_store.runs()
    return sorted(runs.loc[runs["sweep"] == GRID_SWEEP, "run_id"].astype(str))


@pytest.fixture(scope="session", autouse=True)
def _close_browser():
    """One browser serves every test (gradlab.export's shared renderer); closed at the end."""
    yield
    close_default_renderer()
