"""gates: LSTM / GRU gate means per timestep at one training step (vanilla RNNs have none)."""

from __future__ import annotations

import plotly.graph_objects as go

from gradlab.cells import CELLS
from gradlab.figures import style
from gradlab.figures._common import finish, new_figure, no_data, pick_run, run_label, trace_meta
from gradlab.figures.data import FigureData
from gradlab.figures.spec import FigureSpec
from gradlab.probes import GatesProbe

NAME = "gates"
GATE_NAMES = {
    "i": "i (input)",
    "f": "f (forget)",
    "g": "g (candidate)",
    "o": "o (output)",
    "r": "r (reset)",
    "z": "z (update)",
    "n": "n (candidate)",
}
GATE_DASH = {"g": "dashdot", "n": "dashdot"}


def build(
    data: FigureData,
    *,
    run_id: str | None = None,
    step: int | None = None,
    layer: int = 0,
    direction: int = 0,
) -> go.Figure:
    """Batch-mean gate activations of one run against timestep k = 1..T at `step` (None:
    latest): LSTM i, f, g, o; GRU r, z, n (g and n are tanh-valued, the others sigmoids)."""
    opts = dict(run_id=run_id, step=step, layer=layer, direction=direction)
    rid = pick_run(data, run_id)
    title = "Gate means per timestep"
    if rid is None:
        return no_data(NAME, title, "no run selected", opts)
    label = run_label(data, rid)
    cell = CELLS.get(data.cell(rid))
    if cell is not None and not cell.gate_names:
        why = f"this run has no gate values ({cell.display_name})"
        return no_data(NAME, f"{title} — {label}", why, opts, [rid])
    chosen = data.resolve_step(rid, GatesProbe.probe, None, step)
    df = (
        data.select(rid, GatesProbe.probe, step=chosen, layer=layer, direction=direction)
        if chosen is not None
        else None
    )
    if df is None or df.dropna(subset=["t"]).empty:
        return no_data(
            NAME, f"{title} — {label}", "this run has no gate values recorded", opts, [rid]
        )
    fig = new_figure(
        f"{title} at training step {chosen} — {label}", "timestep k", "gate mean over the batch"
    )
    present = [g for g in GatesProbe.names if g in set(df["name"])]
    for gate in present:
        part = df[df["name"] == gate].dropna(subset=["t"])
        fig.add_trace(
            go.Scatter(
                x=part["t"].astype("int64").to_numpy(),
                y=part["value"].to_numpy(),
                mode="lines",
                name=GATE_NAMES.get(gate, gate),
                line=dict(
                    color=style.GATE_COLORS.get(gate, style.OTHER_COLOR),
                    dash=GATE_DASH.get(gate, "solid"),
                    width=2,
                ),
                hovertemplate=f"{gate}<br>k=%{{x}}<br>%{{y:.3f}}<extra></extra>",
                meta=trace_meta(rid, x="t", y="value", const={"name": gate, "step": chosen}),
            )
        )
    return finish(fig, NAME, opts, [rid])


SPEC = FigureSpec(
    name=NAME,
    title="Gate means per timestep",
    description=(
        "Batch-mean LSTM (i, f, g, o) or GRU (r, z, n) gate values against timestep k at one "
        "training step. An LSTM forget gate f near 1 (or a GRU update gate z near 1) keeps the "
        "state, and with it the gradient, over many steps."
    ),
    scope="run",
    probes=((GatesProbe.probe, GatesProbe.names),),
    builder=build,
    needs_probe=GatesProbe.probe,
    options={
        "run_id": "which run (default: the first)",
        "step": "training step (default: latest)",
    },
)
