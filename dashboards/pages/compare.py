"""Compare page (``/compare?runs=a,b,...``): every figure the runs have in common.

The "LSTM's remedy" view: an RNN and its LSTM / GRU counterparts. A figure every compared run has
data for is shown (`shared_figures`; one that only some runs have is named, with a link to
compare just those): the figures of several runs (per-timestep gradient norms with their fitted
decay, ‖∂s_T/∂s_k‖ against lag, saturation, training curves) overlaid on one axis, or side by
side, one panel per run (``?view=side``); the figures of one run (heatmaps, gates, cell vs
hidden, step Jacobians, ...) always side by side, heatmaps on one shared colour range.
``&seeds=band`` folds runs that differ only in seed into a mean line with a min–max band and
``&smooth=0.9`` smooths the training curves (EMA, raw faint), both in the training figure.
``?runs=`` names the runs (ids that are malformed or unknown are listed, the rest drawn), in the
order that gives them their colours (`gradlab.figures.run_styles`: the k-th run the k-th colour,
in every figure and in the run list's swatches; a run page's "Compare with" links put its run
first, so it keeps the colour it had there);
``&step=&quantity=&scale=&color_by=&smooth=&seeds=&view=`` set the controls and are written back
when they change (a run page's "Compare with" links pass its step, quantity, scale and colour).
"""

from __future__ import annotations

from typing import Any

import dash
import numpy as np
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, ctx, dcc, html

from dashboards import data
from dashboards.pages import _common as common
from gradlab.figures import FLOW, FigureData, run_styles
from gradlab.figures._common import log_colour, no_data
from gradlab.figures.aggregate import SEED_MODES, seed_groups
from gradlab.figures.quantities import QUANTITIES
from gradlab.figures.style import cell_color

PREFIX = "compare"

dash.register_page(__name__, path="/compare", title="Compare · gradlab", name="Compare", order=2)

#: Every figure of one or of several runs, in FIGURES order (the page shows those all runs have).
SPECS = common.specs(("run", "runs"))
#: Most runs drawn at once (more are listed but left out, so figures stay readable and fast).
MAX_RUNS = 12
LATEST = "latest"
CONTROLS = {
    "step": f"{PREFIX}-step",
    "quantity": f"{PREFIX}-quantity",
    "scale": f"{PREFIX}-scale",
    "color_by": f"{PREFIX}-color-by",
    "smooth": f"{PREFIX}-smooth",
    "seeds": f"{PREFIX}-seeds",
    "view": f"{PREFIX}-view",
}
OVERLAY, SIDE = "overlay", "side"
#: The figures of several runs: overlaid on one axis, or side by side (one panel per run).
VIEWS = ((OVERLAY, "overlaid"), (SIDE, "side by side"))
SEED_LABELS = {"each": "each run", "band": "mean and min–max band over seeds"}
DEFAULTS = {
    "step": LATEST,
    "quantity": "grad_hidden",
    "scale": "log",
    "color_by": "run",
    "smooth": 0,
    "seeds": "each",
    "view": OVERLAY,
}
#: Pattern id type of a side-by-side panel: ``{"type": PANEL, "fig": name, "run": run_id}``.
PANEL = f"{PREFIX}-panel"


def uses(spec: Any) -> tuple[str, ...]:
    """The controls that change ``spec``'s figure."""
    accepted = common.accepts(spec)
    used = [c for c in ("step", "scale", "color_by", "smooth", "seeds") if c in accepted]
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
        elif key == "smooth":
            out["smooth"] = smoothing(value)
        elif key == "seeds":
            out["seeds"] = value if value in SEED_MODES else DEFAULTS["seeds"]
        elif value is not None:
            out[key] = value
    return out


smoothing = common.smoothing


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


def shared_figures(root: str, run_ids: list[str]) -> tuple[list[Any], list[tuple[Any, list[str]]]]:
    """(the SPECS every run of ``run_ids`` has data for, [(spec, the runs that have it)] for
    those only some have), in FIGURES order (`FigureSpec.has_data` on each run's series and
    arrays)."""
    have = {r: (data.series(root, r), data.array_names(root, r)) for r in run_ids}
    shown, partial = [], []
    for spec in SPECS:
        with_it = [r for r in run_ids if spec.has_data(*have[r])]
        if len(with_it) == len(run_ids):
            shown.append(spec)
        elif with_it:
            partial.append((spec, with_it))
    return shown, partial


def left_out(root: str, partial: list[tuple[Any, list[str]]]) -> html.Div | None:
    """A line per figure only some runs have: which runs, and a link comparing just those."""
    if not partial:
        return None
    items = []
    for spec, ids in partial:
        cells = sorted({str(data.run_row(root, r).get("cell") or "?") for r in ids})
        what = f"only {', '.join(cells)} runs ({len(ids)}) have it"
        link = (
            [" — ", dcc.Link("compare those", href=f"/compare{common.query(runs=ids)}")]
            if len(ids) > 1
            else [" — ", dcc.Link("open it", href=f"/run/{ids[0]}")]
        )
        items.append(html.Li([html.B(spec.title), f": {what}", *link]))
    return html.Div(
        [html.Span("Not shown, as not every run has it:"), html.Ul(items)],
        className="compare-left-out",
        id=f"{PREFIX}-left-out",
    )


def panel_card(root: str, spec: Any, run_ids: list[str], color_by: Any = None) -> html.Section:
    """A card with one graph per run, side by side (pattern ids ``{"type": PANEL, "fig": name,
    "run": run_id}``), each under its run's swatch and name; drawn by the spec's panel
    callback."""
    styles = run_colours(root, run_ids, color_by)
    panels = []
    for rid in run_ids:
        st = styles[rid]
        head = html.Div(
            [
                html.Span(className="run-swatch", style={"backgroundColor": st.color}),
                dcc.Link(st.label.replace("<sub>", "").replace("</sub>", ""), href=f"/run/{rid}"),
            ],
            className="figure-panel-head",
        )
        graph = dcc.Graph(
            id={"type": PANEL, "fig": spec.name, "run": rid},
            figure=common._placeholder(),
            config=common.graph_config(f"{spec.name}-{rid}"),
            className="figure-graph",
        )
        panels.append(html.Div([head, dcc.Loading(graph, type="dot", delay_show=400)],
                               className="figure-panel"))  # fmt: skip
    return html.Section(
        [
            html.Div(
                [html.H3(spec.title), html.Span("one panel per run", className="muted")],
                className="figure-head",
            ),
            html.Div(panels, className="figure-panels"),
            *common.reading_line(spec),
            html.P(spec.description, className="figure-description"),
        ],
        className=f"{common.CARD_CLASS} figure-card-panels",
        id=f"{PREFIX}-card-{spec.name}",
    )


def cards(root: str, run_ids: list[str], view: Any, color_by: Any = None) -> list[Any]:
    """The figure cards: figures of several runs overlaid (``view`` overlay) or as panels,
    figures of one run always as panels; then the line about figures not all runs have."""
    shown, partial = shared_figures(root, run_ids)
    out: list[Any] = []
    for spec in shown:
        if spec.scope == "runs" and view != SIDE:
            out.append(common.figure_card(PREFIX, spec))
        else:
            out.append(panel_card(root, spec, run_ids, color_by))
    note = left_out(root, partial)
    return [html.Div(out, className="figures figures-side"), *([note] if note else [])]


def controls(
    root: str, run_ids: list[str], query: dict[str, Any], shown: list[Any] | None = None
) -> html.Div:
    """Step (latest, or a step every run recorded), quantity, scale, colour, the view
    (overlaid / side by side), seeds (each run / a band over seeds; offered when some runs
    differ only in seed) and the training curves' smoothing, set from the query."""
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
    view = common.choice(query.get("view"), [v for v, _ in VIEWS], DEFAULTS["view"])
    seeds = common.choice(query.get("seeds"), SEED_MODES, DEFAULTS["seeds"])
    smooth = smoothing(query.get("smooth"))
    rows = data.runs(root)
    groups = seed_groups(FigureData(runs=rows[rows["run_id"].isin(run_ids)]), run_ids)
    grouped = any(len(g) > 1 for g in groups)
    has_training = any(s.name == "training" for s in (shown if shown is not None else SPECS))
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
            html.Div(
                [
                    html.Label("figures of several runs"),
                    dcc.RadioItems(
                        [{"label": t, "value": v} for v, t in VIEWS],
                        view,
                        id=CONTROLS["view"],
                        inline=True,
                    ),
                ],
                className="control",
            ),
            html.Div(
                [
                    html.Label("seeds"),
                    dcc.RadioItems(
                        [{"label": SEED_LABELS[m], "value": m} for m in SEED_MODES],
                        seeds,
                        id=CONTROLS["seeds"],
                        inline=True,
                    ),
                ],
                className="control",
                title="runs that differ only in seed: one line each, or their mean in a band",
                style=None if grouped else {"display": "none"},
            ),
            common.smoothing_control(CONTROLS["smooth"], smooth, has_training),
        ],
        className="controls",
    )


@common.safe_layout("Compare runs")
def layout(runs: Any = None, **query: Any) -> html.Div:
    """The figures ``?runs=`` have in common; what to do when none are given."""
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
    color_by = colour_choice(root, run_ids, query)[1]
    view = common.choice(query.get("view"), [v for v, _ in VIEWS], DEFAULTS["view"])
    body += [
        dcc.Location(id=f"{PREFIX}-url", refresh=False),
        dcc.Store(id=f"{PREFIX}-ids", data=run_ids),
        dcc.Download(id=f"{PREFIX}-download"),
        run_list(root, run_ids, color_by),
        common.annotation_line(root, run_ids, id=f"{PREFIX}-annotations"),  # tags and notes
        controls(root, run_ids, query, shared_figures(root, run_ids)[0]),
        html.Div(id=f"{PREFIX}-export-msg"),
        html.Div(cards(root, run_ids, view, color_by), id=f"{PREFIX}-figures"),
    ]
    return html.Div(body, className="compare-page")


# ----------------------------------------------------------------------------- callbacks
def _figure_callback(spec: Any):
    names = uses(spec)

    def update(run_ids: list[str], *values: Any) -> go.Figure:
        current = dict(zip(names, values, strict=True))
        fig = figure(data.current_root(), spec.name, list(run_ids or []), current)
        return common.on_screen(fig)

    update.__name__ = f"update_{spec.name}"
    update.__doc__ = f"Redraw the overlaid {spec.name} when {', '.join(names) or 'runs'} change."
    return callback(
        Output(f"{PREFIX}-fig-{spec.name}", "figure"),
        Input(f"{PREFIX}-ids", "data"),
        *[Input(CONTROLS[n], "value") for n in names],
    )(update)


def panels(
    root: str, name: str, run_ids: list[str], panel_runs: list[str], values: dict[str, Any]
) -> list[go.Figure]:
    """One figure per run of ``panel_runs``: a figure of one run is built for each run; a
    figure of several runs is built once over ``run_ids`` (so each run keeps its colour) and
    split by run (`split_by_run`). Heatmaps share one colour range (`share_colour_range`)."""
    spec = next((s for s in SPECS if s.name == name), None)
    if spec is None:
        return [common.error_figure(name, f"There is no figure {name!r}.") for _ in panel_runs]
    if spec.scope == "runs":
        full = figure(root, name, run_ids, values)
        out = [split_by_run(full, rid) for rid in panel_runs]
        share_y_range(full, out)
        for fig in out:  # narrow panels: the legend above the plot, a summary on two lines
            fig.update_layout(legend=PANEL_LEGEND)
            for note in fig.layout.annotations or ():
                if common.is_summary(fig) and note.text:
                    note.text = note.text.replace("; ", ";<br>")
    else:
        out = [figure(root, name, [rid], values) for rid in panel_runs]
    share_colour_range(out)
    return [common.on_screen(f) for f in out]


def split_by_run(fig: go.Figure, run_id: str) -> go.Figure:
    """``fig`` with only the traces of ``run_id`` (``trace.meta`` names it) and those of no
    run (shared lines: a common baseline, the clip threshold); a "no data" figure when the
    run has none."""
    if common.is_empty(fig):
        return go.Figure(fig)
    keep = [t for t in fig.data if _trace_run(t) in (None, run_id)]
    if not any(_trace_run(t) == run_id for t in keep):
        meta = (fig.layout.meta or {}).get("gradlab", {})
        name = str(meta.get("figure", ""))
        return no_data(name, "", "no data for this run", meta.get("options", {}), [run_id])
    out = go.Figure(data=keep, layout=fig.layout)
    meta = fig.layout.meta or {}
    out.update_layout(meta={**meta, "gradlab": {**meta.get("gradlab", {}), "run_ids": [run_id]}})
    return out


def _trace_run(trace: Any) -> str | None:
    """The run a trace belongs to (its ``meta["const"]["run_id"]``), None for shared lines."""
    meta = trace.meta if isinstance(trace.meta, dict) else {}
    return (meta.get("const") or {}).get("run_id")


#: Legend of a side-by-side panel of a figure of several runs: above the plot, across.
PANEL_LEGEND = dict(orientation="h", x=0, y=1.02, xanchor="left", yanchor="bottom", font_size=10)


def share_y_range(full: go.Figure, panels: list[go.Figure]) -> None:
    """Give every panel split from ``full`` the y range of all its runs, per y axis (log axes
    in log10 units), so the panels can be read against each other; an axis the figure gave a
    range keeps it."""
    values: dict[str, list[np.ndarray]] = {}
    for trace in full.data:
        if trace.type != "scatter" or trace.y is None:
            continue
        y = np.asarray(trace.y, dtype=np.float64)
        values.setdefault(trace.yaxis or "y", []).append(y[np.isfinite(y)])
    for axis, parts in values.items():
        key = "yaxis" + axis[1:]
        if full.layout[key].range is not None:  # the figure fixed it (fractions: 0 to 1)
            continue
        y = np.concatenate(parts) if parts else np.array([])
        log = full.layout[key].type == "log"
        y = np.log10(y[y > 0]) if log else y
        if y.size == 0:
            continue
        lo, hi = float(y.min()), float(y.max())
        pad = 0.05 * (hi - lo) if hi > lo else (0.5 if log else max(abs(hi) * 0.05, 0.05))
        for fig in panels:
            if not common.is_empty(fig):
                fig.layout[key].update(range=[lo - pad, hi + pad], autorange=False)


def share_colour_range(figs: list[go.Figure]) -> None:
    """Give the colour-scaled heatmaps of ``figs`` (one per panel) one z range, so one colour
    means one value in every panel: symmetric about ``zmid`` for a diverging scale, and the
    colour bar's powers-of-ten ticks redrawn for the shared range of a log colour."""
    maps = [t for f in figs for t in f.data if t.type == "heatmap" and t.showscale is not False]
    values = [np.asarray(t.z, dtype=np.float64) for t in maps if t.z is not None]
    values = [v[np.isfinite(v)] for v in values]
    values = [v for v in values if v.size]
    if len(maps) < 2 or not values:
        return
    lo = float(min(v.min() for v in values))
    hi = float(max(v.max() for v in values))
    for trace in maps:
        if trace.zmid is not None:
            half = max(abs(lo - trace.zmid), abs(hi - trace.zmid))
            trace.update(zmin=trace.zmid - half, zmax=trace.zmid + half, zauto=False)
            continue
        trace.update(zmin=lo, zmax=hi, zauto=False)
        if trace.colorbar.tickvals is not None and trace.customdata is not None:  # log colour
            trace.colorbar.update(log_colour(np.array([10.0**lo, 10.0**hi]))[1])


def _panel_callback(spec: Any):
    names = uses(spec)

    def update(run_ids: list[str], *values: Any) -> list[go.Figure]:
        current = dict(zip(names, values, strict=True))
        panel_runs = [o["id"]["run"] for o in ctx.outputs_list] if ctx.outputs_list else []
        return panels(data.current_root(), spec.name, list(run_ids or []), panel_runs, current)

    update.__name__ = f"update_{spec.name}_panels"
    update.__doc__ = f"Redraw the side-by-side {spec.name} panels."
    return callback(
        Output({"type": PANEL, "fig": spec.name, "run": ALL}, "figure"),
        Input(f"{PREFIX}-ids", "data"),
        *[Input(CONTROLS[n], "value") for n in names],
    )(update)


#: figure name → its overlay callback (a plain function: call it inside a request context).
FIGURE_CALLBACKS = {spec.name: _figure_callback(spec) for spec in SPECS if spec.scope == "runs"}
#: figure name → its side-by-side panels callback (needs ``ctx.outputs_list``: the panels).
PANEL_CALLBACKS = {spec.name: _panel_callback(spec) for spec in SPECS}
common.summary_cards(PREFIX, FIGURE_CALLBACKS)


@callback(
    Output(f"{PREFIX}-figures", "children"),
    Input(CONTROLS["view"], "value"),
    State(f"{PREFIX}-ids", "data"),
    State(CONTROLS["color_by"], "value"),
    prevent_initial_call=True,
)
def switch_view(view: Any, run_ids: list[str], color_by: Any = None) -> list[Any]:
    """The figure cards for the chosen view (overlaid or side by side)."""
    return cards(data.current_root(), list(run_ids or []), view, color_by)


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
    run_ids: list[str],
    step: Any,
    quantity: Any,
    scale: Any,
    color_by: Any = None,
    smooth: Any = None,
    seeds: Any = None,
    view: Any = None,
) -> str:
    """``?runs=...`` and the controls that differ from their defaults."""
    values = {"step": step, "quantity": quantity, "scale": scale, "color_by": color_by}
    values.update(smooth=smooth, seeds=seeds, view=view)
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
