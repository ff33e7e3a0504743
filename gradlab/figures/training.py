"""training: loss against the no-memory baseline (top) and the gradient norm before clipping
with clipping events (bottom), per optimiser step, one line per run; each run's baseline in its
colour, one line for runs that share a baseline value."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradlab.figures import style
from gradlab.figures._common import (
    COLOR_BY_HELP,
    RunStyle,
    color_legend,
    finish,
    no_data,
    num,
    run_styles,
    trace_meta,
)
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
) -> go.Figure:
    """Two panels sharing the training-step axis: the training loss of each run with its task's
    no-memory baseline (a model below it remembers something), and the global gradient norm
    before clipping, log y, with ✕ at every clipped step and the clip threshold (grey, dotted).
    A baseline is drawn in its run's colour with its own dash (`style.LEVEL_DASHES`); runs
    sharing a baseline value get one line, labelled with how many runs it serves (grey unless
    they share a colour)."""
    opts = dict(run_ids=run_ids, scale=scale, color_by=color_by)
    ids = [str(r) for r in run_ids] if run_ids is not None else data.run_ids
    title = "Training: loss vs baseline, gradient norm and clipping"
    if not ids:
        return no_data(NAME, title, "no runs selected", opts)
    styles = run_styles(data, ids, color_by)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    drawn: list[str] = []
    clip_legend = True
    baselines: dict[float, list[str]] = {}  # value → runs
    spans: dict[str, tuple[float, float]] = {}
    clips: dict[float, list[float]] = {}
    for rid in ids:
        df = data.select(rid, TRAIN, layer=None, direction=None)
        if df.empty:
            continue
        st = styles[rid]
        drawn.append(rid)
        series = {n: g.sort_values("step") for n, g in df.groupby("name")}
        loss = series.get(TrainProbe.names[0])
        norm = series.get(TrainProbe.names[1])
        clipped = series.get(TrainProbe.names[2])
        steps = df["step"].to_numpy()
        spans[rid] = (float(steps.min()), float(steps.max()))
        if loss is not None:
            fig.add_trace(
                go.Scatter(
                    x=loss["step"].to_numpy(),
                    y=loss["value"].to_numpy(),
                    mode="lines",
                    name=st.label,
                    legendgroup=rid,
                    line=dict(color=st.color, dash=st.dash, width=1.75),
                    hovertemplate=f"{st.label}<br>step %{{x}}<br>loss %{{y:.4g}}<extra></extra>",
                    meta=trace_meta(rid, x="step", y="value", const={"name": "loss"}),
                ),
                row=1,
                col=1,
            )
        base = baseline_loss(data, rid)
        if base is not None:
            baselines.setdefault(base, []).append(rid)
        if norm is not None:
            fig.add_trace(
                go.Scatter(
                    x=norm["step"].to_numpy(),
                    y=norm["value"].to_numpy(),
                    mode="lines",
                    name=st.label,
                    legendgroup=rid,
                    showlegend=loss is None,
                    line=dict(color=st.color, dash=st.dash, width=1.75),
                    hovertemplate=f"{st.label}<br>step %{{x}}<br>‖∇L‖ %{{y:.3g}}<extra></extra>",
                    meta=trace_meta(rid, x="step", y="value", const={"name": "grad_norm"}),
                ),
                row=2,
                col=1,
            )
            if clipped is not None:
                hit = clipped[clipped["value"] > 0.5]["step"].to_numpy()
                at = norm.set_index("step")["value"].reindex(hit).to_numpy()
                if hit.size:
                    fig.add_trace(
                        go.Scatter(
                            x=hit,
                            y=at,
                            mode="markers",
                            name="clipped step",
                            legendgroup=rid,
                            showlegend=clip_legend,
                            marker=dict(
                                color=st.color, symbol="x-thin-open", size=7, line_width=1.5
                            ),
                            hovertemplate="clipped at step %{x}<extra></extra>",
                            meta=trace_meta(rid, x="step", y="value", const={"name": "clipped"}),
                        ),
                        row=2,
                        col=1,
                    )
                    clip_legend = False
        clip = data.run(rid).get("clip")
        if isinstance(clip, int | float) and math.isfinite(clip):
            clips.setdefault(float(clip), []).extend([steps.min(), steps.max()])
    if not drawn:
        return no_data(NAME, title, "these runs have no training rows (probe train)", opts, ids)
    _baselines(fig, baselines, spans, styles, len(drawn))
    for value, span in clips.items():
        _level_line(fig, value, span, f"clip threshold {num(value)}", "dot", "clip", "clip", 2)
    log = "log" if scale == "log" else "linear"
    fig.update_layout(template=style.TEMPLATE, title=dict(text=title))
    color_legend(fig, color_by)
    fig.update_yaxes(title_text="training loss", type=log, row=1, col=1)
    fig.update_yaxes(title_text=GRAD_LABEL, type="log", row=2, col=1)
    fig.update_xaxes(title_text="training step", row=2, col=1)
    return finish(fig, NAME, opts, drawn)


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
