"""Fixtures of the dashboard tests: one small REAL store, the app over it, its page modules.

The store is made once per session by `gradlab.train.train`: one sweep ("tiny") of an RNN, an
LSTM and a GRU with the same task, seq_len and seed at two gains (six complete runs), plus a
failed run and a corrupt run folder, written with the store's own writer.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import pytest

SWEEP = "tiny"
CELLS = ("rnn", "lstm", "gru")
GAINS = (0.9, 1.5)
BASE = dict(
    task="adding",
    seq_len=8,
    hidden_size=4,
    steps=6,
    record_every=3,
    batch_size=4,
    probe_batch=4,
    hidden_samples=2,
    jacobian_samples=1,
    seed=0,
    init="orthogonal",
    sweep=SWEEP,
)


class StoreInfo(types.SimpleNamespace):
    """root (str), ids: (cell, gain) → run id, failed, corrupt: run ids."""


def _make_store(root: Path) -> StoreInfo:
    from gradlab.store import open_store
    from gradlab.train import train

    store = open_store(root, fsync=False)
    ids = {}
    for gain in GAINS:
        for cell in CELLS:
            ids[(cell, gain)] = train({**BASE, "cell": cell, "gain": gain}, store)
    failed = "failed-run"
    writer = store.create_run(failed, {**BASE, "cell": "rnn", "gain": 3.0, "sweep": "broken"})
    writer.finish("failed", error="Traceback (most recent call last):\nValueError: boom at step 2")
    corrupt = "corrupt-run"
    folder = root / "runs" / f"run_id={corrupt}"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text("{ this is not json", encoding="utf-8")
    return StoreInfo(root=str(root), ids=ids, failed=failed, corrupt=corrupt)


@pytest.fixture(scope="session")
def real_store(tmp_path_factory) -> StoreInfo:
    """The session's store (see the module docstring)."""
    return _make_store(tmp_path_factory.mktemp("dash") / "store")


class AppInfo(types.SimpleNamespace):
    """app (dash.Dash), pages: name → module, root (str)."""


def _app(root: str) -> AppInfo:
    from dashboards.app import create_app, page_module

    app = create_app(root)
    pages = {name: page_module(name) for name in ("runs", "run", "compare", "sweep")}
    pages["not_found"] = page_module("not_found_404")
    return AppInfo(app=app, pages=types.SimpleNamespace(**pages), root=root)


@pytest.fixture(scope="session")
def dash_app(real_store) -> AppInfo:
    """The app over the session store, and its page modules."""
    return _app(real_store.root)


@pytest.fixture
def request_ctx(dash_app) -> Iterator[None]:
    """A Flask request context of the app, so callbacks find their store."""
    with dash_app.app.server.test_request_context("/"):
        yield


@pytest.fixture
def make_app():
    """factory(root) → AppInfo over another store (empty, ...)."""
    return _app
