"""fixed_point_pca: the probe trajectories h_0..h_T in their top principal components, with the
fixed and slow points found at the same training step overlaid (one marker per stability
class)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from gradlab.arrays import FIXED_POINT_STATES, HIDDEN_SAMPLE
from gradlab.figures import style
from gradlab.figures._common import (
    COLOR_BY_HELP,
    add_notes,
    finish,
    new_figure,
    no_data,
    num,
    pick_run,
    run_label,
    run_styles,
    trace_meta,
)
from gradlab.figures._fixed_points import MARKERS, PROBE, points_at
from gradlab.figures.data import FigureData
from gradlab.figures.spec import FigureSpec
from gradlab.probes.fixed_points import POINT_NAMES, STABILITY

NAME = "fixed_point_pca"


def _nearest_hidden(data: FigureData, run_id: str, step: int) -> tuple[int | None, np.ndarray]:
    """The hidden samples at `step`, else at the nearest saved step."""
    steps = data.array_steps(run_id, HIDDEN_SAMPLE)
    if not steps:
        return None, np.empty((0, 0, 0))
    chosen = min(steps, key=lambda s: (abs(s - step), s))
    _, h = data.array(run_id, HIDDEN_SAMPLE, chosen)
    return chosen, np.asarray(h, dtype=np.float64)


def principal_axes(samples: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (N,), axes (k, N), explained variance fractions (k,)) of the rows of `samples`
    (M, N), by SVD of the centred rows; fewer than k axes when the rows span fewer."""
    mean = samples.mean(0)
    _, sv, vt = np.linalg.svd(samples - mean, full_matrices=False)
    k = min(k, vt.shape[0])
    total = float((sv**2).sum())
    share = sv[:k] ** 2 / total if total > 0 else np.zeros(k)
    return mean, vt[:k], share


def build(
    data: FigureData,
    *,
    run_id: str | None = None,
    step: int | None = None,
    components: int = 2,
    color_by: str | None = None,
) -> go.Figure:
    """The `hidden_sample` trajectories (T+1, n, N) of one run at `step` (None: the latest step
    with fixed points) projected on their top `components` (2 or 3) principal axes, with the
    hidden part (the first N coordinates) of the `fixed_point_states` (P, S) found there:
    filled circles stable, open circles unstable, crosses saddles, squares marginal."""
    if components not in (2, 3):
        raise ValueError(f"components must be 2 or 3, got {components!r}")
    opts = dict(run_id=run_id, step=step, components=components, color_by=color_by)
    rid = pick_run(data, run_id)
    title = "Trajectories and fixed points"
    if rid is None:
        return no_data(NAME, title, "no run selected", opts)
    label = run_label(data, rid)
    points = points_at(data, rid, step)
    if points is None or points.states is None:
        where = f"at step {step}" if step is not None else "(was the fixed_points probe run?)"
        return no_data(
            NAME, f"{title} — {label}", f"this run has no fixed points {where}", opts, [rid]
        )
    hidden_step, h = _nearest_hidden(data, rid, points.step)
    if h.ndim != 3 or h.shape[1] == 0 or not np.isfinite(h).all():
        return no_data(
            NAME, f"{title} — {label}", "this run kept no finite hidden-state samples", opts, [rid]
        )
    T1, n, N = h.shape
    mean, axes, share = principal_axes(h.reshape(T1 * n, N), components)
    k = axes.shape[0]
    pcs = [f"PC{i + 1}" for i in range(k)]
    axis_titles = [f"{pc} ({100 * s:.0f}% of variance)" for pc, s in zip(pcs, share, strict=True)]
    color = run_styles(data, [rid], color_by)[rid].color
    when = f"training step {points.step}"
    if hidden_step != points.step:
        when += f" (trajectories of step {hidden_step})"
    fig = new_figure(
        f"{title} in the top principal components at {when} — {label}",
        axis_titles[0],
        axis_titles[1] if k > 1 else "",
    )
    three = components == 3 and k == 3
    scatter = go.Scatter3d if three else go.Scatter
    projected = (h - mean) @ axes.T  # (T+1, n, k)
    for b in range(n):
        xyz = projected[:, b, :]
        coords = {"xyz"[i]: xyz[:, i] for i in range(k if three else min(k, 2))}
        if "y" not in coords:
            coords["y"] = np.zeros(T1)
        fig.add_trace(
            scatter(
                **coords,
                customdata=np.arange(T1),
                mode="lines",
                name=f"trajectories ({n})",
                legendgroup="trajectories",
                showlegend=b == 0,
                line=dict(color=style.shade(color, 0.45 + 0.55 * b / max(1, n - 1)), width=1.5),
                hovertemplate=f"sample {b}<br>k=%{{customdata}}<extra></extra>",
                meta={
                    **trace_meta(rid, x="pc1", y="pc2", z="pc3", const={"step": hidden_step}),
                    "custom": ["t"],
                },
            )
        )
    hidden_points = (points.states[:, :N] - mean) @ axes.T  # (P, k)
    classes = np.asarray(points.classes)
    moduli = points.rows["max_abs_eigenvalue"]
    for kind in (*STABILITY, "unknown"):
        chosen = np.flatnonzero(classes == kind)
        if chosen.size == 0:
            continue
        symbol, marker_color = MARKERS.get(kind, ("diamond", style.OTHER_COLOR))
        coords = {"xyz"[i]: hidden_points[chosen, i] for i in range(k if three else min(k, 2))}
        if "y" not in coords:
            coords["y"] = np.zeros(chosen.size)
        custom = np.column_stack([chosen, *(points.rows[name][chosen] for name in POINT_NAMES)])
        fig.add_trace(
            scatter(
                **coords,
                customdata=custom,
                mode="markers",
                name=f"{kind} ({chosen.size})",
                marker=dict(symbol=symbol, color=marker_color, size=9 if not three else 5),
                hovertemplate=(
                    f"{kind} point %{{customdata[0]}}<br>|λ|<sub>max</sub>=%{{customdata[4]:.4g}}"
                    "<br>q=%{customdata[1]:.2g}<extra></extra>"
                ),
                meta={
                    **trace_meta(
                        rid, x="pc1", y="pc2", z="pc3", const={"step": points.step, "kind": kind}
                    ),
                    "custom": ["point", *POINT_NAMES],
                },
            )
        )
    fixed = int(np.nansum(points.rows["fixed"]))
    visited = points.rows["visits"] > 0
    notes = [f"{fixed} fixed and {points.count - fixed} slow points"]
    if visited.any():
        notes.append(
            "trajectories end near points with |λ|<sub>max</sub> "
            + ", ".join(num(v, 4) for v in sorted(set(np.round(moduli[visited], 4).tolist())))
        )
    if three:
        fig.update_layout(
            scene=dict(
                xaxis_title=pcs[0], yaxis_title=pcs[1], zaxis_title=pcs[2], aspectmode="cube"
            )
        )
    add_notes(fig, notes, corner="right")
    fig.update_layout(legend=dict(title=dict(text="")))
    return finish(fig, NAME, opts, [rid])


SPEC = FigureSpec(
    name=NAME,
    title="Trajectories and fixed points",
    description=(
        "The probe samples' hidden trajectories h_0..h_T at one training step in their top "
        "principal components, with the fixed and slow points found at that step (the hidden "
        "part of each point's state): filled circles stable, open circles unstable, crosses "
        "saddles. A trained memory shows as trajectories that settle on a line or cloud of "
        "slow points instead of one attractor."
    ),
    scope="run",
    reading=(
        "Two or three components show only the share of the variance their titles state; a "
        "point that looks close to a trajectory may be far from it in the other directions."
    ),
    probes=((PROBE, POINT_NAMES),),
    builder=build,
    arrays=(FIXED_POINT_STATES, HIDDEN_SAMPLE),
    needs_probe=PROBE,
    options={
        "run_id": "which run (default: the first)",
        "step": "training step (default: the latest with fixed points)",
        "components": "2 | 3 principal components (default 2)",
        "color_by": COLOR_BY_HELP,
    },
)

__all__ = ["NAME", "SPEC", "build", "principal_axes"]
