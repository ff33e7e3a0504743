"""Run page (``/run/<run_id>``): every figure of one run, and the controls that shape them.

The URL holds the view: ``?step=&quantity=&norm=&scale=&layer=&color_by=`` set the controls when
the page loads, and changing a control writes them back (``dcc.Location(refresh=False)``), so a
reload or a shared link shows the same thing. Each figure has its own callback on just the
controls it uses; the figure itself comes from ``gradlab.figures`` fed by ``dashboards.data``.

The step slider runs over the INDEX of the recorded steps (0..n−1, marks labelled by step), so
mouse and keyboard (arrow keys move by 1) can only land on a recorded step; callbacks map the
index back to the step (`step_at`). A URL step that was not recorded snaps to the nearest
recorded one, and the page says so.

Live: while the run is ``running`` a ``dcc.Interval`` polls its change token
(``data.run_version``: a few stats) every POLL_MS. When recordings land, only the figures whose
series or arrays changed are redrawn (each figure has a ``{"type": "run-data", "fig": name}``
store holding a token of its data, an input of its callback; the poll sets only the tokens that
changed), the slider gains the new steps (and follows them only if it stood on the latest), and
the header shows the new status. Figures keep the user's zoom across updates (``uirevision``).
Polling stops once the run has finished (one last poll picks up its final summary).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dash
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from dashboards import data
from dashboards.pages import _common as common
from gradlab.figures import FLOW
from gradlab.figures.quantities import QUANTITIES, TRAIN
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
    "smooth": 0,
}
#: How often (ms) the page of a running run looks for new recordings.
POLL_MS = 2000
#: Id type of the per-figure stores holding a token of the figure's data.
DATA_TOKEN = f"{PREFIX}-data"
#: How many figures (the first row) the page brings drawn; the others come from callbacks.
INLINE_FIGURES = 2
#: Prefix of the data token of a figure the page brought drawn.
INLINE = "inline:"
#: control → component id (the page's controls, in the order callbacks receive them).
CONTROLS = {
    "step": f"{PREFIX}-step",
    "quantity": f"{PREFIX}-quantity",
    "norm": f"{PREFIX}-norm",
    "scale": f"{PREFIX}-scale",
    "layer": f"{PREFIX}-layer",
    "color_by": f"{PREFIX}-color-by",
    "smooth": f"{PREFIX}-smooth",
}


def uses(spec: Any) -> tuple[str, ...]:
    """The page controls that change ``spec``'s figure (a subset of CONTROLS)."""
    accepted = common.accepts(spec)
    used = [c for c in ("step", "norm", "scale", "layer", "color_by", "smooth") if c in accepted]
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
        elif key == "smooth":
            out["smooth"] = common.smoothing(value)
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
    out: list[Any] = [title, common.annotation_line(root, [run_id], id=f"{PREFIX}-annotations")]
    out.append(html.Div([config, summary], className="run-facts"))
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


def controls(
    root: str, run_id: str, row: dict[str, Any], query: dict[str, Any]
) -> tuple[html.Div, dict[str, Any]]:
    """The step slider (with the step it shows, and a notice when the URL's step was not
    recorded) and the quantity / norm / scale / layer / colour pickers, set from the query;
    and their values (control → value, the slider's as an index), as callbacks receive them."""
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
    smooth = common.smoothing(query.get("smooth"))
    has_training = any(probe == TRAIN for probe, _ in have)

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
    values = {
        "step": index,
        "quantity": quantity,
        "norm": norm,
        "scale": scale,
        "layer": layer,
        "color_by": color_by,
        "smooth": smooth,
    }
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
            common.smoothing_control(CONTROLS["smooth"], smooth, has_training),
        ],
        className="controls",
    ), values


def _step_text(step: int | None) -> str:
    return f"(step {step})" if step is not None else ""


@common.safe_layout("Run")
def layout(run_id: str | None = None, **query: Any) -> html.Div:
    """The page of ``run_id``; a message (never a traceback) when it cannot be shown."""
    root = data.current_root()
    try:
        run_id = data.resolve_run_id(root, run_id)  # a unique prefix names its run
        problem = data.run_problem(root, run_id)
        if problem:
            return _problem(problem)
        row = data.run_row(root, run_id)
    except data.DataError as exc:
        return _problem(str(exc))
    status, version = data.run_version(root, run_id)
    row = {**row, "status": status}  # the run's own state, newer than a cached runs table
    tokens = data_tokens(root, run_id)
    control_row, values = controls(root, run_id, row, query)
    # the first row of figures comes with the page (drawn as soon as plotly.js is loaded, while
    # the server builds the others for their callbacks): the first figure arrives sooner
    inline = {name: _figure(root, name, run_id, values) for name in list(tokens)[:INLINE_FIGURES]}
    body: list[Any] = [
        dcc.Location(id=f"{PREFIX}-url", refresh=False),
        dcc.Store(id=f"{PREFIX}-id", data=run_id),
        dcc.Download(id=f"{PREFIX}-download"),
        dcc.Interval(id=f"{PREFIX}-poll", interval=POLL_MS, disabled=status != "running"),
        dcc.Store(id=f"{PREFIX}-live", data=live_state(root, run_id, status, version, tokens, row)),
        html.Div(header(root, run_id, row), id=f"{PREFIX}-header"),
        control_row,
        html.Div(id=f"{PREFIX}-export-msg"),
        html.Div(figure_cards(tokens, inline), id=f"{PREFIX}-figures"),
    ]
    return html.Div(body, className="run-page")


def figure_cards(tokens: dict[str, str], inline: dict[str, go.Figure] | None = None) -> list[Any]:
    """The cards of the figures in ``tokens`` (name → data token, FIGURES order), each with
    the store of its token; a note instead when there are none. A figure in ``inline`` comes
    drawn, and its token is marked so that its callback's first call keeps it (`INLINE`)."""
    if not tokens:
        return [common.message("This run has no recorded data to draw yet.", "info")]
    inline = inline or {}
    cards: list[Any] = []
    for spec in SPECS:
        if spec.name in tokens:
            token = tokens[spec.name]
            if spec.name in inline:
                token = INLINE + token
            cards.append(dcc.Store(id={"type": DATA_TOKEN, "fig": spec.name}, data=token))
            cards.append(common.figure_card(PREFIX, spec, inline.get(spec.name)))
    return [html.Div(cards, className="figures")]


def data_tokens(root: str, run_id: str) -> dict[str, str]:
    """Figure name → a token of the data it draws (its series' rows and last step, its arrays'
    steps), for the figures the run has data for, in FIGURES order."""
    extent = data.series_extent(root, run_id)
    arrays = data.array_names(root, run_id)
    out = {}
    for spec in SPECS:
        if not spec.has_data(set(extent), arrays):
            continue
        parts: list[Any] = [
            (p, n, *extent[(p, n)]) for p, names in spec.probes for n in names if (p, n) in extent
        ]
        parts += [(a, tuple(data.array_steps(root, run_id, a))) for a in spec.arrays]
        out[spec.name] = repr(parts)
    return out


def live_state(
    root: str, run_id: str, status: str, version: str, tokens: dict[str, str], row: dict[str, Any]
) -> dict[str, Any]:
    """What the page shows of a run, to tell what a poll changed: status, change token, the
    figures' data tokens, the number of recorded steps and the header's row."""
    return {
        "status": status,
        "version": version,
        "tokens": tokens,
        "steps": len(data.recorded_steps(root, run_id)),
        "row": repr(sorted(row.items())),
    }


# ----------------------------------------------------------------------------- callbacks
def _figure(root: str, name: str, run_id: str, values: dict[str, Any]) -> go.Figure:
    """Figure ``name`` for control ``values`` as callbacks receive them (slider index), as a
    card shows it (`common.on_screen`: no plot title), with a ``uirevision`` of those values:
    new recordings redraw it keeping the user's zoom."""
    fig = common.webgl_large_traces(
        common.on_screen(figure(root, name, run_id, control_values(root, run_id, values)))
    )
    spec = next((s for s in SPECS if s.name == name), None)
    used = sorted((k, v) for k, v in values.items() if spec is not None and k in uses(spec))
    fig.layout.uirevision = repr(used)
    return fig


def _figure_callback(spec: Any) -> Callable[..., go.Figure]:
    names = uses(spec)

    def update(run_id: str, *values: Any) -> go.Figure:
        # values: the controls in ``names``, then (from the page) the figure's data token
        token = values[len(names)] if len(values) > len(names) else None
        if isinstance(token, str) and token.startswith(INLINE) and ctx.triggered_id is None:
            return no_update  # the page's first call: the layout brought this figure drawn
        root = data.current_root()
        return _figure(root, spec.name, run_id, dict(zip(names, values[: len(names)], strict=True)))

    update.__name__ = f"update_{spec.name}"
    update.__doc__ = f"Redraw {spec.name} when {', '.join(names) or 'the run'} changes."
    return callback(
        Output(f"{PREFIX}-fig-{spec.name}", "figure"),
        Input(f"{PREFIX}-id", "data"),
        *[Input(CONTROLS[n], "value") for n in names],
        Input({"type": DATA_TOKEN, "fig": spec.name}, "data"),
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
    index: Any,
    quantity: Any,
    norm: Any,
    scale: Any,
    layer: Any,
    color_by: Any,
    smooth: Any,
    run_id: str,
) -> str:
    """The query string of the current controls (defaults left out, the step always in)."""
    values = {
        "quantity": quantity,
        "norm": norm,
        "scale": scale,
        "layer": layer,
        "color_by": color_by,
        "smooth": common.smoothing(smooth),
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


@callback(
    Output({"type": DATA_TOKEN, "fig": ALL}, "data"),
    Output(f"{PREFIX}-figures", "children"),
    Output(f"{PREFIX}-header", "children"),
    Output(f"{PREFIX}-live", "data"),
    Output(f"{PREFIX}-poll", "disabled"),
    Output(CONTROLS["step"], "max"),
    Output(CONTROLS["step"], "marks"),
    Output(CONTROLS["step"], "value"),
    Output(CONTROLS["step"], "disabled"),
    Input(f"{PREFIX}-poll", "n_intervals"),
    State(f"{PREFIX}-id", "data"),
    State(f"{PREFIX}-live", "data"),
    State(CONTROLS["step"], "value"),
    State({"type": DATA_TOKEN, "fig": ALL}, "id"),
    prevent_initial_call=True,
)
def live_update(
    _n: Any, run_id: str, shown: dict[str, Any] | None, index: Any, token_ids: list[Any]
) -> tuple[Any, ...]:
    """Bring the page of a running run up to date with what has landed since ``shown``: only
    changed figure tokens are set (so only those figures redraw), the figure cards are rebuilt
    only when the set of figures changed, the slider gains new steps (and moves to the newest
    only if it stood on the latest), polling stops after the poll that sees the run finished."""
    keep = [no_update] * len(token_ids)
    unchanged = (keep, no_update, no_update, no_update, no_update, *[no_update] * 4)
    root = data.current_root()
    shown = shown or {}
    try:
        status, version = data.run_version(root, run_id)
        row = {**data.run_row(root, run_id), "status": status}
    except data.DataError:
        return (*unchanged[:4], True, *unchanged[5:])
    finished = status != "running" and shown.get("status") != "running"
    if version == shown.get("version") and status == shown.get("status"):
        if repr(sorted(row.items())) == shown.get("row"):
            return (*unchanged[:4], finished, *unchanged[5:])
    tokens = data_tokens(root, run_id)
    now = live_state(root, run_id, status, version, tokens, row)
    old_tokens = shown.get("tokens") or {}
    if list(tokens) != list(old_tokens):
        cards: Any = figure_cards(tokens)
    else:
        cards = no_update
        keep = [
            tokens[t["fig"]] if tokens.get(t["fig"]) != old_tokens.get(t["fig"]) else no_update
            for t in token_ids
        ]
    head = header(root, run_id, row) if now["row"] != shown.get("row") else no_update
    slider: list[Any] = [no_update] * 4
    n_old = int(shown.get("steps") or 0)
    if now["steps"] != n_old:
        fresh = step_slider(data.recorded_steps(root, run_id), None)
        at_latest = common.as_int(index) is None or common.as_int(index) >= n_old - 1
        slider = [fresh.max, fresh.marks, now["steps"] - 1 if at_latest else no_update, False]
    return (keep, cards, head, now, finished, *slider)
