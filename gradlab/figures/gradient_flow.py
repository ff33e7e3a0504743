"""gradient_flow: heatmap of a per-timestep gradient norm, timestep k × training step, in log
colour — how the backward flow changes as the run trains."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from gradlab.figures import style
from gradlab.figures._common import (
    OUT_OF_RANGE_COLOR,
    RangeMarks,
    add_notes,
    describe_positions,
    finish,
    log_colour,
    no_data,
    out_of_range,
    pick_run,
    range_note,
    recorded_dtype,
    run_label,
    trace_meta,
)
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import QUANTITIES, get_quantity, probes_of
from gradlab.figures.spec import FLOW, FigureSpec

NAME = "gradient_flow"


def build(
    data: FigureData,
    *,
    run_id: str | None = None,
    quantity: str = "grad_hidden",
    scale: str = "log",
    layer: int = 0,
    direction: int = 0,
) -> go.Figure:
    """Heatmap of `quantity` (default ‖∂L/∂h_k‖) for one run: x timestep k, y training step,
    colour log10 of the norm (``scale="linear"`` for a linear colour scale). Cells outside the
    recording dtype's range (`_common.out_of_range`) are grey, with a note in the plot."""
    q = get_quantity(quantity)
    opts = dict(run_id=run_id, quantity=q.key, scale=scale, layer=layer, direction=direction)
    rid = pick_run(data, run_id)
    title = f"Gradient flow {q.label} over training"
    if rid is None:
        return no_data(NAME, title, "no run selected", opts)
    df = data.select(rid, q.probe, q.name, layer=layer, direction=direction).dropna(subset=["t"])
    if df.empty:
        return no_data(NAME, f"{title} — {run_label(data, rid)}", q.missing, opts, [rid])
    grid = df.pivot_table(index="step", columns="t", values="value", aggfunc="first", dropna=False)
    grid = grid.sort_index().sort_index(axis=1)
    raw = grid.to_numpy(dtype=np.float64)
    log = scale == "log"
    colorbar: dict = dict(title=dict(text=q.label), exponentformat="power")
    if log:
        z, ticks = log_colour(raw)
        colorbar.update(ticks)
    else:
        z = raw
    fig = go.Figure(
        go.Heatmap(
            x=grid.columns.to_numpy(dtype=np.int64),
            y=grid.index.to_numpy(dtype=np.int64),
            z=z,
            customdata=raw,
            colorscale=style.SEQUENTIAL,
            colorbar=colorbar,
            name=run_label(data, rid),
            hovertemplate="k=%{x}<br>step=%{y}<br>%{customdata:.3g}<extra></extra>",
            meta={**trace_meta(rid, x="t", y="step", z="value"), "z_source": "customdata"},
        )
    )
    fig.update_layout(
        template=style.TEMPLATE,
        title=dict(text=f"Gradient flow {q.label} — {run_label(data, rid)}"),
        xaxis=dict(title=dict(text="timestep k"), showgrid=False),
        yaxis=dict(title=dict(text="training step"), showgrid=False),
    )
    _mark_out_of_range(fig, grid.columns.to_numpy(dtype=np.int64), grid.index, raw, q, data, rid)
    return finish(fig, NAME, opts, [rid])


def _mark_out_of_range(fig, k, steps, raw, q, data, rid) -> None:
    """Grey cells where a value left the recording dtype's range (the log colour scale has no
    colour for 0 or Inf, so they would be blank), and the note."""
    dtype = recorded_dtype(data, rid, q.probe)
    rows = [out_of_range(row, k, dtype) for row in raw]
    marks = RangeMarks(
        np.array([m.below for m in rows]).reshape(raw.shape),
        np.array([m.above for m in rows]).reshape(raw.shape),
        dtype,
    )
    if not marks.any:
        return
    for mask, word in ((marks.below, "below"), (marks.above, "above")):
        if not mask.any():
            continue
        text = f"{word} {dtype} range (recorded as {'0' if word == 'below' else 'Inf'})"
        fig.add_trace(
            go.Heatmap(
                x=k,
                y=steps.to_numpy(dtype=np.int64),
                z=np.where(mask, 1.0, np.nan),
                colorscale=[[0, OUT_OF_RANGE_COLOR], [1, OUT_OF_RANGE_COLOR]],
                showscale=False,
                showlegend=False,  # the note names the grey cells
                name=text,
                hovertemplate=f"k=%{{x}}<br>step=%{{y}}<br>{text}<extra></extra>",
                meta=trace_meta(rid, x="t", y="step", z=f"{word}_range"),
            )
        )
    below, above = (
        describe_positions(np.asarray(m.any(0)), k, "k") for m in (marks.below, marks.above)
    )
    n = int((marks.below | marks.above).any(1).sum())
    detail = f"grey cells, at {n} of {len(rows)} recorded steps"
    add_notes(fig, [range_note(q.text, marks, below, above, q.probe, detail)])


SPEC = FigureSpec(
    name=NAME,
    title="Gradient flow over training",
    description=(
        "Heatmap of ‖∂L/∂h_k‖ (or another per-timestep norm) for one run: timestep k across, "
        "training step up (step 0 at the bottom), log colour. Vanishing gradients show as a "
        "colour gradient from the last timestep back to the first; training reshapes it."
    ),
    scope="run",
    reading=(
        "Read each row as one recording: a row that darkens towards the left (early k) is a "
        "gradient that vanishes going back in time; compare rows to see training change it."
    ),
    probes=probes_of(tuple(QUANTITIES)),
    builder=build,
    requires=lambda o: probes_of((o.get("quantity") or "grad_hidden",)),
    group=FLOW,
    options={
        "run_id": "which run (default: the first)",
        "quantity": "grad_hidden | grad_cell | contribution:weight_hh | ... (default grad_hidden)",
        "scale": "log | linear colour (default log)",
        "layer": "layer index (default 0)",
        "direction": "0 forward, 1 reverse (default 0)",
    },
)
