"""timestep_profile: a per-timestep norm at one training step, one line per run, log y, with the
fitted decay line and the theory's line exp(rate·lag)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from gradlab.figures._common import (
    decay_overlays,
    finish,
    new_figure,
    no_data,
    note_missing,
    profile_line,
    run_styles,
    theory_rate,
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
) -> go.Figure:
    """`quantity` (default ‖∂L/∂h_k‖) against timestep k at training step `step` (None: each
    run's latest recorded step), one line per run coloured by cell type. For decaying
    quantities a dotted fit line ("fit: −0.21 /step ± 0.01") and, where the theory has a rate
    (summary `theory_rate` or `gradlab.theory.theory_rate(config)`), a dashed line
    exp(rate·lag) anchored at the last timestep (lag 0)."""
    q = get_quantity(quantity)
    scale = scale or ("log" if q.log else "linear")
    opts = dict(run_ids=run_ids, step=step, quantity=q.key, scale=scale, fit=fit, theory=theory)
    opts.update(layer=layer, direction=direction)
    ids = [str(r) for r in run_ids] if run_ids is not None else data.run_ids
    title = f"{q.label} per timestep"
    if not ids:
        return no_data(NAME, title, "no runs selected", opts)
    styles = run_styles(data, ids)
    fig = new_figure(title, "timestep k", q.label, ylog=scale == "log")
    drawn, missing, steps = [], [], set()
    for rid in ids:
        chosen, df = data.series(rid, q.probe, q.name, step=step, layer=layer, direction=direction)
        if df.empty:
            missing.append(rid)
            continue
        st = styles[rid]
        t, v = df["t"].to_numpy(), df["value"].to_numpy()
        fig.add_trace(profile_line(st, t, v, x_col="t", x_name="k", step=chosen))
        if q.probe in DECAYING:
            rate = theory_rate(data, rid, chosen) if theory else None
            anchor = float(v[np.argmax(t)])
            decay_overlays(
                fig,
                x=t,
                lags=int(t.max()) - t,
                values=v,
                st=st,
                x_col="t",
                rate_theory=rate,
                anchor=anchor,
                fit=fit,
            )
        drawn.append(rid)
        steps.add(chosen)
    if not drawn:
        return no_data(NAME, title, q.missing, opts, ids)
    if len(steps) == 1:
        fig.update_layout(title=dict(text=f"{title} at training step {steps.pop()}"))
    note_missing(fig, data, missing, ids, q.text)
    return finish(fig, NAME, opts, drawn)


SPEC = FigureSpec(
    name=NAME,
    title="Gradient norm per timestep",
    description=(
        "‖∂L/∂h_k‖ (or another per-timestep norm) against timestep k at one training step, "
        "one line per run, log y. The dotted line is the fitted exponential decay with its rate "
        "per step; the dashed line is the theory's rate exp(rate·lag), anchored at lag 0."
    ),
    scope="runs",
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
    },
)
