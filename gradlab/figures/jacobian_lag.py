"""jacobian_lag: ‖∂s_T/∂s_k‖₂ against the lag T−k, one line per run, log y, with the fitted
decay (the summary's state decay rate) and the theory's line exp(rate·lag) from 1 at lag 0
(∂s_T/∂s_T = I), drawn against the step-0 recording with its assumptions noted."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from gradlab.figures._common import (
    COLOR_BY_HELP,
    add_notes,
    color_legend,
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
)
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import SUMMARY, get_quantity, group_probes
from gradlab.figures.spec import FigureSpec
from gradlab.figures.theory_overlay import THEORY_STEP, add_theory_line, add_theory_notes
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
    color_by: str | None = None,
) -> go.Figure:
    """Spectral norm of the long-range state Jacobian ∂s_T/∂s_k (mean over the probe samples)
    against lag T−k at `step` (None: latest). Dotted: fitted decay (the state decay rate);
    dashed: exp(rate·lag) with the theory's rate at initialisation, from ‖∂s_T/∂s_T‖₂ = 1 at
    lag 0, beside the step-0 recording (drawn too when another step is shown); a note gives
    the theory's assumptions or why a run has none."""
    q = get_quantity("jacobian:spectral")
    opts = dict(run_ids=run_ids, step=step, scale=scale, fit=fit, theory=theory)
    opts.update(layer=layer, direction=direction, color_by=color_by)
    ids = [str(r) for r in run_ids] if run_ids is not None else data.run_ids
    title = f"Long-range Jacobian {Y_LABEL} against lag"
    if not ids:
        return no_data(NAME, title, "no runs selected", opts)
    styles = run_styles(data, ids, color_by)
    fig = new_figure(title, "lag T−k (steps)", Y_LABEL, ylog=scale == "log")
    color_legend(fig, color_by)
    drawn, missing, steps, notes = [], [], set(), []
    theory_notes: list[str] = []
    for rid in ids:
        chosen, df = data.series(rid, q.probe, q.name, step=step, layer=layer, direction=direction)
        if chosen is None or df.empty:  # no step: no rows either
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
        decay_overlays(
            fig, x=lag, lags=lag, values=v, st=st, x_col="lag", rate_theory=None, anchor=None,
            fit=fit,
        )  # fmt: skip
        if theory:

            def step0(rid=rid, chosen=chosen, lag=lag, v=v):
                if chosen == THEORY_STEP:
                    return lag, lag, v
                _, d0 = data.series(
                    rid, q.probe, q.name, step=THEORY_STEP, layer=layer, direction=direction
                )
                if d0.empty:
                    return None
                k0 = d0["t"].to_numpy()
                lag0 = int(k0.max()) + 1 - k0
                return lag0, lag0, d0["value"].to_numpy()

            add_theory_line(
                fig, data, rid, st, shown_step=chosen, step0=step0, x_col="lag",
                anchor=lambda lg, vals: 1.0, notes=theory_notes, run_ids=ids,
            )  # fmt: skip
        drawn.append(rid)
        steps.add(chosen)
    if not drawn:
        return no_data(NAME, title, q.missing, opts, ids)
    if len(steps) == 1:
        fig.update_layout(title=dict(text=f"{title} at training step {steps.pop()}"))
    note_missing(fig, data, missing, ids, "Jacobian norms")
    add_notes(fig, notes, corner="right")  # the norm decays with the lag: top right is empty
    add_theory_notes(fig, theory_notes)
    return finish(fig, NAME, opts, drawn)


SPEC = FigureSpec(
    name=NAME,
    title="Long-range Jacobian against lag",
    description=(
        "‖∂s_T/∂s_k‖₂ (mean over the probe samples) against the lag T−k at one training step, "
        "one line per run, log y: how strongly the last state still depends on an earlier one. "
        "Dotted: fitted decay rate per step (the state decay rate); dashed: the theory's "
        "exp(rate·lag) at initialisation from 1 at lag 0, beside the step-0 recording, with its "
        "assumptions (σ_w, σ_v, σ_b, N) or why a run has none noted under the plot."
    ),
    scope="runs",
    reading=(
        "The dotted fit is the state decay rate, the runs table's decay rate: the slope of "
        "ln ‖∂s_T/∂s_k‖ against the lag T−k, per step (negative: the memory fades)."
    ),
    probes=group_probes((JacobianProbe.probe, "spectral"), (SUMMARY, "theory_rate")),
    builder=build,
    options={
        "run_ids": "which runs (default: all given)",
        "step": "training step (default: each run's latest)",
        "scale": "log | linear y (default log)",
        "fit": "draw the fitted decay line (default true)",
        "theory": "draw the theory line where a theory rate exists (default true)",
        "color_by": COLOR_BY_HELP,
    },
)
