"""fixed_point_rates: over training, ln|λ_max| at the fixed points the probe trajectories visit
beside the measured state decay rate and the top Lyapunov exponent (all per step), or the time
constants −1/rate of the three."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from gradlab.figures._common import (
    COLOR_BY_HELP,
    add_notes,
    color_legend,
    finish,
    new_figure,
    no_data,
    num,
    run_styles,
    trace_meta,
)
from gradlab.figures._fixed_points import PROBE
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import SUMMARY
from gradlab.figures.spec import FigureSpec

NAME = "fixed_point_rates"
QUANTITIES = ("rate", "tau")

#: (probe, name, legend text, dash, marker) of the three series.
SERIES = (
    (PROBE, "rate", "ln|λ<sub>max</sub>| at visited points", "solid", "circle"),
    (
        SUMMARY,
        "decay_rate",
        "measured decay rate of ‖∂s<sub>T</sub>/∂s<sub>k</sub>‖",
        "dash",
        "square",
    ),
    (PROBE, "lyapunov", "top Lyapunov exponent λ<sub>1</sub>", "dot", "diamond"),
)
#: How a note names a dash.
DASH_WORDS = {"solid": "solid", "dash": "dashed", "dot": "dotted"}
#: Short names of the series in notes and in the CSV (`series` column).
SHORT = {"rate": "ln|λ_max|", "decay_rate": "decay rate", "lyapunov": "λ_1"}


def _tau(rate: np.ndarray) -> np.ndarray:
    """−1/rate where the rate is negative (a decay), NaN elsewhere."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rate < 0, -1.0 / rate, np.nan)


def _change(name: str, values: np.ndarray, quantity: str) -> str | None:
    """ "τ of ln|λ_max|: 2.1 → 45 steps" from the first to the last finite value."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    first, last = finite[0], finite[-1]
    if quantity == "tau":
        return f"τ of {name}: {num(first, 3)} → {num(last, 3)} steps"
    return f"{name}: {num(first, 3)} → {num(last, 3)} /step"


def _distances(data: FigureData, run_id: str, name: str, steps: np.ndarray) -> np.ndarray:
    """For the ln|λ_max| series, the probe's `distance` (mean RMS distance from the trajectories'
    last states to the points they visit) at `steps`; NaN for the other series."""
    if name != "rate":
        return np.full(len(steps), np.nan)
    rows = data.select(run_id, PROBE, "distance", layer=0, direction=0)
    by_step = dict(zip(rows["step"], rows["value"], strict=True))
    return np.array([by_step.get(int(s), np.nan) for s in steps], np.float64)


def build(
    data: FigureData,
    *,
    run_ids: Sequence[str] | None = None,
    quantity: str = "rate",
    color_by: str | None = None,
) -> go.Figure:
    """Per recorded training step, for each run (its colour): ln|λ_max| at the fixed points the
    probe trajectories visit (`fixed_points`/`rate`, solid), the measured state decay rate
    (`summary`/`decay_rate`, dashed) and the top Lyapunov exponent (`fixed_points`/`lyapunov`,
    dotted). ``quantity="tau"``: the time constants τ = −1/rate in steps instead (log y; a
    rate ≥ 0, no decay, has no τ and is left out)."""
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    opts = dict(run_ids=run_ids, quantity=quantity, color_by=color_by)
    ids = [str(r) for r in run_ids] if run_ids is not None else data.run_ids
    title = "Slowest fixed-point mode vs the measured decay over training"
    if not ids:
        return no_data(NAME, title, "no runs selected", opts)
    with_points = [r for r in ids if data.steps(r, PROBE, "rate")]
    if not with_points:
        return no_data(
            NAME,
            title,
            "these runs have no fixed points (was the fixed_points probe run?)",
            opts,
            ids,
        )
    styles = run_styles(data, with_points, color_by)
    y_title = "rate per step" if quantity == "rate" else "time constant τ = −1/rate (steps)"
    fig = new_figure(title, "training step", y_title, ylog=quantity == "tau")
    several = len(with_points) > 1
    notes = []
    if several:  # the legend names the runs; the dashes name the series
        notes.append(", ".join(f"{DASH_WORDS[dash]}: {text}" for _, _, text, dash, _ in SERIES))
    for rid in with_points:
        look = styles[rid]
        for i, (probe, name, text, dash, symbol) in enumerate(SERIES):
            rows = data.select(rid, probe, name, layer=0, direction=0)
            rows = rows[rows["t"].isna()]
            if rows.empty:
                continue
            steps = rows["step"].to_numpy()
            rate = rows["value"].to_numpy(np.float64)
            tau = _tau(rate)
            y = rate if quantity == "rate" else tau
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=y,
                    customdata=np.column_stack([rate, tau, _distances(data, rid, name, steps)]),
                    mode="lines+markers",
                    name=look.label if several else text,
                    legendgroup=rid if several else name,
                    showlegend=i == 0 or not several,
                    line=dict(color=look.color, dash=dash, width=2),
                    marker=dict(symbol=symbol, size=7, color=look.color),
                    hovertemplate=(
                        f"{SHORT[name]}<br>step %{{x}}<br>rate %{{customdata[0]:.4f}} /step"
                        "<br>τ %{customdata[1]:.3g} steps"
                        + (
                            "<br>RMS distance to the points %{customdata[2]:.3g}"
                            if name == "rate"
                            else ""
                        )
                        + "<extra></extra>"
                    ),
                    meta={
                        **trace_meta(rid, x="step", y=quantity, const={"series": SHORT[name]}),
                        "custom": ["rate_per_step", "tau_steps", "distance"],
                    },
                )
            )
            if name in ("rate", "decay_rate") and not several:  # several: see the hover
                change = _change(SHORT[name], y, quantity)
                if change is not None:
                    notes.append(change)
            if name == "rate" and not several:
                gaps = _distances(data, rid, name, steps)
                gaps = gaps[np.isfinite(gaps)]
                if gaps.size:
                    notes.append(
                        f"visited points at RMS distance {num(gaps[0], 2)} → {num(gaps[-1], 2)}"
                    )
    if quantity == "rate":
        fig.add_hline(y=0.0, line=dict(color="#777777", width=1, dash="dot"))
    add_notes(fig, notes[:6], corner="left")
    color_legend(fig, color_by)
    missing = [r for r in ids if r not in with_points]
    if missing:
        fig.add_annotation(
            text=f"no fixed points for {len(missing)} run(s)",
            xref="paper",
            yref="paper",
            x=0.99,
            y=0.02,
            xanchor="right",
            yanchor="bottom",
            showarrow=False,
            font=dict(size=11, color="#333333"),
        )
    return finish(fig, NAME, opts, with_points)


SPEC = FigureSpec(
    name=NAME,
    title="Fixed-point time constants vs measured decay",
    description=(
        "Over training, per recorded step: ln|λ_max| of the step Jacobian at the fixed or slow "
        "points the probe trajectories end at (the slowest mode of the linearised dynamics "
        "there), the measured decay rate of ‖∂s_T/∂s_k‖ against the lag, and the top Lyapunov "
        "exponent of the trajectories — or their time constants τ = −1/rate. When training "
        "builds a slow point, ln|λ_max| and the measured rate rise towards 0 together."
    ),
    scope="runs",
    reading=(
        "ln|λ_max| bounds the decay only near the point: a trajectory that stays far from it "
        "(the probe's distance row) or moves between points can decay faster or slower."
    ),
    probes=((PROBE, ("rate", "lyapunov", "distance")), (SUMMARY, ("decay_rate",))),
    builder=build,
    needs_probe=PROBE,
    options={
        "run_ids": "runs to overlay (default: all given)",
        "quantity": "rate | tau (default rate: per-step rates; tau: −1/rate in steps, log y)",
        "color_by": COLOR_BY_HELP,
    },
)
