"""jacobian_lag: ‖∂s_T/∂s_k‖₂ against the lag T−k, one line per run, log y, with the fitted
decay and the theory's line exp(rate·lag) from 1 at lag 0 (∂s_T/∂s_T = I)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from gradlab.figures._common import (
    add_notes,
    decay_overlays,
    describe_positions,
    finish,
    new_figure,
    no_data,
    note_missing,
    out_of_range,
    profile_line,
    range_markers,
    range_note,
    recorded_dtype,
    run_styles,
    theory_rate,
)
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import SUMMARY, get_quantity, group_probes
from gradlab.figures.spec import FigureSpec
from gradlab.probes import JacobianProbe

NAME = "jacobian_lag"
Y_LABEL = "‖∂s<sub>T</sub>/∂s<sub>k</sub>‖<sub>2</sub>"


def build(
    data: FigureData,
    *,
    run_ids: Sequence[str] | None = None,
    step: int | None = None,
    scale: str = "log",
    fit: bool = True,
    theory: bool = True,
    layer: int = 0,
    direction: int = 0,
) -> go.Figure:
    """Spectral norm of the long-range state Jacobian ∂s_T/∂s_k (mean over the probe samples)
    against lag T−k at `step` (None: latest). Dotted: fitted decay; dashed: exp(rate·lag) with
    the theory's rate, starting from ‖∂s_T/∂s_T‖₂ = 1 at lag 0."""
    q = get_quantity("jacobian:spectral")
    opts = dict(run_ids=run_ids, step=step, scale=scale, fit=fit, theory=theory)
    opts.update(layer=layer, direction=direction)
    ids = [str(r) for r in run_ids] if run_ids is not None else data.run_ids
    title = f"Long-range Jacobian {Y_LABEL} against lag"
    if not ids:
        return no_data(NAME, title, "no runs selected", opts)
    styles = run_styles(data, ids)
    fig = new_figure(title, "lag T−k (steps)", Y_LABEL, ylog=scale == "log")
    drawn, missing, steps, notes = [], [], set(), []
    for rid in ids:
        chosen, df = data.series(rid, q.probe, q.name, step=step, layer=layer, direction=direction)
        if df.empty:
            missing.append(rid)
            continue
        st = styles[rid]
        k, v = df["t"].to_numpy(), df["value"].to_numpy()
        lag = int(k.max()) + 1 - k  # k = 0..T-1 → lag T..1
        # values outside the recording dtype's range: a marker and a note, not a drop to 0
        marks = out_of_range(v, -lag, recorded_dtype(data, rid, q.probe))
        shown = np.where(marks.below | marks.above, np.nan, v)
        fig.add_trace(profile_line(st, lag, shown, x_col="lag", x_name="lag", step=chosen))
        if marks.any:
            fig.add_traces(range_markers(st, lag, v, marks, x_col="lag", x_name="lag", step=chosen))
            below, above = (describe_positions(m, lag, "lag") for m in (marks.below, marks.above))
            text = range_note(q.text, marks, below, above, q.probe)
            notes.append(f"{st.label}: {text}" if len(ids) > 1 else text)
        rate = theory_rate(data, rid, chosen) if theory else None
        decay_overlays(
            fig,
            x=lag,
            lags=lag,
            values=v,
            st=st,
            x_col="lag",
            rate_theory=rate,
            anchor=1.0,
            fit=fit,
        )
        drawn.append(rid)
        steps.add(chosen)
    if not drawn:
        return no_data(NAME, title, q.missing, opts, ids)
    if len(steps) == 1:
        fig.update_layout(title=dict(text=f"{title} at training step {steps.pop()}"))
    note_missing(fig, data, missing, ids, "Jacobian norms")
    add_notes(fig, notes, corner="right")  # the norm decays with the lag: top right is empty
    return finish(fig, NAME, opts, drawn)


SPEC = FigureSpec(
    name=NAME,
    title="Long-range Jacobian against lag",
    description=(
        "‖∂s_T/∂s_k‖₂ (mean over the probe samples) against the lag T−k at one training step, "
        "one line per run, log y: how strongly the last state still depends on an earlier one. "
        "Dotted: fitted decay rate per step; dashed: the theory's exp(rate·lag) from 1 at lag 0."
    ),
    scope="runs",
    probes=group_probes((JacobianProbe.probe, "spectral"), (SUMMARY, "theory_rate")),
    builder=build,
    options={
        "run_ids": "which runs (default: all given)",
        "step": "training step (default: each run's latest)",
        "scale": "log | linear y (default log)",
        "fit": "draw the fitted decay line (default true)",
        "theory": "draw the theory line where a theory rate exists (default true)",
    },
)
