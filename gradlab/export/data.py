"""Read what a figure needs from the store into a `FigureData`.

This is the store-reading side for exports and the CLI (gradlab.figures never imports the store).
The dashboard has its own loader, ``dashboards/data.py``, with caching; both fetch exactly
`FigureSpec.probes_for(**options)` and `FigureSpec.arrays`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gradlab.cells import CELLS, cells
from gradlab.figures import FIGURES, FigureData, FigureSpec
from gradlab.store import Store, is_store, open_store

__all__ = [
    "get_spec",
    "load_figure_data",
    "open_existing",
    "representatives",
    "resolve_run_ids",
]

#: Statuses whose runs a sweep export includes (complete, and diverged: divergence is data).
SHOWN_STATUSES = ("complete", "diverged")


def open_existing(store: Store | str | os.PathLike[str]) -> Store:
    """`store` itself, or the store in an existing folder (FileNotFoundError if missing)."""
    if isinstance(store, Store):
        return store
    path = Path(store)
    if not is_store(path):
        raise FileNotFoundError(f"no gradlab store at {str(path)!r}")
    return open_store(path, fsync=False)


def get_spec(name: str) -> FigureSpec:
    """`FIGURES[name]`, or ValueError listing the figures."""
    try:
        return FIGURES[name]
    except KeyError:
        raise ValueError(f"unknown figure {name!r}; figures: {', '.join(FIGURES)}") from None


def _sort_key(row: pd.Series) -> tuple:
    cell = str(row.get("cell") or "")
    try:
        seed = float(row.get("seed"))
    except (TypeError, ValueError):
        seed = 0.0
    seed = seed if seed == seed else 0.0
    order = CELLS[cell].order if cell in CELLS else max((s.order for s in cells()), default=0) + 1
    return (order, cell, seed, str(row["run_id"]))


def resolve_run_ids(
    store: Store,
    run_ids: str | Sequence[str] | None = None,
    sweep: str | None = None,
) -> list[str]:
    """The runs to draw: `run_ids` as given (KeyError for an unknown id), else the complete or
    diverged runs of `sweep` (ValueError if it has none), else every complete/diverged run;
    sweep and store order is by cell (rnn, lstm, gru), then seed, then id."""
    runs = store.runs()
    if run_ids is not None:
        ids = [run_ids] if isinstance(run_ids, str) else [str(r) for r in run_ids]
        known = set(runs["run_id"])
        unknown = [r for r in ids if r not in known]
        if unknown:
            raise KeyError(f"no run {unknown[0]!r} in store {str(store.root)!r}")
        return ids
    shown = runs[runs["status"].isin(SHOWN_STATUSES)]
    if sweep is not None:
        col = shown["sweep"] if "sweep" in shown.columns else pd.Series("", index=shown.index)
        chosen = shown[col.astype(str) == str(sweep)]
        if chosen.empty:
            names = sorted({str(s) for s in runs.get("sweep", pd.Series(dtype=str)).dropna() if s})
            raise ValueError(
                f"no complete runs in sweep {sweep!r}; sweeps in this store: "
                f"{', '.join(names) or '(none)'}"
            )
        shown = chosen
    rows = sorted((row for _, row in shown.iterrows()), key=_sort_key)
    return [str(row["run_id"]) for row in rows]


def representatives(store: Store, run_ids: Sequence[str]) -> dict[str, str]:
    """cell type → its representative run among `run_ids`: the lowest seed, then run id."""
    runs = store.runs().set_index("run_id", drop=False)
    out: dict[str, str] = {}
    rows = sorted((runs.loc[r] for r in run_ids if r in runs.index), key=_sort_key)
    for row in rows:
        out.setdefault(str(row.get("cell") or "?"), str(row["run_id"]))
    return out


def load_figure_data(
    store: Store | str | os.PathLike[str],
    name: str,
    run_ids: str | Sequence[str] | None = None,
    sweep: str | None = None,
    **options: Any,
) -> FigureData:
    """FigureData for figure `name`: the runs (see `resolve_run_ids`; a run-scope figure reads
    only ``options["run_id"]`` or the first run), the metrics its probes need for `options`,
    and its arrays at ``options["step"]`` (default: each run's latest)."""
    store = open_existing(store)
    spec = get_spec(name)
    ids = resolve_run_ids(store, run_ids, sweep)
    if spec.scope == "run" and ids:
        ids = [str(options["run_id"])] if options.get("run_id") else ids[:1]
    runs = store.runs()
    runs = (
        runs.set_index("run_id", drop=False).loc[ids].reset_index(drop=True)
        if ids
        else runs.iloc[:0]
    )
    frames = [
        store.metrics(ids, probes=probe, names=list(names))
        for probe, names in spec.probes_for(**options)
        if ids
    ]
    frames = [f for f in frames if len(f)]
    metrics = pd.concat(frames, ignore_index=True) if frames else None
    arrays = {}
    step = options.get("step")
    for array in spec.arrays:
        for rid in ids:
            info = store.run(rid)
            steps = info.array_steps(array)
            chosen = int(step) if step is not None else (steps[-1] if steps else None)
            if chosen is not None and chosen in steps:
                arrays[(rid, array, chosen)] = info.array(array, chosen)
    return FigureData(metrics=metrics, runs=runs, arrays=arrays)
