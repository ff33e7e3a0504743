"""singular_values: every singular value of each step Jacobian ∂s_k/∂s_{k−1} at one training
step (probe row 0), against timestep k, log y; σ_max and σ_min drawn as lines."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from gradlab.arrays import STEP_JACOBIAN_SV
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
from gradlab.figures.spec import FigureSpec

NAME = "singular_values"
Y_LABEL = "singular value σ<sub>i</sub>(∂s<sub>k</sub>/∂s<sub>k−1</sub>)"


def build(
    data: FigureData,
    *,
    run_id: str | None = None,
    step: int | None = None,
    scale: str = "log",
    color_by: str | None = None,
) -> go.Figure:
    """Singular values of the step Jacobians of one run at `step` (None: latest saved), from
    the array ``step_jacobian_sv`` (T, S): markers for every σ_i at each timestep k = 1..T,
    lines for σ_max and σ_min, a dotted reference at σ = 1."""
    opts = dict(run_id=run_id, step=step, scale=scale, color_by=color_by)
    rid = pick_run(data, run_id)
    title = "Singular values of the step Jacobians"
    if rid is None:
        return no_data(NAME, title, "no run selected", opts)
    label = run_label(data, rid)
    chosen, sv = data.array(rid, STEP_JACOBIAN_SV, step)
    if sv is None or sv.size == 0 or sv.ndim != 2:
        what = "at that step" if step is not None else "(array step_jacobian_sv)"
        return no_data(
            NAME, f"{title} — {label}", f"this run has no step-Jacobian spectra {what}", opts, [rid]
        )
    sv = np.sort(np.asarray(sv, dtype=np.float64), axis=1)[:, ::-1]  # (T, S), descending
    T, S = sv.shape
    k = np.arange(1, T + 1)
    color = run_styles(data, [rid], color_by)[rid].color
    fig = new_figure(
        f"{title} at training step {chosen} — {label}", "timestep k", Y_LABEL, ylog=scale == "log"
    )
    kk = np.repeat(k, S)
    rank = np.tile(np.arange(1, S + 1), T)
    fig.add_trace(
        go.Scatter(
            x=kk,
            y=sv.ravel(),
            customdata=rank,
            mode="markers",
            name="σ<sub>i</sub>, all i",
            marker=dict(color=style.shade(color, 0.45), size=4, symbol="circle"),
            hovertemplate="k=%{x}<br>σ_%{customdata}=%{y:.3g}<extra></extra>",
            meta={
                **trace_meta(rid, x="t", y="value", const={"step": chosen}),
                "custom": ["index"],
            },
        )
    )
    for name, col, dash in (("σ<sub>max</sub>", 0, "solid"), ("σ<sub>min</sub>", S - 1, "dashdot")):
        fig.add_trace(
            go.Scatter(
                x=k,
                y=sv[:, col],
                mode="lines",
                name=name,
                line=dict(color=color, width=2, dash=dash),
                hovertemplate=f"k=%{{x}}<br>{name}=%{{y:.3g}}<extra></extra>",
                meta=trace_meta(rid, x="t", y="value", const={"step": chosen, "index": col + 1}),
            )
        )
    fig.add_hline(y=1.0, line=dict(color=style.OTHER_COLOR, width=1, dash="dot"))
    return finish(fig, NAME, opts, [rid])


SPEC = FigureSpec(
    name=NAME,
    title="Singular values of the step Jacobians",
    description=(
        "Every singular value σ_i of each step Jacobian ∂s_k/∂s_(k−1) (probe row 0) at one "
        "training step, against timestep k, log y, with σ_max and σ_min as lines. A spread "
        "around σ = 1 means some directions keep gradient that others lose."
    ),
    scope="run",
    reading=(
        "σ_max above 1 at every step does not mean the gradient grows: when the Jacobians are "
        "non-normal their product can still vanish (see the long-range Jacobian figure)."
    ),
    probes=(),
    builder=build,
    arrays=(STEP_JACOBIAN_SV,),
    options={
        "run_id": "which run (default: the first)",
        "step": "training step (default: latest saved)",
        "scale": "log | linear y (default log)",
        "color_by": COLOR_BY_HELP,
    },
)
