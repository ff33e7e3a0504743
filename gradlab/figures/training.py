"""training: loss against the no-memory baseline (top) and the gradient norm before clipping
with clipping events (bottom), per optimiser step, one line per run; each run's baseline in its
colour, one line for runs that share a baseline value."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradlab.figures import style
from gradlab.figures._common import (
    COLOR_BY_HELP,
    RunStyle,
    add_notes,
    color_legend,
    finish,
    no_data,
    num,
    run_label_base,
    run_styles,
    trace_meta,
)
from gradlab.figures.aggregate import SEED_MODES, SMOOTH_MAX, ema, seed_band, seed_groups
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import TRAIN
from gradlab.figures.spec import FigureSpec
from gradlab.probes import TrainProbe

NAME = "training"
GRAD_LABEL = "‖∇<sub>θ</sub>L‖ (before clipping)"


def baseline_loss(data: FigureData, run_id: str) -> float | None:
    """The run's no-memory baseline: the runs row's ``baseline_loss`` (written by train), else
    the task's ``baseline_loss`` rebuilt from the config (task, seq_len); None if unknown."""
    row = data.run(run_id)
    value = row.get("baseline_loss")
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    task = row.get("task")
    if not task:
        return None
    try:
        from gradlab.tasks import make

        params = {"seq_len": int(row["seq_len"])} if row.get("seq_len") is not None else {}
        return float(make(str(task), **params).baseline_loss)
    except (ValueError, TypeError, KeyError, NotImplementedError):
        return None


def build(
    data: FigureData,
    *,
    run_ids: Sequence[str] | None = None,
    scale: str = "log",
    color_by: str | None = None,
    smooth: float = 0.0,
    seeds: str = "each",
) -> go.Figure:
    """Two panels sharing the training-step axis: the training loss of each run with its task's
    no-memory baseline (a model below it remembers something), and the global gradient norm
    before clipping, log y, with ✕ at every clipped step and the clip threshold (grey, dotted).
    A baseline is drawn in its run's colour with its own dash (`style.LEVEL_DASHES`); runs
    sharing a baseline value get one line, labelled with how many runs it serves (grey unless
    they share a colour).

    `smooth`: EMA weight in [0, 0.99] (`aggregate.ema`, as TensorBoard): each curve is drawn
    smoothed with its raw values faint behind it. ``seeds="band"``: runs that differ only in
    seed (`aggregate.seed_groups`) become one line, the mean over the seeds at each step, in a
    shaded band from their min to their max (the first run's colour)."""
    opts = dict(run_ids=run_ids, scale=scale, color_by=color_by, smooth=smooth, seeds=seeds)
    ids = [str(r) for r in run_ids] if run_ids is not None else data.run_ids
    title = "Training: loss vs baseline, gradient norm and clipping"
    if seeds not in SEED_MODES:
        raise ValueError(f"seeds must be one of {SEED_MODES}, got {seeds!r}")
    weight = float(smooth or 0.0)
    if not 0.0 <= weight <= SMOOTH_MAX:
        raise ValueError(f"smooth must lie in [0, {SMOOTH_MAX}], got {smooth!r}")
    if not ids:
        return no_data(NAME, title, "no runs selected", opts)
    styles = run_styles(data, ids, color_by)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    drawn: list[str] = []
    clip_legend = True
    baselines: dict[float, list[str]] = {}  # value → runs
    spans: dict[str, tuple[float, float]] = {}
    clips: dict[float, list[float]] = {}
    curves: dict[str, dict[str, pd.DataFrame]] = {}  # run → {loss, grad_norm} (step, value)
    marks: list[go.Scatter] = []  # ✕ at clipped steps, drawn over the curves
    for rid in ids:
        df = data.select(rid, TRAIN, layer=None, direction=None)
        if df.empty:
            continue
        st = styles[rid]
        drawn.append(rid)
        series = {n: g.sort_values("step") for n, g in df.groupby("name")}
        curves[rid] = {k: series[k] for k in TrainProbe.names[:2] if k in series}
        norm = series.get(TrainProbe.names[1])
        clipped = series.get(TrainProbe.names[2])
        steps = df["step"].to_numpy()
        spans[rid] = (float(steps.min()), float(steps.max()))
        base = baseline_loss(data, rid)
        if base is not None:
            baselines.setdefault(base, []).append(rid)
        if norm is not None and clipped is not None:
            hit = clipped[clipped["value"] > 0.5]["step"].to_numpy()
            at = norm.set_index("step")["value"].reindex(hit).to_numpy()
            if hit.size:
                marks.append(
                    go.Scatter(
                        x=hit,
                        y=at,
                        mode="markers",
                        name="clipped step",
                        legendgroup=rid,
                        showlegend=clip_legend,
                        marker=dict(color=st.color, symbol="x-thin-open", size=7, line_width=1.5),
                        hovertemplate="clipped at step %{x}<extra></extra>",
                        meta=trace_meta(rid, x="step", y="value", const={"name": "clipped"}),
                    )
                )
                clip_legend = False
        clip = data.run(rid).get("clip")
        if isinstance(clip, int | float) and math.isfinite(clip):
            clips.setdefault(float(clip), []).extend([steps.min(), steps.max()])
    if not drawn:
        return no_data(NAME, title, "these runs have no training rows (probe train)", opts, ids)
    groups = seed_groups(data, drawn) if seeds == "band" else [[rid] for rid in drawn]
    for group in groups:
        if len(group) == 1:
            _run_curves(fig, curves[group[0]], styles[group[0]], weight)
        else:
            _band_curves(fig, data, group, drawn, curves, styles[group[0]], weight)
    for mark in marks:
        fig.add_trace(mark, row=2, col=1)
    _baselines(fig, baselines, spans, styles, len(drawn))
    for value, span in clips.items():
        _level_line(fig, value, span, f"clip threshold {num(value)}", "dot", "clip", "clip", 2)
    log = "log" if scale == "log" else "linear"
    fig.update_layout(template=style.TEMPLATE, title=dict(text=title))
    color_legend(fig, color_by)
    fig.update_yaxes(title_text="training loss", type=log, row=1, col=1)
    fig.update_yaxes(title_text=GRAD_LABEL, type="log", row=2, col=1)
    fig.update_xaxes(title_text="training step", row=2, col=1)
    if weight > 0:
        add_notes(fig, [f"smoothed: EMA weight {weight:g} (raw values faint)"])
    return finish(fig, NAME, opts, drawn)


#: What the two panels plot: (TrainProbe name, row, hover label).
PANELS = ((TrainProbe.names[0], 1, "loss"), (TrainProbe.names[1], 2, "‖∇L‖"))
#: Opacity of the raw curve behind a smoothed one, and of a seed band's fill.
RAW_OPACITY = 0.25
BAND_OPACITY = 0.18


def _run_curves(
    fig: go.Figure, curves: dict[str, pd.DataFrame], st: RunStyle, weight: float
) -> None:
    """One run's loss (row 1) and gradient norm (row 2): raw, or smoothed over faint raw."""
    shown = False
    for name, row, what in PANELS:
        df = curves.get(name)
        if df is None:
            continue
        x, y = df["step"].to_numpy(), df["value"].to_numpy(dtype=np.float64)
        _curve(fig, x, y, st.label, st, row, name, st.run_id, weight, what, not shown)
        shown = True


def _curve(
    fig: go.Figure,
    x: np.ndarray,
    y: np.ndarray,
    label: str,
    st: RunStyle,
    row: int,
    name: str,
    run_id: str,
    weight: float,
    what: str,
    legend: bool,
) -> None:
    """A line in the run's style; with ``weight`` > 0 the EMA line over the raw one (faint,
    no legend entry, same legend group)."""
    if weight > 0:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=f"{label} (raw)",
                legendgroup=run_id,
                showlegend=False,
                opacity=RAW_OPACITY,
                line=dict(color=st.color, dash=st.dash, width=1),
                hovertemplate=f"{label}<br>step %{{x}}<br>raw {what} %{{y:.4g}}<extra></extra>",
                meta=trace_meta(run_id, x="step", y="value", const={"name": name}),
            ),
            row=row,
            col=1,
        )
        y = ema(y, weight)
        name = f"{name}_smoothed"
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="lines",
            name=label,
            legendgroup=run_id,
            showlegend=legend,
            line=dict(color=st.color, dash=st.dash, width=1.75),
            hovertemplate=f"{label}<br>step %{{x}}<br>{what} %{{y:.4g}}<extra></extra>",
            meta=trace_meta(run_id, x="step", y="value", const={"name": name}),
        ),
        row=row,
        col=1,
    )


def _band_curves(
    fig: go.Figure,
    data: FigureData,
    group: list[str],
    drawn: list[str],
    curves: dict[str, dict[str, pd.DataFrame]],
    st: RunStyle,
    weight: float,
) -> None:
    """A group of runs that differ only in seed: per panel a band from the min to the max over
    the seeds at each step and the mean line (smoothed when ``weight`` > 0), in the colour of
    the group's first run, under its id."""
    lead = group[0]
    seeds = ", ".join(num(data.run(r).get("seed")) for r in group)
    label = f"{_group_label(data, lead, drawn)} · mean of {len(group)} seeds ({seeds})"
    fill = _rgba(st.color, BAND_OPACITY)
    shown = False
    for name, row, what in PANELS:
        band = seed_band({r: curves[r][name] for r in group if name in curves[r]})
        if band.empty:
            continue
        x = band["step"].to_numpy()
        for edge, kw in (("max", {}), ("min", {"fill": "tonexty", "fillcolor": fill})):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=band[edge].to_numpy(dtype=np.float64),
                    mode="lines",
                    name=f"{label} ({edge})",
                    legendgroup=lead,
                    showlegend=False,
                    line=dict(color=st.color, width=0),
                    hovertemplate=f"{edge} over seeds<br>step %{{x}}<br>%{{y:.4g}}<extra></extra>",
                    meta=trace_meta(lead, x="step", y="value", const={"name": f"{name}_{edge}"}),
                    **kw,
                ),
                row=row,
                col=1,
            )
        y = band["mean"].to_numpy(dtype=np.float64)
        mean_name = f"{name}_mean"
        if weight > 0:
            y, mean_name = ema(y, weight), f"{name}_mean_smoothed"
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=label,
                legendgroup=lead,
                showlegend=not shown,
                line=dict(color=st.color, dash=st.dash, width=1.75),
                hovertemplate=f"{label}<br>step %{{x}}<br>mean {what} %{{y:.4g}}<extra></extra>",
                meta=trace_meta(lead, x="step", y="value", const={"name": mean_name}),
            ),
            row=row,
            col=1,
        )
        shown = True


def _group_label(data: FigureData, lead: str, drawn: list[str]) -> str:
    """The first run's legend name without its seed."""
    label = run_label_base(data, lead, drawn)
    return " · ".join(p for p in label.split(" · ") if not p.startswith("seed "))


def _rgba(color: str, alpha: float) -> str:
    """``#rrggbb`` → ``rgba(r,g,b,alpha)`` (other colour texts are returned as they are)."""
    text = color.lstrip("#")
    if len(text) != 6:
        return color
    r, g, b = (int(text[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


SPEC = FigureSpec(
    name=NAME,
    title="Training curves",
    description=(
        "Top: training loss per optimiser step against the task's no-memory baseline (dashed, "
        "in the run's colour; one grey line for runs that share it; below it the model "
        "remembers something). Bottom: the global gradient norm before clipping, log y, with ✕ "
        "at clipped steps and the clip threshold (dotted)."
    ),
    scope="runs",
    probes=((TrainProbe.probe, TrainProbe.names),),
    builder=build,
    options={
        "run_ids": "which runs (default: all given)",
        "scale": "log | linear loss axis (default log)",
        "color_by": COLOR_BY_HELP,
        "smooth": "EMA weight 0–0.99 for the curves, raw drawn faint (default 0: raw)",
        "seeds": "each | band: runs differing only in seed as mean and min–max band",
    },
)


#: Colour of a level line shared by runs of different colours (and of the clip threshold).
SHARED_COLOR = "#777777"


def _baselines(
    fig: go.Figure,
    baselines: dict[float, list[str]],
    spans: dict[str, tuple[float, float]],
    styles: dict[str, RunStyle],
    n_drawn: int,
) -> None:
    """One baseline line per value: a run's own in its colour (legend group of the run), a
    shared one labelled "all runs" or "n runs" with their names in the hover."""
    for i, (value, rids) in enumerate(baselines.items()):
        dash = style.LEVEL_DASHES[i % len(style.LEVEL_DASHES)]
        span = [s for rid in rids for s in spans[rid]]
        colors = {styles[rid].color for rid in rids}
        color = colors.pop() if len(colors) == 1 else SHARED_COLOR
        label = f"baseline (no memory) {num(value)}"
        if len(rids) > 1:
            label += ", all runs" if len(rids) == n_drawn else f", {len(rids)} runs"
        who = "<br>".join(styles[rid].label for rid in rids)
        _level_line(
            fig, value, span, label, dash, f"{who}<br>baseline", "baseline_loss", 1,
            color=color, run_id=rids[0] if len(rids) == 1 else None,
        )  # fmt: skip


def _level_line(
    fig: go.Figure,
    value: float,
    span: list,
    label: str,
    dash: str,
    hover: str,
    name: str,
    row: int,
    *,
    color: str = SHARED_COLOR,
    run_id: str | None = None,
) -> None:
    """A horizontal line at `value` across the steps in `span` (baseline or clip level); with
    `run_id`, in that run's legend group and table rows."""
    fig.add_trace(
        go.Scatter(
            x=np.array([min(span), max(span)]),
            y=[value, value],
            mode="lines",
            name=label,
            legendgroup=run_id,
            line=dict(color=color, dash=dash, width=1.25),
            hovertemplate=f"{hover} {value:.4g}<extra></extra>",
            meta=trace_meta(run_id, x="step", y="value", const={"name": name}),
        ),
        row=row,
        col=1,
    )
