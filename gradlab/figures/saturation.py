"""saturation: fraction of saturated and of dead hidden units per timestep at one training
step, one pair of lines per run."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from gradlab.figures._common import (
    COLOR_BY_HELP,
    color_legend,
    finish,
    new_figure,
    no_data,
    run_styles,
    trace_meta,
)
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import probes_of
from gradlab.figures.spec import FigureSpec
from gradlab.probes import HiddenProbe

NAME = "saturation"
SERIES = (("saturation", "solid"), ("dead", "dot"))
DEAD_LABEL = "dead fraction (dotted)"


def build(
    data: FigureData,
    *,
    run_ids: Sequence[str] | None = None,
    step: int | None = None,
    layer: int = 0,
    direction: int = 0,
    color_by: str | None = None,
) -> go.Figure:
    """Saturated fraction (solid, named after the run) and dead fraction (dotted, one legend
    entry for all runs) of the hidden units against timestep k at `step` (None: each run's
    latest), each run in its own colour and marker (or coloured by `color_by`)."""
    opts = dict(run_ids=run_ids, step=step, layer=layer, direction=direction, color_by=color_by)
    ids = [str(r) for r in run_ids] if run_ids is not None else data.run_ids
    title = "Saturated and dead hidden units per timestep"
    if not ids:
        return no_data(NAME, title, "no runs selected", opts)
    styles = run_styles(data, ids, color_by)
    fig = new_figure(title, "timestep k", "fraction of hidden units (solid: saturated)")
    color_legend(fig, color_by)
    drawn, steps = [], set()
    dead_legend = True
    for rid in ids:
        st = styles[rid]
        found = False
        for name, dash in SERIES:
            chosen, df = data.series(
                rid, HiddenProbe.probe, name, step=step, layer=layer, direction=direction
            )
            if df.empty:
                continue
            found = True
            steps.add(chosen)
            dead = name == "dead"
            what = "dead" if dead else "saturated"
            fig.add_trace(
                go.Scatter(
                    x=df["t"].to_numpy(),
                    y=df["value"].to_numpy(),
                    mode="lines+markers",
                    name=DEAD_LABEL if dead else st.label,
                    legendgroup=rid,
                    showlegend=not dead or dead_legend,
                    line=dict(color=st.color, dash=dash, width=2),
                    marker=dict(color=st.color, symbol=st.symbol, size=5),
                    hovertemplate=f"{what}<br>k=%{{x}}<br>%{{y:.3f}}<extra>{st.label}</extra>",
                    meta=trace_meta(rid, x="t", y="value", const={"name": name, "step": chosen}),
                )
            )
            dead_legend = dead_legend and not dead
        if found:
            drawn.append(rid)
    if not drawn:
        return no_data(NAME, title, "these runs have no hidden-state statistics", opts, ids)
    if len(steps) == 1:
        fig.update_layout(title=dict(text=f"{title} at training step {steps.pop()}"))
    fig.update_yaxes(range=[-0.02, 1.02])
    return finish(fig, NAME, opts, drawn)


SPEC = FigureSpec(
    name=NAME,
    title="Saturated and dead units",
    description=(
        "Fraction of saturated hidden units (solid; |h| near the activation's bound, where "
        "φ' ≈ 0) and of dead units (dotted; relu units at 0) per timestep at one training "
        "step. Both cut the backward path: a saturated or dead unit passes almost no gradient."
    ),
    scope="runs",
    probes=probes_of(("hidden:saturation", "hidden:dead")),
    builder=build,
    options={
        "run_ids": "which runs (default: all given)",
        "step": "training step (default: each run's latest)",
        "color_by": COLOR_BY_HELP,
    },
)
