"""saturation: fraction of saturated and of dead hidden units per timestep at one training
step, one pair of lines per run."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from gradlab.figures._common import (
    COLOR_BY_HELP,
    color_legend,
    finish,
    message_figure,
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
    always: bool = False,
) -> go.Figure:
    """Saturated fraction (solid, named after the run) and dead fraction (dotted, one legend
    entry for all runs) of the hidden units against timestep k at `step` (None: each run's
    latest), each run in its own colour and marker (or coloured by `color_by`).

    When no unit of any run is saturated or dead at any timestep (every fraction exactly 0)
    the lines would lie flat on 0: the figure is then the one-line summary "no unit saturated
    (max fraction 0.00)" (no traces; ``layout.meta["gradlab"]["summary"]`` is true), unless
    `always` asks for the lines."""
    opts = dict(run_ids=run_ids, step=step, layer=layer, direction=direction, color_by=color_by)
    opts["always"] = always
    ids = [str(r) for r in run_ids] if run_ids is not None else data.run_ids
    title = "Saturated and dead hidden units per timestep"
    if not ids:
        return no_data(NAME, title, "no runs selected", opts)
    styles = run_styles(data, ids, color_by)
    fig = new_figure(title, "timestep k", "fraction of hidden units (solid: saturated)")
    color_legend(fig, color_by)
    drawn, steps = [], set()
    peak = {name: 0.0 for name, _ in SERIES}  # the largest fraction of each series drawn
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
            values = df["value"].to_numpy(dtype=float)
            peak[name] = max(peak[name], float(np.nanmax(values)) if values.size else 0.0)
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
    at = f" at training step {next(iter(steps))}" if len(steps) == 1 else ""
    if not always and all(v == 0 for v in peak.values()):
        return summary_figure(title + at, flat_summary(peak, len(drawn)), opts, drawn)
    if at:
        fig.update_layout(title=dict(text=title + at))
    fig.update_yaxes(range=[-0.02, 1.02])
    return finish(fig, NAME, opts, drawn)


def flat_summary(peak: dict[str, float], n_runs: int) -> str:
    """The line shown instead of flat lines: "no unit saturated (max fraction 0.00); none
    dead (max fraction 0.00), 3 runs"."""
    runs = f" in {n_runs} runs" if n_runs > 1 else ""
    return (
        f"no unit saturated (max fraction {peak['saturation']:.2f}); "
        f"none dead (max fraction {peak['dead']:.2f}){runs}"
    )


def summary_figure(title: str, text: str, opts: dict, drawn: list[str]) -> go.Figure:
    """A figure with no traces and ``text`` (the one-line summary) in the middle; its
    ``layout.meta["gradlab"]`` has ``empty`` and ``summary`` true and ``message`` = text."""
    fig = finish(message_figure(title, text), NAME, opts, drawn, empty=True, message=text)
    fig.update_layout(meta={"gradlab": {**fig.layout.meta["gradlab"], "summary": True}})
    return fig


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
        "always": "draw the lines even when every fraction is 0 (default: a one-line summary)",
    },
)
