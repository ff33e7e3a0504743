"""The paper template: print sizes, fonts and thin lines applied to a figure on export.

Sizes are in inches at print size; plotly lays out in CSS pixels (96 per inch), so a font of
8 pt is 8·96/72 px and a PNG at `dpi` is rendered with scale dpi/96 (pixel width = inches × dpi).
Colours are not touched: the palette is the same colour-blind-safe one as on screen. The work is
done on the figure's dict (plotly's object tree is slow to update), which is what is rendered.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from gradlab.figures.table import as_array

__all__ = [
    "FONTS",
    "PX_PER_INCH",
    "WIDTHS",
    "figure_height",
    "paper_dict",
    "paper_figure",
    "width_inches",
]

#: Journal column widths in inches.
WIDTHS: dict[str, float] = {"single": 3.25, "double": 6.75}
#: Font stacks (the first installed one is used; Chromium embeds it in the PDF).
FONTS: dict[str, str] = {
    "serif": '"Times New Roman", "Liberation Serif", "Nimbus Roman", "DejaVu Serif", serif',
    "sans": 'Arial, Helvetica, "Liberation Sans", "Nimbus Sans", "DejaVu Sans", sans-serif',
}
PX_PER_INCH = 96.0
TEXT_PT = 8.0  # tick labels, annotations
TITLE_PT = 9.0  # axis and colour-bar titles
LEGEND_PT = 7.5
LINE_SCALE = 0.6  # trace line widths relative to the dashboard
MARKER_SCALE = 0.7


def _px(pt: float) -> float:
    return round(pt * PX_PER_INCH / 72.0, 3)


def width_inches(width: str | float | int) -> float:
    """Width in inches of "single" (3.25), "double" (6.75) or a number ("3.5", "3.5in", 3.5)."""
    if isinstance(width, str):
        key = width.strip().lower()
        if key in WIDTHS:
            return WIDTHS[key]
        key = re.sub(r"\s*(in|inch|inches)$", "", key)
        try:
            width = float(key)
        except ValueError:
            raise ValueError(
                f"width must be 'single', 'double' or a number of inches, got {width!r}"
            ) from None
    value = float(width)
    if not math.isfinite(value) or not 0.5 <= value <= 20:
        raise ValueError(f"width must be between 0.5 and 20 inches, got {value!r}")
    return value


def _axis_style() -> dict[str, Any]:
    return dict(
        showline=True,
        linewidth=0.75,
        linecolor="black",
        mirror=False,
        ticks="outside",
        ticklen=3,
        tickwidth=0.75,
        tickcolor="black",
        showgrid=False,
        zeroline=False,
        automargin=True,
        exponentformat="power",
        tickfont=dict(size=_px(TEXT_PT)),
        title=dict(font=dict(size=_px(TITLE_PT)), standoff=4),
    )


def _colorbar_style() -> dict[str, Any]:
    return dict(
        thickness=8,
        len=1.0,
        outlinewidth=0,
        ticks="outside",
        ticklen=2,
        tickwidth=0.75,
        tickfont=dict(size=_px(LEGEND_PT)),
        title=dict(font=dict(size=_px(TEXT_PT)), side="right"),
        exponentformat="power",
        xpad=4,
    )


def _template(font: str) -> dict[str, Any]:
    family = FONTS[font]
    layout = dict(
        font=dict(family=family, size=_px(TEXT_PT), color="black"),
        paper_bgcolor="white",
        plot_bgcolor="white",
        xaxis=_axis_style(),
        yaxis=_axis_style(),
        coloraxis=dict(colorbar=_colorbar_style()),
        hovermode=False,
    )
    return {"layout": layout}


def _merge(dst: dict[str, Any], src: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `src` into `dst` (dicts merged, everything else replaced)."""
    for key, value in src.items():
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            _merge(dst[key], value)
        else:
            dst[key] = copy.deepcopy(value) if isinstance(value, Mapping) else value
    return dst


_TAG = re.compile(r"<[^>]+>")


def _legend_entries(data: list[dict[str, Any]], showlegend: Any) -> list[str]:
    if showlegend is False:
        return []
    return [
        _TAG.sub("", str(t.get("name")))
        for t in data
        if t.get("showlegend") is not False and t.get("name") and t.get("type") != "heatmap"
    ]


def _rows(layout: Mapping[str, Any]) -> int:
    domains = {
        tuple(v["domain"])
        for k, v in layout.items()
        if k.startswith("yaxis") and isinstance(v, Mapping) and v.get("domain") is not None
    }
    return max(1, len(domains))


def _legend_height_px(entries: list[str], width_px: float) -> float:
    """Rough height of a horizontal legend: entries flow left to right and wrap."""
    if not entries:
        return 0.0
    char = 0.5 * _px(LEGEND_PT)
    rows, used = 1, 0.0
    for text in entries:
        w = 40 + char * len(text)
        if used and used + w > width_px:
            rows, used = rows + 1, 0.0
        used += w
    return rows * (_px(LEGEND_PT) + 5) + 4


def figure_height(fig: go.Figure | Mapping[str, Any], width_in: float, height: Any = None) -> float:
    """Print height in inches: `height` if given, else ~0.62 × width for a single column
    (0.4 × for wider figures), ×1.6 for stacked panels, plus room for the legend."""
    if height is not None:
        return width_inches(height)
    d = fig.to_dict() if isinstance(fig, go.Figure) else fig
    layout = d.get("layout", {})
    base = width_in * (0.62 if width_in <= 4 else 0.4)
    if _rows(layout) > 1:
        base *= 1.6
    entries = _legend_entries(list(d.get("data", [])), layout.get("showlegend"))
    legend = _legend_height_px(entries, width_in * PX_PER_INCH - 40) / PX_PER_INCH
    return round(base + legend, 3)


def _positive(values: Any) -> np.ndarray:
    try:
        arr = np.asarray(as_array(values), dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return np.empty(0)
    return arr[np.isfinite(arr) & (arr > 0)]


def _axis_values(data: list[dict[str, Any]], axis_key: str) -> np.ndarray:
    """Every positive finite value plotted on one axis (axis_key "yaxis2" → traces on "y2")."""
    letter = axis_key[0]
    ref = letter + axis_key[5:]
    chunks = [
        _positive(t.get(letter))
        for t in data
        if (t.get(f"{letter}axis") or letter) == ref and t.get(letter) is not None
    ]
    return np.concatenate(chunks) if chunks else np.empty(0)


def _tick_text(value: float) -> str:
    """0.5, 20 as decimals; 10⁻⁴, 5×10⁻⁵ as powers of ten (Unicode minus)."""
    e = math.floor(math.log10(value) + 1e-9)
    m = round(value / 10**e)
    if -2 <= e <= 3:
        return f"{value:g}"
    power = f"10<sup>{str(e).replace('-', '−')}</sup>"
    return power if m == 1 else f"{m}×{power}"


def _log_ticks(values: np.ndarray) -> dict[str, Any]:
    """Ticks for a log axis: one per decade (or every n decades) when the data span two or
    more; else explicit ticks at 1, 2, 5 × 10^k (1, 2, 3, 5 or every digit on narrower
    spans), so a narrow log axis still shows at least two labelled ticks."""
    if values.size == 0:
        return {}
    lmin, lmax = float(np.log10(values.min())), float(np.log10(values.max()))
    if lmax - lmin >= 2:
        decades = math.ceil(lmax) - math.floor(lmin)
        return dict(dtick=max(1, math.ceil(decades / 5)), tick0=0)
    ticks: list[float] = []
    for mantissas in ((1, 2, 5), (1, 2, 3, 5), tuple(range(1, 10))):
        ticks = [
            float(f"{m}e{e}")
            for e in range(math.floor(lmin), math.ceil(lmax) + 1)
            for m in mantissas
            if lmin - 1e-9 <= math.log10(float(f"{m}e{e}")) <= lmax + 1e-9
        ]
        if len(ticks) >= 3:
            break
    if len(ticks) < 2:
        return {}
    ticks = ticks[:: max(1, math.ceil(len(ticks) / 6))]
    return dict(tickmode="array", tickvals=ticks, ticktext=[_tick_text(v) for v in ticks])


def paper_dict(
    fig: go.Figure | Mapping[str, Any],
    width: str | float = "single",
    font: str = "serif",
    height: Any = None,
) -> tuple[dict[str, Any], float, float]:
    """The figure's dict in the paper template, and its (width, height) in inches.

    White background, no title (the caption carries it), 8–9 pt text in `font` ("serif" or
    "sans"), 0.75 px axis lines with outside ticks, no grid, thinner lines and smaller markers,
    powers of ten on log axes (a tick per decade where the data spans several), the legend in
    rows above the plot.
    """
    if font not in FONTS:
        raise ValueError(f"font must be one of {sorted(FONTS)}, got {font!r}")
    width_in = width_inches(width)
    d = fig.to_dict() if isinstance(fig, go.Figure) else copy.deepcopy(dict(fig))
    data: list[dict[str, Any]] = list(d.get("data", []))
    layout: dict[str, Any] = d.setdefault("layout", {})
    height_in = figure_height(d, width_in, height)
    layout["template"] = _template(font)
    _merge(
        layout,
        dict(
            width=round(width_in * PX_PER_INCH, 3),
            height=round(height_in * PX_PER_INCH, 3),
            autosize=False,
            title=dict(text=""),
            font=dict(family=FONTS[font], size=_px(TEXT_PT), color="black"),
            paper_bgcolor="white",
            plot_bgcolor="white",
            margin=dict(l=4, r=4, t=4, b=4, pad=0, autoexpand=True),
            legend=dict(
                orientation="h",
                x=0,
                xanchor="left",
                y=1.02,
                yanchor="bottom",
                font=dict(size=_px(LEGEND_PT)),
                bgcolor="rgba(255,255,255,0)",
                borderwidth=0,
                entrywidth=0,
                tracegroupgap=0,
                itemwidth=30,
                title=dict(text=""),
            ),
            hovermode=False,
        ),
    )
    for key in [k for k in layout if k.startswith(("xaxis", "yaxis"))]:
        axis = layout[key]
        if not isinstance(axis, dict) or axis.get("visible") is False:
            continue
        _merge(axis, _axis_style())
        if axis.get("type") == "log":
            axis.update(_log_ticks(_axis_values(data, key)))
    for trace in data:
        trace.pop("legendgroup", None)
        if trace.get("type") == "scatter":
            line = trace.setdefault("line", {})
            line["width"] = max(0.6, float(line.get("width") or 2) * LINE_SCALE)
            marker = trace.get("marker")
            if isinstance(marker, dict) and isinstance(marker.get("size"), int | float):
                marker["size"] = max(2.5, float(marker["size"]) * MARKER_SCALE)
        if trace.get("type") in ("heatmap", "contour") and trace.get("showscale") is not False:
            _merge(trace.setdefault("colorbar", {}), _colorbar_style())
    if isinstance(layout.get("coloraxis"), dict):
        _merge(layout["coloraxis"].setdefault("colorbar", {}), _colorbar_style())
    for ann in layout.get("annotations") or []:
        ann["font"] = dict(size=_px(TEXT_PT), family=FONTS[font], color="black")
    for shape in layout.get("shapes") or []:
        if isinstance(shape.get("line"), dict):
            shape["line"]["width"] = 0.75
    return d, width_in, height_in


def paper_figure(
    fig: go.Figure | Mapping[str, Any],
    width: str | float = "single",
    font: str = "serif",
    height: Any = None,
) -> tuple[go.Figure, float, float]:
    """`paper_dict` as a plotly Figure (for previews), with its (width, height) in inches."""
    d, width_in, height_in = paper_dict(fig, width, font, height)
    return go.Figure(d), width_in, height_in
