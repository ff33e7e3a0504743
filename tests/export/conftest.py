"""Fixtures of the export tests: the small REAL store `fig_store` (with `cell_runs`,
`grid_runs`) comes from tests/conftest.py, shared with tests/figures; here, the grouping store
`group_store` (a sweep whose runs differ in more than the cell, for ``export --all``'s groups)
and one browser for every test (gradlab.export's shared renderer), closed at the end of the
session.
"""

from __future__ import annotations

import pytest
from export_cases import GROUP_SWEEP

from gradlab.export import close_default_renderer


@pytest.fixture(scope="session", autouse=True)
def _close_browser():
    """One browser serves every test (gradlab.export's shared renderer); closed at the end."""
    yield
    close_default_renderer()


def group_configs() -> list:
    """The RunConfigs of the grouping store: 2 cells × 2 tasks × 2 seq_len, tiny, seed 0, and
    the rnn on (adding, 6) again with seed 1."""
    from gradlab.config import RunConfig

    small = dict(hidden_size=4, batch_size=4, probe_batch=4, steps=2, record_every=1)
    small.update(jacobian_samples=1, hidden_samples=1, sweep=GROUP_SWEEP)
    configs = [
        RunConfig(cell=cell, task=task, seq_len=seq_len, seed=0, **small)
        for cell in ("rnn", "gru")
        for task in ("adding", "identity")
        for seq_len in (6, 10)
    ]
    return [*configs, RunConfig(cell="rnn", task="adding", seq_len=6, seed=1, **small)]


@pytest.fixture(scope="session")
def group_store(tmp_path_factory: pytest.TempPathFactory):
    """The grouping store (gradlab.store.Store), trained once per session."""
    from gradlab.store import open_store
    from gradlab.train import train

    store = open_store(tmp_path_factory.getbasetemp() / "gradlab-group-store", fsync=False)
    for config in group_configs():
        if config.run_id not in store:
            train(config, store)
    return store
