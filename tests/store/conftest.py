"""Shared fixtures of the store tests: real folders in tmp_path, real DuckDB."""

from __future__ import annotations

import pytest

from gradlab.store import Store, open_store


@pytest.fixture
def store(tmp_path) -> Store:
    return open_store(tmp_path / "store", fsync=False)
