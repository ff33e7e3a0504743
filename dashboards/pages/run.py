"""Run page (``/run/<run_id>``): every figure of one run, and the controls that shape them.

The URL holds the view: ``?step=&quantity=&norm=&scale=&layer=&color_by=`` set the controls when
the page loads, and changing a control writes them back (``dcc.Location(refresh=False)``), so a
reload or a shared link shows the same thing. Each figure has its own callback on just the
controls it uses; the figure itself comes from ``gradlab.figures`` fed by ``dashboards.data``.

The step slider runs over the INDEX of the recorded steps (0..n−1, marks labelled by step), so
mouse and keyboard (arrow keys move by 1) can only land on a recorded step; callbacks map the
index back to the step (`step_at`). A URL step that was not recorded snaps to the nearest
recorded one, and the page says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dash
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, ctx, dcc, html

from dashboards import data
from dashboards.pages import _common as common
from gradlab.figures import FLOW
from gradlab.figures.quantities import QUANTITIES
from gradlab.figures.style import cell_color

PREFIX = "run"


def _title(run_id: str | None = None, **_: Any) -> str:
    return f"Run {str(run_id)[:40]} · gradlab"


dash.register_page(__name__, path_template="/run/<run_id>", title=_title, name="Run", order=1)

#: The run's figures, in FIGURES order.
SPECS = common.specs(("run", "runs"))
SCALES = common.SCALES
NORMS = ("spectral", "fro")
DEFAULTS = {
    "quantity": "grad_hidden",
    "norm": "spectral",
    "scale": "log",
    "layer": "0:0",
    "color_by": common.OWN_COLOUR,
}
#: control → component id (the page's controls, in the order callbacks receive them).
CONTROLS = {
    "step": f"{PREFIX}-step",
    "quantity": f"{PREFIX}-quantity",
    "norm": f"{PREFIX}-norm",
    "scale": f"{PREFIX}-scale",
    "layer": f"{PREFIX}-layer",
    "color_by": f"{PREFIX}-color-by",
}


def uses(spec: Any) -> tuple[str, ...]:
    """The page controls that change ``spec``'s figure (a subset of CONTROLS)."""
    accepted = common.accepts(spec)
    used = [c for c in ("step", "norm", "scale", "layer", "color_by") if c in accepted]
    if "quantity" in accepted and spec.group == FLOW:
        used.append("quantity")
    return tuple(c for c in CONTROLS if c in used)


def options(run_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Builder options from control values (``layer`` "L:D" → layer and direction)."""
    out: dict[str, Any] = {"run_id": run_id, "run_ids": [run_id]}
    for key, value in values.items():
        if key == "layer":
            layer, direction = _layer(value)
            out.update(layer=layer, direction=direction)
        elif key == "step":
            out["step"] = common.as_int(value)
        elif key == "color_by":
            out["color_by"] = common.color_by(value)
        elif value is not None:
            out[key] = value
    return out


def _layer(value: Any) -> tuple[int, int]:
    try:
        layer, direction = (int(v) for v in str(value).split(":"))
    except ValueError:
        return 0, 0
    return layer, direction


def step_at(steps: list[int], index: Any) -> int | None:
    """The recorded step at slider position ``index`` (None if out of range or not a number)."""
    i = common.as_int(index)
    return int(steps[i]) if i is not None and 0 <= i < len(steps) else None


def control_values(root: str, run_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Control values with the slider's index turned into the recorded step it stands for."""
    out = dict(values)
    if "step" in out:
        out["step"] = step_at(data.recorded_steps(root, run_id), out["step"])
    return out


def figure(root: str, name: str, run_id: str, values: dict[str, Any]) -> go.Figure:
    """Figure ``name`` of the run with control ``values`` (only those it uses are applied;
    ``step`` is a training step, see `control_values`)."""
    spec = next((s for s in SPECS if s.name == name), None)
    if spec is None:
        return common.error_figure(name, f"There is no run figure {name!r}.")
    used = {k: v for k, v in values.items() if k in uses(spec)}
    return common.build_figure(root, name, [run_id], options(run_id, used))


# ----------------------------------------------------------------------------- layout
def _problem(text: str) -> html.Div:
    return html.Div(
        [
            html.H2("Run"),
            common.message(text, id=f"{PREFIX}-problem"),
            html.P(dcc.Link("← all runs", href="/")),
        ],
        className="run-page",
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


INFO_KEYS = (
    "sweep",
    "task",
    "cell",
    "activation",
    "seq_len",
    "hidden_size",
    "num_layers",
    "bidirectional",
    "init",
    "gain",
    "bias_scale",
    "forget_bias",
    "update_bias",
    "optimizer",
    "lr",
    "batch_size",
    "steps",
    "clip",
    "truncate",
    "seed",
    "dtype",
    "adjoint_dtype",
)
#: Summary keys shown, with what each measures and at which training step.
SUMMARY_KEYS = (
    "final_loss",
    "baseline_loss",
    "loss_ratio",
    "decay_rate",
    "decay_rate_init",
    "adjoint_decay_rate",
    "theory_rate",
)
SUMMARY_TEXT = {
    "decay_rate": "state decay rate ‖∂s_T/∂s_k‖, last step",
    "decay_rate_init": "state decay rate ‖∂s_T/∂s_k‖, step 0",
    "adjoint_decay_rate": "∂L/∂h decay rate, last step",
    "theory_rate": "theory rate, at initialisation",
}


def header(root: str, run_id: str, row: dict[str, Any]) -> list[Any]:
    """Title, status, config, summary and counterpart links of the run."""
    cell = row.get("cell")
    status = row.get("status") or "?"
    title = html.H2(
        [
            html.Span(
                str(cell or "run").upper(),
                className="cell-tag",
                style={"backgroundColor": cell_color(cell)},
            ),
            f" Run {run_id} ",
            html.Span(status, className=f"status status-{status}"),
        ]
    )
    config = html.Dl(
        [
            part
            for key in INFO_KEYS
            if row.get(key) is not None
            for part in (html.Dt(key), html.Dd(_fmt(row.get(key))))
        ],
        className="run-config",
    )
    summary = html.Dl(
        [
            part
            for key in SUMMARY_KEYS
            if row.get(key) is not None
            for part in (
                html.Dt(SUMMARY_TEXT.get(key, key.replace("_", " "))),
                html.Dd(_fmt(row.get(key))),
            )
        ],
        className="run-summary",
    )
    out: list[Any] = [title, html.Div([config, summary], className="run-facts")]
    reason = row.get("reason")
    if status == "interrupted" and not reason:
        reason = "the process writing this run stopped before it finished (killed or crashed)"
    if status in ("failed", "diverged", "running", "interrupted") and reason:
        kind = "info" if status == "running" else "warning"
        text = str(reason).strip().splitlines()
        out.append(
            common.message(
                [
                    html.B(f"{status}: "),
                    text[-1] if text else "",
                    html.Details([html.Summary("details"), html.Pre(str(reason)[-4000:])]),
                ],
                kind,
                id=f"{PREFIX}-reason",
            )
        )
    out.append(counterpart_links(root, run_id))
    return out


def counterpart_links(root: str, run_id: str) -> html.Div:
    """ "Compare with LSTM / GRU / RNN" links to the same sweep's other cells."""
    try:
        others = data.counterparts(root, run_id)
    except data.DataError:
        others = []
    if not others:
        return html.Div(
            "No counterpart with another cell in this run's sweep.",
            className="counterparts muted",
            id=f"{PREFIX}-counterparts",
        )
    links: list[Any] = []
    by_cell: dict[str, list[str]] = {}
    for item in others:
        by_cell.setdefault(str(item["cell"]), []).append(item["run_id"])
    for cell, ids in by_cell.items():
        links.append(
            dcc.Link(
                f"Compare with {cell.upper()}",
                href=f"/compare{common.query(runs=[run_id, *ids])}",
                className="btn",
                id={"type": f"{PREFIX}-counterpart", "cell": cell},
            )
        )
        links += [
            dcc.Link(f"open {cell} {i}", href=f"/run/{i}", className="small-link") for i in ids
        ]
    if len(by_cell) > 1:
        every = [i for ids in by_cell.values() for i in ids]
        links.append(
            dcc.Link(
                "Compare all cells",
                href=f"/compare{common.query(runs=[run_id, *every])}",
                className="btn",
                id={"type": f"{PREFIX}-counterpart", "cell": "all"},
            )
        )
    return html.Div(links, className="counterparts", id=f"{PREFIX}-counterparts")


def step_slider(steps: list[int], index: int | None) -> dcc.Slider:
    """Slider over the positions 0..n−1 of the recorded steps (mouse and arrow keys can only
    land on a recorded step), a mark at each, a few labelled with their step."""
    if not steps:
        return dcc.Slider(0, 0, value=0, disabled=True, id=CONTROLS["step"], marks=None)
    labelled = {0, len(steps) - 1}
    if len(steps) > 2:
        stride = max(1, (len(steps) - 1) // 6)
        labelled.update(range(0, len(steps), stride))
    marks = {i: (str(s) if i in labelled else "") for i, s in enumerate(steps)}
    return dcc.Slider(
        min=0,
        max=len(steps) - 1,
        step=1,
        value=index,
        marks=marks,
        id=CONTROLS["step"],
        updatemode="mouseup",
        allow_direct_input=False,
        included=False,
    )


def snapped_notice(requested: int | None, shown: int | None) -> Any:
    """ "step 52 was not recorded; showing 50" when the URL asked for a step that is not there
    (None when it is, or none was asked for)."""
    if requested is None or shown is None or requested == shown:
        return None
    return common.message(f"step {requested} was not recorded; showing {shown}", "info")


def controls(root: str, run_id: str, row: dict[str, Any], query: dict[str, Any]) -> html.Div:
    """The step slider (with the step it shows, and a notice when the URL's step was not
    recorded) and the quantity / norm / scale / layer / colour pickers, set from the query."""
    steps = data.recorded_steps(root, run_id)
    requested = common.as_int(query.get("step"))
    step = data.nearest(steps, requested)
    index = steps.index(step) if step is not None else None
    colours = common.color_by_options([row])
    color_by = common.choice(
        query.get("color_by"), [o["value"] for o in colours], DEFAULTS["color_by"]
    )
    have = data.series(root, run_id)
    flow = common.flow_quantities(have)
    quantity = common.choice(query.get("quantity"), flow, flow[0])
    norm = common.choice(query.get("norm"), NORMS, DEFAULTS["norm"])
    scale = common.choice(query.get("scale"), SCALES, DEFAULTS["scale"])
    layers = []
    for layer in range(int(row.get("num_layers") or 1)):
        for direction in (0, 1) if row.get("bidirectional") else (0,):
            label = f"layer {layer}" + (" reverse" if direction else "")
            layers.append({"label": label, "value": f"{layer}:{direction}"})
    layer = common.choice(query.get("layer"), [o["value"] for o in layers], "0:0")

    def labelled(label: str, component: Any, **kw: Any) -> html.Div:
        return html.Div([html.Label(label), component], className="control", **kw)

    slider = html.Div(
        [
            html.Label(["training step ", html.Span(_step_text(step), id=f"{PREFIX}-step-shown")]),
            step_slider(steps, index),
            html.Div(snapped_notice(requested, step), id=f"{PREFIX}-step-notice"),
        ],
        className="control",
        style={"flex": "3 1 320px"},
    )
    return html.Div(
        [
            slider,
            labelled(
                "quantity",
                dcc.Dropdown(
                    [{"label": QUANTITIES[k].text, "value": k} for k in flow],
                    quantity,
                    id=CONTROLS["quantity"],
                    clearable=False,
                ),
            ),
            labelled(
                "Jacobian norm",
                dcc.RadioItems(
                    [
                        {"label": " spectral", "value": "spectral"},
                        {"label": " Frobenius", "value": "fro"},
                    ],
                    norm,
                    id=CONTROLS["norm"],
                    inline=True,
                ),
            ),
            labelled(
                "scale",
                dcc.RadioItems(SCALES, scale, id=CONTROLS["scale"], inline=True),
            ),
            labelled(
                "layer",
                dcc.Dropdown(layers, layer, id=CONTROLS["layer"], clearable=False),
                style={} if len(layers) > 1 else {"display": "none"},
            ),
            labelled(
                "colour by",
                dcc.Dropdown(colours, color_by, id=CONTROLS["color_by"], clearable=False),
            ),
        ],
        className="controls",
    )


def _step_text(step: int | None) -> str:
    return f"(step {step})" if step is not None else ""


@common.safe_layout("Run")
def layout(run_id: str | None = None, **query: Any) -> html.Div:
    """The page of ``run_id``; a message (never a traceback) when it cannot be shown."""
    root = data.current_root()
    try:
        run_id = data.check_run_id(run_id)
        problem = data.run_problem(root, run_id)
        if problem:
            return _problem(problem)
        row = data.run_row(root, run_id)
    except data.DataError as exc:
        return _problem(str(exc))
    series = data.series(root, run_id)
    arrays = data.array_names(root, run_id)
    shown = [s for s in SPECS if s.has_data(series, arrays)]
    body: list[Any] = [
        dcc.Location(id=f"{PREFIX}-url", refresh=False),
        dcc.Store(id=f"{PREFIX}-id", data=run_id),
        dcc.Download(id=f"{PREFIX}-download"),
        *header(root, run_id, row),
        controls(root, run_id, row, query),
        html.Div(id=f"{PREFIX}-export-msg"),
    ]
    if not shown:
        body.append(common.message("This run has no recorded data to draw yet.", "info"))
    body.append(html.Div([common.figure_card(PREFIX, s) for s in shown], className="figures"))
    return html.Div(body, className="run-page")


# ----------------------------------------------------------------------------- callbacks
def _figure_callback(spec: Any) -> Callable[..., go.Figure]:
    names = uses(spec)

    def update(run_id: str, *values: Any) -> go.Figure:
        root = data.current_root()
        current = control_values(root, run_id, dict(zip(names, values, strict=True)))
        return common.on_screen(figure(root, spec.name, run_id, current))

    update.__name__ = f"update_{spec.name}"
    update.__doc__ = f"Redraw {spec.name} when {', '.join(names) or 'the run'} changes."
    return callback(
        Output(f"{PREFIX}-fig-{spec.name}", "figure"),
        Input(f"{PREFIX}-id", "data"),
        *[Input(CONTROLS[n], "value") for n in names],
    )(update)


#: figure name → its callback (a plain function: call it inside a request context).
FIGURE_CALLBACKS = {spec.name: _figure_callback(spec) for spec in SPECS}
common.summary_cards(PREFIX, FIGURE_CALLBACKS)


@callback(
    Output({"type": f"{PREFIX}-counterpart", "cell": ALL}, "href"),
    Input(f"{PREFIX}-url", "search"),
    State({"type": f"{PREFIX}-counterpart", "cell": ALL}, "href"),
)
def compare_links(search: str | None, hrefs: list[str]) -> list[str]:
    """The "Compare with ..." links carry the page's step, quantity, scale and colouring."""
    return [common.carry_view(h, search) for h in hrefs or []]


@callback(
    Output(f"{PREFIX}-url", "search"),
    *[Input(cid, "value") for cid in CONTROLS.values()],
    State(f"{PREFIX}-id", "data"),
    prevent_initial_call=True,
)
def url_search(
    index: Any, quantity: Any, norm: Any, scale: Any, layer: Any, color_by: Any, run_id: str
) -> str:
    """The query string of the current controls (defaults left out, the step always in)."""
    values = {
        "quantity": quantity,
        "norm": norm,
        "scale": scale,
        "layer": layer,
        "color_by": color_by,
    }
    kept = {k: v for k, v in values.items() if v is not None and v != DEFAULTS[k]}
    step = step_at(data.recorded_steps(data.current_root(), run_id), index)
    return common.query(step=step, **kept)


@callback(
    Output(f"{PREFIX}-step-shown", "children"),
    Output(f"{PREFIX}-step-notice", "children"),
    Input(CONTROLS["step"], "value"),
    State(f"{PREFIX}-id", "data"),
    prevent_initial_call=True,
)
def step_shown(index: Any, run_id: str) -> tuple[str, Any]:
    """The step the slider stands on, beside its label; a moved slider clears the notice."""
    step = step_at(data.recorded_steps(data.current_root(), run_id), index)
    return _step_text(step), None


@callback(
    Output(f"{PREFIX}-download", "data"),
    Output(f"{PREFIX}-export-msg", "children"),
    Input({"type": f"{PREFIX}-export", "fig": ALL, "fmt": ALL}, "n_clicks"),
    State(f"{PREFIX}-id", "data"),
    *[State(cid, "value") for cid in CONTROLS.values()],
    prevent_initial_call=True,
)
def export(clicks: list[Any], run_id: str, *values: Any) -> tuple[Any, Any]:
    """CSV / PNG / PDF of the figure whose button was clicked, as it is on screen."""
    root = data.current_root()
    current = control_values(root, run_id, dict(zip(CONTROLS, values, strict=True)))
    return common.export_callback(
        ctx.triggered_id,
        common.triggered_value(),
        lambda name: figure(root, name, run_id, current),
        f"run-{run_id}",
    )
