"""The sweep's own bound, kept free of heavy imports so the CLI's parser can show it."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_RUNS"]

DEFAULT_MAX_RUNS = 10_000
"""The most runs a spec may expand into unless ``max_runs`` (``gradlab sweep --max-runs``) says
more; the count comes from the axis lengths, before any run is built."""
