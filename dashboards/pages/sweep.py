"""Sweep page (``/sweep/<name>``): a phase diagram of the sweep over two of its grid axes.

Dropdowns pick the x and y axes (config keys that vary in the sweep) and the colour (decay rate,
final loss / baseline, gradient reaching the first timestep); ``?x=&y=&color=`` hold them.
Clicking a cell of the diagram opens its runs: ``/compare?runs=...`` when there are a few, else
the runs table filtered to that cell.
"""

from __future__ import annotations

import math
from typing import Any

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from dashboards import data
from dashboards.pages import _common as common
from gradlab.figures import FigureData
from gradlab.figures.data import METRIC_COLUMNS
from gradlab.figures.phase_diagram import COLOR_LABELS, COLORS
from gradlab.probes import GradHiddenProbe

PREFIX = "sweep"
FIGURE = "phase_diagram"


def _title(name: str | None = None, **_: Any) -> str:
    return f"Sweep {str(name)[:40]} · gradlab"


dash.register_page(__name__, path_template="/sweep/<name>", title=_title, name="Sweep", order=3)

#: A click opens /compare with at most this many runs; more go to the filtered runs table.
MAX_COMPARE = 8
#: Preferred default axes, in order.
PREFERRED = ("gain", "bias_scale", "seq_len", "hidden_size", "lr", "forget_bias", "cell")
CONTROLS = {"x": f"{PREFIX}-x", "y": f"{PREFIX}-y", "color": f"{PREFIX}-color"}
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


def grid_points(
    root: str, name: str, x: str, y: str, color: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per grid point, its metrics): the sweep's runs averaged per (x, y, cell,
    activation), shaped so the phase-diagram builder draws exactly those means.

    The builder averages runs that share a heatmap cell; handing it one row per grid point
    (e.g. the mean over seeds) instead of every run keeps a 1,000-run sweep fast. The value of
    ``color`` rides in what the builder reads with no step given: ``decay_rate`` in the row,
    ``loss_ratio`` as final_loss / baseline_loss (= mean ratio / 1), ``first_fraction`` as a
    two-point ‖∂L/∂h‖ series (mean ratio at t = 0, 1 at t = 1).
    """
    frame = data.sweep_runs(root, name)
    values = data.run_summaries(root, list(frame["run_id"]), [color])
    keys = list(dict.fromkeys([x, y, "cell", "activation"]))
    keys = [k for k in keys if k in frame]
    table = frame[["run_id", *keys]].merge(values, on="run_id", how="left")
    table[keys] = table[keys].astype(object).where(table[keys].notna(), "∅")
    means = table.groupby(keys, sort=True, dropna=False)[color].mean().reset_index()
    rows: list[dict[str, Any]] = []
    metric_rows: list[dict[str, Any]] = []
    for i, point in enumerate(means.to_dict("records")):
        value = point.pop(color)
        row = {k: (None if v == "∅" else v) for k, v in point.items()}
        row["run_id"] = f"point-{i}"
        if color == "decay_rate":
            row["decay_rate"] = value
        elif color == "loss_ratio":
            row.update(final_loss=value, baseline_loss=1.0)
        else:
            for t, v in ((0, value), (1, 1.0)):
                metric_rows.append(
                    dict(
                        run_id=row["run_id"],
                        step=0,
                        probe=GradHiddenProbe.probe,
                        name="norm",
                        layer=0,
                        direction=0,
                        t=t,
                        value=v,
                    )
                )
        rows.append(row)
    metrics = pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS))
    return pd.DataFrame(rows), metrics


def figure(root: str, name: str, values: dict[str, Any]) -> go.Figure:
    """The phase diagram of sweep ``name`` with x, y and color from ``values``."""
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
        rows, metrics = grid_points(root, name, x, y, color)
        fig = spec.builder(FigureData(metrics=metrics, runs=rows), **options)
    except data.DataError as exc:
        return common.error_figure(spec.title, str(exc))
    except Exception as exc:
        common.log.exception("phase diagram of sweep %s failed", name)
        return common.error_figure(spec.title, f"This figure could not be drawn: {exc}")
    meta = dict(fig.layout.meta or {})
    if isinstance(meta.get("gradlab"), dict):  # name the real runs, not the grid points
        meta["gradlab"] = {**meta["gradlab"], "run_ids": list(frame["run_id"]), "sweep": name}
        fig.update_layout(meta=meta)
    return fig


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
    counts = frame["status"].value_counts().to_dict()
    status = ", ".join(f"{n} {s}" for s, n in counts.items())
    spec = common.FIGURES[FIGURE]

    def dropdown(label: str, cid: str, opts: list[Any], value: Any) -> html.Div:
        return html.Div(
            [html.Label(label), dcc.Dropdown(opts, value, id=cid, clearable=False)],
            className="control",
        )

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
                    dropdown("x axis", CONTROLS["x"], axes, x),
                    dropdown("y axis", CONTROLS["y"], axes, y),
                    dropdown(
                        "colour",
                        CONTROLS["color"],
                        [
                            {"label": COLOR_TEXT.get(c, COLOR_LABELS.get(c, c)), "value": c}
                            for c in COLORS
                        ],
                        color,
                    ),
                ],
                className="controls",
            ),
            html.P("Click a cell to open its runs.", className="muted"),
            html.Div(id=f"{PREFIX}-export-msg"),
            html.Div(id=f"{PREFIX}-click-msg"),
            html.Div(common.figure_card(PREFIX, spec), className="figures figures-wide"),
        ],
        className="sweep-page",
    )


# ----------------------------------------------------------------------------- callbacks
@callback(
    Output(f"{PREFIX}-fig-{FIGURE}", "figure"),
    Input(f"{PREFIX}-name", "data"),
    *[Input(cid, "value") for cid in CONTROLS.values()],
)
def update_phase_diagram(name: str, x: str, y: str, color: str) -> go.Figure:
    """Redraw the phase diagram for the chosen axes and colour."""
    return figure(data.current_root(), name, {"x": x, "y": y, "color": color})


@callback(
    Output(f"{PREFIX}-url", "search"),
    *[Input(cid, "value") for cid in CONTROLS.values()],
    prevent_initial_call=True,
)
def url_search(x: Any, y: Any, color: Any) -> str:
    """The chosen axes and colour as the query string."""
    return common.query(x=x, y=y, color=color)


def _matches(values: pd.Series, target: Any) -> pd.Series:
    """Rows of ``values`` equal to a clicked coordinate (numbers compared as floats)."""
    try:
        number = float(target)
    except (TypeError, ValueError):
        return values.astype(str) == str(target)
    as_float = pd.to_numeric(values, errors="coerce")
    return as_float.map(lambda v: math.isfinite(v) and math.isclose(v, number, rel_tol=1e-9))


def runs_at(
    root: str, name: str, x: str, y: str, point: dict[str, Any], panel: str | None
) -> list[str]:
    """Run ids of sweep ``name`` at a clicked point (and of cell ``panel`` when faceted)."""
    frame = data.sweep_runs(root, name)
    if x not in frame or y not in frame:
        return []
    keep = _matches(frame[x], point.get("x")) & _matches(frame[y], point.get("y"))
    if panel and "cell" in frame and panel in set(frame["cell"].astype(str)):
        keep &= frame["cell"].astype(str) == panel
    return list(frame.loc[keep.fillna(False).astype(bool), "run_id"])


def click_target(
    root: str,
    name: str,
    x: str,
    y: str,
    click: dict[str, Any] | None,
    fig: dict[str, Any] | None,
) -> tuple[str | None, str]:
    """(where a click on the diagram leads, a note): /compare?runs=... or the filtered table."""
    points = (click or {}).get("points") or []
    if not points:
        return None, ""
    point = points[0]
    panel = None
    traces = (fig or {}).get("data") or []
    number = point.get("curveNumber")
    if isinstance(number, int) and 0 <= number < len(traces):
        trace = traces[number]
        const = ((trace.get("meta") or {}).get("const") or {}) if isinstance(trace, dict) else {}
        panel = const.get("cell") or None
    ids = runs_at(root, name, x, y, point, panel)
    if not ids:
        return None, f"No runs at {x} = {point.get('x')}, {y} = {point.get('y')}."
    if len(ids) <= MAX_COMPARE:
        return f"/compare{common.query(runs=ids)}", ""
    filters = {"sweep": name, x: point.get("x"), y: point.get("y")}
    if panel:
        filters["cell"] = panel
    return f"/{common.query(**filters)}", ""


@callback(
    Output(f"{PREFIX}-nav", "href"),
    Output(f"{PREFIX}-click-msg", "children"),
    Input(f"{PREFIX}-fig-{FIGURE}", "clickData"),
    State(f"{PREFIX}-fig-{FIGURE}", "figure"),
    State(f"{PREFIX}-name", "data"),
    State(CONTROLS["x"], "value"),
    State(CONTROLS["y"], "value"),
    prevent_initial_call=True,
)
def open_cell(click: Any, fig: Any, name: str, x: str, y: str) -> tuple[Any, Any]:
    """Open the runs of the clicked cell."""
    href, note = click_target(data.current_root(), name, x, y, click, fig)
    if href is None:
        return no_update, common.message(note, "info") if note else no_update
    return href, ""


@callback(
    Output(f"{PREFIX}-download", "data"),
    Output(f"{PREFIX}-export-msg", "children"),
    Input({"type": f"{PREFIX}-export", "fig": ALL, "fmt": ALL}, "n_clicks"),
    State(f"{PREFIX}-name", "data"),
    *[State(cid, "value") for cid in CONTROLS.values()],
    prevent_initial_call=True,
)
def export(clicks: list[Any], name: str, *values: Any) -> tuple[Any, Any]:
    """CSV / PNG / PDF of the phase diagram as it is on screen."""
    root = data.current_root()
    current = dict(zip(CONTROLS, values, strict=True))
    return common.export_callback(
        ctx.triggered_id,
        common.triggered_value(),
        lambda _: figure(root, name, current),
        f"sweep-{name}",
    )
