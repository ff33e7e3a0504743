"""phase_diagram: a sweep's runs on two config axes (default σ_w × σ_b), coloured by a summary
— decay rate, final loss / baseline, or the fraction of gradient reaching the first timestep —
with the mean-field order-to-chaos line χ = 1 on gain × bias axes.

Grid values are categories: equal cells in grid order (numbers sorted as numbers), whatever
their spacing or type (a hand-edited "50" and 50 are one category). Every other config key that
varies among the runs is a facet or fixed to one value (`fix`, else a stated default): only seeds
are averaged."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradlab.cells import CELLS, shown_activation
from gradlab.figures import style
from gradlab.figures._common import MINUS, finish, log_colour, no_data, num, trace_meta
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import SUMMARY, TRAIN, group_probes
from gradlab.figures.spec import FigureSpec
from gradlab.figures.training import baseline_loss
from gradlab.probes import GradHiddenProbe

NAME = "phase_diagram"
COLORS = ("decay_rate", "loss_ratio", "first_fraction")

#: Axis titles of the config keys a sweep usually varies.
AXIS_LABELS = {
    "gain": "σ<sub>w</sub> (recurrent weight scale)",
    "bias_scale": "σ<sub>b</sub> (bias scale)",
    "seq_len": "sequence length T",
    "hidden_size": "hidden size N",
    "num_layers": "layers",
    "lr": "learning rate",
    "clip": "clip threshold",
    "truncate": "truncation window (steps)",
    "forget_bias": "forget-gate bias b<sub>f</sub>",
    "update_bias": "update-gate bias b<sub>z</sub>",
    "seed": "seed",
    "cell": "cell",
    "activation": "activation",
    "init": "initialisation",
}
COLOR_LABELS = {
    "decay_rate": "state decay rate (1/step)",
    "loss_ratio": "final loss / baseline",
    "first_fraction": "‖∂L/∂h<sub>0</sub>‖ / ‖∂L/∂h<sub>T</sub>‖",
}


def _value(
    data: FigureData, rid: str, color: str, step: int | None, measured: bool, row: dict
) -> float:
    """The run's `color` value: from its metrics when it has any (`measured`), else from its
    runs `row` (`_row_value`)."""
    if not measured:
        return _row_value(data, rid, row, color) if step is None else math.nan
    if color == "decay_rate":
        v = data.scalar(rid, SUMMARY, "decay_rate", step)
        if not math.isfinite(v) and step is None:
            v = _row_value(data, rid, row, color)
        return v
    if color == "loss_ratio":
        final = row.get("final_loss") if step is None else None
        if not isinstance(final, int | float) or not math.isfinite(final):
            df = data.select(rid, TRAIN, "loss", layer=None, direction=None)
            if step is not None:
                df = df[df["step"] <= int(step)]
            final = float(df["value"].iloc[-1]) if len(df) else math.nan
        base = baseline_loss(data, rid)
        return float(final) / base if base else math.nan
    # first_fraction: ‖∂L/∂h_0‖ / ‖∂L/∂h_T‖ at `step`, else the summary's early_fraction
    _, df = data.series(rid, GradHiddenProbe.probe, "norm", step=step)
    if len(df) >= 2:
        t, v = df["t"].to_numpy(), df["value"].to_numpy()
        last = v[np.argmax(t)]
        return float(v[np.argmin(t)] / last) if last > 0 else math.nan
    return data.scalar(rid, SUMMARY, "early_fraction", step)


def _row_value(data: FigureData, rid: str, row: Mapping[str, Any], color: str) -> float:
    """`color` from a runs row alone: a column of that name (the store's ``decay_rate``, or a
    summary a caller computed, e.g. the dashboard's ``loss_ratio``), else for loss_ratio
    ``final_loss`` / the task's baseline; NaN when neither is there."""
    stored = row.get(color)
    if isinstance(stored, int | float) and not isinstance(stored, bool) and math.isfinite(stored):
        return float(stored)
    if color == "loss_ratio":
        final, base = row.get("final_loss"), baseline_loss(data, rid)
        if isinstance(final, int | float) and math.isfinite(final) and base:
            return float(final) / base
    return math.nan


# ---------------------------------------------------------------------- grid categories
#: Category of a missing value (None / NaN in the runs table).
NONE_TEXT = "none"


def category(value: Any) -> str:
    """A grid value as the text of its category: numbers and numeric text as one number text
    ("50", "0.8", "1e-05"), None / NaN as "none", booleans as "true" / "false", other text as
    is — so a hand-edited "50" and 50 fall in the same cell."""
    if value is None or value is pd.NA:
        return NONE_TEXT
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return NONE_TEXT
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text or NONE_TEXT
    return category(number) if math.isfinite(number) else text


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def grid_order(texts: Sequence[str]) -> list[str]:
    """Distinct categories in grid order: numbers ascending, then text, then "none"."""

    def key(text: str) -> tuple[int, float, str]:
        v = _number(text)
        if v is not None:
            return (0, v, "")
        return (2 if text == NONE_TEXT else 1, 0.0, text)

    return sorted(set(texts), key=key)


def shown(text: str) -> str:
    """A category as printed: Unicode minus in numbers."""
    return text.replace("-", MINUS) if _number(text) is not None else text


def _config_keys(runs: pd.DataFrame) -> list[str]:
    """Run-config columns of `runs` that may form a grid (all but sweep and seed), in
    GRID_KEYS order first, then config order, "cell" last."""
    from gradlab.config import RunConfig

    fields = [f.name for f in dataclasses.fields(RunConfig) if f.name not in ("sweep", "seed")]
    head = [k for k in GRID_KEYS if k in fields and k != "cell"]
    ordered = [*head, *(k for k in fields if k not in head and k != "cell"), "cell"]
    return [k for k in ordered if k in runs.columns]


def _categories(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per run: run_id and the category text of each key (missing columns: "none")."""
    out = {"run_id": runs["run_id"].astype(str).to_numpy()}
    for key in keys:
        if key not in runs.columns:
            out[key] = [NONE_TEXT] * len(runs)
            continue
        seen: dict[tuple[type, Any], str] = {}
        texts = []
        for v in runs[key].astype(object).tolist():
            try:
                texts.append(seen.setdefault((type(v), v), category(v)))
            except TypeError:  # unhashable (a list): no cache
                texts.append(category(v))
        out[key] = texts
    return pd.DataFrame(out)


def varying_keys(runs: pd.DataFrame) -> list[str]:
    """Config keys (not seed) that take more than one category among `runs`, grid order."""
    keys = _config_keys(runs)
    table = _categories(runs, keys)
    return [k for k in keys if table[k].nunique() > 1]


def parse_fix(fix: Any) -> dict[str, str]:
    """`fix` as {key: category}: a mapping, "key:value[,key:value]" (``=`` works too) or a
    list of such items (the CLI's ``--option fix=a:1,b:2`` gives a list)."""
    if fix is None or fix == "" or fix == []:
        return {}
    if isinstance(fix, Mapping):
        items = [(str(k), v) for k, v in fix.items()]
    else:
        parts = fix.split(",") if isinstance(fix, str) else list(fix)
        items = []
        for part in parts:
            if isinstance(part, Mapping):
                items += [(str(k), v) for k, v in part.items()]
                continue
            text = str(part).strip()
            if not text:
                continue
            sep = ":" if ":" in text else "="
            key, found, value = text.partition(sep)
            if not found or not key.strip():
                raise ValueError(f"fix takes key:value[,key:value], got {text!r}")
            items.append((key.strip(), value.strip()))
    return {k: category(v) for k, v in items}


def _facet_key(
    facet: Any, x: str, y: str, keys: Sequence[str], varying: Sequence[str]
) -> str | None:
    """The config key whose values get one panel each (None: one panel)."""
    if facet is None or facet is False or str(facet).strip().lower() in ("", "none", "false"):
        return None
    if facet == "auto":
        return "cell" if "cell" in varying and "cell" not in (x, y) else None
    if facet not in keys:
        valid = ", ".join(k for k in varying if k not in (x, y)) or "none vary"
        raise ValueError(
            f"facet must be 'auto', 'none' or a config key of these runs ({valid}), got {facet!r}"
        )
    if facet in (x, y):
        raise ValueError(f"facet {facet!r} is already the {'x' if facet == x else 'y'} axis")
    return str(facet)


@dataclasses.dataclass(frozen=True)
class Selection:
    """The runs a phase diagram shows: `table` (run_id + categories), the fixed keys (key →
    category, in grid order) and which of them were defaults (not asked for)."""

    table: pd.DataFrame
    fixed: dict[str, str]
    defaulted: tuple[str, ...]


def select_runs(
    table: pd.DataFrame,
    x: str,
    y: str,
    facet: str | None,
    fix: Mapping[str, str],
    varying: Sequence[str],
) -> Selection:
    """Fix every varying key that is not x, y or the facet: to `fix`'s value, else — when it
    takes several values within one (facet, x, y) cell, which a mean would mix — to the value
    most of the remaining runs share (ties: the first in grid order). A key tied to what is
    shown (an init used only by the RNN panel) stays as it is: its cells average nothing but
    seeds. ValueError for a key that is not a config key of the runs, that is shown, or a value
    no run has."""
    shown_keys = {k for k in (x, y, facet) if k}
    free = [k for k in varying if k not in shown_keys]
    for key, value in fix.items():
        if key in shown_keys:
            where = "x axis" if key == x else "y axis" if key == y else "facet"
            others = f"fix one of {', '.join(free)}" if free else "no other key varies"
            raise ValueError(f"fix {key!r}: it is the {where}; {others}")
        if key not in table.columns or key == "run_id":
            valid = ", ".join(free) if free else f"none ({', '.join(varying)} are shown)"
            raise ValueError(f"unknown fix key {key!r}; keys to fix: {valid}")
        values = grid_order(table[key])
        if value not in values:
            raise ValueError(f"fix {key}:{value} matches no run; {key} takes {', '.join(values)}")
    part = table
    fixed: dict[str, str] = {}
    for key in [k for k in varying if k in fix] + [k for k in fix if k not in varying]:
        fixed[key] = fix[key]
        part = part[part[key] == fix[key]]
    defaulted = []
    cell_keys = list(dict.fromkeys(k for k in (x, y, facet) if k))
    for key in free:
        if key in fixed or part.empty:
            continue
        if part.groupby(cell_keys)[key].nunique().max() <= 1:
            continue  # one value per cell (tied to x, y or the facet): nothing is averaged
        counts = part[key].value_counts()
        value = grid_order(list(counts.index[counts == counts.max()]))[0]
        fixed[key] = value
        defaulted.append(key)
        part = part[part[key] == value]
    order = {k: i for i, k in enumerate(varying)}
    fixed = dict(sorted(fixed.items(), key=lambda kv: order.get(kv[0], len(order))))
    return Selection(part, fixed, tuple(defaulted))


CHI_POINTS = 5


@functools.lru_cache(maxsize=512)
def _critical(activation: str, sigma_b: float) -> float:
    """`gradlab.theory.critical_sigma_w`, memoised (a pure function of its arguments)."""
    from gradlab.theory import critical_sigma_w

    return critical_sigma_w(activation, sigma_b)


def positions(values: Sequence[float] | np.ndarray, grid: Sequence[float]) -> np.ndarray:
    """σ values on the category axis of the sorted numeric `grid` (cell k at position k):
    linear between neighbouring grid values, so exact at every grid value, and continued with
    the end cells' spacing beyond them. A one-value grid maps only that value (to 0)."""
    g = np.asarray(grid, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if g.size == 1:
        return np.where(np.isclose(v, g[0]), 0.0, np.nan)
    pos = np.interp(v, g, np.arange(g.size, dtype=np.float64))
    lo, hi = v < g[0], v > g[-1]
    pos[lo] = (v[lo] - g[0]) / (g[1] - g[0])
    pos[hi] = g.size - 1 + (v[hi] - g[-1]) / (g[-1] - g[-2])
    return pos


def _chi_line(
    fig: go.Figure,
    x: str,
    x_grid: Sequence[float],
    y_grid: Sequence[float],
    activations: Sequence[str],
    where: dict[str, int],
    showlegend: bool,
) -> None:
    """χ = 1: σ_w = critical_sigma_w(activation, σ_b) over the σ_b range of the grid (at its
    σ_b values and CHI_POINTS between), placed on the category axes by `positions`. Its table
    columns: the positions, and the σ_w, σ_b values themselves (gain, bias_scale)."""
    b_grid, w_grid = (y_grid, x_grid) if x == "gain" else (x_grid, y_grid)
    b_lo, b_hi = min(b_grid), max(b_grid)
    b = np.array(
        sorted(
            {round(float(v), 9) for v in np.linspace(b_lo, b_hi, CHI_POINTS)}
            | {round(float(v), 9) for v in b_grid}
        )
    )
    y = "bias_scale" if x == "gain" else "gain"
    for act in activations:
        try:
            w = np.array([_critical(act, float(v)) for v in b])
        except ValueError:
            continue
        wp, bp = positions(w, w_grid), positions(b, b_grid)
        keep = np.isfinite(wp) & np.isfinite(bp) & (wp >= -0.5) & (wp <= len(w_grid) - 0.5)
        if not keep.any():
            continue
        px_, py_ = (wp, bp) if x == "gain" else (bp, wp)
        fig.add_trace(
            go.Scatter(
                x=px_[keep],
                y=py_[keep],
                customdata=np.column_stack([w, b])[keep],
                mode="lines",
                name=f"χ = 1 ({act}, mean field)",
                line=dict(color=style.OTHER_COLOR, dash=style.THEORY_DASH, width=2.5),
                showlegend=showlegend,
                hovertemplate="χ = 1<br>σ_w=%{customdata[0]:.3f}, σ_b=%{customdata[1]:.3f}"
                "<extra></extra>",
                meta={
                    **trace_meta(
                        None,
                        x=f"{x}_position",
                        y=f"{y}_position",
                        const={"name": "chi=1", "activation": act},
                    ),
                    "custom": ["gain", "bias_scale"],
                },
            ),
            **where,
        )


#: Config keys a sweep grid may vary, in the order `grid_axes` prefers them.
GRID_KEYS = (
    "gain",
    "bias_scale",
    "seq_len",
    "hidden_size",
    "num_layers",
    "lr",
    "clip",
    "truncate",
    "forget_bias",
    "update_bias",
    "activation",
    "init",
    "optimizer",
    "task",
    "batch_size",
    "cell",
)


def grid_axes(runs: pd.DataFrame) -> tuple[str, str]:
    """Default axes for a sweep's runs table: gain × bias_scale when both vary, else the
    first two varying config keys (GRID_KEYS order, cell last); "seed" fills in when only one
    key varies."""
    varying = varying_keys(runs) if len(runs) else []
    if "gain" in varying and "bias_scale" in varying:
        return "gain", "bias_scale"
    if len(varying) >= 2:
        return varying[0], varying[1]
    if len(varying) == 1:
        return varying[0], "seed"
    return "gain", "bias_scale"


#: Height, as a fraction of the figure, of one text line above the panels (a facet-title row,
#: a line of the note on fixed keys): they sit inside the figure, not in a margin a paper
#: export trims.
LINE = 0.09
#: The note's distance under the plot, the χ = 1 legend's extra room and a note line, in px.
NOTE_BELOW_PX, NOTE_LEGEND_PX, NOTE_LINE_PX = 58, 26, 15
#: Characters per line of that note (one single-column width at print size).
NOTE_CHARS = 56
#: Width (px at print size) the cells of all panels share in a single-column figure: it sets
#: the size of the values printed in the cells.
CELL_TEXT_WIDTH = 150.0
#: Run ids listed in a cell's hover (the rest are counted).
HOVER_RUNS = 6


def _as_value(text: str) -> Any:
    """A category as a table value: a number where it is one, else its text."""
    v = _number(text)
    if v is None:
        return text
    return int(v) if v.is_integer() and abs(v) < 1e15 else v


def _wrap(items: Sequence[str], head: str, tail: str = "") -> list[str]:
    """`head` + items joined by ", " (+ `tail`), wrapped into lines of NOTE_CHARS."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else tail)
        if len(line) + 1 + len(piece) > NOTE_CHARS and line.strip():
            lines.append(line)
            line = "  " + piece
        else:
            line = f"{line} {piece}" if line else piece
    return [*lines, line]


def fixed_note(sel: Selection) -> list[str]:
    """Lines saying which keys are fixed: "fixed: task = adding" for asked values, "defaults:
    init = default (fix= picks another)" for the rest."""
    asked = [f"{k} = {shown(v)}" for k, v in sel.fixed.items() if k not in sel.defaulted]
    auto = [f"{k} = {shown(sel.fixed[k])}" for k in sel.fixed if k in sel.defaulted]
    lines = _wrap(asked, "fixed:") if asked else []
    if auto:
        lines += _wrap(auto, "defaults:", " (fix= picks another)")
    return lines


def seeds_note(counts: Sequence[int]) -> str:
    """ "mean of 3 seeds" when every drawn cell averages the same number of runs, "one seed per
    cell", else "mean of 1–3 seeds (n per cell: hover, CSV)"."""
    n = sorted({int(c) for c in counts if c > 0})
    if not n:
        return "no values"
    if n == [1]:
        return "one seed per cell"
    if len(n) == 1:
        return f"mean of {n[0]} seeds"
    return f"mean of {n[0]}–{n[-1]} seeds (n per cell: hover, CSV)"


def _short_ids(ids: Sequence[str]) -> str:
    head = ", ".join(str(r)[:8] for r in ids[:HOVER_RUNS])
    return head + (f" +{len(ids) - HOVER_RUNS} more" if len(ids) > HOVER_RUNS else "")


def build(
    data: FigureData,
    *,
    x: str | None = None,
    y: str | None = None,
    color: str = "decay_rate",
    step: int | None = None,
    facet: str | None = "auto",
    fix: Mapping[str, Any] | str | Sequence[str] | None = None,
) -> go.Figure:
    """Heatmap over the config keys `x` × `y` (default: `grid_axes`) of the runs in `data`
    (a sweep), coloured by `color`:

    - "decay_rate": the state decay rate (fitted slope of ln ‖∂s_T/∂s_k‖ over the lag) at `step`
      (default latest); diverging colours, 0 in white;
    - "loss_ratio": final loss / the task's no-memory baseline, log colour;
    - "first_fraction": ‖∂L/∂h_0‖ / ‖∂L/∂h_T‖ at `step`, log colour (the summary's
      early_fraction where grad_hidden is missing).

    Axes are categories (equal cells in grid order, each cell's value printed in it). `facet`:
    a config key with one panel per value ("auto": cell when several cells vary; None /
    "none": one panel). Every other config key that varies is fixed: `fix` ({key: value} or
    "key:value[,key:value]"), else the value most runs share (ties: the first), which a note
    above the panels names. Only seeds are averaged ("mean of n seeds"); each cell's customdata
    is [value, n, run ids (comma-separated), x, y, value text, short run ids] (hover, clicks).
    On σ_w × σ_b the mean-field χ = 1 line (`gradlab.theory.critical_sigma_w`) is drawn on
    the vanilla-RNN panels, placed between grid values by linear interpolation (`positions`).
    ValueError: unknown colour, facet key, fix key or value."""
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    fixes = parse_fix(fix)
    if x is None or y is None:
        auto_x, auto_y = grid_axes(data.runs)
        x, y = x or auto_x, y or auto_y
    opts: dict[str, Any] = dict(x=x, y=y, color=color, step=step, facet=facet, fix=fixes or None)
    title = f"Phase diagram: {COLOR_LABELS[color]} over {_plain_axis(x)} × {_plain_axis(y)}"
    ids = data.run_ids
    if not ids:
        return no_data(NAME, title, "no runs in this sweep", opts)
    missing = [k for k in (x, y) if k not in data.runs.columns]
    if missing:
        return no_data(
            NAME, title, f"the runs have no config key {', '.join(map(repr, missing))}", opts, ids
        )
    runs = data.runs
    keys = _config_keys(runs)
    table = _categories(runs, list(dict.fromkeys([*keys, x, y])))
    varying = [k for k in keys if table[k].nunique() > 1]
    facet_key = _facet_key(facet, x, y, keys, varying)
    sel = select_runs(table, x, y, facet_key, fixes, varying)
    opts.update(facet=facet_key or "none", fix=dict(sel.fixed) or None)
    if facet_key:
        title += f", by {facet_key}"
    part = sel.table.copy()
    if part.empty:
        asked = ", ".join(f"{k} = {v}" for k, v in fixes.items())
        return no_data(NAME, title, f"no run has {asked}", opts, ids)
    measured = set(data.metrics["run_id"].dropna().astype(str))
    rows = [data.run(rid) for rid in part["run_id"]]
    part["value"] = [
        _value(data, rid, color, step, rid in measured, row)
        for rid, row in zip(part["run_id"], rows, strict=True)
    ]
    part["_cell"] = [str(r.get("cell") or "") for r in rows]
    part["_act"] = [shown_activation(r.get("cell"), r.get("activation")) or "" for r in rows]
    part["_x"], part["_y"] = part[x], part[y]
    drawn = list(part["run_id"])
    if not np.isfinite(part["value"].to_numpy(dtype=np.float64)).any():
        return no_data(NAME, title, f"no {color} values for these runs", opts, drawn)
    xs, ys = grid_order(part["_x"]), grid_order(part["_y"])
    xi, yi = {v: i for i, v in enumerate(xs)}, {v: i for i, v in enumerate(ys)}
    panels: list[str | None] = list(grid_order(part[facet_key])) if facet_key else [None]
    log = color != "decay_rate"
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        shared_yaxes=True,
        horizontal_spacing=0.04 if len(panels) > 1 else 0.0,
    )
    all_values, counts = [], []
    x_num = all(_number(v) is not None for v in xs)
    y_num = all(_number(v) is not None for v in ys)
    chi_axes = {x, y} == {"gain", "bias_scale"} and x_num and y_num
    legend_done = False
    # cell text: 11 px, smaller as columns add up; one significant digit where two would
    # not fit a single-column cell ("−0.5": 4 characters of ~0.55 em)
    cell_px = CELL_TEXT_WIDTH / (len(xs) * len(panels))
    text_px = round(max(7.0, min(11.0, cell_px / 2.4)), 1)
    digits = 2 if cell_px >= 5 * 0.55 * text_px else 1
    value_name = {"decay_rate": "decay rate", "loss_ratio": "loss / baseline"}.get(color, color)
    for j, panel in enumerate(panels, start=1):
        pp = part if panel is None else part[part[facet_key] == panel]
        raw = np.full((len(ys), len(xs)), np.nan)
        n = np.zeros((len(ys), len(xs)), dtype=np.int64)
        members: dict[tuple[int, int], list[str]] = {}
        for (vy, vx), g in pp.groupby(["_y", "_x"], sort=False):
            i, k = yi[vy], xi[vx]
            vals = g["value"].to_numpy(dtype=np.float64)
            finite = vals[np.isfinite(vals)]
            raw[i, k] = finite.mean() if finite.size else np.nan
            n[i, k] = finite.size
            members[(i, k)] = list(g["run_id"])
        all_values.append(raw)
        counts += [int(c) for c in n.ravel() if c > 0]
        custom, text = [], []
        for i, vy in enumerate(ys):
            crow, trow = [], []
            for k, vx in enumerate(xs):
                cell_ids = members.get((i, k), [])
                v = raw[i, k]
                ok = bool(np.isfinite(v))
                crow.append(
                    [
                        float(v) if ok else None,
                        int(n[i, k]),
                        ",".join(cell_ids),
                        shown(vx),
                        shown(vy),
                        num(v, 3) if ok else "–",
                        _short_ids(cell_ids) or "none",
                    ]
                )
                trow.append(num(v, digits) if ok else ("–" if cell_ids else ""))
            custom.append(crow)
            text.append(trow)
        z, _ = log_colour(raw) if log else (raw, {})
        const = {k: _as_value(v) for k, v in sel.fixed.items()}
        if panel is not None and facet_key:
            const = {facet_key: _as_value(panel), **const}
        label = (
            None
            if panel is None
            else panel
            if facet_key == "cell"
            else f"{facet_key} = {shown(panel)}"
        )
        fig.add_trace(
            go.Heatmap(
                x=list(range(len(xs))),
                y=list(range(len(ys))),
                z=z,
                customdata=custom,
                text=text,
                texttemplate="%{text}",
                textfont=dict(size=text_px),
                coloraxis="coloraxis",
                name=label or "all runs",
                hovertemplate=f"{x} = %{{customdata[3]}}<br>{y} = %{{customdata[4]}}<br>"
                f"{value_name} = %{{customdata[5]}}<br>n = %{{customdata[1]}} seeds<br>"
                f"runs: %{{customdata[6]}}<extra>{label or ''}</extra>",
                meta={
                    **trace_meta(None, x=x, y=y, z=color, const=const),
                    "z_source": "customdata",
                    "custom": [color, "n", "run_ids"],
                    "x_values": [_as_value(v) for v in xs],
                    "y_values": [_as_value(v) for v in ys],
                },
            ),
            row=1,
            col=j,
        )
        if chi_axes:
            mean_field = pp["_cell"].map(lambda c: c in CELLS and CELLS[c].mean_field)
            acts = sorted(set(pp.loc[mean_field, "_act"]) - {""})
            grids = [float(v) for v in xs], [float(v) for v in ys]
            _chi_line(fig, x, *grids, acts, dict(row=1, col=j), not legend_done)
            legend_done = legend_done or bool(acts)
    values = np.concatenate([v.ravel() for v in all_values])
    color_title = COLOR_LABELS[color]
    if color == "decay_rate":  # which quantity and at which training step
        at = "latest step" if step is None else f"step {step}"
        color_title = f"{color_title}<br>of ‖∂s<sub>T</sub>/∂s<sub>k</sub>‖, {at}"
    colorbar: dict[str, Any] = dict(title=dict(text=color_title), exponentformat="power")
    if log:
        _, ticks = log_colour(values)
        colorbar.update(ticks)
        coloraxis: dict[str, Any] = dict(colorscale=style.SEQUENTIAL, colorbar=colorbar)
    else:
        finite = np.abs(values[np.isfinite(values)])
        bound = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        coloraxis = dict(
            colorscale=style.DIVERGING, cmin=-bound, cmax=bound, cmid=0.0, colorbar=colorbar
        )
    fig.update_layout(
        template=style.TEMPLATE,
        title=dict(text=title),
        coloraxis=coloraxis,
        legend=dict(orientation="h", x=0, y=-0.2),
    )
    _lay_out(fig, x, y, xs, ys, panels, facet_key, [seeds_note(counts), *fixed_note(sel)])
    return finish(fig, NAME, opts, drawn)


def _lay_out(
    fig: go.Figure,
    x: str,
    y: str,
    xs: Sequence[str],
    ys: Sequence[str],
    panels: Sequence[str | None],
    facet_key: str | None,
    note: Sequence[str],
) -> None:
    """Category ticks, ONE x-axis title (under the middle panel), the facet titles in a band
    above the panels and the note (seeds averaged, fixed keys) under the plot, inside the
    figure (the paper template moves it into its notes under the x-axis title)."""
    band = LINE if facet_key else 0.0
    top = round(1.0 - band, 4)
    for axis, texts in (("x", xs), ("y", ys)):
        getattr(fig, f"update_{axis}axes")(
            tickmode="array",
            tickvals=list(range(len(texts))),
            ticktext=[shown(t) for t in texts],
            range=[-0.5, len(texts) - 0.5],
            showgrid=False,
            zeroline=False,
        )
    fig.update_yaxes(domain=[0.0, top])
    fig.update_yaxes(title_text=AXIS_LABELS.get(y, y), row=1, col=1)
    middle = (len(panels) + 1) // 2
    for j in range(1, len(panels) + 1):
        fig.update_xaxes(title_text=AXIS_LABELS.get(x, x) if j == middle else None, row=1, col=j)
    if facet_key:
        for j, panel in enumerate(panels, start=1):
            domain = fig.layout[f"xaxis{j if j > 1 else ''}"].domain
            text = str(panel) if facet_key == "cell" else f"{facet_key} = {shown(str(panel))}"
            fig.add_annotation(
                text=text,
                xref="paper",
                yref="paper",
                x=(domain[0] + domain[1]) / 2,
                y=top,
                xanchor="center",
                yanchor="bottom",
                showarrow=False,
                font=dict(size=13),
                name="facet-title",
            )
    if note:  # under the x-axis title (and the χ = 1 legend), with room made for it
        legend_px = NOTE_LEGEND_PX if any(t.showlegend is not False for t in fig.data) else 0
        below = NOTE_BELOW_PX + legend_px
        fig.add_annotation(
            text="<br>".join(note),
            xref="paper",
            yref="paper",
            x=0.0,
            y=0.0,
            yshift=-below,
            xanchor="left",
            yanchor="top",
            align="left",
            showarrow=False,
            font=dict(size=11, color="#333333"),
            name="phase-note",
        )
        fig.update_layout(margin=dict(b=below + NOTE_LINE_PX * len(note) + 8))


def defaults(data: FigureData) -> dict[str, Any]:
    """Options a sweep export draws with: the `grid_axes`, the auto facet and an explicit
    value for every other varying key (what `build` would default to)."""
    x, y = grid_axes(data.runs)
    if x not in data.runs.columns or y not in data.runs.columns:
        return dict(x=x, y=y)
    keys = _config_keys(data.runs)
    table = _categories(data.runs, list(dict.fromkeys([*keys, x, y])))
    varying = [k for k in keys if table[k].nunique() > 1]
    facet = _facet_key("auto", x, y, keys, varying)
    sel = select_runs(table, x, y, facet, {}, varying)
    out: dict[str, Any] = dict(x=x, y=y, facet=facet or "none")
    if sel.fixed:
        out["fix"] = dict(sel.fixed)
    return out


def _plain_axis(key: str) -> str:
    return {"gain": "σ<sub>w</sub>", "bias_scale": "σ<sub>b</sub>"}.get(key, key)


SPEC = FigureSpec(
    name=NAME,
    title="Phase diagram of a sweep",
    description=(
        "A sweep's runs on two of its grid axes (default σ_w × σ_b), each cell coloured by a "
        "summary: the fitted gradient decay rate per step (blue: vanishing, red: exploding), "
        "final loss / no-memory baseline, or ‖∂L/∂h_0‖ / ‖∂L/∂h_T‖. On σ_w × σ_b the dashed "
        "line is the mean-field edge of chaos χ = 1. Grid values are equal cells with the value "
        "printed; other varying keys are facets or fixed (named); only seeds are averaged."
    ),
    scope="sweep",
    probes=group_probes(
        (SUMMARY, "decay_rate"),
        (SUMMARY, "early_fraction"),
        (TRAIN, "loss"),
        (GradHiddenProbe.probe, "norm"),
    ),
    builder=build,
    defaults=defaults,
    options={
        "x": "config key on the x axis (default: gain, or the sweep's first varying key)",
        "y": "config key on the y axis (default: bias_scale, or the next varying key)",
        "color": "decay_rate | loss_ratio | first_fraction (default decay_rate)",
        "step": "training step of the summaries (default: latest / final)",
        "facet": "a config key with one panel per value, e.g. task (auto: cell when several "
        "cells vary; none: one panel)",
        "fix": "key:value[,key:value]: the value of a varying key not on x, y or the facet, "
        "e.g. task:adding (default: the value most runs share, named in the figure)",
    },
)
