"""phase_diagram: a sweep's runs on two config axes (default σ_w × σ_b), coloured by a summary
— decay rate, final loss / baseline, or the fraction of gradient reaching the first timestep —
with the mean-field order-to-chaos line χ = 1 on gain × bias axes."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradlab.figures import style
from gradlab.figures._common import finish, log_colour, no_data, trace_meta
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import SUMMARY, TRAIN, group_probes
from gradlab.figures.spec import FigureSpec
from gradlab.figures.training import baseline_loss
from gradlab.probes import GradHiddenProbe

NAME = "phase_diagram"
COLORS = ("decay_rate", "loss_ratio", "first_fraction")

#: Axis titles of the config keys a sweep usually varies.
AXIS_LABELS = {
    "gain": "σ<sub>w</sub> (recurrent weight scale)",
    "bias_scale": "σ<sub>b</sub> (bias scale)",
    "seq_len": "sequence length T",
    "hidden_size": "hidden size N",
    "num_layers": "layers",
    "lr": "learning rate",
    "clip": "clip threshold",
    "truncate": "truncation window (steps)",
    "forget_bias": "forget-gate bias b<sub>f</sub>",
    "update_bias": "update-gate bias b<sub>z</sub>",
    "seed": "seed",
    "cell": "cell",
    "activation": "activation",
    "init": "initialisation",
}
COLOR_LABELS = {
    "decay_rate": "state decay rate (1/step)",
    "loss_ratio": "final loss / baseline",
    "first_fraction": "‖∂L/∂h<sub>0</sub>‖ / ‖∂L/∂h<sub>T</sub>‖",
}


def _value(data: FigureData, rid: str, color: str, step: int | None) -> float:
    row = data.run(rid)
    if color == "decay_rate":
        v = data.scalar(rid, SUMMARY, "decay_rate", step)
        if not math.isfinite(v) and step is None:
            stored = row.get("decay_rate")
            v = float(stored) if isinstance(stored, int | float) else math.nan
        return v
    if color == "loss_ratio":
        final = row.get("final_loss") if step is None else None
        if not isinstance(final, int | float) or not math.isfinite(final):
            df = data.select(rid, TRAIN, "loss", layer=None, direction=None)
            if step is not None:
                df = df[df["step"] <= int(step)]
            final = float(df["value"].iloc[-1]) if len(df) else math.nan
        base = baseline_loss(data, rid)
        return float(final) / base if base else math.nan
    # first_fraction: ‖∂L/∂h_0‖ / ‖∂L/∂h_T‖ at `step`, else the summary's early_fraction
    _, df = data.series(rid, GradHiddenProbe.probe, "norm", step=step)
    if len(df) >= 2:
        t, v = df["t"].to_numpy(), df["value"].to_numpy()
        last = v[np.argmax(t)]
        return float(v[np.argmin(t)] / last) if last > 0 else math.nan
    return data.scalar(rid, SUMMARY, "early_fraction", step)


def _axis_values(values: pd.Series) -> tuple[list[Any], bool]:
    """Sorted distinct axis values, and whether the axis is numeric."""
    uniq = [
        v
        for v in pd.unique(values)
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    ]
    numeric = all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in uniq)
    if numeric:
        return sorted(float(v) for v in uniq), True
    return sorted((str(v) for v in uniq), key=str), False


CHI_POINTS = 5


@functools.lru_cache(maxsize=512)
def _critical(activation: str, sigma_b: float) -> float:
    """`gradlab.theory.critical_sigma_w`, memoised (a pure function of its arguments)."""
    from gradlab.theory import critical_sigma_w

    return critical_sigma_w(activation, sigma_b)


def _chi_line(
    fig: go.Figure,
    x: str,
    y: str,
    xs: Sequence[float],
    ys: Sequence[float],
    activations: Sequence[str],
    where: dict[str, int],
    showlegend: bool,
) -> None:
    """χ = 1: σ_w = critical_sigma_w(activation, σ_b) over the σ_b range of the grid
    (CHI_POINTS values of σ_b, drawn as a spline: each solve takes a fraction of a second)."""
    b_vals, w_vals = (ys, xs) if x == "gain" else (xs, ys)
    b_lo, b_hi = min(b_vals), max(b_vals)
    w_pad = 0.5 * (max(w_vals) - min(w_vals)) / max(1, len(w_vals) - 1) if len(w_vals) > 1 else 0.5
    w_lo, w_hi = min(w_vals) - w_pad, max(w_vals) + w_pad
    b = np.linspace(b_lo, b_hi, CHI_POINTS) if b_hi > b_lo else np.array([b_lo])
    for act in activations:
        try:
            w = np.array([_critical(act, round(float(v), 9)) for v in b])
        except ValueError:
            continue
        keep = (w >= w_lo) & (w <= w_hi)
        if not keep.any():
            continue
        bx, wy = b[keep], w[keep]
        px_, py_ = (wy, bx) if x == "gain" else (bx, wy)
        fig.add_trace(
            go.Scatter(
                x=px_,
                y=py_,
                mode="lines",
                name=f"χ = 1 ({act}, mean field)",
                line=dict(
                    color=style.OTHER_COLOR, dash=style.THEORY_DASH, width=2.5, shape="spline"
                ),
                showlegend=showlegend,
                hovertemplate="χ = 1<br>σ_w=%{x:.3f}, σ_b=%{y:.3f}<extra></extra>"
                if x == "gain"
                else "χ = 1<br>σ_b=%{x:.3f}, σ_w=%{y:.3f}<extra></extra>",
                meta=trace_meta(None, x=x, y=y, const={"name": "chi=1", "activation": act}),
            ),
            **where,
        )


#: Config keys a sweep grid may vary, in the order `grid_axes` prefers them.
GRID_KEYS = (
    "gain",
    "bias_scale",
    "seq_len",
    "hidden_size",
    "num_layers",
    "lr",
    "clip",
    "truncate",
    "forget_bias",
    "update_bias",
    "activation",
    "init",
    "optimizer",
    "task",
    "batch_size",
    "cell",
)


def grid_axes(runs: pd.DataFrame) -> tuple[str, str]:
    """Default axes for a sweep's runs table: gain × bias_scale when both vary, else the
    first two varying grid keys (cell last); "seed" fills in when only one key varies."""
    varying = [
        k for k in GRID_KEYS if k in runs.columns and runs[k].astype(str).nunique(dropna=False) > 1
    ]
    if "gain" in varying and "bias_scale" in varying:
        return "gain", "bias_scale"
    if len(varying) >= 2:
        return varying[0], varying[1]
    if len(varying) == 1:
        return varying[0], "seed"
    return "gain", "bias_scale"


def build(
    data: FigureData,
    *,
    x: str | None = None,
    y: str | None = None,
    color: str = "decay_rate",
    step: int | None = None,
    facet: str | None = "auto",
) -> go.Figure:
    """Heatmap over the config keys `x` × `y` (default: `grid_axes`) of the runs in `data`
    (a sweep), coloured by `color`:

    - "decay_rate": the state decay rate (fitted slope of ln ‖∂s_T/∂s_k‖ over the lag) at `step`
      (default latest); diverging
      colours, 0 in white;
    - "loss_ratio": final loss / the task's no-memory baseline, log colour;
    - "first_fraction": ‖∂L/∂h_0‖ / ‖∂L/∂h_T‖ at `step`, log colour (the summary's
      early_fraction where grad_hidden is missing).

    Runs in the same grid cell are averaged (e.g. over seeds). With several cell types and
    neither axis "cell", one panel per cell (``facet=None`` averages them). On σ_w × σ_b
    axes the mean-field χ = 1 line (`gradlab.theory.critical_sigma_w`) is drawn on the
    vanilla-RNN panels."""
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    if x is None or y is None:
        auto_x, auto_y = grid_axes(data.runs)
        x, y = x or auto_x, y or auto_y
    opts = dict(x=x, y=y, color=color, step=step, facet=facet)
    title = f"Phase diagram: {COLOR_LABELS[color]} over {_plain_axis(x)} × {_plain_axis(y)}"
    ids = data.run_ids
    if not ids:
        return no_data(NAME, title, "no runs in this sweep", opts)
    missing = [k for k in (x, y) if k not in data.runs.columns]
    if missing:
        return no_data(
            NAME, title, f"the runs have no config key {', '.join(map(repr, missing))}", opts, ids
        )
    rows = []
    for rid in ids:
        row = data.run(rid)
        rows.append(
            {
                "run_id": rid,
                "x": row.get(x),
                "y": row.get(y),
                "cell": row.get("cell") or "",
                "activation": row.get("activation") or "tanh",
                "value": _value(data, rid, color, step),
            }
        )
    table = pd.DataFrame(rows)
    cells = sorted(set(table["cell"]))
    faceting = facet not in (None, False, "none", "None")
    by_cell = faceting and len(cells) > 1 and "cell" not in (x, y)
    panels = cells if by_cell else [None]
    xs, x_num = _axis_values(table["x"])
    ys, y_num = _axis_values(table["y"])
    if not xs or not ys or not np.isfinite(table["value"].to_numpy(dtype=np.float64)).any():
        return no_data(NAME, title, f"no {color} values for these runs", opts, ids)
    log = color != "decay_rate"
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        shared_yaxes=True,
        horizontal_spacing=0.06,
        subplot_titles=[str(p) for p in panels] if by_cell else None,
    )
    all_values = []
    chi_axes = {x, y} == {"gain", "bias_scale"} and x_num and y_num
    legend_done = False
    for j, panel in enumerate(panels, start=1):
        part = table if panel is None else table[table["cell"] == panel]
        key_x = part["x"].map(lambda v: float(v) if x_num else str(v))
        key_y = part["y"].map(lambda v: float(v) if y_num else str(v))
        mean = part.assign(kx=key_x, ky=key_y).groupby(["ky", "kx"])["value"].mean()
        raw = np.full((len(ys), len(xs)), np.nan)
        for (vy, vx), v in mean.items():
            raw[ys.index(vy), xs.index(vx)] = v
        all_values.append(raw)
        z, _ = log_colour(raw) if log else (raw, {})
        fig.add_trace(
            go.Heatmap(
                x=xs,
                y=ys,
                z=z,
                customdata=raw,
                coloraxis="coloraxis",
                name=str(panel) if panel else "all runs",
                hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{color}=%{{customdata:.3g}}"
                "<extra></extra>",
                meta={
                    **trace_meta(None, x=x, y=y, z=color, const={"cell": panel} if panel else {}),
                    "z_source": "customdata",
                },
            ),
            row=1,
            col=j,
        )
        if chi_axes and panel in (None, "rnn"):
            acts = sorted(set(part.loc[part["cell"] == "rnn", "activation"]))
            _chi_line(fig, x, y, xs, ys, acts, dict(row=1, col=j), not legend_done)
            legend_done = legend_done or bool(acts)
    values = np.concatenate([v.ravel() for v in all_values])
    color_title = COLOR_LABELS[color]
    if color == "decay_rate":  # which quantity and at which training step
        at = "latest step" if step is None else f"step {step}"
        color_title = f"{color_title}<br>of ‖∂s<sub>T</sub>/∂s<sub>k</sub>‖, {at}"
    colorbar: dict[str, Any] = dict(title=dict(text=color_title), exponentformat="power")
    if log:
        _, ticks = log_colour(values)
        colorbar.update(ticks)
        coloraxis = dict(colorscale=style.SEQUENTIAL, colorbar=colorbar)
    else:
        finite = np.abs(values[np.isfinite(values)])
        bound = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        coloraxis = dict(
            colorscale=style.DIVERGING, cmin=-bound, cmax=bound, cmid=0.0, colorbar=colorbar
        )
    fig.update_layout(
        template=style.TEMPLATE,
        title=dict(text=title),
        coloraxis=coloraxis,
        legend=dict(orientation="h", x=0, y=-0.2),
    )
    fig.update_xaxes(title_text=AXIS_LABELS.get(x, x), showgrid=False)
    fig.update_yaxes(title_text=AXIS_LABELS.get(y, y), showgrid=False, row=1, col=1)
    if not x_num:
        fig.update_xaxes(type="category")
    if not y_num:
        fig.update_yaxes(type="category")
    return finish(fig, NAME, opts, ids)


def _plain_axis(key: str) -> str:
    return {"gain": "σ<sub>w</sub>", "bias_scale": "σ<sub>b</sub>"}.get(key, key)


SPEC = FigureSpec(
    name=NAME,
    title="Phase diagram of a sweep",
    description=(
        "A sweep's runs on two of its grid axes (default σ_w × σ_b), each cell coloured by a "
        "summary: the fitted gradient decay rate per step (blue: vanishing, red: exploding), "
        "final loss / no-memory baseline, or ‖∂L/∂h_0‖ / ‖∂L/∂h_T‖. On σ_w × σ_b the dashed "
        "line is the mean-field edge of chaos χ = 1."
    ),
    scope="sweep",
    probes=group_probes(
        (SUMMARY, "decay_rate"),
        (SUMMARY, "early_fraction"),
        (TRAIN, "loss"),
        (GradHiddenProbe.probe, "norm"),
    ),
    builder=build,
    options={
        "x": "config key on the x axis (default: gain, or the sweep's first varying key)",
        "y": "config key on the y axis (default: bias_scale, or the next varying key)",
        "color": "decay_rate | loss_ratio | first_fraction (default decay_rate)",
        "step": "training step of the summaries (default: latest / final)",
        "facet": "auto: one panel per cell type when several; none: average them",
    },
)
