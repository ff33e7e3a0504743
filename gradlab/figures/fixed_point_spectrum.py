"""fixed_point_spectrum: the step Jacobian's eigenvalues at the fixed / slow points of one
training step in the complex plane, against the unit circle |λ| = 1."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from gradlab.arrays import FIXED_POINT_EIGENVALUES
from gradlab.figures import style
from gradlab.figures._common import (
    add_notes,
    finish,
    new_figure,
    no_data,
    num,
    pick_run,
    run_label,
    trace_meta,
)
from gradlab.figures._fixed_points import MARKERS, PROBE, points_at
from gradlab.figures.data import FigureData
from gradlab.figures.spec import FigureSpec
from gradlab.probes.fixed_points import POINT_NAMES, STABILITY

NAME = "fixed_point_spectrum"
POINTS = ("visited", "all")


def _tau_text(modulus: float) -> str:
    """ "τ = 142 steps" for |λ| < 1, "no decay" otherwise."""
    if not 0 < modulus < 1:
        return "no decay (|λ| ≥ 1)"
    return f"τ = {num(-1.0 / np.log(modulus), 3)} steps"


def build(
    data: FigureData,
    *,
    run_id: str | None = None,
    step: int | None = None,
    points: str = "visited",
) -> go.Figure:
    """Eigenvalues λ (real part across, imaginary part up) of the step Jacobian at the points of
    one run at `step` (None: the latest with fixed points), from the array
    ``fixed_point_eigenvalues`` (P, S, 2): ``points="visited"`` only the points the probe
    trajectories end at (all when none is), ``"all"`` every point; one marker per eigenvalue,
    shaped by its point's stability class, with the unit circle."""
    if points not in POINTS:
        raise ValueError(f"points must be one of {POINTS}, got {points!r}")
    opts = dict(run_id=run_id, step=step, points=points)
    rid = pick_run(data, run_id)
    title = "Eigenvalues at the fixed points"
    if rid is None:
        return no_data(NAME, title, "no run selected", opts)
    label = run_label(data, rid)
    found = points_at(data, rid, step)
    if found is None or found.eigenvalues is None:
        where = f"at step {step}" if step is not None else "(was the fixed_points probe run?)"
        return no_data(
            NAME, f"{title} — {label}", f"this run has no fixed-point spectra {where}", opts, [rid]
        )
    visits = found.rows["visits"]
    shown = np.flatnonzero(visits > 0) if points == "visited" else np.arange(found.count)
    which = "visited points"
    if shown.size == 0:
        shown, which = np.arange(found.count), "points (none visited)"
    if points == "all":
        which = "points"
    fig = new_figure(
        f"{title}: step-Jacobian eigenvalues at the {which}, training step {found.step} — {label}",
        "Re λ",
        "Im λ",
    )
    fig.add_shape(
        type="circle",
        xref="x",
        yref="y",
        x0=-1,
        y0=-1,
        x1=1,
        y1=1,
        line=dict(color=style.OTHER_COLOR, width=1, dash="dot"),
    )
    classes = np.asarray(found.classes)
    for kind in (*STABILITY, "unknown"):
        chosen = shown[classes[shown] == kind]
        if chosen.size == 0:
            continue
        lam = found.eigenvalues[chosen]  # (p, S)
        S = lam.shape[1]
        point = np.repeat(chosen, S)
        index = np.tile(np.arange(1, S + 1), chosen.size)
        modulus = np.abs(lam).ravel()
        symbol, color = MARKERS.get(kind, ("diamond", style.OTHER_COLOR))
        fig.add_trace(
            go.Scatter(
                x=lam.real.ravel(),
                y=lam.imag.ravel(),
                customdata=np.column_stack([point, index, modulus]),
                mode="markers",
                name=f"{kind} points ({chosen.size})",
                marker=dict(symbol=symbol, color=color, size=7),
                hovertemplate=(
                    f"{kind} point %{{customdata[0]}}<br>λ<sub>%{{customdata[1]}}</sub>"
                    "=%{x:.4f}%{y:+.4f}i<br>|λ|=%{customdata[2]:.4f}<extra></extra>"
                ),
                meta={
                    **trace_meta(rid, x="real", y="imag", const={"step": found.step, "kind": kind}),
                    "custom": ["point", "index", "modulus"],
                },
            )
        )
    moduli = np.abs(found.eigenvalues[shown, 0])
    slowest = int(shown[int(np.nanargmax(moduli))]) if np.isfinite(moduli).any() else None
    if slowest is not None:
        top = float(np.abs(found.eigenvalues[slowest, 0]))
        add_notes(
            fig,
            [
                f"slowest |λ| = {num(top, 4)} at point {slowest}",
                _tau_text(top),
                "dotted: the unit circle |λ| = 1",
            ],
            corner="left",
        )
    reach = float(np.nanmax(np.abs(found.eigenvalues[shown]))) if shown.size else 1.0
    bound = max(1.05, 1.05 * reach) if np.isfinite(reach) else 1.05
    fig.update_xaxes(range=[-bound, bound], zeroline=True)
    fig.update_yaxes(range=[-bound, bound], zeroline=True, scaleanchor="x", scaleratio=1)
    return finish(fig, NAME, opts, [rid])


SPEC = FigureSpec(
    name=NAME,
    title="Eigenvalues at the fixed points",
    description=(
        "The eigenvalues λ of the step Jacobian ∂s_k/∂s_(k−1) at the fixed and slow points of one "
        "training step (by default those the probe trajectories end at), in the complex plane "
        "with the unit circle. A mode with |λ| near 1 forgets slowly: its time constant is "
        "τ = −1/ln|λ| steps; eigenvalues outside the circle grow."
    ),
    scope="run",
    reading=(
        "The spectrum describes the linearisation at a point: a trajectory far from every point "
        "(see the distance the rates figure reports) is not governed by it."
    ),
    probes=((PROBE, POINT_NAMES),),
    builder=build,
    arrays=(FIXED_POINT_EIGENVALUES,),
    needs_probe=PROBE,
    options={
        "run_id": "which run (default: the first)",
        "step": "training step (default: the latest with fixed points)",
        "points": "visited | all (default visited: the points the trajectories end at)",
    },
)
