"""Helpers of the export tests (a plain module: tests/ is not a package): the small REAL store
(the same runs as tests/figures, trained with `gradlab.train.train`) and the browser switch.

Browser-dependent tests are skipped when no Chrome/Chromium is found — except in CI (the CI
environment variable set), where a missing browser must fail loudly: .ci/run installs chromium.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gradlab.config import RunConfig
from gradlab.export import find_browser
from gradlab.store import Store, open_store

CELLS_SWEEP, GRID_SWEEP = "figtest-cells", "figtest-grid"
_SMALL = dict(seq_len=10, hidden_size=6, batch_size=8, probe_batch=4, jacobian_samples=1)
_SMALL.update(hidden_samples=2, seed=0)

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


def store_configs() -> list[RunConfig]:
    """Same runs as tests/figures/conftest.py (keep the two in step)."""
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
