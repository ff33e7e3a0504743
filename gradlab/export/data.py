"""Read what a figure needs from the store into a `FigureData`.

This is the store-reading side for exports and the CLI (gradlab.figures never imports the store).
The dashboard has its own loader, ``dashboards/data.py``, with caching; both fetch exactly
`FigureSpec.probes_for(**options)` and `FigureSpec.arrays`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gradlab.cells import CELLS, cells
from gradlab.figures import FIGURES, FigureData, FigureSpec
from gradlab.figures.spec import ProbeNames
from gradlab.store import Store, is_store, open_store

__all__ = [
    "NOT_GROUPED",
    "RunGroup",
    "check_steps_recorded",
    "comparable_groups",
    "file_safe",
    "get_spec",
    "load_figure_data",
    "open_existing",
    "resolve_run_ids",
    "value_text",
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


#: Config keys that never split runs into groups: the seed (replicates: the lowest seed
#: represents them) and the sweep's name.
NOT_GROUPED = ("seed", "sweep")


def value_text(value: Any) -> str:
    """A config value as short text: 1.0 → "1", 0.0015 → "0.0015", True → "true", None → "none"."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value).lower()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def file_safe(text: str) -> str:
    """`text` with every character but letters, digits and ``.=+-`` as "_" (file names)."""
    return re.sub(r"[^A-Za-z0-9.=+-]", "_", text)


def _hashable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _order(value: Any) -> tuple:
    """Sort key for config values of any type: None, then numbers, then text."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, float(value), "")
    return (2, 0.0, value_text(value))


@dataclass(frozen=True)
class RunGroup:
    """Runs that share every config key but `compare` (and the seed): the runs a sweep export
    overlays in one figure.

    `shared`: the config values every run of the group has (`compare`, seed and sweep aside).
    `name`: those of `shared` that tell this group from the sweep's other groups (None values
    left out); `stem` names its files ("" when the sweep is one group). `runs`: value of
    `compare` → its runs, the representative first (the lowest seed every value has, else
    each value's lowest seed, then run id). `seeds`: value → the seeds of its runs.
    """

    compare: str
    shared: dict[str, Any]
    name: dict[str, Any]
    stem: str
    runs: dict[str, list[str]] = field(default_factory=dict)
    seeds: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def representatives(self) -> dict[str, str]:
        """Value of `compare` → the run that represents it."""
        return {value: ids[0] for value, ids in self.runs.items()}

    def label(self, value: str) -> str:
        """How a value of `compare` is named in files and text: "lstm" for a cell, else
        "forget_bias=1"."""
        return value if self.compare == "cell" else f"{self.compare}={value}"

    def describe(self) -> str:
        """The group's name as text: "task=adding, seq_len=50" ("every run" for none)."""
        return ", ".join(f"{k}={value_text(v)}" for k, v in self.name.items()) or "every run"

    def seed_note(self, value: str | None = None) -> str:
        """Which seed stands for the replicates: "seed 0 shown (seeds 0, 1)" for the group (or
        for one `value` of `compare`); "" when there is one run each."""
        seeds = self.seeds if value is None else {value: self.seeds[value]}
        if all(len(s) <= 1 for s in seeds.values()):
            return ""
        shown = {_hashable(s[0]): s[0] for s in seeds.values()}
        every = {_hashable(x): x for s in seeds.values() for x in s}

        def text(values: dict[str, Any]) -> str:
            return ", ".join(value_text(v) for v in sorted(values.values(), key=_order))

        return f"seed {text(shown)} shown (seeds {text(every)})"


def comparable_groups(
    store: Store, run_ids: Sequence[str], compare: str = "cell"
) -> list[RunGroup]:
    """`run_ids` split into groups of runs that share every config key but `compare` (seed and
    sweep aside, `NOT_GROUPED`), sorted by the keys that differ between groups (ValueError
    when no run's config has `compare`)."""
    configs: dict[str, dict[str, Any]] = {}
    for rid in run_ids:
        configs[str(rid)] = dict(store.run(str(rid)).config)
    keys: list[str] = []
    for config in configs.values():
        keys += [k for k in config if k not in keys]
    if run_ids and compare not in keys:
        raise ValueError(
            f"no run has the config key {compare!r} to compare; keys: {', '.join(keys)}"
        )
    grouped = [k for k in keys if k != compare and k not in NOT_GROUPED]
    buckets: dict[tuple, list[str]] = {}
    for rid, config in configs.items():
        buckets.setdefault(tuple(_hashable(config.get(k)) for k in grouped), []).append(rid)
    shared_of = {key: {k: configs[ids[0]].get(k) for k in grouped} for key, ids in buckets.items()}
    varying = [k for k in grouped if len({_hashable(sh[k]) for sh in shared_of.values()}) > 1]
    order = sorted(buckets, key=lambda key: tuple(_order(shared_of[key][k]) for k in varying))
    groups, stems = [], set()
    for key in order:
        shared = shared_of[key]
        name = {k: shared[k] for k in varying if shared[k] is not None}
        stem = file_safe("-".join(f"{k}={value_text(v)}" for k, v in name.items()))
        base, n = stem, 2
        while stem in stems:  # two names that differ only in unsafe characters
            stem, n = f"{base}-{n}", n + 1
        stems.add(stem)
        groups.append(_group(compare, shared, name, stem, buckets[key], configs))
    return groups


def _group(
    compare: str,
    shared: dict[str, Any],
    name: dict[str, Any],
    stem: str,
    ids: Iterable[str],
    configs: Mapping[str, Mapping[str, Any]],
) -> RunGroup:
    members: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for rid in ids:
        value = configs[rid].get(compare)
        members.setdefault(value_text(value), []).append(rid)
        values.setdefault(value_text(value), value)

    def seed(rid: str) -> Any:
        return configs[rid].get("seed")

    def value_key(text: str) -> tuple:
        if compare == "cell" and text in CELLS:
            return (0, CELLS[text].order, text)
        return (1, *_order(values[text]))

    common = set.intersection(*({_hashable(seed(r)) for r in m} for m in members.values()))
    runs, seeds = {}, {}
    for text in sorted(members, key=value_key):
        rows = sorted(members[text], key=lambda r: (_order(seed(r)), r))
        first = next((r for r in rows if _hashable(seed(r)) in common), None)
        if first is not None:  # the lowest seed every value has represents each value
            rows = [first, *(r for r in rows if r != first)]
        runs[text] = rows
        seeds[text] = [seed(r) for r in rows]
    return RunGroup(compare, dict(shared), name, stem, runs, seeds)


def _steps_text(steps: Sequence[int], limit: int = 12) -> str:
    if len(steps) <= limit:
        return ", ".join(str(s) for s in steps)
    head = ", ".join(str(s) for s in steps[: limit - 3])
    tail = ", ".join(str(s) for s in steps[-2:])
    return f"{head}, …, {tail} ({len(steps)} in all)"


def _requested_steps(options: Mapping[str, Any]) -> list[int]:
    """The training steps asked for by ``step=`` / ``steps=`` (ValueError if not integers)."""
    asked: list[Any] = []
    if options.get("step") is not None:
        asked.append(options["step"])
    steps = options.get("steps")
    if steps is not None:
        asked += list(steps) if isinstance(steps, list | tuple) else [steps]
    out = []
    for s in asked:
        try:
            step = int(s)
            whole = not isinstance(s, bool) and float(s) == step
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise ValueError(f"a training step must be an integer, got {s!r}")
        out.append(step)
    return out


def check_steps_recorded(
    name: str, run_id: str, asked: Sequence[int], recorded: Sequence[int]
) -> None:
    """ValueError naming the recorded steps (and the nearest) when a step in `asked` is not
    among `recorded` for run `run_id`; nothing when the run recorded none of the figure's data
    (the figure then says so itself)."""
    recorded = sorted({int(s) for s in recorded})
    for step in asked:
        if not recorded or step in recorded:
            continue
        nearest = min(recorded, key=lambda s: (abs(s - step), s))
        raise ValueError(
            f"step {step} was not recorded for run {run_id} ({name}); recorded steps: "
            f"{_steps_text(recorded)} (nearest: {nearest})"
        )


def _recorded_steps(
    spec: FigureSpec,
    probes: ProbeNames,
    run_id: str,
    metrics: pd.DataFrame | None,
    array_steps: Mapping[tuple[str, str], Sequence[int]],
) -> list[int]:
    """The steps at which a run recorded what `spec` draws: its arrays' steps, else those of
    the first of `probes` (what it reads for these options) that the run has rows of: its main
    series (per-step scalars read beside it, such as the training loss, may be logged at every
    step)."""
    if spec.arrays:
        return sorted({int(s) for a in spec.arrays for s in array_steps[(run_id, a)]})
    if metrics is None or metrics.empty:
        return []
    rows = metrics[metrics["run_id"].astype(str) == str(run_id)]
    for probe in dict.fromkeys(p for p, _ in probes):
        steps = rows.loc[rows["probe"] == probe, "step"].dropna()
        if len(steps):
            return sorted({int(s) for s in steps})
    return []


def load_figure_data(
    store: Store | str | os.PathLike[str],
    name: str,
    run_ids: str | Sequence[str] | None = None,
    sweep: str | None = None,
    **options: Any,
) -> FigureData:
    """FigureData for figure `name`: the runs (see `resolve_run_ids`; a run-scope figure reads
    only ``options["run_id"]`` or the first run), the metrics its probes need for `options`,
    and its arrays at ``options["step"]`` (default: each run's latest). A ``step`` / ``steps``
    a run did not record raises ValueError naming the steps it did (`check_steps_recorded`):
    its arrays' steps, else those of the first series the figure reads (`_recorded_steps`)."""
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
    probes = spec.probes_for(**options)
    frames = [store.metrics(ids, probes=probe, names=list(names)) for probe, names in probes if ids]
    frames = [f for f in frames if len(f)]
    metrics = pd.concat(frames, ignore_index=True) if frames else None
    asked = _requested_steps(options)
    array_steps = {
        (rid, array): store.run(rid).array_steps(array) for array in spec.arrays for rid in ids
    }
    if asked:  # a step that was not recorded is an error, not an empty figure
        for rid in ids:
            recorded = _recorded_steps(spec, probes, rid, metrics, array_steps)
            check_steps_recorded(name, rid, asked, recorded)
    arrays = {}
    step = asked[0] if options.get("step") is not None else None
    for array in spec.arrays:
        for rid in ids:
            steps = array_steps[(rid, array)]
            chosen = step if step is not None else (steps[-1] if steps else None)
            if chosen is not None and chosen in steps:
                arrays[(rid, array, chosen)] = store.run(rid).array(array, chosen)
    return FigureData(metrics=metrics, runs=runs, arrays=arrays)
