"""The theory line of a per-lag figure, drawn honestly: against the step-0 recording (the
theory describes the network at initialisation), labelled with its assumptions, and, where no
theory applies, a note saying why (e.g. "no mean-field theory for LSTM (a gated cell)")."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import plotly.graph_objects as go

from gradlab import theory
from gradlab.figures._common import RunStyle, decay_overlays, run_label, trace_meta
from gradlab.figures.data import FigureData

#: The training step the theory applies to (the initialisation).
THEORY_STEP = 0


def prediction(data: FigureData, run_id: str) -> theory.RatePrediction | None:
    """`gradlab.theory.predict_rate` of the run's config (its runs row); None when the row has
    no config or the config is not one theory can read."""
    row = data.run(run_id)
    if not row.get("cell"):
        return None
    try:
        return theory.predict_rate(row)
    except (ValueError, TypeError):
        return None


def add_theory_line(
    fig: go.Figure,
    data: FigureData,
    run_id: str,
    st: RunStyle,
    *,
    shown_step: int,
    step0: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray] | None],
    x_col: str,
    anchor: Callable[[np.ndarray, np.ndarray], float],
    notes: list[str],
    run_ids: Sequence[str],
) -> None:
    """Draw the theory's exp(rate·lag) line of one run against its step-0 recording.

    `step0()` gives that recording's (x, lags, values) or None; `anchor(lags, values)` the
    line's value at lag 0. When the figure shows another step, the step-0 recording is drawn
    too (thin, dotted), so the theory is compared with what it describes. One line per run is
    appended to `notes`: the theory's assumptions, or why there is none.
    """
    label = run_label(data, run_id, run_ids)
    pred = prediction(data, run_id)
    if pred is None:
        return
    if pred.rate is None:
        notes.append(f"{label}: {pred.reason}")
        return
    initial = step0()
    if initial is None:
        notes.append(f"{label}: no step-0 recording to compare the theory with")
        return
    x, lags, values = initial
    if shown_step != THEORY_STEP:
        order = np.argsort(x, kind="stable")
        fig.add_trace(
            go.Scatter(
                x=x[order],
                y=values[order],
                mode="lines",
                name=f"{st.label} at step {THEORY_STEP}",
                legendgroup=st.run_id,
                line=dict(color=st.color, dash="dot", width=1),
                opacity=0.6,
                hovertemplate=f"step {THEORY_STEP}<br>{x_col}=%{{x}}<br>%{{y:.3g}}<extra></extra>",
                meta=trace_meta(
                    st.run_id, x=x_col, y="value", const={"line": "initial", "step": THEORY_STEP}
                ),
            )
        )
    decay_overlays(
        fig,
        x=x,
        lags=lags,
        values=values,
        st=st,
        x_col=x_col,
        rate_theory=pred.rate,
        anchor=anchor(lags, values),
        fit=False,
    )
    notes.append(f"{label}: theory at step {THEORY_STEP}: {pred.label}")


def merged_notes(notes: Sequence[str]) -> list[str]:
    """``"<run label>: <reason>"`` notes with one reason shared by several runs merged into
    ``"<reason>: <label>; <label>"`` (first-seen order); the others as they are."""
    by_reason: dict[str, list[str]] = {}
    for note in notes:
        label, sep, reason = note.partition(": ")
        by_reason.setdefault(reason if sep else note, []).append(label if sep else "")
    out = []
    for note in notes:
        label, sep, reason = note.partition(": ")
        labels = by_reason.get(reason if sep else note)
        if labels is None:
            continue  # merged into an earlier line
        if sep and len(labels) > 1:
            out.append(f"{reason}: {'; '.join(labels)}")
        else:
            out.append(note)
        del by_reason[reason if sep else note]
    return out


def add_theory_notes(fig: go.Figure, notes: Sequence[str]) -> None:
    """One annotation under the plot listing `notes` (none: no-op; a reason several runs share
    once, see `merged_notes`), with room made for it."""
    if not notes:
        return
    notes = merged_notes(notes)
    fig.add_annotation(
        text="<br>".join(notes),
        xref="paper",
        yref="paper",
        x=0,
        y=-0.3,
        xanchor="left",
        yanchor="top",
        align="left",
        showarrow=False,
        font=dict(size=10, color="#555555"),
        name="theory_notes",
    )
    bottom = fig.layout.margin.b or 60
    fig.update_layout(margin=dict(b=bottom + 40 + 14 * len(notes)))
