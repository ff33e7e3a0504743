"""Fixtures of the export tests: the small REAL store `fig_store` (with `cell_runs`,
`grid_runs`) comes from tests/conftest.py, shared with tests/figures; here, one browser for every
test (gradlab.export's shared renderer), closed at the end of the session.
"""

from __future__ import annotations

import pytest

from gradlab.export import close_default_renderer


@pytest.fixture(scope="session", autouse=True)
def _close_browser():
    """One browser serves every test (gradlab.export's shared renderer); closed at the end."""
    yield
    close_default_renderer()
