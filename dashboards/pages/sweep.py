"""Sweep page (``/sweep/<name>``): a phase diagram of the sweep over two of its grid axes.

Dropdowns pick the x and y axes (config keys that vary in the sweep), the colour (decay rate,
final loss / baseline, gradient reaching the first timestep), the facet (one panel per value of
a key; "auto": the cell when several vary) and the value of every other varying key ("default":
the value most runs share, named in the figure) — the diagram never averages over a key it does
not show, only over seeds. ``?x=&y=&color=&facet=&fix=task:adding,seq_len:50`` hold them.
Clicking a cell opens exactly the runs of that cell (its run ids ride in the heatmap's
customdata): ``/compare?runs=...`` when there are a few, else the runs table filtered to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from dashboards import data
from dashboards.pages import _common as common
from gradlab.figures import FigureData
from gradlab.figures.phase_diagram import (
    COLOR_LABELS,
    COLORS,
    category,
    grid_order,
    parse_fix,
    shown,
)

PREFIX = "sweep"
FIGURE = "phase_diagram"


def _title(name: str | None = None, **_: Any) -> str:
    return f"Sweep {str(name)[:40]} · gradlab"


dash.register_page(__name__, path_template="/sweep/<name>", title=_title, name="Sweep", order=3)

#: A click opens /compare with at most this many runs; more go to the filtered runs table.
MAX_COMPARE = 8
#: Preferred default axes, in order.
PREFERRED = ("gain", "bias_scale", "seq_len", "hidden_size", "lr", "forget_bias", "cell")
CONTROLS = {
    "x": f"{PREFIX}-x",
    "y": f"{PREFIX}-y",
    "color": f"{PREFIX}-color",
    "facet": f"{PREFIX}-facet",
}
#: Pattern id of the dropdown that fixes one key: ``{"type": FIX, "key": key}``.
FIX = f"{PREFIX}-fix"
#: Facet choices besides a config key.
FACET_AUTO, FACET_NONE = "auto", "none"
COLOR_TEXT = {
    "decay_rate": "state decay rate ‖∂s_T/∂s_k‖ (1/step)",
    "loss_ratio": "final loss / baseline",
    "first_fraction": "‖∂L/∂h₀‖ / ‖∂L/∂h_T‖",
}


def default_axes(axes: list[str]) -> tuple[str | None, str | None]:
    """Two distinct default axes: preferred keys first, seed last."""
    ranked = sorted(
        axes,
        key=lambda a: (PREFERRED.index(a) if a in PREFERRED else len(PREFERRED), a == "seed"),
    )
    x = ranked[0] if ranked else None
    y = ranked[1] if len(ranked) > 1 else x
    return x, y


def fix_choices(frame: pd.DataFrame, axes: Sequence[str]) -> dict[str, list[str]]:
    """key → its categories in grid order, for every grid axis but seed (the fix dropdowns)."""
    return {
        a: grid_order([category(v) for v in frame[a].astype(object).tolist()])
        for a in axes
        if a != "seed" and a in frame
    }


def fix_from(
    keys: Sequence[Any], values: Sequence[Any], shown_keys: Sequence[str | None]
) -> dict[str, str]:
    """{key: value} of the fix dropdowns that hold a value and whose key is not shown (x, y or
    the facet): what the builder's ``fix`` gets."""
    out = {}
    for key, value in zip(keys, values, strict=False):
        key = key.get("key") if isinstance(key, Mapping) else key
        if key and value not in (None, "") and key not in shown_keys:
            out[str(key)] = str(value)
    return out


def fix_text(fix: Mapping[str, str]) -> str | None:
    """``task:adding,seq_len:50`` for the URL (None when nothing is fixed)."""
    return ",".join(f"{k}:{v}" for k, v in fix.items()) or None


def sweep_rows(root: str, name: str, color: str) -> pd.DataFrame:
    """The sweep's runs rows with the summary ``color`` as a column of that name: the phase
    diagram reads it from the row (no metrics to load: a 1,000-run sweep stays fast)."""
    frame = data.sweep_runs(root, name)
    values = data.run_summaries(root, list(frame["run_id"]), [color])
    return frame.drop(columns=[color], errors="ignore").merge(values, on="run_id", how="left")


def figure(root: str, name: str, values: dict[str, Any]) -> go.Figure:
    """The phase diagram of sweep ``name`` with x, y, color, facet and fix from ``values``."""
    frame = data.sweep_runs(root, name)
    spec = common.FIGURES[FIGURE]
    if frame.empty:
        return common.error_figure(spec.title, f"There is no sweep {name!r} in this store.")
    options = common.clean_options(spec, values)
    x, y = options.get("x"), options.get("y")
    color = options.get("color", COLORS[0])
    if x not in frame or y not in frame or color not in COLORS:
        return common.error_figure(spec.title, "Pick two grid axes and a colour.")
    try:
        rows = sweep_rows(root, name, color)
        return spec.builder(FigureData(runs=rows), **options)
    except (data.DataError, ValueError) as exc:
        return common.error_figure(spec.title, str(exc))
    except Exception as exc:
        common.log.exception("phase diagram of sweep %s failed", name)
        return common.error_figure(spec.title, f"This figure could not be drawn: {exc}")


# ----------------------------------------------------------------------------- layout
def _problem(text: str, root: str) -> html.Div:
    names = data.sweeps(root)
    links = [dcc.Link(n, href=f"/sweep/{n}", className="small-link") for n in names]
    return html.Div(
        [
            html.H2("Sweep"),
            common.message(text, id=f"{PREFIX}-problem"),
            html.P(["Sweeps in this store: ", *links] if links else "This store has no sweeps."),
        ],
        className="sweep-page",
    )


@common.safe_layout("Sweep")
def layout(name: str | None = None, **query: Any) -> html.Div:
    """The phase diagram page of sweep ``name``."""
    root = data.current_root()
    name = common.one(name)
    frame = data.sweep_runs(root, name) if name else pd.DataFrame()
    if frame.empty:
        return _problem(f"There is no sweep {str(name)[:80]!r} in this store.", root)
    axes = data.sweep_axes(root, name)
    if not axes:
        return _problem(f"Sweep {name!r} has one grid point: nothing to lay out.", root)
    dx, dy = default_axes(axes)
    x = common.choice(query.get("x"), axes, dx)
    y = common.choice(query.get("y"), axes, dy)
    color = common.choice(query.get("color"), COLORS, COLORS[0])
    facets = [FACET_AUTO, FACET_NONE, *[a for a in axes if a != "seed"]]
    facet = common.choice(query.get("facet"), facets, FACET_AUTO)
    choices = fix_choices(frame, axes)
    try:
        asked = parse_fix(common.one(query.get("fix")))
    except ValueError:
        asked = {}
    fixed = {k: v for k, v in asked.items() if v in choices.get(k, [])}
    counts = frame["status"].value_counts().to_dict()
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    spec = common.FIGURES[FIGURE]

    def dropdown(label: str, cid: Any, opts: list[Any], value: Any, **kw: Any) -> html.Div:
        return html.Div(
            [html.Label(label), dcc.Dropdown(opts, value, id=cid, **kw)],
            className="control",
        )

    fix_controls = [
        dropdown(
            key,
            {"type": FIX, "key": key},
            [{"label": shown(v), "value": v} for v in values],
            fixed.get(key),
            placeholder="default",
            clearable=True,
            disabled=key in (x, y, facet) or (facet == FACET_AUTO and key == "cell"),
        )
        for key, values in choices.items()
    ]
    return html.Div(
        [
            dcc.Location(id=f"{PREFIX}-url", refresh=False),
            dcc.Location(id=f"{PREFIX}-nav", refresh="callback-nav"),
            dcc.Store(id=f"{PREFIX}-name", data=name),
            dcc.Download(id=f"{PREFIX}-download"),
            html.Div(
                [
                    html.H2(f"Sweep {name}"),
                    html.Span(
                        f"{len(frame)} runs ({status}); grid axes: {', '.join(axes)}",
                        className="muted",
                    ),
                    dcc.Link(
                        "show in the runs table",
                        href=f"/{common.query(sweep=name)}",
                        className="small-link",
                    ),
                ],
                className="page-head",
            ),
            html.Div(
                [
                    dropdown("x axis", CONTROLS["x"], axes, x, clearable=False),
                    dropdown("y axis", CONTROLS["y"], axes, y, clearable=False),
                    dropdown(
                        "colour",
                        CONTROLS["color"],
                        [
                            {"label": COLOR_TEXT.get(c, COLOR_LABELS.get(c, c)), "value": c}
                            for c in COLORS
                        ],
                        color,
                        clearable=False,
                    ),
                    dropdown(
                        "panels (facet)",
                        CONTROLS["facet"],
                        [
                            {"label": "auto (cell)", "value": FACET_AUTO},
                            {"label": "none", "value": FACET_NONE},
                            *[{"label": a, "value": a} for a in facets[2:]],
                        ],
                        facet,
                        clearable=False,
                    ),
                ],
                className="controls",
            ),
            html.Div(
                [html.Span("fixed values:", className="muted"), *fix_controls],
                className="controls",
                id=f"{PREFIX}-fix-controls",
            ),
            html.P(
                "Keys not on an axis or the facet are fixed (blank: the default the figure "
                "names); only seeds are averaged. Click a cell to open its runs.",
                className="muted",
            ),
            html.Div(id=f"{PREFIX}-export-msg"),
            html.Div(id=f"{PREFIX}-click-msg"),
            html.Div(common.figure_card(PREFIX, spec), className="figures figures-wide"),
        ],
        className="sweep-page",
    )


# ----------------------------------------------------------------------------- callbacks
def _values(x: Any, y: Any, color: Any, facet: Any, keys: Any, fixes: Any) -> dict[str, Any]:
    """The builder's options from the controls (fix: the dropdowns of keys not shown)."""
    facet = facet or FACET_AUTO
    fix = fix_from(keys or [], fixes or [], [x, y, facet])
    return {"x": x, "y": y, "color": color, "facet": facet, "fix": fix or None}


@callback(
    Output(f"{PREFIX}-fig-{FIGURE}", "figure"),
    Input(f"{PREFIX}-name", "data"),
    *[Input(cid, "value") for cid in CONTROLS.values()],
    Input({"type": FIX, "key": ALL}, "value"),
    State({"type": FIX, "key": ALL}, "id"),
)
def update_phase_diagram(
    name: str,
    x: str,
    y: str,
    color: str,
    facet: str = FACET_AUTO,
    fixes: Sequence[Any] = (),
    keys: Sequence[Any] = (),
) -> go.Figure:
    """Redraw the phase diagram for the chosen axes, colour, facet and fixed values."""
    return figure(data.current_root(), name, _values(x, y, color, facet, keys, fixes))


@callback(
    Output({"type": FIX, "key": ALL}, "disabled"),
    Input(CONTROLS["x"], "value"),
    Input(CONTROLS["y"], "value"),
    Input(CONTROLS["facet"], "value"),
    State({"type": FIX, "key": ALL}, "id"),
)
def fix_disabled(x: Any, y: Any, facet: Any, keys: Sequence[Any]) -> list[bool]:
    """A key on x, y or the facet has no fixed value (auto facets by cell)."""
    shown_keys = {x, y, facet, "cell" if facet in (None, FACET_AUTO) else None}
    return [k.get("key") in shown_keys for k in keys]


@callback(
    Output({"type": FIX, "key": ALL}, "placeholder"),
    Input(f"{PREFIX}-fig-{FIGURE}", "figure"),
    State({"type": FIX, "key": ALL}, "id"),
)
def fix_placeholders(fig: Any, keys: Sequence[Any]) -> list[str]:
    """A blank dropdown names the value the figure chose for it ("default: adding")."""
    layout = (fig or {}).get("layout") or {}
    meta = ((layout.get("meta") or {}).get("gradlab") or {}) if isinstance(layout, dict) else {}
    fixed = (meta.get("options") or {}).get("fix") or {}
    return [
        f"default: {shown(str(fixed[k['key']]))}" if k.get("key") in fixed else "default"
        for k in keys
    ]


@callback(
    Output(f"{PREFIX}-url", "search"),
    *[Input(cid, "value") for cid in CONTROLS.values()],
    Input({"type": FIX, "key": ALL}, "value"),
    State({"type": FIX, "key": ALL}, "id"),
    prevent_initial_call=True,
)
def url_search(
    x: Any,
    y: Any,
    color: Any,
    facet: Any = FACET_AUTO,
    fixes: Sequence[Any] = (),
    keys: Sequence[Any] = (),
) -> str:
    """The chosen axes, colour, facet and fixed values as the query string."""
    values = _values(x, y, color, facet, keys, fixes)
    return common.query(
        x=x,
        y=y,
        color=color,
        facet=None if values["facet"] == FACET_AUTO else values["facet"],
        fix=fix_text(values["fix"] or {}),
    )


def cell_of_click(
    click: Mapping[str, Any] | None, fig: Mapping[str, Any] | None
) -> tuple[list[str], dict[str, Any]] | None:
    """(run ids, {config key: value} naming the cell) of a clicked heatmap cell, from the
    cell's customdata [value, n, run ids, x, y, ...] (the event's, else the figure's at the
    clicked row and column) and the trace's meta; None: no cell."""
    points = (click or {}).get("points") or []
    if not points:
        return None
    point = points[0]
    traces = (fig or {}).get("data") or []
    number = point.get("curveNumber")
    trace = traces[number] if isinstance(number, int) and 0 <= number < len(traces) else {}
    custom = point.get("customdata")
    where = point.get("pointNumber")
    if not (isinstance(where, list | tuple) and len(where) == 2):
        # dcc.Graph drops array-valued event fields (customdata, pointNumber): the heatmap's
        # x and y are the cell's column and row
        column, row = point.get("x"), point.get("y")
        ok = all(isinstance(v, int | float) and float(v).is_integer() for v in (column, row))
        where = [int(row), int(column)] if ok else None
    if custom is None and where is not None and min(where) >= 0:
        try:
            custom = trace["customdata"][where[0]][where[1]]
        except (KeyError, IndexError, TypeError):
            custom = None
    if not isinstance(custom, list | tuple) or len(custom) < 5:
        return None
    ids = [r for r in str(custom[2] or "").split(",") if r]
    meta = trace.get("meta") if isinstance(trace, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    columns = meta.get("columns") or {}
    filters: dict[str, Any] = dict(meta.get("const") or {})
    for axis, text in (("x", custom[3]), ("y", custom[4])):
        if columns.get(axis):
            filters[columns[axis]] = str(text).replace("−", "-")
    return ids, filters


def click_target(
    root: str, name: str, click: dict[str, Any] | None, fig: dict[str, Any] | None
) -> tuple[str | None, str]:
    """(where a click on the diagram leads, a note): /compare?runs=<the cell's runs>, or the
    runs table filtered to the cell when it holds more than MAX_COMPARE runs."""
    cell = cell_of_click(click, fig)
    if cell is None:
        return None, ""
    ids, filters = cell
    known = set(data.sweep_runs(root, name)["run_id"].astype(str))
    ids = [r for r in ids if r in known]
    if not ids:
        where = ", ".join(f"{k} = {v}" for k, v in filters.items())
        return None, f"No runs at {where}."
    if len(ids) <= MAX_COMPARE:
        return f"/compare{common.query(runs=ids)}", ""
    return f"/{common.query(sweep=name, **filters)}", ""


@callback(
    Output(f"{PREFIX}-nav", "href"),
    Output(f"{PREFIX}-click-msg", "children"),
    Input(f"{PREFIX}-fig-{FIGURE}", "clickData"),
    State(f"{PREFIX}-fig-{FIGURE}", "figure"),
    State(f"{PREFIX}-name", "data"),
    prevent_initial_call=True,
)
def open_cell(click: Any, fig: Any, name: str) -> tuple[Any, Any]:
    """Open the runs of the clicked cell."""
    href, note = click_target(data.current_root(), name, click, fig)
    if href is None:
        return no_update, common.message(note, "info") if note else no_update
    return href, ""


@callback(
    Output(f"{PREFIX}-download", "data"),
    Output(f"{PREFIX}-export-msg", "children"),
    Input({"type": f"{PREFIX}-export", "fig": ALL, "fmt": ALL}, "n_clicks"),
    State(f"{PREFIX}-name", "data"),
    *[State(cid, "value") for cid in CONTROLS.values()],
    State({"type": FIX, "key": ALL}, "value"),
    State({"type": FIX, "key": ALL}, "id"),
    prevent_initial_call=True,
)
def export(
    clicks: list[Any],
    name: str,
    x: Any,
    y: Any,
    color: Any,
    facet: Any,
    fixes: Sequence[Any] = (),
    keys: Sequence[Any] = (),
) -> tuple[Any, Any]:
    """CSV / PNG / PDF of the phase diagram as it is on screen."""
    root = data.current_root()
    current = _values(x, y, color, facet, keys, fixes)
    return common.export_callback(
        ctx.triggered_id,
        common.triggered_value(),
        lambda _: figure(root, name, current),
        f"sweep-{name}",
    )
