"""Compare page (``/compare?runs=a,b,...``): the same quantities overlaid for several runs.

The "LSTM's remedy" view: an RNN and its LSTM / GRU counterparts on one axis each — per-timestep
gradient norms with their fitted decay, ‖∂s_T/∂s_k‖ against lag, saturation, training curves.
``?runs=`` names the runs (ids that are malformed or unknown are listed, the rest drawn), in the
order that gives them their colours (`gradlab.figures.run_styles`: the k-th run the k-th colour,
in every figure and in the run list's swatches; a run page's "Compare with" links put its run
first, so it keeps the colour it had there); ``&step=&quantity=&scale=&color_by=`` set the
controls and are written back when they change.
"""

from __future__ import annotations

from typing import Any

import dash
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, ctx, dcc, html

from dashboards import data
from dashboards.pages import _common as common
from gradlab.figures import FLOW, FigureData, run_styles
from gradlab.figures.quantities import QUANTITIES
from gradlab.figures.style import cell_color

PREFIX = "compare"

dash.register_page(__name__, path="/compare", title="Compare · gradlab", name="Compare", order=2)

SPECS = common.specs("runs")
#: Most runs drawn at once (more are listed but left out, so figures stay readable and fast).
MAX_RUNS = 12
LATEST = "latest"
CONTROLS = {
    "step": f"{PREFIX}-step",
    "quantity": f"{PREFIX}-quantity",
    "scale": f"{PREFIX}-scale",
    "color_by": f"{PREFIX}-color-by",
}
DEFAULTS = {"step": LATEST, "quantity": "grad_hidden", "scale": "log", "color_by": "run"}


def uses(spec: Any) -> tuple[str, ...]:
    """The controls that change ``spec``'s figure."""
    accepted = common.accepts(spec)
    used = [c for c in ("step", "scale", "color_by") if c in accepted]
    if "quantity" in accepted and spec.group == FLOW:
        used.append("quantity")
    return tuple(c for c in CONTROLS if c in used)


def options(run_ids: list[str], values: dict[str, Any]) -> dict[str, Any]:
    """Builder options from control values (step "latest" → each run's latest)."""
    out: dict[str, Any] = {"run_ids": list(run_ids)}
    for key, value in values.items():
        if key == "step":
            out["step"] = None if value in (None, LATEST) else common.as_int(value)
        elif key == "color_by":
            out["color_by"] = common.color_by(value)
        elif value is not None:
            out[key] = value
    return out


def figure(root: str, name: str, run_ids: list[str], values: dict[str, Any]) -> go.Figure:
    """Figure ``name`` of ``run_ids`` overlaid, with the control ``values`` it uses."""
    spec = next((s for s in SPECS if s.name == name), None)
    if spec is None:
        return common.error_figure(name, f"There is no comparison figure {name!r}.")
    if not run_ids:
        return common.error_figure(spec.title, "No runs to compare.")
    used = {k: v for k, v in values.items() if k in uses(spec)}
    return common.build_figure(root, name, run_ids, options(run_ids, used))


def resolve(root: str, runs: Any) -> tuple[list[str], list[str]]:
    """(ids of the ``?runs=`` value that can be drawn, messages about the others)."""
    ids, problems = data.parse_run_ids(runs)
    good = []
    for run_id in ids:
        problem = data.run_problem(root, run_id)
        if problem:
            problems.append(problem)
        else:
            good.append(run_id)
    if len(good) > MAX_RUNS:
        problems.append(f"Only the first {MAX_RUNS} of {len(good)} runs are drawn.")
        good = good[:MAX_RUNS]
    return good, problems


# ----------------------------------------------------------------------------- layout
def run_colours(root: str, run_ids: list[str], color_by: Any = None) -> dict[str, Any]:
    """run id → its RunStyle in the figures (the same `run_styles` the builders use)."""
    rows = data.runs(root)
    rows = rows[rows["run_id"].isin(run_ids)]
    return run_styles(FigureData(runs=rows), run_ids, common.color_by(color_by))


def run_items(root: str, run_ids: list[str], color_by: Any = None) -> list[html.Li]:
    """One item per compared run: a swatch of its colour in the figures, its cell tag, a link
    to its run page, a link that drops it."""
    styles = run_colours(root, run_ids, color_by)
    items = []
    for run_id in run_ids:
        row = data.run_row(root, run_id)
        cell = row.get("cell")
        st = styles[run_id]
        rest = [r for r in run_ids if r != run_id]
        facts = " · ".join(
            f"{k} {row[k]}" for k in ("seq_len", "gain", "seed") if row.get(k) is not None
        )
        items.append(
            html.Li(
                [
                    html.Span(
                        className="run-swatch",
                        style={"backgroundColor": st.color},
                        title=f"{run_id} in the figures: {st.color}, {st.dash} line",
                        **{"data-color": st.color},
                    ),
                    html.Span(
                        str(cell or "?"),
                        className="cell-tag",
                        style={"backgroundColor": cell_color(cell)},
                    ),
                    dcc.Link(run_id, href=f"/run/{run_id}"),
                    html.Span(f" {facts} · {row.get('status')}", className="muted"),
                    dcc.Link(
                        " ×",
                        href=f"/compare{common.query(runs=rest)}",
                        className="remove",
                        title="leave this run out",
                    ),
                ]
            )
        )
    return items


def run_list(root: str, run_ids: list[str], color_by: Any = None) -> html.Ul:
    """The compared runs (`run_items`); redrawn when the "colour by" control changes."""
    return html.Ul(
        run_items(root, run_ids, color_by), className="compare-runs", id=f"{PREFIX}-runs"
    )


def colour_choice(
    root: str, run_ids: list[str], query: dict[str, Any]
) -> tuple[list[dict[str, str]], str | None]:
    """(the "colour by" control's options for these runs, its value from the query)."""
    colours = common.color_by_options([data.run_row(root, r) for r in run_ids])
    value = common.choice(
        query.get("color_by"), [o["value"] for o in colours], DEFAULTS["color_by"]
    )
    return colours, value


def controls(root: str, run_ids: list[str], query: dict[str, Any]) -> html.Div:
    """Step (latest, or a step every run recorded), quantity, scale and colour, set from the
    query."""
    common_steps: set[int] | None = None
    have: set[tuple[str, str]] = set()
    for run_id in run_ids:
        steps = set(data.recorded_steps(root, run_id))
        common_steps = steps if common_steps is None else common_steps & steps
        have |= data.series(root, run_id)
    step_values = [LATEST] + [str(s) for s in sorted(common_steps or ())]
    step = common.one(query.get("step"))
    step = step if step in step_values else LATEST
    flow = common.flow_quantities(have)
    quantity = common.choice(query.get("quantity"), flow, flow[0])
    scale = common.choice(query.get("scale"), common.SCALES, DEFAULTS["scale"])
    colours, color_by = colour_choice(root, run_ids, query)
    step_options = [{"label": "latest (each run's)", "value": LATEST}] + [
        {"label": f"step {s}", "value": s} for s in step_values[1:]
    ]
    return html.Div(
        [
            html.Div(
                [
                    html.Label("training step"),
                    dcc.Dropdown(step_options, step, id=CONTROLS["step"], clearable=False),
                ],
                className="control",
            ),
            html.Div(
                [
                    html.Label("quantity"),
                    dcc.Dropdown(
                        [{"label": QUANTITIES[k].text, "value": k} for k in flow],
                        quantity,
                        id=CONTROLS["quantity"],
                        clearable=False,
                    ),
                ],
                className="control",
            ),
            html.Div(
                [
                    html.Label("scale"),
                    dcc.RadioItems(common.SCALES, scale, id=CONTROLS["scale"], inline=True),
                ],
                className="control",
            ),
            html.Div(
                [
                    html.Label("colour by"),
                    dcc.Dropdown(colours, color_by, id=CONTROLS["color_by"], clearable=False),
                ],
                className="control",
            ),
        ],
        className="controls",
    )


@common.safe_layout("Compare runs")
def layout(runs: Any = None, **query: Any) -> html.Div:
    """Overlaid figures of ``?runs=``; what to do when none are given."""
    root = data.current_root()
    run_ids, problems = resolve(root, runs)
    body: list[Any] = [
        html.Div(html.H2("Compare runs"), className="page-head"),
        *[common.message(p, "warning") for p in problems],
    ]
    if not run_ids:
        body += [
            common.message(
                [
                    "No runs to compare. Tick runs on the ",
                    dcc.Link("Runs page", href="/"),
                    " and press Compare, or open a run and follow its "
                    "“Compare with LSTM / GRU” link.",
                ],
                "info",
                id=f"{PREFIX}-empty",
            ),
            html.Div(id=f"{PREFIX}-selected"),
        ]
        return html.Div(body, className="compare-page")
    body += [
        dcc.Location(id=f"{PREFIX}-url", refresh=False),
        dcc.Store(id=f"{PREFIX}-ids", data=run_ids),
        dcc.Download(id=f"{PREFIX}-download"),
        run_list(root, run_ids, colour_choice(root, run_ids, query)[1]),
        common.annotation_line(root, run_ids, id=f"{PREFIX}-annotations"),  # tags and notes
        controls(root, run_ids, query),
        html.Div(id=f"{PREFIX}-export-msg"),
        html.Div([common.figure_card(PREFIX, s) for s in SPECS], className="figures"),
    ]
    return html.Div(body, className="compare-page")


# ----------------------------------------------------------------------------- callbacks
def _figure_callback(spec: Any):
    names = uses(spec)

    def update(run_ids: list[str], *values: Any) -> go.Figure:
        current = dict(zip(names, values, strict=True))
        return figure(data.current_root(), spec.name, list(run_ids or []), current)

    update.__name__ = f"update_{spec.name}"
    return callback(
        Output(f"{PREFIX}-fig-{spec.name}", "figure"),
        Input(f"{PREFIX}-ids", "data"),
        *[Input(CONTROLS[n], "value") for n in names],
    )(update)


#: figure name → its callback (a plain function: call it inside a request context).
FIGURE_CALLBACKS = {spec.name: _figure_callback(spec) for spec in SPECS}


@callback(
    Output(f"{PREFIX}-selected", "children"),
    Input("selected-runs", "data"),
)
def offer_selection(selected: list[str] | None) -> Any:
    """On an empty compare page: a link to compare the runs ticked on the Runs page."""
    ids, _ = data.parse_run_ids(selected or [])
    if len(ids) < 2:
        return None
    return dcc.Link(
        f"Compare the {len(ids)} runs ticked on the Runs page",
        href=f"/compare{common.query(runs=ids)}",
        className="btn",
    )


@callback(
    Output(f"{PREFIX}-url", "search"),
    Input(f"{PREFIX}-ids", "data"),
    *[Input(cid, "value") for cid in CONTROLS.values()],
    prevent_initial_call=True,
)
def url_search(
    run_ids: list[str], step: Any, quantity: Any, scale: Any, color_by: Any = None
) -> str:
    """``?runs=...`` and the controls that differ from their defaults."""
    values = {"step": step, "quantity": quantity, "scale": scale, "color_by": color_by}
    kept = {k: v for k, v in values.items() if v is not None and v != DEFAULTS[k]}
    return common.query(runs=list(run_ids or []), **kept)


@callback(
    Output(f"{PREFIX}-runs", "children"),
    Input(CONTROLS["color_by"], "value"),
    State(f"{PREFIX}-ids", "data"),
    prevent_initial_call=True,
)
def recolour_runs(color_by: Any, run_ids: list[str]) -> list[html.Li]:
    """The run list's swatches follow the "colour by" control."""
    return run_items(data.current_root(), list(run_ids or []), color_by)


@callback(
    Output(f"{PREFIX}-download", "data"),
    Output(f"{PREFIX}-export-msg", "children"),
    Input({"type": f"{PREFIX}-export", "fig": ALL, "fmt": ALL}, "n_clicks"),
    State(f"{PREFIX}-ids", "data"),
    *[State(cid, "value") for cid in CONTROLS.values()],
    prevent_initial_call=True,
)
def export(clicks: list[Any], run_ids: list[str], *values: Any) -> tuple[Any, Any]:
    """CSV / PNG / PDF of the clicked figure, rebuilt from the current controls."""
    root = data.current_root()
    current = dict(zip(CONTROLS, values, strict=True))
    return common.export_callback(
        ctx.triggered_id,
        common.triggered_value(),
        lambda name: figure(root, name, list(run_ids or []), current),
        "compare",
    )
