"""The sweep's run-count bound, kept free of heavy imports: the CLI's parser shows the default,
and `gradlab sweep` refuses an oversized spec from its axis lengths before torch is imported."""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_MAX_RUNS", "count_runs", "oversized", "too_many_runs"]

DEFAULT_MAX_RUNS = 10_000
"""The most runs a spec may expand into unless ``max_runs`` (``gradlab sweep --max-runs``) says
more; the count comes from the axis lengths, before any run is built."""


def count_runs(
    grid: Mapping[str, Sequence[Any]],
    full: Mapping[str, Any],
    includes: Sequence[Mapping[str, Any]],
    scale: str,
) -> tuple[int, int]:
    """(runs of the spec, runs of its grid alone) from the axis lengths, nothing built.

    At full scale [full]'s lists become grid axes and its single values replace grid axes; an
    include run takes [full]'s values and is expanded over each list in [full] it does not set.
    """
    full_axes: dict[str, Sequence[Any]] = {}
    if scale == "full":
        grid = dict(grid)
        for key, value in full.items():
            if isinstance(value, list):
                grid[key] = value
                full_axes[key] = value
            else:
                grid.pop(key, None)
    include_axes = [{k: v for k, v in full_axes.items() if k not in t} for t in includes]
    grid_runs = math.prod(len(v) for v in grid.values()) if grid or not includes else 0
    extra = sum(math.prod(len(v) for v in axes.values()) for axes in include_axes)
    return grid_runs + extra, grid_runs


def too_many_runs(
    source: str,
    scale: str,
    grid: Mapping[str, Sequence[Any]],
    counts: tuple[int, int],
    max_runs: int,
) -> str:
    """The refusal of a spec of ``counts = (runs, grid runs)`` over ``max_runs``."""
    count, grid_runs = counts
    shape = " × ".join(f"{len(v)} {k}" for k, v in grid.items()) or "no grid"
    extra = f" + {count - grid_runs} from [[include]]" if count > grid_runs else ""
    return (
        f"{source}: {count} runs at scale {scale} ({shape}{extra}) is more than max_runs "
        f"= {max_runs}; nothing was built. Pass --max-runs {count} (load_spec(..., "
        f"max_runs={count})) to run it, or shrink the grid"
    )


def oversized(path: str | os.PathLike[str], scale: str, max_runs: int | None) -> str | None:
    """The refusal of the spec file at ``path`` when it expands into more than ``max_runs`` runs,
    read from the raw TOML; None when it fits or cannot be counted (a missing file or a
    malformed table: `load_spec`'s full validation then says what is wrong)."""
    if max_runs is None:
        return None
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
        grid, full = data.get("grid", {}), data.get("full", {})
        includes = data.get("include", [])
        tables = [grid, full, *includes] if isinstance(includes, list) else None
        if tables is None or not all(isinstance(t, dict) for t in tables):
            return None
        if not all(isinstance(v, list) for v in grid.values()):
            return None
        if scale == "full":
            merged = dict(grid)
            for key, value in full.items():
                if isinstance(value, list):
                    merged[key] = value
                else:
                    merged.pop(key, None)
            grid = merged
        counts = count_runs(grid, full, includes, scale)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, TypeError):
        return None
    if counts[0] <= max_runs:
        return None
    return too_many_runs(str(path), scale, grid, counts, max_runs)
