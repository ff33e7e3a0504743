"""Helpers shared by the figure modules: run labels and styles, empty figures, metadata,
fitted and theory decay lines, log colour scales, and marks for values outside the recording
dtype's range (underflow to 0, overflow to Inf)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from gradlab.cells import shown_activation
from gradlab.figures import style
from gradlab.figures.data import FigureData
from gradlab.figures.quantities import SUMMARY
from gradlab.fits import decay_fit
from gradlab.probes import ContributionProbe, GradCellProbe, GradHiddenProbe

MINUS = "−"

#: Config keys that may tell overlaid runs apart, with their legend symbols.
_LABEL_KEYS: tuple[tuple[str, str], ...] = (
    ("task", ""),
    ("init", "init"),
    ("gain", "σ<sub>w</sub>"),
    ("bias_scale", "σ<sub>b</sub>"),
    ("hidden_size", "N"),
    ("num_layers", "layers"),
    ("bidirectional", "bidir"),
    ("optimizer", ""),
    ("lr", "lr"),
    ("clip", "clip"),
    ("truncate", "trunc"),
    ("forget_bias", "b<sub>f</sub>"),
    ("update_bias", "b<sub>z</sub>"),
    ("batch_size", "B"),
    ("steps", "steps"),
    ("dtype", ""),
    ("adjoint_dtype", "adjoint"),
)


def num(value: Any, digits: int = 3) -> str:
    """A compact number with a Unicode minus: 0.21, −0.0034, 1.5e+03 → 1.5×10³-free text."""
    if value is None:
        return "–"
    if isinstance(value, bool | str):
        return str(value)
    v = float(value)
    if math.isnan(v):
        return "nan"
    if v.is_integer() and abs(v) < 1e6:
        return str(int(v)).replace("-", MINUS)
    return f"{v:.{digits}g}".replace("-", MINUS)


def fmt_rate(rate: float, se: float | None = None) -> str:
    """A rate for a legend, "−0.21 /step ± 0.01": two decimals (more for small rates, and one
    significant digit of a tiny standard error)."""
    a = abs(rate)
    decimals = 2 if a >= 0.1 or a == 0 else min(4, 1 - math.floor(math.log10(a)))
    text = f"{rate:.{decimals}f}".replace("-", MINUS) + " /step"
    if se is not None and math.isfinite(se):
        se_decimals = decimals
        if 0 < se < 0.5 * 10**-decimals:  # keep one significant digit of a tiny error
            se_decimals = min(6, -math.floor(math.log10(se)))
        text += f" ± {se:.{se_decimals}f}"
    return text


def pick_run(data: FigureData, run_id: str | None) -> str | None:
    """`run_id` if given, else the first run of `data` (None if there is none)."""
    if run_id is not None:
        return str(run_id)
    ids = data.run_ids
    return ids[0] if ids else None


def _varying(data: FigureData, run_ids: Sequence[str]) -> list[tuple[str, str]]:
    rows = [data.run(r) for r in run_ids]
    out = []
    for key, sym in _LABEL_KEYS:
        values = {repr(row.get(key)) for row in rows}
        if len(values) > 1:
            out.append((key, sym))
    return out


def run_label(
    data: FigureData,
    run_id: str,
    run_ids: Sequence[str] | None = None,
    lead: str | None = None,
) -> str:
    """Legend name "lstm · seq 50 · seed 0" (rnn with a non-tanh activation: "rnn (relu)"),
    with any config key that differs between `run_ids` added ("rnn · σ_w 1.5 · ..."); the
    start of the run id is appended when two runs would otherwise share a name. `lead`: a
    config key whose value comes first ("σ_w 1.5 · rnn · ..."; the `color_by` key)."""
    label = run_label_base(data, run_id, run_ids, lead)
    others = [r for r in (run_ids or []) if r != run_id]
    if any(run_label_base(data, o, run_ids, lead) == label for o in others):
        label += f" · {run_id[:6]}"
    return label


def run_label_base(
    data: FigureData, run_id: str, run_ids: Sequence[str] | None, lead: str | None = None
) -> str:
    """run_label without the duplicate-breaking id suffix (used to detect duplicates)."""
    row = data.run(run_id)
    if not row:
        return str(run_id)
    cell = str(row.get("cell") or "?")
    act, default = row.get("activation"), shown_activation(cell, None)
    head = f"{cell} ({act})" if default is not None and act and act != default else cell
    parts = [("cell", head)]
    for key, sym in _varying(data, list(run_ids or [run_id])):
        value = row.get(key)
        if key == "adjoint_dtype" and value is None:  # the adjoint ran in the run's dtype
            value = row.get("dtype")
        parts.append((key, f"{sym} {num(value)}".strip() if sym else str(value)))
    if row.get("seq_len") is not None:
        parts.append(("seq_len", f"seq {num(row['seq_len'])}"))
    if row.get("seed") is not None:
        parts.append(("seed", f"seed {num(row['seed'])}"))
    if lead is not None:
        first = [p for p in parts if p[0] == lead] or [(lead, value_text(lead, row.get(lead)))]
        parts = first + [p for p in parts if p[0] != lead]
    return " · ".join(text for _, text in parts)


def key_symbol(key: str) -> str:
    """How a legend names a config key: "σ<sub>w</sub>" for gain, the key itself otherwise."""
    return dict(_LABEL_KEYS).get(key) or key


def value_text(key: str, value: Any) -> str:
    """A config value for a legend: "σ<sub>w</sub> 1.5", "lstm", "task copy"."""
    if key == "cell":
        return str(value or "?")
    return f"{key_symbol(key)} {num(value)}"


#: Help text of the `color_by` option of the figures that colour runs.
COLOR_BY_HELP = (
    "config key whose values colour the runs, with them first in the legend (e.g. cell: each "
    "cell type its fixed colour; gain); default: one colour per run"
)


@dataclass(frozen=True)
class RunStyle:
    """How one run is drawn: its colour, dash and marker (see `run_styles`)."""

    run_id: str
    label: str
    cell: str
    color: str
    dash: str
    symbol: str


def _sort_key(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, then text, then missing values."""
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def run_styles(
    data: FigureData, run_ids: Sequence[str], color_by: str | None = None
) -> dict[str, RunStyle]:
    """RunStyle per run. Default: the k-th run of `run_ids` gets `style.run_style(k)` (its own
    colour; the same run list draws the same colours in every figure). ``color_by=key``: the
    runs' values of that config key in sorted order get the run colours in turn ("cell": each
    cell type its `CellSpec.color`); the j-th run of one value gets the j-th dash and marker,
    and the value leads its legend name. Raises ValueError for a key the runs do not have."""
    ids = [str(r) for r in run_ids]
    lead = color_by or None
    out = {}
    if not lead:
        for k, rid in enumerate(ids):
            color, dash, symbol = style.run_style(k)
            out[rid] = RunStyle(rid, run_label(data, rid, ids), data.cell(rid), color, dash, symbol)
        return out
    if lead != "cell" and lead not in data.runs.columns:
        keys = ", ".join(sorted(str(c) for c in data.runs.columns if c != "run_id"))
        raise ValueError(f"color_by must be a key of the runs ({keys}), got {lead!r}")
    values = {rid: data.run(rid).get(lead) for rid in ids}
    if lead == "cell":
        values = {rid: data.cell(rid) or None for rid in ids}
    order = sorted({repr(v): v for v in values.values()}.values(), key=_sort_key)
    rank = {repr(v): i for i, v in enumerate(order)}
    counts: dict[str, int] = {}
    for rid in ids:
        key = repr(values[rid])
        j = counts.get(key, 0)
        counts[key] = j + 1
        if lead == "cell":
            color = style.cell_color(values[rid])
        else:
            color = style.RUN_COLORS[rank[key] % len(style.RUN_COLORS)]
        out[rid] = RunStyle(
            rid,
            run_label(data, rid, ids, lead),
            data.cell(rid),
            color,
            style.RUN_DASHES[j % len(style.RUN_DASHES)],
            style.RUN_SYMBOLS[j % len(style.RUN_SYMBOLS)],
        )
    return out


def color_legend(fig: go.Figure, color_by: str | None) -> None:
    """With ``color_by`` set, title the legend "colour: <key>" (its entries lead with the
    values); no-op otherwise."""
    if color_by:
        fig.update_layout(legend=dict(title=dict(text=f"colour: {key_symbol(color_by)}")))


def trace_meta(run_id: str | None = None, **columns: Any) -> dict[str, Any]:
    """`trace.meta` read by `figure_table`: column names for x / y / z / customdata and
    constant columns (run_id, name, ...)."""
    const = {"run_id": run_id} if run_id is not None else {}
    const.update(columns.pop("const", {}) or {})
    return {"columns": columns, "const": const}


def jsonable(value: Any) -> Any:
    """Options made JSON-safe for `layout.meta`."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return str(value)


def new_figure(
    title: str, x_title: str, y_title: str, *, ylog: bool = False, xlog: bool = False
) -> go.Figure:
    """An empty figure with the dashboard template, axis titles and log axes as asked."""
    fig = go.Figure()
    fig.update_layout(
        template=style.TEMPLATE,
        title=dict(text=title),
        xaxis=dict(title=dict(text=x_title), type="log" if xlog else "linear"),
        yaxis=dict(title=dict(text=y_title), type="log" if ylog else "linear"),
        legend=dict(title=dict(text="")),
    )
    return fig


def finish(
    fig: go.Figure,
    figure: str,
    options: Mapping[str, Any],
    run_ids: Iterable[str],
    *,
    empty: bool = False,
    message: str | None = None,
) -> go.Figure:
    """Record what was drawn in ``layout.meta["gradlab"]`` (figure name, options, run ids, and
    whether it is an empty "no data" figure) — export writes it to the .json sidecar."""
    meta = {
        "figure": figure,
        "options": jsonable(dict(options)),
        "run_ids": [str(r) for r in run_ids],
        "empty": bool(empty),
    }
    if message:
        meta["message"] = message
    fig.update_layout(meta={"gradlab": meta})
    return fig


def no_data(
    figure: str,
    title: str,
    message: str,
    options: Mapping[str, Any],
    run_ids: Iterable[str] = (),
) -> go.Figure:
    """A figure with no traces and a centred annotation "no data: <message>"."""
    text = message if message.startswith("no data") else f"no data: {message}"
    fig = message_figure(title, text)
    return finish(fig, figure, options, run_ids, empty=True, message=text)


def message_figure(title: str, text: str) -> go.Figure:
    """A figure with no traces, hidden axes and `text` in the middle (no metadata)."""
    fig = go.Figure()
    fig.update_layout(
        template=style.TEMPLATE,
        title=dict(text=title),
        xaxis=dict(visible=False),
        yaxis=dict(visible=False),
        annotations=[
            dict(
                text=text,
                xref="paper",
                yref="paper",
                x=0.5,
                y=0.5,
                showarrow=False,
                font=dict(size=14, color="#555555"),
            )
        ],
    )
    return fig


def is_empty(fig: go.Figure) -> bool:
    """Whether `fig` is a "no data" figure made by `no_data`."""
    meta = fig.layout.meta
    return bool(isinstance(meta, dict) and (meta.get("gradlab") or {}).get("empty"))


def note_missing(
    fig: go.Figure, data: FigureData, missing: Sequence[str], ids: Sequence[str], what: str
) -> None:
    """Annotate below the plot "no <what> for: <run labels>" for runs in `missing` (none: no-op)."""
    if not missing:
        return
    names = ", ".join(run_label(data, r, ids) for r in missing)
    fig.add_annotation(
        text=f"no {what} for: {names}",
        xref="paper",
        yref="paper",
        x=0,
        y=-0.22,
        xanchor="left",
        showarrow=False,
        font=dict(size=11, color="#555555"),
    )


def profile_line(
    st: RunStyle, x: np.ndarray, y: np.ndarray, *, x_col: str, x_name: str, step: int | None
) -> go.Scatter:
    """One run's lines+markers trace of a per-timestep profile recorded at training `step`."""
    at = f"step {step}" if step is not None else ""
    return go.Scatter(
        x=x,
        y=y,
        mode="lines+markers",
        name=st.label,
        legendgroup=st.run_id,
        line=dict(color=st.color, dash=st.dash, width=2),
        marker=dict(color=st.color, symbol=st.symbol, size=5),
        hovertemplate=f"{st.label}<br>{x_name}=%{{x}}<br>%{{y:.3g}}<extra>{at}</extra>",
        meta=trace_meta(st.run_id, x=x_col, y="value", const={"step": step}),
    )


# ---------------------------------------------------------------------- decay lines
@dataclass(frozen=True)
class LagFit:
    """ln y ≈ intercept + rate·lag fitted on lags fit_lo..fit_hi (`gradlab.fits.decay_fit`)."""

    rate: float
    stderr: float
    intercept: float
    fit_lo: float
    fit_hi: float


def fit_by_lag(lags: np.ndarray, values: np.ndarray) -> LagFit | None:
    """`gradlab.fits.decay_fit` of values placed at their lags (the same fit as the store's
    `summary` probe for ‖∂L/∂h_k‖), plus its intercept; None with fewer than 3 usable points."""
    lags = np.asarray(lags, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if lags.size == 0 or lags.min() < 0:
        return None
    n = int(lags.max()) + 1
    by_lag = np.full(n, np.nan)
    by_lag[n - 1 - lags] = values
    fit = decay_fit(by_lag)
    if not math.isfinite(fit.rate):
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        keep = np.isfinite(values) & (values > 0) & (lags >= fit.fit_lo) & (lags <= fit.fit_hi)
        intercept = float(np.mean(np.log(values[keep]) - fit.rate * lags[keep]))
    return LagFit(fit.rate, fit.stderr, intercept, fit.fit_lo, fit.fit_hi)


def theory_rate(data: FigureData, run_id: str, step: int | None = None) -> float | None:
    """The theory's per-step rate for a run: the `summary` probe's `theory_rate` (at `step`,
    else latest) if finite, else the runs row's `theory_rate`, else
    `gradlab.theory.theory_rate(config)`; None where no theory applies."""
    value = data.scalar(run_id, SUMMARY, "theory_rate", step)
    if math.isfinite(value):
        return value
    row = data.run(run_id)
    stored = row.get("theory_rate")
    if isinstance(stored, int | float) and math.isfinite(stored):
        return float(stored)
    if not row.get("cell"):
        return None
    from gradlab import theory

    try:
        rate = theory.theory_rate(row)
    except (ValueError, TypeError):
        return None
    return None if rate is None or not math.isfinite(rate) else float(rate)


def decay_overlays(
    fig: go.Figure,
    *,
    x: np.ndarray,
    lags: np.ndarray,
    values: np.ndarray,
    st: RunStyle,
    x_col: str,
    rate_theory: float | None,
    anchor: float | None,
    fit: bool = True,
    row: int | None = None,
    col: int | None = None,
) -> None:
    """Add the fitted decay line ("fit: −0.21 /step ± 0.01", dotted, over the lags it used) and
    the theory line exp(rate·lag)·anchor (dashed, over every lag, anchored at lag 0)."""
    x = np.asarray(x)
    lags = np.asarray(lags, dtype=np.int64)
    order = np.argsort(x, kind="stable")
    x, lags, values = x[order], lags[order], np.asarray(values, dtype=np.float64)[order]
    where = dict(row=row, col=col) if row is not None else {}
    if fit:
        f = fit_by_lag(lags, values)
        if f is not None:
            sel = (lags >= f.fit_lo) & (lags <= f.fit_hi)
            fig.add_trace(
                go.Scatter(
                    x=x[sel],
                    y=np.exp(f.intercept + f.rate * lags[sel]),
                    mode="lines",
                    name=f"fit: {fmt_rate(f.rate, f.stderr)}",
                    legendgroup=st.run_id,
                    line=dict(color=st.color, dash=style.FIT_DASH, width=1.5),
                    hovertemplate=f"fit<br>{x_col}=%{{x}}<br>%{{y:.3g}}<extra></extra>",
                    meta=trace_meta(st.run_id, x=x_col, y="value", const={"line": "fit"}),
                ),
                **where,
            )
    if rate_theory is not None and anchor is not None and math.isfinite(anchor) and anchor > 0:
        lag_grid = np.arange(0, int(lags.max()) + 1) if lags.size else np.arange(0)
        if x_col == "lag":
            x_grid = lag_grid
        else:  # x is the timestep k: lag 0 at the largest k
            x_grid = int(x.max()) - lag_grid
        fig.add_trace(
            go.Scatter(
                x=x_grid,
                y=anchor * np.exp(rate_theory * lag_grid),
                mode="lines",
                name=f"theory: {fmt_rate(rate_theory)}",
                legendgroup=st.run_id,
                line=dict(color=st.color, dash=style.THEORY_DASH, width=1.5),
                hovertemplate=f"theory<br>{x_col}=%{{x}}<br>%{{y:.3g}}<extra></extra>",
                meta=trace_meta(st.run_id, x=x_col, y="value", const={"line": "theory"}),
            ),
            **where,
        )


# ---------------------------------------------------------------------- log colour
def power_text(exponent: int) -> str:
    """Tick text of 10^exponent: "1", "10", "10<sup>−3</sup>"."""
    if exponent == 0:
        return "1"
    if exponent == 1:
        return "10"
    return f"10<sup>{str(exponent).replace('-', MINUS)}</sup>"


def mantissa_text(m: int, exponent: int, decimal: bool) -> str:
    """Tick text of m × 10^exponent: a plain decimal ("0.2", "5", "20") when `decimal`, else
    "10<sup>−3</sup>" / "2×10<sup>−3</sup>" (never "2×1")."""
    if decimal:
        return f"{m * 10.0**exponent:g}"
    return power_text(exponent) if m == 1 else f"{m}×{power_text(exponent)}"


def log_colour(values: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """(log10 values with NaN where not > 0, colour-bar ticks at powers of ten — and at 2× and
    5× when the values span less than two decades, then written as plain decimals ("0.5", "2")
    when all lie in 0.01 … 5000)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isfinite(values) & (values > 0), np.log10(values), np.nan)
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return z, {}
    zmin, zmax = float(finite.min()), float(finite.max())
    lo, hi = math.floor(zmin), math.ceil(zmax)
    if hi - lo <= 2:
        ticks = [
            (e + math.log10(m), m, e)
            for e in range(lo, hi + 1)
            for m in (1, 2, 5)
            if zmin - 1e-9 <= e + math.log10(m) <= zmax + 1e-9
        ]
        if len(ticks) >= 2:
            decimal = all(-2 <= e <= 3 for _, _, e in ticks)  # 0.01 … 5000: plain numbers
            return z, dict(
                tickvals=[t for t, _, _ in ticks],
                ticktext=[mantissa_text(m, e, decimal) for _, m, e in ticks],
            )
    stride = max(1, math.ceil((hi - lo) / 6))
    exps = list(range(lo, hi + 1, stride))
    return z, dict(tickvals=exps, ticktext=[power_text(e) for e in exps])


# ---------------------------------------------------------------------- float range
#: Probes computed by the adjoint scan: recorded in the run's `adjoint_dtype` when it has one.
ADJOINT_PROBES: tuple[str, ...] = (
    GradHiddenProbe.probe,
    GradCellProbe.probe,
    ContributionProbe.probe,
)
#: Grey of values outside the recording dtype's range (not in the Viridis colour scale).
OUT_OF_RANGE_COLOR = "#9E9E9E"


def recorded_dtype(data: FigureData, run_id: str, probe: str) -> str:
    """The dtype a run's `probe` values were computed in: the config's `adjoint_dtype` for the
    adjoint's probes when set, else its `dtype` (float32, RunConfig's default, when absent)."""
    row = data.run(run_id)
    if probe in ADJOINT_PROBES and row.get("adjoint_dtype"):
        return str(row["adjoint_dtype"])
    return str(row.get("dtype") or "float32")


def underflow_level(dtype: str) -> float:
    """√tiny of `dtype` (float32: 1.1e-19): below it a series of norms may reach exactly 0 by
    underflow — its entries fall below the smallest subnormal, or (where a norm is taken in
    `dtype`) their squares fall below tiny."""
    return math.sqrt(float(np.finfo(np.dtype(dtype)).tiny))


@dataclass(frozen=True)
class RangeMarks:
    """Which values of a series left the recording dtype's range: `below` (underflowed to 0)
    and `above` (overflowed to ±Inf), boolean arrays shaped like the values."""

    below: np.ndarray
    above: np.ndarray
    dtype: str

    @property
    def any(self) -> bool:
        return bool(self.below.any() or self.above.any())


def out_of_range(values: np.ndarray, nearness: np.ndarray, dtype: str) -> RangeMarks:
    """Mark the values of one series (1-D) outside `dtype`'s range.

    `nearness` orders the values from the loss side (larger = nearer the loss: the timestep k
    for ‖∂L/∂h_k‖, −lag for ‖∂s_T/∂s_k‖), the direction a gradient decays away from.

    The rule that tells underflow from a true zero: an exact 0 is an underflow when the nearest
    nonzero finite value on its loss side is below `underflow_level(dtype)` (√tiny, 1.1e-19 in
    float32): the series had decayed to the bottom of the range before it hit 0. A true zero —
    dead relu units, h_0 = 0 in the first W_hh term — follows a value far above that, and zeros
    with no nonzero value on their loss side are never marked. ±Inf is always an overflow."""
    values = np.asarray(values, dtype=np.float64)
    below = np.zeros(values.shape, dtype=bool)
    level = underflow_level(dtype)
    last = math.nan  # the nearest nonzero finite value seen so far, from the loss side
    for i in np.argsort(-np.asarray(nearness, dtype=np.float64), kind="stable"):
        v = values[i]
        if not math.isfinite(v):
            continue
        if v != 0:
            last = v
        elif abs(last) < level:  # False while last is NaN
            below[i] = True
    return RangeMarks(below, np.isinf(values), dtype)


def describe_positions(marked: np.ndarray, positions: np.ndarray, name: str) -> str:
    """The marked positions as text: "k ≤ 16", "lag ≥ 150", "k = 3–7, 9" (runs of neighbours
    in `positions` order; a run that reaches the first or last position is open-ended)."""
    order = np.argsort(positions, kind="stable")
    pos, flag = np.asarray(positions)[order], np.asarray(marked, dtype=bool)[order]
    parts, i, n = [], 0, len(pos)
    while i < n:
        if not flag[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and flag[j + 1]:
            j += 1
        lo, hi = num(pos[i]), num(pos[j])
        if i == j:
            parts.append(f"{name} = {lo}")
        elif i == 0:
            parts.append(f"{name} ≤ {hi}")
        elif j == n - 1:
            parts.append(f"{name} ≥ {lo}")
        else:
            parts.append(f"{name} = {lo}–{hi}")
        i = j + 1
    return ", ".join(parts)


def range_note(
    what: str, marks: RangeMarks, where: str, where_above: str, probe: str, detail: str = ""
) -> str:
    """'‖∂L/∂h_k‖ below float32 range at k ≤ 16<br>(recorded as 0; adjoint_dtype = "float64"
    keeps them)': what left the range and where, then how it was recorded (+ `detail`) and, for
    a float32 adjoint, how to keep the values. Lines are short enough for a single column."""
    lines, how = [], []
    if marks.below.any():
        lines.append(f"{what} below {marks.dtype} range at {where}")
        how.append("recorded as 0")
    if marks.above.any():
        lines.append(f"{what} above {marks.dtype} range at {where_above}")
        how.append("recorded as Inf")
    if detail:
        how.append(detail)
    if marks.below.any() and probe in ADJOINT_PROBES and marks.dtype == "float32":
        how.append('adjoint_dtype = "float64" keeps them')
    return "<br>".join([*lines, f"({'; '.join(how)})"])


def range_markers(
    st: RunStyle,
    x: np.ndarray,
    values: np.ndarray,
    marks: RangeMarks,
    *,
    x_col: str,
    x_name: str,
    step: int,
    label: str | None = None,
) -> list[go.Scatter]:
    """Markers where a profile left the range, instead of a drop to the axis: open triangles
    down at the series' smallest positive value (underflow) and up at its largest finite value
    (overflow), named after `label` (default: the run's). Their `value` column (customdata) is
    the recorded 0 or Inf."""
    label = st.label if label is None else label
    x, values = np.asarray(x), np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values) & (values > 0)]
    out = []
    for mask, symbol, level, word in (
        (marks.below, "triangle-down-open", finite.min() if finite.size else None, "below"),
        (marks.above, "triangle-up-open", finite.max() if finite.size else None, "above"),
    ):
        if not mask.any() or level is None:
            continue
        text = f"{word} {marks.dtype} range"
        out.append(
            go.Scatter(
                x=x[mask],
                y=np.full(int(mask.sum()), level),
                customdata=values[mask],
                mode="markers",
                name=f"{text}: {label}",
                legendgroup=st.run_id,
                marker=dict(color=st.color, symbol=symbol, size=9, line=dict(width=1.5)),
                hovertemplate=(
                    f"{label}<br>{x_name}=%{{x}}<br>{text} (recorded as "
                    f"%{{customdata}})<extra>step {step}</extra>"
                ),
                meta={
                    **trace_meta(st.run_id, x=x_col, y="drawn_at", const={"step": step}),
                    "custom": ["value"],
                },
            )
        )
    return out


def add_notes(fig: go.Figure, notes: Sequence[str], corner: str = "left") -> None:
    """Write `notes` as one block in the top `corner` ("left" or "right") INSIDE the plot, on a
    white box: a note in the margin would be cut from a paper export, whose margins only make
    room for axes and legend. Decaying profiles leave the top corner away from the loss empty."""
    if not notes:
        return
    left = corner == "left"
    fig.add_annotation(
        text="<br>".join(notes),
        xref="paper",
        yref="paper",
        x=0.01 if left else 0.99,
        y=0.98,
        xanchor="left" if left else "right",
        yanchor="top",
        align="left",
        showarrow=False,
        bgcolor="rgba(255,255,255,0.85)",
        font=dict(size=11, color="#333333"),
        name="range-note",
    )
