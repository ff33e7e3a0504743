"""Colours, line styles and the dashboard template shared by every figure.

Colours are the Okabe–Ito palette (colour-blind safe, Okabe & Ito 2008; yellow left out, too
pale on white). Each run of a figure gets its own colour: the k-th run of the figure's run list
(the order the caller gives: the compare URL's order, so a run page's run is first in the
compares it links to) gets `RUN_COLORS[k % 7]` and the marker `RUN_SYMBOLS[k % 6]`; from the 8th
run on the colours repeat with the next dash of `RUN_DASHES` (see `run_style`). A figure's fit,
theory and baseline lines take their run's colour (a baseline value several runs share is one
line, grey unless they share a colour). ``color_by=<config key>`` colours by that key's values
instead: the values in sorted order get the run colours in turn (an 8th value repeats the first
colour), except ``color_by="cell"``, where each cell type has its fixed colour (its
`CellSpec.color`, see `cell_colors()`); runs sharing a value are told apart by dash and marker.
The dashes "dash" and "dot" are kept for theory and fitted lines (and the baselines of the
training figure, which has neither: `LEVEL_DASHES`). The paper template lives in
`gradlab.export.template` and only changes sizes and fonts, never colours.
"""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = [
    "DASHBOARD_FONT",
    "DIVERGING",
    "FIT_DASH",
    "GATE_COLORS",
    "LEVEL_DASHES",
    "OKABE_ITO",
    "OTHER_COLOR",
    "PLOT_CONFIG",
    "RUN_COLORS",
    "RUN_DASHES",
    "RUN_SYMBOLS",
    "SEQUENTIAL",
    "TEMPLATE",
    "THEORY_DASH",
    "cell_color",
    "cell_colors",
    "run_style",
    "shade",
]

#: The eight Okabe–Ito colours.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: Colour of a run whose cell type is unknown, and of reference lines.
OTHER_COLOR = OKABE_ITO["black"]

#: Gate colours (one run per gates figure, so they need not match the cell colours).
GATE_COLORS: dict[str, str] = {
    "i": OKABE_ITO["orange"],
    "f": OKABE_ITO["sky_blue"],
    "g": OKABE_ITO["black"],
    "o": OKABE_ITO["reddish_purple"],
    "r": OKABE_ITO["orange"],
    "z": OKABE_ITO["sky_blue"],
    "n": OKABE_ITO["black"],
}

#: Run colours in the order runs get them: the Okabe–Ito colours but yellow (too pale on white).
RUN_COLORS: tuple[str, ...] = tuple(
    OKABE_ITO[name]
    for name in (
        "blue",
        "vermillion",
        "bluish_green",
        "orange",
        "reddish_purple",
        "sky_blue",
        "black",
    )
)
#: Dashes of the 1st, 2nd, ... round of the run colours, and of the runs sharing a `color_by`
#: value ("dash"/"dot" are theory/fit).
RUN_DASHES: tuple[str, ...] = ("solid", "dashdot", "longdash", "longdashdot")
#: Markers of the 1st, 2nd, ... run (of a figure, or of one `color_by` value).
RUN_SYMBOLS: tuple[str, ...] = ("circle", "square", "diamond", "triangle-up", "cross", "x")
#: Dashes of a figure's level lines (baselines) of the 1st, 2nd, ... run that has one.
LEVEL_DASHES: tuple[str, ...] = ("dash", "longdash", "dashdot", "longdashdot")
THEORY_DASH = "dash"
FIT_DASH = "dot"

#: Colour scales: Viridis (sequential) and RdBu (diverging) are both colour-blind safe.
SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"

DASHBOARD_FONT = "Inter, 'Helvetica Neue', Arial, 'DejaVu Sans', sans-serif"

#: The on-screen template: white, light grid, Okabe–Ito colourway, powers of ten on log axes.
TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font=dict(family=DASHBOARD_FONT, size=13, color="#222222"),
        paper_bgcolor="white",
        plot_bgcolor="white",
        colorway=[*list(OKABE_ITO.values())[1:], OKABE_ITO["black"]],
        margin=dict(l=70, r=30, t=60, b=60),
        hovermode="closest",
        legend=dict(bgcolor="rgba(255,255,255,0.8)", borderwidth=0),
        xaxis=dict(
            showline=True,
            linecolor="#444444",
            linewidth=1,
            ticks="outside",
            showgrid=True,
            gridcolor="#EBEBEB",
            zeroline=False,
            exponentformat="power",
        ),
        yaxis=dict(
            showline=True,
            linecolor="#444444",
            linewidth=1,
            ticks="outside",
            showgrid=True,
            gridcolor="#EBEBEB",
            zeroline=False,
            exponentformat="power",
        ),
        coloraxis=dict(colorbar=dict(exponentformat="power", outlinewidth=0)),
    )
)

#: dcc.Graph(config=...) for the dashboard: no plotly logo, no edit links.
PLOT_CONFIG: dict[str, object] = {
    "displaylogo": False,
    "showLink": False,
    "showEditInChartStudio": False,
}


def cell_colors() -> dict[str, str]:
    """One fixed colour per registered cell (its `CellSpec.color`), in display order."""
    from gradlab.cells import cells

    return {spec.name: spec.color for spec in cells()}


def cell_color(cell: str | None) -> str:
    """The fixed colour of a registered cell; black for anything else."""
    return cell_colors().get(str(cell or "").lower(), OTHER_COLOR)


def run_style(rank: int) -> tuple[str, str, str]:
    """(colour, dash, marker) of the run at position `rank` (0-based) of a figure's run list:
    colours in `RUN_COLORS` order, then again with the next dash of `RUN_DASHES`."""
    n = len(RUN_COLORS)
    return (
        RUN_COLORS[rank % n],
        RUN_DASHES[(rank // n) % len(RUN_DASHES)],
        RUN_SYMBOLS[rank % len(RUN_SYMBOLS)],
    )


def shade(color: str, weight: float) -> str:
    """`color` mixed with white: weight 1 is the colour itself, 0 is white (hex in, rgb out)."""
    color = color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    w = min(max(float(weight), 0.0), 1.0)
    mix = [round(255 - (255 - c) * w) for c in (r, g, b)]
    return f"rgb({mix[0]},{mix[1]},{mix[2]})"
