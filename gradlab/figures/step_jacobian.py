"""step_jacobian: the one-step Jacobian norms ‖∂s_k/∂s_{k−1}‖ per timestep, one line per
recorded training step (light → dark), with the line ‖J‖ = 1 that separates shrinking from
growing steps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from gradlab.figures import style
from gradlab.figures._common import (
    COLOR_BY_HELP,
    finish,
    new_figure,
    no_data,
    pick_run,
    run_label,
    run_styles,
    trace_meta,
)
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import get_quantity, probes_of
from gradlab.figures.spec import FigureSpec

NAME = "step_jacobian"
MAX_LINES = 6


def _pick_steps(available: list[int], steps: Sequence[int] | None) -> list[int]:
    if steps is not None:
        return [int(s) for s in steps if int(s) in available]
    if len(available) <= MAX_LINES:
        return available
    idx = np.unique(np.rint(np.linspace(0, len(available) - 1, MAX_LINES)).astype(int))
    return [available[i] for i in idx]


def build(
    data: FigureData,
    *,
    run_id: str | None = None,
    norm: str = "spectral",
    steps: Sequence[int] | None = None,
    scale: str = "log",
    layer: int = 0,
    direction: int = 0,
    color_by: str | None = None,
) -> go.Figure:
    """‖∂s_k/∂s_{k−1}‖ (``norm="spectral"`` or ``"fro"``, mean over the probe samples) against
    timestep k for one run, one line per training step (`steps`; default up to six recorded
    steps, first and last included), shaded from light (early) to the run's colour (late)."""
    if norm not in ("spectral", "fro"):
        raise ValueError(f"norm must be 'spectral' or 'fro', got {norm!r}")
    q = get_quantity(f"step_jacobian:{norm}")
    opts = dict(run_id=run_id, norm=norm, steps=steps, scale=scale, layer=layer)
    opts.update(direction=direction, color_by=color_by)
    rid = pick_run(data, run_id)
    title = f"Step Jacobian {q.label} per timestep over training"
    if rid is None:
        return no_data(NAME, title, "no run selected", opts)
    label = run_label(data, rid)
    chosen = _pick_steps(data.steps(rid, q.probe, q.name), steps)
    if not chosen:
        return no_data(NAME, f"{title} — {label}", q.missing, opts, [rid])
    color = run_styles(data, [rid], color_by)[rid].color
    fig = new_figure(f"Step Jacobian {q.label} — {label}", "timestep k", q.label)
    fig.update_yaxes(type="log" if scale == "log" else "linear")
    for i, s in enumerate(chosen):
        _, df = data.series(rid, q.probe, q.name, step=s, layer=layer, direction=direction)
        weight = 0.35 + 0.65 * (i / max(1, len(chosen) - 1))
        fig.add_trace(
            go.Scatter(
                x=df["t"].to_numpy(),
                y=df["value"].to_numpy(),
                mode="lines",
                name=f"step {s}",
                line=dict(color=style.shade(color, weight), width=2),
                hovertemplate=f"step {s}<br>k=%{{x}}<br>%{{y:.3g}}<extra></extra>",
                meta=trace_meta(rid, x="t", y="value", const={"step": s}),
            )
        )
    fig.add_hline(y=1.0, line=dict(color=style.OTHER_COLOR, width=1, dash="dot"))
    fig.update_layout(legend=dict(title=dict(text="training step")))
    return finish(fig, NAME, opts, [rid])


SPEC = FigureSpec(
    name=NAME,
    title="Step-Jacobian norms over training",
    description=(
        "‖∂s_k/∂s_(k−1)‖ per timestep k for one run, one line per training step (light: early, "
        "dark: late). Steps above the dotted line ‖J‖ = 1 can amplify the backward signal, "
        "steps below it shrink it; their product over lags is the long-range Jacobian."
    ),
    scope="run",
    reading=(
        "Per-step norms above 1 can still multiply to a vanishing product when the Jacobians "
        "are non-normal: ‖J_T ⋯ J_k‖ is at most, not equal to, the product of the ‖J_t‖; the "
        "long-range Jacobian figure shows the product itself."
    ),
    probes=probes_of(("step_jacobian:spectral", "step_jacobian:fro")),
    builder=build,
    requires=lambda o: probes_of((f"step_jacobian:{o.get('norm') or 'spectral'}",)),
    options={
        "run_id": "which run (default: the first)",
        "norm": "spectral | fro (default spectral)",
        "steps": "training steps to draw (default: up to 6 recorded steps)",
        "scale": "log | linear y (default log)",
        "color_by": COLOR_BY_HELP,
    },
)
