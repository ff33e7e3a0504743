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
#: Font stacks (the first installed one is used; Chromium embeds it in the PDF). DejaVu has
#: every glyph gradlab's labels use (‖ ∂ ∇ σ θ χ − ± × ·); Times / Liberation lack ‖ and ∇, so
#: Chromium set those in a second family, and where that fallback was a font it cannot embed
#: as TrueType it wrote a Type3 font. The condensed cut keeps legends and notes short.
FONTS: dict[str, str] = {
    "serif": '"DejaVu Serif Condensed", "DejaVu Serif", "Bitstream Vera Serif", serif',
    "sans": '"DejaVu Sans Condensed", "DejaVu Sans", "Bitstream Vera Sans", sans-serif',
}
PX_PER_INCH = 96.0
TEXT_PT = 8.0  # tick labels, annotations
TITLE_PT = 9.0  # axis and colour-bar titles
LEGEND_PT = 7.0
NOTE_PT = 6.5  # notes under the plot (theory assumptions, missing runs)
CELL_TEXT_PT = (7.0, 6.0, 5.5)  # values printed in heatmap cells: the largest that fits
CELL_TEXT_FILL = 0.8  # ... within this share of a cell's width
#: Width of a character in em, an upper bound for DejaVu Serif / Sans text (the condensed cut,
#: used where installed, is ~15 % narrower): used to wrap notes and lay out legend rows before
#: the browser measures them, so they fit whichever of the two the machine has.
CHAR_EM = 0.55
LINE_EM = 1.3  # plotly's line height for text with <br>
#: Height in px of a one-line legend row: plotly gives an entry max(text, 16) + 3 px, plus
#: 5 px between rows.
LEGEND_ROW_PX = 24.0
LEGEND_SYMBOL_PX = 40.0  # the symbol (itemwidth 30) and the gap before the text
#: The most of the figure's height a legend above the plot may take.
LEGEND_SHARE = 0.2
#: The most of the figure's width a legend beside the plot may take (longer names wrap).
RIGHT_LEGEND_SHARE = 0.3
#: The least share of an explicitly given height left to the plot by legend and notes.
MIN_PLOT_SHARE = 0.4
#: Width of the figure beside the plot (y tick labels and title, a colour bar): the plot is
#: the rest, and plotly wraps a legend above it at the plot's width.
PLOT_SIDE_ROOM_PX = 64.0
#: Room under the plot for x tick labels and the x-axis title, above any notes.
AXIS_ROOM_PX = 38.0
#: Trace names that mark a fitted or theory line, drawn above the data on export.
OVERLAY_PREFIXES = ("fit:", "theory:")
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


def _rows(layout: Mapping[str, Any]) -> int:
    domains = {
        tuple(v["domain"])
        for k, v in layout.items()
        if k.startswith("yaxis") and isinstance(v, Mapping) and v.get("domain") is not None
    }
    return max(1, len(domains))


def text_width_px(text: str, size_px: float) -> float:
    """Upper estimate of the width of one line of label text (tags dropped, <sub>/<sup> at
    70 %) in px at font size `size_px`."""
    small = sum(len(_TAG.sub("", m)) for m in re.findall(r"<su[bp]>(.*?)</su[bp]>", text))
    plain = len(_TAG.sub("", text)) - small
    return CHAR_EM * size_px * (plain + 0.7 * small)


def _legend_rows(entries: list[str], width_px: float) -> int:
    """Rows of a horizontal legend of `entries` as plotly lays it out in `width_px` (the plot
    width): one row if all fit side by side, else columns as wide as the widest entry."""
    if not entries:
        return 0
    widths = [LEGEND_SYMBOL_PX + 5 + text_width_px(e, _px(LEGEND_PT)) for e in entries]
    if sum(widths) - 5 < width_px:
        return 1
    per_row = max(1, int((width_px + 5) // max(widths)))
    return math.ceil(len(entries) / per_row)


def _legend_height_px(entries: list[str], width_px: float) -> float:
    """Height of a horizontal legend: its rows, each `LEGEND_ROW_PX`."""
    return _legend_rows(entries, width_px) * LEGEND_ROW_PX


def _column_legend(
    entries: list[str], width_px: float, columns: int
) -> tuple[list[str], float, float]:
    """Entries wrapped to fit `columns` equal columns in `width_px` (the plot width, which
    plotly fills before it starts a row), the text width of a column (plotly's `entrywidth`)
    and the legend's height (each row as tall as its longest entry)."""
    text_px = math.floor((width_px + 5) / columns - LEGEND_SYMBOL_PX - 5 - 1)
    size = _px(LEGEND_PT)
    wrapped = ["<br>".join(wrap_text(e, text_px, size)) for e in entries]
    height = 0.0
    for start in range(0, len(wrapped), columns):
        lines = max(_lines(e) for e in wrapped[start : start + columns])
        height += LEGEND_ROW_PX if lines == 1 else lines * size * LINE_EM + 8
    return wrapped, float(text_px), height


def _wrap_words(line: str, width_px: float, size_px: float) -> list[str]:
    """`line` broken at spaces into lines of at most `width_px` (a "·" stays with the word
    before it; a word wider than the line is a line of its own)."""
    words: list[str] = []
    for word in line.split(" "):
        if word == "·" and words:
            words[-1] += " ·"
        else:
            words.append(word)
    out, current = [], ""
    for word in words:
        trial = f"{current} {word}" if current else word
        if current and text_width_px(trial, size_px) > width_px:
            out.append(current)
            current = word
        else:
            current = trial
    return [*out, current]


def wrap_text(text: str, width_px: float, size_px: float) -> list[str]:
    """`text` (lines split at <br>) wrapped into lines of at most `width_px`: at the " · "
    between the parts of a run label where that takes no more lines, else at spaces."""
    out: list[str] = []
    for line in re.split(r"<br\s*/?>", text):
        parts = line.split(SEPARATOR)
        packed: list[str] = []
        for chunk in [p + " ·" for p in parts[:-1]] + parts[-1:]:
            trial = f"{packed[-1]} {chunk}" if packed else chunk
            if packed and text_width_px(trial, size_px) <= width_px:
                packed[-1] = trial
            else:
                packed.append(chunk)
        by_parts = [w for piece in packed for w in _wrap_words(piece, width_px, size_px)]
        by_words = _wrap_words(line, width_px, size_px)
        out += by_parts if len(by_parts) <= len(by_words) else by_words
    return out


def _base_height_in(layout: Mapping[str, Any], width_in: float) -> float:
    """The plot's own height: ~0.62 × width for a single column (0.4 × for wider figures),
    × 1.6 for stacked panels."""
    base = width_in * (0.62 if width_in <= 4 else 0.4)
    return base * 1.6 if _rows(layout) > 1 else base


def figure_height(fig: go.Figure | Mapping[str, Any], width_in: float, height: Any = None) -> float:
    """Print height in inches: `height` if given, else the paper layout's (`paper_dict`): the
    plot (~0.62 × width for a single column, 0.4 × for wider figures, × 1.6 for stacked
    panels) plus the legend above it and the notes under it."""
    if height is not None:
        return width_inches(height)
    return paper_dict(fig, width_in)[2]


def _positive(values: Any) -> np.ndarray:
    try:
        arr = np.asarray(as_array(values), dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return np.empty(0)
    return arr[np.isfinite(arr) & (arr > 0)]


def _axis_values(
    data: list[dict[str, Any]], axis_key: str, shapes: list[dict[str, Any]] | None = None
) -> np.ndarray:
    """Every positive finite value plotted on one axis (axis_key "yaxis2" → traces on "y2"),
    with the ends of `shapes` drawn in its data units (a reference line widens the range)."""
    letter = axis_key[0]
    ref = letter + axis_key[5:]
    chunks = [
        _positive(t.get(letter))
        for t in data
        if (t.get(f"{letter}axis") or letter) == ref and t.get(letter) is not None
    ]
    for shape in shapes or []:
        if str(shape.get(f"{letter}ref") or letter) == ref:
            chunks.append(_positive([shape.get(f"{letter}0"), shape.get(f"{letter}1")]))
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


def _overlays_last(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The traces with fitted and theory lines ("fit: ...", "theory: ...") moved after the
    data, so they are drawn on top; `legendrank` keeps the legend in the original order."""
    for rank, trace in enumerate(data, start=1):
        trace.setdefault("legendrank", rank)

    def overlay(t: dict[str, Any]) -> bool:
        return _TAG.sub("", str(t.get("name") or "")).startswith(OVERLAY_PREFIXES)

    return [t for t in data if not overlay(t)] + [t for t in data if overlay(t)]


SEPARATOR = " · "
_STEP_SUFFIX = re.compile(r" at step \d+$")


def _shorter_names(names: list[str]) -> dict[str, str]:
    """Run labels without the parts every label shares ("lstm · seq 10 · seed 0" and
    "gru · seq 10 · seed 0" → "lstm", "gru"): the .json sidecar has the full configs."""
    split, suffix = {}, {}
    for n in dict.fromkeys(names):
        if SEPARATOR not in n:
            continue
        match = _STEP_SUFFIX.search(n)  # "<run label> at step 0": the run label's parts
        suffix[n] = match.group(0) if match else ""
        split[n] = n[: len(n) - len(suffix[n])].split(SEPARATOR)
    if len(split) < 2:
        return {}
    common = set.intersection(*(set(parts[1:]) for parts in split.values()))
    out = {}
    for name, parts in split.items():
        kept = [parts[0], *(p for p in parts[1:] if p not in common)]
        if len(kept) < len(parts):
            out[name] = SEPARATOR.join(kept) + suffix[name]
    return out


def _legend_traces(data: list[dict[str, Any]], layout: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The traces the legend lists, in its order (legendrank, then trace order)."""
    if layout.get("showlegend") is False:
        return []
    shown = [
        t
        for t in data
        if t.get("showlegend") is not False and t.get("name") and t.get("type") != "heatmap"
    ]
    return sorted(shown, key=lambda t: float(t.get("legendrank", 1000)))


def _names(traces: list[dict[str, Any]]) -> list[str]:
    return [str(t["name"]) for t in traces]


def _is_overlay(trace: Mapping[str, Any]) -> bool:
    return _TAG.sub("", str(trace.get("name") or "")).startswith(OVERLAY_PREFIXES)


def _run_of(trace: Mapping[str, Any]) -> Any:
    meta = trace.get("meta")
    const = meta.get("const") if isinstance(meta, Mapping) else None
    return const.get("run_id") if isinstance(const, Mapping) else None


_DASH_WORDS = {
    "dot": "dotted",
    "dash": "dashed",
    "dashdot": "dash-dotted",
    "longdash": "long-dashed",
    "longdashdot": "long-dash-dotted",
    "solid": "solid",
}


def _overlays_to_note(data: list[dict[str, Any]], traces: list[dict[str, Any]]) -> str:
    """Take fitted and theory lines out of the legend into one note: "dotted: fit, dashed:
    theory. lstm: fit −0.60 /step ± 0.05; rnn: fit ..., theory ..." (each line keeps its
    run's colour). A line whose run has no legend entry stays in the legend."""
    label_of: dict[Any, str] = {}
    for t in traces:
        run = _run_of(t)
        if run is not None and not _is_overlay(t):
            label_of.setdefault(run, str(t["name"]))
    by_run: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for t in traces:
        label = label_of.get(_run_of(t))
        if not _is_overlay(t) or label is None:
            continue
        t["showlegend"] = False
        kind, _, value = str(t["name"]).partition(":")
        dash = str((t.get("line") or {}).get("dash") or "solid")
        kinds.setdefault(kind, _DASH_WORDS.get(dash, dash))
        by_run.setdefault(label, []).append(f"{kind} {value.strip()}")
    if not by_run:
        return ""
    head = ", ".join(f"{word}: {kind}" for kind, word in kinds.items())
    body = "; ".join(f"{label}: {', '.join(parts)}" for label, parts in by_run.items())
    return f"{head[0].upper()}{head[1:]}. {body}"


def _axis_anchor_domain(layout: Mapping[str, Any], key: str) -> tuple[float, float]:
    """The domain of the axis `key` ("xaxis2") is anchored to (its row for x, column for y)."""
    axis = layout.get(key) or {}
    anchor = str(axis.get("anchor") or ("y" if key.startswith("x") else "x"))
    other = ("yaxis" if key.startswith("x") else "xaxis") + anchor[1:]
    domain = (layout.get(other) or {}).get("domain") or [0.0, 1.0]
    return float(domain[0]), float(domain[1])


def _share_axis_titles(layout: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Facets that repeat one axis title show it once: x titles only on the bottom row, y
    titles only in the left column, and there on the middle facet. Returns the axes that now
    carry a shared title, with the span (domain) of the facets they stand for."""
    shared: dict[str, tuple[float, float]] = {}
    for letter in ("x", "y"):
        by_title: dict[str, list[str]] = {}
        for key, axis in layout.items():
            if not (key.startswith(f"{letter}axis") and isinstance(axis, dict)):
                continue
            text = _TAG.sub("", str((axis.get("title") or {}).get("text") or "")).strip()
            if text and axis.get("visible") is not False:
                by_title.setdefault(text, []).append(key)
        for keys in by_title.values():
            if len(keys) < 2:
                continue
            edge = min(_axis_anchor_domain(layout, k)[0] for k in keys)
            line = [k for k in keys if abs(_axis_anchor_domain(layout, k)[0] - edge) < 1e-6]
            line.sort(key=lambda k: float((layout[k].get("domain") or [0, 1])[0]))
            keep = line[(len(line) - 1) // 2] if letter == "x" else line[len(line) // 2]
            for k in keys:
                if k != keep:
                    layout[k].setdefault("title", {})["text"] = ""
            domains = [layout[k].get("domain") or [0.0, 1.0] for k in line]
            shared[keep] = (min(float(d[0]) for d in domains), max(float(d[1]) for d in domains))
    return shared


def _paper_y(ann: Mapping[str, Any]) -> float | None:
    """An annotation's y in paper units, None if it is placed on an axis."""
    if not str(ann.get("yref") or "y").startswith("paper"):
        return None
    try:
        return float(ann.get("y", 0.5))
    except (TypeError, ValueError):
        return None


def _room_in_plot(ann: Mapping[str, Any], plot_px: float) -> float:
    """Width in px an annotation placed in paper units has from its anchor to the plot's edge."""
    try:
        x = min(max(float(ann.get("x", 0.5)), 0.0), 1.0)
    except (TypeError, ValueError):
        x = 0.5
    anchor = ann.get("xanchor", "auto")
    if anchor == "left":
        share = 1 - x
    elif anchor == "right":
        share = x
    else:
        share = 2 * min(x, 1 - x)
    return max(60.0, share * plot_px - 8)


def _lines(text: str) -> int:
    return len(re.split(r"<br\s*/?>", str(text)))


def _style_axes(layout: dict[str, Any], data: list[dict[str, Any]]) -> None:
    """Thin axis lines, outside ticks, paper fonts; major ticks only on log axes."""
    for key in [k for k in layout if k.startswith(("xaxis", "yaxis"))]:
        axis = layout[key]
        if not isinstance(axis, dict) or axis.get("visible") is False:
            continue
        _merge(axis, _axis_style())
        if axis.get("type") == "log":
            axis.update(_log_ticks(_axis_values(data, key, layout.get("shapes"))))


def _style_traces(data: list[dict[str, Any]], layout: dict[str, Any]) -> None:
    """Thinner lines, smaller markers, no legend groups (the legend flows in rows), paper
    colour bars and thin shapes."""
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
    for shape in layout.get("shapes") or []:
        if isinstance(shape.get("line"), dict):
            shape["line"]["width"] = 0.75


def _notes_block(
    notes: list[str], width_px: float, family: str, axis_room: float = AXIS_ROOM_PX
) -> tuple[dict[str, Any], float]:
    """The notes as one annotation `axis_room` px under the plot (below the x-axis title),
    wrapped to the page, and its height in px."""
    lines = [w for note in notes for w in wrap_text(note, width_px - 64, _px(NOTE_PT))]
    block = dict(
        text="<br>".join(lines),
        xref="paper",
        yref="paper",
        x=0,
        y=0,
        xanchor="left",
        yanchor="top",
        yshift=-axis_room,
        align="left",
        showarrow=False,
        font=dict(size=_px(NOTE_PT), family=family, color="black"),
        name="paper-notes",
    )
    return block, len(lines) * _px(NOTE_PT) * LINE_EM + 4


def _place_legend(
    data: list[dict[str, Any]], layout: dict[str, Any], width_in: float
) -> tuple[dict[str, str], float, float, list[str]]:
    """Shorter legend names, then the legend in a column right of a wide figure, else in
    rows above the plot. Returns (old → new names, the legend's height above the plot in px,
    the plot's width in px, notes for under the plot: the fit / theory lines' values)."""
    width_px = width_in * PX_PER_INCH
    renamed = _shorter_names([str(t["name"]) for t in _legend_traces(data, layout)])
    for trace in data:
        if trace.get("name") in renamed:
            trace["name"] = renamed[trace["name"]]
    legend = dict(
        font=dict(size=_px(LEGEND_PT)),
        bgcolor="rgba(255,255,255,0)",
        borderwidth=0,
        tracegroupgap=0,
        itemwidth=30,
        title=dict(text=""),
        traceorder="normal",
        entrywidth=0,
        entrywidthmode="pixels",
    )
    legend_px = 0.0
    notes: list[str] = []
    traces = _legend_traces(data, layout)
    plot_px = width_px - 8 - PLOT_SIDE_ROOM_PX  # the plot's width, less a legend beside it
    if traces and width_in > 4 and _legend_rows(_names(traces), width_px - 8) > 1:
        text_px = max(120.0, RIGHT_LEGEND_SHARE * width_px - LEGEND_SYMBOL_PX)
        for trace in traces:
            trace["name"] = "<br>".join(wrap_text(str(trace["name"]), text_px, _px(LEGEND_PT)))
        widest = max(text_width_px(line, _px(LEGEND_PT)) for t in traces for line in
                     re.split(r"<br\s*/?>", str(t["name"])))  # fmt: skip
        plot_px -= min(widest, text_px) + LEGEND_SYMBOL_PX + 12
        legend.update(orientation="v", xref="paper", x=1.02, xanchor="left")
        legend.update(yref="paper", y=1, yanchor="top")
    elif traces:
        overlays = _overlays_to_note(data, traces)
        if overlays:
            notes.append(overlays)
            traces = _legend_traces(data, layout)
        names = _names(traces)
        legend_px = _legend_height_px(names, plot_px)
        if max(LEGEND_SYMBOL_PX + text_width_px(n, _px(LEGEND_PT)) for n in names) > plot_px:
            legend_px = math.inf  # an entry wider than the plot: it must wrap
        best: tuple[list[str], float] | None = None
        for columns in (3, 2, 1):
            wrapped, text_px, height_px = _column_legend(names, plot_px, columns)
            if text_px >= 40 and height_px < legend_px - 1e-6:
                best, legend_px = (wrapped, text_px), height_px
        if best is not None:
            for trace, name in zip(traces, best[0], strict=True):
                trace["name"] = name
            legend.update(entrywidth=best[1])
        legend.update(orientation="h", xref="container", x=0, xanchor="left")
        legend.update(yref="container", y=1, yanchor="top")
    layout["legend"] = {**(layout.get("legend") or {}), **legend}

    return renamed, legend_px, plot_px, notes


def _place_annotations(
    layout: dict[str, Any],
    renamed: Mapping[str, str],
    plot_px: float,
    notes: list[str],
    family: str,
) -> tuple[list[dict[str, Any]], float]:
    """Annotations in the paper font, run labels `renamed` as in the legend, notes placed
    under the plot moved to `notes`, notes in the plot wrapped to it. Returns (the annotations
    kept, the height in px the ones above the plot, facet titles, need). Under the plot: at a
    paper y below 0, or hanging from y = 0 (yanchor top) shifted down."""
    above_px = 0.0
    kept = []
    for ann in layout.get("annotations") or []:
        text = str(ann.get("text") or "")
        for old, new in renamed.items():
            text = text.replace(old, new)
        ann["text"] = text
        y = _paper_y(ann)
        shifted_under = ann.get("yanchor") == "top" and float(ann.get("yshift") or 0) < 0
        if y is not None and (y < 0 or (y <= 0 and shifted_under)):
            notes.append(text)
            continue
        size = TEXT_PT if max(len(_TAG.sub("", t)) for t in text.split("<br>")) <= 40 else NOTE_PT
        ann["font"] = dict(size=_px(size), family=family, color="black")
        if y is not None and str(ann.get("xref") or "x").startswith("paper"):
            room = _room_in_plot(ann, plot_px)
            if any(text_width_px(t, _px(size)) > room for t in re.split(r"<br\s*/?>", text)):
                text = ann["text"] = "<br>".join(wrap_text(text, room, _px(size)))
        if y is not None and y >= 1 - 1e-6 and ann.get("yanchor", "auto") != "top":
            above_px = max(above_px, _lines(text) * _px(size) * LINE_EM + 2)
        kept.append(ann)
    return kept, above_px


def paper_dict(
    fig: go.Figure | Mapping[str, Any],
    width: str | float = "single",
    font: str = "serif",
    height: Any = None,
) -> tuple[dict[str, Any], float, float]:
    """The figure's dict in the paper template, and its (width, height) in inches.

    White background, no title (the caption carries it), 8–9 pt text in `font` ("serif" or
    "sans": DejaVu, which has every glyph of the labels), 0.75 px axis lines with outside
    ticks, no grid, thinner lines and smaller markers, labelled major ticks only on log axes
    (powers of ten, or 1-2-5). Fitted and theory lines are drawn above the data. The legend
    drops what every run label shares and sits above the plot in rows (at most
    `LEGEND_SHARE` of the height: the figure grows instead), or, for a wide figure that would
    need several rows, to the right. Facets repeating an axis title show it once; facet titles
    get room above the plot; notes placed under the plot are wrapped to the page and given
    room under the x-axis title.
    """
    if font not in FONTS:
        raise ValueError(f"font must be one of {sorted(FONTS)}, got {font!r}")
    width_in = width_inches(width)
    width_px = width_in * PX_PER_INCH
    d = fig.to_dict() if isinstance(fig, go.Figure) else copy.deepcopy(dict(fig))
    layout: dict[str, Any] = d.setdefault("layout", {})
    family = FONTS[font]
    layout["template"] = _template(font)
    _merge(
        layout,
        dict(
            autosize=False,
            title=dict(text=""),
            font=dict(family=family, size=_px(TEXT_PT), color="black"),
            paper_bgcolor="white",
            plot_bgcolor="white",
            hovermode=False,
        ),
    )
    _style_axes(layout, list(d.get("data", [])))
    shared = _share_axis_titles(layout)
    data = d["data"] = _overlays_last(list(d.get("data", [])))
    _style_traces(data, layout)

    renamed, legend_px, plot_px, notes = _place_legend(data, layout, width_in)
    _fit_cell_text(data, layout, plot_px)
    kept, above_px = _place_annotations(layout, renamed, plot_px, notes, family)
    x_title_lines = _wrap_axis_titles(layout, plot_px, 0.0, shared, "x")
    axis_room = AXIS_ROOM_PX + max(0, x_title_lines - 1) * _px(TITLE_PT) * LINE_EM
    notes_px = 0.0
    if notes:
        block, notes_px = _notes_block(notes, width_px, family, axis_room)
        kept.append(block)
    if kept or "annotations" in layout:
        layout["annotations"] = kept

    if height is not None:
        height_in = width_inches(height)
    else:
        total = _base_height_in(layout, width_in) * PX_PER_INCH + legend_px + above_px + notes_px
        if legend_px > LEGEND_SHARE * total:
            total = legend_px / LEGEND_SHARE
        margins = 8 + legend_px + above_px + (axis_room + notes_px if notes else 0)
        total = max(total, margins / (1 - MIN_PLOT_SHARE))  # long notes: grow, keep the plot
        height_in = math.ceil(total / PX_PER_INCH * 1000 - 1e-6) / 1000  # never below `total`
    top = 4 + legend_px + above_px
    bottom = 4 + (axis_room + notes_px if notes else 0)
    room = height_in * PX_PER_INCH * (1 - MIN_PLOT_SHARE)
    if top + bottom > room + 1e-6 and legend_px:
        # an explicit height too small for the legend above the plot: it goes over the plot
        # (a legend in the margin would push the plot to nothing)
        layout["legend"].update(
            xref="paper", yref="paper", x=0, y=1, bgcolor="rgba(255,255,255,0.8)"
        )
        top -= legend_px
    if top + bottom > room + 1e-6:  # ... and notes too long for it are squeezed
        top, bottom = top * room / (top + bottom), bottom * room / (top + bottom)
    layout.update(
        width=round(width_px, 3),
        height=round(height_in * PX_PER_INCH, 3),
        margin=dict(l=4, r=4, t=round(top, 2), b=round(bottom, 2), pad=0, autoexpand=True),
    )
    plot_height = height_in * PX_PER_INCH - top - bottom - (0 if notes else axis_room)
    _wrap_axis_titles(layout, plot_px, plot_height, shared, "y")
    return d, width_in, height_in


def _fit_cell_text(data: list[dict[str, Any]], layout: Mapping[str, Any], plot_px: float) -> None:
    """Values printed in heatmap cells (the phase diagram's) at the largest of `CELL_TEXT_PT`
    whose widest value fits `CELL_TEXT_FILL` of a cell's width at print size; where none fits
    the values are left out (the colour bar and the .csv carry them) rather than printed into
    each other."""
    for trace in data:
        if trace.get("type") != "heatmap" or not trace.get("texttemplate"):
            continue
        texts = [str(t) for row in trace.get("text") or [] for t in np.atleast_1d(row)]
        x_values = as_array(trace.get("x"))
        columns = 0 if x_values is None else len(x_values)
        if not texts or not columns:
            continue
        axis = layout.get("xaxis" + str(trace.get("xaxis") or "x")[1:]) or {}
        lo, hi = axis.get("domain") or (0.0, 1.0)
        cell_px = plot_px * (float(hi) - float(lo)) / columns
        widest = max(texts, key=len)
        for pt in CELL_TEXT_PT:
            if text_width_px(widest, _px(pt)) <= CELL_TEXT_FILL * cell_px:
                trace["textfont"] = {**(trace.get("textfont") or {}), "size": _px(pt)}
                break
        else:
            trace["texttemplate"] = ""


def _row_span(layout: Mapping[str, Any], key: str) -> tuple[float, float] | None:
    """For an x axis that is the only titled one of its row of facets (x axes anchored to y
    axes of one domain, as the phase diagram's middle panel): the row's whole x domain, which
    its title may use. None otherwise."""

    def row(axis: Mapping[str, Any]) -> tuple[float, ...]:
        anchor = str(axis.get("anchor") or "y")
        y_axis = layout.get("yaxis" + anchor[1:]) or {}
        return tuple(y_axis.get("domain") or (0.0, 1.0))

    axes = {
        k: a
        for k, a in layout.items()
        if k.startswith("xaxis") and isinstance(a, dict) and a.get("visible") is not False
    }
    mates = [a for a in axes.values() if row(a) == row(axes[key])]
    titled = [a for a in mates if ((a.get("title") or {}).get("text") or "")]
    if len(mates) < 2 or len(titled) != 1:
        return None
    domains = [a.get("domain") or (0.0, 1.0) for a in mates]
    return min(float(d[0]) for d in domains), max(float(d[1]) for d in domains)


def _wrap_axis_titles(
    layout: dict[str, Any],
    plot_px: float,
    plot_height: float,
    shared: Mapping[str, tuple[float, float]],
    letter: str,
) -> int:
    """Axis titles (of the x or the y axes: `letter`) longer than their axis (a long y title
    on a short plot), or than the facets a `shared` title stands for, in lines that fit.
    Returns the most lines a title now has."""
    most = 0
    for key, axis in layout.items():
        if not (key.startswith(f"{letter}axis") and isinstance(axis, dict)):
            continue
        title = axis.get("title") if isinstance(axis.get("title"), dict) else None
        text = str((title or {}).get("text") or "")
        if not text or axis.get("visible") is False:
            continue
        row_span = _row_span(layout, key) if letter == "x" else None
        domain = shared.get(key) or row_span or axis.get("domain") or (0.0, 1.0)
        span = (plot_px if letter == "x" else plot_height) * (domain[1] - domain[0])
        size = float(((title or {}).get("font") or {}).get("size") or _px(TITLE_PT))
        room = max(60.0, span - 8)
        if any(text_width_px(t, size) > room for t in re.split(r"<br\s*/?>", text)):
            title["text"] = text = "<br>".join(wrap_text(text, room, size))  # type: ignore[index]
        most = max(most, _lines(text))
    return most


def paper_figure(
    fig: go.Figure | Mapping[str, Any],
    width: str | float = "single",
    font: str = "serif",
    height: Any = None,
) -> tuple[go.Figure, float, float]:
    """`paper_dict` as a plotly Figure (for previews), with its (width, height) in inches."""
    d, width_in, height_in = paper_dict(fig, width, font, height)
    return go.Figure(d), width_in, height_in
