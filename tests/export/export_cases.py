"""Helpers of the export tests (a plain module: tests/ is not a package): the sweep names of the
small REAL store (tests/conftest.py's `fig_store`, shared with tests/figures), the grouping
store's sweep (tests/export/conftest.py's `group_store`) and the browser switch.

Browser-dependent tests are skipped when no Chrome/Chromium is found — except in CI (the CI
environment variable set), where a missing browser must fail loudly: .ci/run installs chromium.
"""

from __future__ import annotations

import os

import pytest
from store_cases import CELLS_SWEEP, GRID_SWEEP

from gradlab.export import find_browser

__all__ = [
    "CELLS_SWEEP",
    "GRID_SWEEP",
    "GROUP_SWEEP",
    "HAVE_BROWSER",
    "browser",
    "needs_browser",
]

#: The grouping store's sweep: rnn and gru × tasks adding and identity × seq_len 6 and 10, seed 0,
#: and a second seed (1) of the rnn on (adding, 6).
GROUP_SWEEP = "exporttest-groups"

HAVE_BROWSER = find_browser() is not None
#: Marks a test that renders through Chromium: skipped without a browser, except in CI.
needs_browser = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not HAVE_BROWSER and not os.environ.get("CI"),
        reason="no Chrome/Chromium found (apt-get install chromium, or set BROWSER_PATH); "
        "CI installs one and runs these",
    ),
]


def browser(fn):
    """Decorator: mark a test as needing the browser (see `needs_browser`)."""
    for mark in needs_browser:
        fn = mark(fn)
    return fn
