"""Colours, line styles and the dashboard template shared by every figure.

Colours are the Okabe–Ito palette (colour-blind safe, Okabe & Ito 2008); each cell type has one
fixed colour in every figure and every export (its `CellSpec.color`, see `cell_colors()`).
Several runs of the same cell are told apart by dash and marker (`RUN_DASHES`, `RUN_SYMBOLS`);
the dashes "dash" and "dot" are kept for theory and fitted lines. The paper template lives in
`gradlab.export.template` and only changes sizes and fonts, never colours.
"""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = [
    "DASHBOARD_FONT",
    "DIVERGING",
    "FIT_DASH",
    "GATE_COLORS",
    "OKABE_ITO",
    "OTHER_COLOR",
    "PLOT_CONFIG",
    "RUN_DASHES",
    "RUN_SYMBOLS",
    "SEQUENTIAL",
    "TEMPLATE",
    "THEORY_DASH",
    "cell_color",
    "cell_colors",
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

#: Dashes of the 1st, 2nd, ... run of one cell type ("dash"/"dot" are theory/fit).
RUN_DASHES: tuple[str, ...] = ("solid", "dashdot", "longdash", "longdashdot")
#: Markers of the 1st, 2nd, ... run of one cell type.
RUN_SYMBOLS: tuple[str, ...] = ("circle", "square", "diamond", "triangle-up", "cross", "x")
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


def shade(color: str, weight: float) -> str:
    """`color` mixed with white: weight 1 is the colour itself, 0 is white (hex in, rgb out)."""
    color = color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    w = min(max(float(weight), 0.0), 1.0)
    mix = [round(255 - (255 - c) * w) for c in (r, g, b)]
    return f"rgb({mix[0]},{mix[1]},{mix[2]})"
