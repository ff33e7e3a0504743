"""cell_vs_hidden: an LSTM's cell-state gradient ‖∂L/∂c_k‖ beside its hidden-state gradient
‖∂L/∂h_k‖ per timestep — the cell state is the LSTM's gradient highway."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from gradlab.cells import CELLS, cells
from gradlab.figures._common import (
    COLOR_BY_HELP,
    add_notes,
    describe_positions,
    finish,
    new_figure,
    no_data,
    out_of_range,
    pick_run,
    range_markers,
    range_note,
    recorded_dtype,
    run_label,
    run_styles,
    trace_meta,
)
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import get_quantity, probes_of
from gradlab.figures.spec import FigureSpec
from gradlab.probes import GradCellProbe

NAME = "cell_vs_hidden"


def build(
    data: FigureData,
    *,
    run_id: str | None = None,
    step: int | None = None,
    scale: str = "log",
    layer: int = 0,
    direction: int = 0,
    color_by: str | None = None,
) -> go.Figure:
    """‖∂L/∂c_k‖ (dash-dot) and ‖∂L/∂h_k‖ (solid) of one LSTM run against timestep k at `step`
    (None: latest), log y; values outside the recording dtype's range are marked as in
    `timestep_profile`."""
    opts = dict(run_id=run_id, step=step, scale=scale, layer=layer, direction=direction)
    opts.update(color_by=color_by)
    rid = pick_run(data, run_id)
    title = "Cell-state vs hidden-state gradient"
    if rid is None:
        return no_data(NAME, title, "no run selected", opts)
    label = run_label(data, rid)
    qc, qh = get_quantity("grad_cell"), get_quantity("grad_hidden")
    step_c, dc = data.series(rid, qc.probe, qc.name, step=step, layer=layer, direction=direction)
    if step_c is None or dc.empty:  # no step: no rows either
        cell = CELLS.get(data.cell(rid))
        owners = " and ".join(f"{s.display_name}s" for s in cells() if s.has_cell_state)
        why = (
            f"this run has no cell state (only {owners} have c_k)"
            if cell is not None and not cell.has_cell_state
            else qc.missing
        )
        return no_data(NAME, f"{title} — {label}", why, opts, [rid])
    _, dh = data.series(rid, qh.probe, qh.name, step=step_c, layer=layer, direction=direction)
    st = run_styles(data, [rid], color_by)[rid]
    fig = new_figure(
        f"{title} at training step {step_c} — {label}",
        "timestep k",
        "gradient norm ‖∂L/∂·‖",
        ylog=scale == "log",
    )
    notes = []
    for q, df, dash, symbol, name in (
        (qh, dh, "solid", "circle", "grad_hidden"),
        (qc, dc, "dashdot", "square", "grad_cell"),
    ):
        if df.empty:
            continue
        t, v = df["t"].to_numpy(), df["value"].to_numpy()
        # values outside the recording dtype's range: a marker and a note, not a drop to 0
        marks = out_of_range(v, t, recorded_dtype(data, rid, q.probe))
        fig.add_trace(
            go.Scatter(
                x=t,
                y=np.where(marks.below | marks.above, np.nan, v),
                mode="lines+markers",
                name=q.label,
                line=dict(color=st.color, dash=dash, width=2),
                marker=dict(color=st.color, symbol=symbol, size=5),
                hovertemplate=f"{q.text}<br>k=%{{x}}<br>%{{y:.3g}}<extra></extra>",
                meta=trace_meta(rid, x="t", y="value", const={"name": name, "step": step_c}),
            )
        )
        if marks.any:
            fig.add_traces(
                range_markers(st, t, v, marks, x_col="t", x_name="k", step=step_c, label=q.text)
            )
            below, above = (describe_positions(m, t, "k") for m in (marks.below, marks.above))
            notes.append(range_note(q.text, marks, below, above, q.probe))
    add_notes(fig, notes)
    return finish(fig, NAME, opts, [rid])


SPEC = FigureSpec(
    name=NAME,
    title="LSTM cell-state vs hidden-state gradient",
    description=(
        "For one LSTM run, ‖∂L/∂c_k‖ (dashed) beside ‖∂L/∂h_k‖ (solid) against timestep k at "
        "one training step, log y. Where the forget gate stays open the cell-state gradient "
        "decays more slowly than the hidden-state one."
    ),
    scope="run",
    probes=probes_of(("grad_hidden", "grad_cell")),
    builder=build,
    needs_probe=GradCellProbe.probe,
    options={
        "run_id": "which run (default: the first)",
        "step": "training step (default: latest)",
        "scale": "log | linear y (default log)",
        "color_by": COLOR_BY_HELP,
    },
)
