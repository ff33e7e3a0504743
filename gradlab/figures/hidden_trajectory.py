"""hidden_trajectory: one probe sample's hidden state h_k as a unit × timestep heatmap
(diverging colours around 0) at one training step."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from gradlab.arrays import HIDDEN_SAMPLE
from gradlab.figures import style
from gradlab.figures._common import finish, no_data, pick_run, run_label, trace_meta
from gradlab.figures.data import FigureData
from gradlab.figures.spec import FigureSpec

NAME = "hidden_trajectory"


def build(
    data: FigureData,
    *,
    run_id: str | None = None,
    step: int | None = None,
    sample: int = 0,
    max_units: int | None = None,
) -> go.Figure:
    """Heatmap of h_k[unit] for probe sample `sample` of one run at `step` (None: latest saved),
    from the array ``hidden_sample`` (T+1, n_samples, N): x timestep k = 0..T, y unit
    (the first `max_units` units if given), colour h from −max|h| to +max|h|."""
    opts = dict(run_id=run_id, step=step, sample=sample, max_units=max_units)
    rid = pick_run(data, run_id)
    title = "Hidden-state trajectory"
    if rid is None:
        return no_data(NAME, title, "no run selected", opts)
    label = run_label(data, rid)
    chosen, h = data.array(rid, HIDDEN_SAMPLE, step)
    if h is None or h.ndim != 3 or h.shape[1] == 0:
        return no_data(
            NAME, f"{title} — {label}", "this run has no hidden-state samples", opts, [rid]
        )
    if not 0 <= sample < h.shape[1]:
        return no_data(
            NAME,
            f"{title} — {label}",
            f"sample {sample} not saved (this run kept {h.shape[1]} samples)",
            opts,
            [rid],
        )
    z = np.asarray(h[:, sample, :], dtype=np.float64).T  # (N, T+1)
    if max_units is not None:
        z = z[: int(max_units)]
    n_units, n_t = z.shape
    finite = np.abs(z[np.isfinite(z)])
    bound = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    fig = go.Figure(
        go.Heatmap(
            x=np.arange(n_t),
            y=np.arange(n_units),
            z=z,
            zmin=-bound,
            zmax=bound,
            zmid=0.0,
            colorscale=style.DIVERGING,
            colorbar=dict(title=dict(text="h<sub>k</sub>")),
            name=label,
            hovertemplate="k=%{x}<br>unit %{y}<br>h=%{z:.3g}<extra></extra>",
            meta={
                **trace_meta(rid, x="t", y="unit", z="value", const={"step": chosen}),
                "sample": sample,
            },
        )
    )
    fig.update_layout(
        template=style.TEMPLATE,
        title=dict(text=f"{title} of sample {sample} at training step {chosen} — {label}"),
        xaxis=dict(title=dict(text="timestep k"), showgrid=False),
        yaxis=dict(title=dict(text="hidden unit"), showgrid=False),
    )
    return finish(fig, NAME, opts, [rid])


SPEC = FigureSpec(
    name=NAME,
    title="Hidden-state trajectory",
    description=(
        "One probe sample's hidden state h_k at one training step as a heatmap: hidden unit "
        "down, timestep k across, blue negative / red positive. Saturated tanh units show as "
        "solid ±1 bands, dead relu units as zero rows."
    ),
    scope="run",
    probes=(),
    builder=build,
    arrays=(HIDDEN_SAMPLE,),
    options={
        "run_id": "which run (default: the first)",
        "step": "training step (default: latest saved)",
        "sample": "probe-batch row (default 0)",
        "max_units": "show only the first units (default all)",
    },
)
