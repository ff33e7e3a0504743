"""timestep_profile: a per-timestep norm at one training step, one line per run, log y, with the
fitted decay line and the theory's line exp(rate·lag), drawn against the step-0 recording (the
theory describes the initialisation) with its assumptions noted under the plot."""

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
from gradlab.figures.quantities import (
    JACOBIAN,
    QUANTITIES,
    SUMMARY,
    get_quantity,
    group_probes,
)
from gradlab.figures.spec import FLOW, FigureSpec
from gradlab.figures.theory_overlay import THEORY_STEP, add_theory_line, add_theory_notes
from gradlab.probes import ContributionProbe, GradCellProbe, GradHiddenProbe

NAME = "timestep_profile"
#: Quantities that decay like the gradient, so a fit and the theory's rate apply.
DECAYING = (GradHiddenProbe.probe, GradCellProbe.probe, ContributionProbe.probe, JACOBIAN)


def build(
    data: FigureData,
    *,
    run_ids: Sequence[str] | None = None,
    step: int | None = None,
    quantity: str = "grad_hidden",
    scale: str | None = None,
    fit: bool = True,
    theory: bool = True,
    layer: int = 0,
    direction: int = 0,
    color_by: str | None = None,
) -> go.Figure:
    """`quantity` (default ‖∂L/∂h_k‖) against timestep k at training step `step` (None: each
    run's latest recorded step), one line per run in its own colour (or by `color_by`). For decaying
    quantities a dotted fit line ("fit: −0.21 /step ± 0.01") and, where the theory has a rate
    (`gradlab.theory.predict_rate(config)`), a dashed line exp(rate·lag) anchored at the last
    timestep (lag 0) of the step-0 recording, which is drawn too when another step is shown; a
    note under the plot gives each run's theory assumptions or why it has none. Values outside
    the recording dtype's range (`_common.out_of_range`) are drawn as open triangles at the
    series' floor (ceiling) with a note in the plot, "‖∂L/∂h_k‖ below float32 range at k ≤ 16
    (recorded as 0; ...)"."""
    q = get_quantity(quantity)
    scale = scale or ("log" if q.log else "linear")
    opts = dict(run_ids=run_ids, step=step, quantity=q.key, scale=scale, fit=fit, theory=theory)
    opts.update(layer=layer, direction=direction, color_by=color_by)
    ids = [str(r) for r in run_ids] if run_ids is not None else data.run_ids
    title = f"{q.label} per timestep"
    if not ids:
        return no_data(NAME, title, "no runs selected", opts)
    styles = run_styles(data, ids, color_by)
    fig = new_figure(title, "timestep k", q.label, ylog=scale == "log")
    color_legend(fig, color_by)
    drawn, missing, steps, notes = [], [], set(), []
    theory_notes: list[str] = []
    for rid in ids:
        chosen, df = data.series(rid, q.probe, q.name, step=step, layer=layer, direction=direction)
        if chosen is None or df.empty:  # no step: no rows either
            missing.append(rid)
            continue
        st = styles[rid]
        t, v = df["t"].to_numpy(), df["value"].to_numpy()
        # values outside the recording dtype's range: a marker and a note, not a drop to 0
        marks = out_of_range(v, t, recorded_dtype(data, rid, q.probe))
        shown = np.where(marks.below | marks.above, np.nan, v)
        fig.add_trace(profile_line(st, t, shown, x_col="t", x_name="k", step=chosen))
        if marks.any:
            fig.add_traces(range_markers(st, t, v, marks, x_col="t", x_name="k", step=chosen))
            where = describe_positions(marks.below, t, "k")
            text = range_note(
                q.text, marks, where, describe_positions(marks.above, t, "k"), q.probe
            )
            notes.append(f"{st.label}: {text}" if len(ids) > 1 else text)
        if q.probe in DECAYING:
            lags = int(t.max()) - t
            decay_overlays(
                fig, x=t, lags=lags, values=v, st=st, x_col="t", rate_theory=None, anchor=None,
                fit=fit,
            )  # fmt: skip
            if theory:

                def step0(rid=rid, chosen=chosen, t=t, v=v, lags=lags):
                    if chosen == THEORY_STEP:
                        return t, lags, v
                    _, d0 = data.series(
                        rid, q.probe, q.name, step=THEORY_STEP, layer=layer, direction=direction
                    )
                    if d0.empty:
                        return None
                    t0, v0 = d0["t"].to_numpy(), d0["value"].to_numpy()
                    return t0, int(t0.max()) - t0, v0

                add_theory_line(
                    fig, data, rid, st, shown_step=chosen, step0=step0, x_col="t",
                    anchor=lambda lg, vals: float(vals[np.argmin(lg)]),
                    notes=theory_notes, run_ids=ids,
                )  # fmt: skip
        drawn.append(rid)
        steps.add(chosen)
    if not drawn:
        return no_data(NAME, title, q.missing, opts, ids)
    if len(steps) == 1:
        fig.update_layout(title=dict(text=f"{title} at training step {steps.pop()}"))
    note_missing(fig, data, missing, ids, q.text)
    add_notes(fig, notes)
    add_theory_notes(fig, theory_notes)
    return finish(fig, NAME, opts, drawn)


SPEC = FigureSpec(
    name=NAME,
    title="Gradient norm per timestep",
    description=(
        "‖∂L/∂h_k‖ (or another per-timestep norm) against timestep k at one training step, "
        "one line per run, log y. The dotted line is the fitted exponential decay with its rate "
        "per step; the dashed line is the theory's rate exp(rate·lag) at initialisation, drawn "
        "against the step-0 recording and anchored at its lag 0; a note states the theory's "
        "assumptions (σ_w, σ_v, σ_b, N) or why a run has none."
    ),
    scope="runs",
    reading=(
        "The fit here is of the plotted quantity against the lag T−k (for ‖∂L/∂h_k‖: the runs "
        "table's ∂L/∂h decay rate); its state decay rate is another fit, "
        "of ‖∂s_T/∂s_k‖ in the long-range Jacobian figure."
    ),
    probes=group_probes(
        *((q.probe, q.name) for q in QUANTITIES.values() if q.probe != JACOBIAN),
        (SUMMARY, "theory_rate"),
    ),
    builder=build,
    requires=lambda o: group_probes(
        *((q.probe, q.name) for q in [get_quantity(o.get("quantity") or "grad_hidden")]),
        (SUMMARY, "theory_rate"),
    ),
    group=FLOW,
    options={
        "run_ids": "which runs (default: all given)",
        "step": "training step (default: each run's latest)",
        "quantity": "grad_hidden | grad_cell | contribution:weight_hh | ... (default grad_hidden)",
        "scale": "log | linear y (default log for norms)",
        "fit": "draw the fitted decay line (default true)",
        "theory": "draw the theory line where a theory rate exists (default true)",
        "color_by": COLOR_BY_HELP,
    },
)
