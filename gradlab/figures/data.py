"""`FigureData`: everything a figure builder reads, as plain DataFrames and arrays.

Figures never import the store. Whoever calls a builder fills a FigureData from the store:
`gradlab.export.data.load_figure_data` for exports and the CLI, `dashboards/data.py` (its own
loader, with caching) for the dashboard. Both fetch exactly what `FigureSpec.probes` and
`FigureSpec.arrays` list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["METRIC_COLUMNS", "FigureData"]

#: Columns of `FigureData.metrics` (store.metrics(...) output: run_id + the metrics schema).
METRIC_COLUMNS: tuple[str, ...] = (
    "run_id",
    "step",
    "probe",
    "name",
    "layer",
    "direction",
    "t",
    "value",
)


def _empty_metrics() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in METRIC_COLUMNS})


def _empty_runs() -> pd.DataFrame:
    return pd.DataFrame({"run_id": pd.Series(dtype="object")})


def _plain(value: Any) -> Any:
    """NaN / NA → None and numpy scalars → Python, for config values read from a runs row."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass(frozen=True)
class FigureData:
    """Input of every figure builder.

    `metrics`: the long metrics table with `run_id` (``store.metrics(...)``: run_id, step, probe,
    name, layer, direction, t, value). `runs`: the ``store.runs()`` rows of the runs involved
    (run_id, status, config keys such as cell / seq_len / seed / gain, summary keys such as
    final_loss / baseline_loss); its order is the order runs are drawn in. `arrays`: (run_id,
    array name, step) → ndarray, for figures that need arrays (`FigureSpec.arrays`).
    """

    metrics: pd.DataFrame = field(default_factory=_empty_metrics)
    runs: pd.DataFrame = field(default_factory=_empty_runs)
    arrays: Mapping[tuple[str, str, int], np.ndarray] = field(default_factory=dict)
    # lazily built lookups (the frames above are treated as read-only)
    _rows: dict[str, dict[str, Any]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _groups: dict[str, pd.DataFrame] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        metrics = self.metrics if self.metrics is not None else _empty_metrics()
        missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
        if missing:
            metrics = metrics.copy()
            for c in missing:
                metrics[c] = pd.NA
        runs = self.runs if self.runs is not None else _empty_runs()
        if "run_id" not in runs.columns:
            runs = runs.copy()
            runs["run_id"] = pd.Series(dtype="object")
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "runs", runs.reset_index(drop=True))
        object.__setattr__(self, "arrays", dict(self.arrays or {}))

    # ------------------------------------------------------------------ runs
    @property
    def run_ids(self) -> list[str]:
        """Runs in drawing order: those of `runs`, then any found only in metrics or arrays."""
        ids = [str(r) for r in self.runs["run_id"].tolist()]
        seen = set(ids)
        extra = [str(r) for r in pd.unique(self.metrics["run_id"].dropna())]
        extra += [key[0] for key in self.arrays]
        for rid in extra:
            if rid not in seen:
                ids.append(rid)
                seen.add(rid)
        return ids

    def run(self, run_id: str) -> dict[str, Any]:
        """The runs row of `run_id` as a dict (NaN → None); {} if the run has no row."""
        if self._rows is None:
            rows: dict[str, dict[str, Any]] = {}
            for record in self.runs.to_dict("records"):
                rows.setdefault(
                    str(record["run_id"]), {str(k): _plain(v) for k, v in record.items()}
                )
            object.__setattr__(self, "_rows", rows)
        else:
            rows = self._rows
        return dict(rows.get(str(run_id), {}))

    def cell(self, run_id: str) -> str:
        """The run's cell type (a registered cell name such as "lstm"; "" if unknown)."""
        return str(self.run(run_id).get("cell") or "").lower()

    # ------------------------------------------------------------------ metrics
    def select(
        self,
        run_id: str,
        probe: str,
        name: str | None = None,
        *,
        step: int | None = None,
        layer: int | None = 0,
        direction: int | None = 0,
    ) -> pd.DataFrame:
        """Rows of one run and probe (and name, step), of one layer/direction.

        Rows whose layer/direction is null (per-run scalars) always match. Returns columns
        step, name, t, value (ints as int64, t may be <NA>), sorted by name, step, t.
        """
        m = self._group(run_id, probe)
        keep = pd.Series(True, index=m.index)
        if name is not None:
            keep &= m["name"] == name
        if step is not None:
            keep &= m["step"] == int(step)
        if layer is not None:
            keep &= m["layer"].isna() | (m["layer"] == layer)
        if direction is not None:
            keep &= m["direction"].isna() | (m["direction"] == direction)
        out = m.loc[keep, ["step", "name", "t", "value"]].copy()
        out["step"] = out["step"].astype("int64")
        out["t"] = out["t"].astype("Int64")
        out["value"] = out["value"].astype("float64")
        return out.sort_values(["name", "step", "t"], kind="stable").reset_index(drop=True)

    def _group(self, run_id: str, probe: str) -> pd.DataFrame:
        """The metrics rows of one run and probe (a lookup built once)."""
        if self._groups is None:
            m = self.metrics
            keys = m["run_id"].astype(str) + "\x00" + m["probe"].astype(str)
            groups = {k: g for k, g in m.groupby(keys.to_numpy(), sort=False)} if len(m) else {}
            object.__setattr__(self, "_groups", groups)
        else:
            groups = self._groups
        m = groups.get(f"{run_id}\x00{probe}")
        return self.metrics.iloc[:0] if m is None else m

    def steps(self, run_id: str, probe: str, name: str | None = None) -> list[int]:
        """Sorted training steps at which `probe` (/ `name`) was recorded for the run."""
        m = self._group(run_id, probe)
        if name is not None:
            m = m[m["name"] == name]
        return sorted({int(s) for s in m["step"].dropna()})

    def resolve_step(
        self, run_id: str, probe: str, name: str | None = None, step: int | None = None
    ) -> int | None:
        """`step` if given (None if not recorded), else the latest recorded step (or None)."""
        steps = self.steps(run_id, probe, name)
        if not steps:
            return None
        if step is None:
            return steps[-1]
        return int(step) if int(step) in steps else None

    def series(
        self,
        run_id: str,
        probe: str,
        name: str,
        *,
        step: int | None = None,
        layer: int | None = 0,
        direction: int | None = 0,
    ) -> tuple[int | None, pd.DataFrame]:
        """(step, rows t, value) of one per-timestep series at `step` (None → latest)."""
        chosen = self.resolve_step(run_id, probe, name, step)
        if chosen is None:
            return None, pd.DataFrame({"t": pd.Series(dtype="int64"), "value": []})
        df = self.select(run_id, probe, name, step=chosen, layer=layer, direction=direction)
        df = df.dropna(subset=["t"])
        return chosen, pd.DataFrame(
            {"t": df["t"].astype("int64").to_numpy(), "value": df["value"].to_numpy()}
        )

    def scalar(self, run_id: str, probe: str, name: str, step: int | None = None) -> float:
        """A per-step scalar (t null) at `step` (None → latest); NaN if absent."""
        chosen = self.resolve_step(run_id, probe, name, step)
        if chosen is None:
            return math.nan
        df = self.select(run_id, probe, name, step=chosen, layer=None, direction=None)
        df = df[df["t"].isna()]
        return float(df["value"].iloc[-1]) if len(df) else math.nan

    # ------------------------------------------------------------------ arrays
    def array_steps(self, run_id: str, name: str) -> list[int]:
        """Sorted steps at which array `name` is present for the run."""
        return sorted(s for (r, n, s) in self.arrays if r == str(run_id) and n == name)

    def array(
        self, run_id: str, name: str, step: int | None = None
    ) -> tuple[int | None, np.ndarray | None]:
        """(step, array) at `step` (None → latest present); (None, None) if absent."""
        steps = self.array_steps(run_id, name)
        if step is None:
            step = steps[-1] if steps else None
        if step is None or int(step) not in steps:
            return None, None
        return int(step), np.asarray(self.arrays[(str(run_id), name, int(step))])
