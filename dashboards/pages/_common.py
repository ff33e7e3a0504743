"""Pieces the pages share: figure cards, building a figure safely, exports, messages, URLs.

Not a page (the leading underscore keeps Dash's page loader away). Pages call ``dashboards.data``
for what the store holds and these helpers to turn it into figures and components.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import plotly.graph_objects as go
from dash import dcc, html

from dashboards import data
from gradlab.figures import FIGURES, FigureData, figure_table, message_figure
from gradlab.figures import style as fig_style
from gradlab.figures.quantities import QUANTITIES
from gradlab.probes import ContributionProbe, GradCellProbe, GradHiddenProbe

log = logging.getLogger("gradlab.dashboard")

#: Quantities the pages' "quantity" control offers: the per-timestep gradient norms.
FLOW_PROBES = (GradHiddenProbe.probe, GradCellProbe.probe, ContributionProbe.probe)
FLOW_QUANTITIES = tuple(k for k, q in QUANTITIES.items() if q.probe in FLOW_PROBES)
SCALES = ("log", "linear")

#: Export buttons under every figure: (format, label).
EXPORTS = (("csv", "CSV"), ("png", "PNG"), ("pdf", "Export PDF"))
#: Width (a column of the paper template, ``gradlab.export.WIDTHS``) and font of PNG / PDF
#: exports: the same template as ``gradlab export``.
EXPORT_WIDTH = "single"
EXPORT_FONT = "serif"


def graph_config(filename: str) -> dict[str, Any]:
    """dcc.Graph config: the figures' own config, SVG from the toolbar's camera button."""
    return {
        **fig_style.PLOT_CONFIG,
        "toImageButtonOptions": {"format": "svg", "filename": filename, "scale": 1},
    }


def message(text: Any, kind: str = "error", **kwargs: Any) -> html.Div:
    """A boxed message (kind: error, warning, info). Its text, and the text items of a list,
    go through ``data.public_text``: error text names no absolute filesystem path."""
    if isinstance(text, str):
        text = data.public_text(text)
    elif isinstance(text, list):
        text = [data.public_text(t) if isinstance(t, str) else t for t in text]
    return html.Div(text, className=f"message message-{kind}", role="alert", **kwargs)


def safe_layout(title: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a page's ``layout``: an unexpected error becomes a message, not a blank
    page (it is logged with its traceback on the server)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def layout(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                log.exception("layout of %s failed", title)
                return html.Div([html.H2(title), message(f"This page could not be built: {exc}")])

        return layout

    return wrap


def specs(scope: str | Iterable[str]) -> list[Any]:
    """FigureSpecs of one scope (or several), in FIGURES order."""
    scopes = {scope} if isinstance(scope, str) else set(scope)
    return [spec for spec in FIGURES.values() if spec.scope in scopes]


def accepts(spec: Any) -> frozenset[str]:
    """Keyword options ``spec``'s builder takes (its signature and ``spec.options``)."""
    try:
        params = inspect.signature(spec.builder).parameters
    except (TypeError, ValueError):  # pragma: no cover - builders are plain functions
        params = {}
    names = {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    names.discard("data")
    return frozenset(names | set(spec.options))


def clean_options(spec: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Only the options the builder takes, None dropped."""
    allowed = accepts(spec)
    return {k: v for k, v in options.items() if k in allowed and v is not None}


def error_figure(title: str, text: str) -> go.Figure:
    """A figure with no traces and ``text`` in the middle (a builder failed, a run is missing);
    the text names no absolute filesystem path (``data.public_text``)."""
    return message_figure(title, data.public_text(text))


def figure_data(
    root: str, spec: Any, run_ids: Sequence[str], step: int | None = None
) -> tuple[FigureData, int | None]:
    """(the FigureData ``spec`` needs for ``run_ids``, the array step used).

    Arrays are read at the saved step nearest ``step`` (the latest when None), one per run; the
    step returned is the first run's, so the builder is asked for a step that is there.
    """
    runs = data.runs(root)
    order = {r: i for i, r in enumerate(run_ids)}
    rows = runs[runs["run_id"].isin(list(run_ids))]
    rows = rows.iloc[rows["run_id"].map(order).argsort(kind="stable")]
    metrics = data.metrics(root, run_ids, spec.probes) if spec.probes else None
    arrays = {}
    array_step = None
    for name in spec.arrays:
        for run_id in run_ids:
            chosen = data.nearest(data.array_steps(root, run_id, name), step)
            if chosen is None:
                continue
            value = data.array(root, run_id, name, chosen)
            if value is not None:
                arrays[(run_id, name, chosen)] = value
                array_step = chosen if array_step is None else array_step
    return FigureData(metrics=metrics, runs=rows, arrays=arrays), array_step


def build_figure(
    root: str, name: str, run_ids: Sequence[str], options: Mapping[str, Any]
) -> go.Figure:
    """Figure ``name`` of ``run_ids`` with ``options``; never raises (a failure is drawn)."""
    spec = FIGURES.get(name)
    if spec is None:
        return error_figure(name, f"There is no figure {name!r}.")
    try:
        options = dict(options)
        fig_data, array_step = figure_data(root, spec, run_ids, options.get("step"))
        if spec.arrays and array_step is not None:
            options["step"] = array_step
        return spec.builder(fig_data, **clean_options(spec, options))
    except data.DataError as exc:
        return error_figure(spec.title, str(exc))
    except Exception as exc:
        log.exception("figure %s of %s failed", name, list(run_ids))
        return error_figure(spec.title, f"This figure could not be drawn: {exc}")


def is_empty(fig: go.Figure | Mapping[str, Any]) -> bool:
    """Whether a figure has no traces (a "no data" or error figure)."""
    traces = fig.data if isinstance(fig, go.Figure) else fig.get("data") or []
    return len(traces) == 0


def figure_card(
    prefix: str, spec: Any, figure: go.Figure | dict[str, Any] | None = None
) -> html.Section:
    """A titled card: the graph (id ``{prefix}-fig-{name}``), its description and the export
    buttons (pattern ids ``{"type": f"{prefix}-export", "fig": name, "fmt": fmt}``)."""
    buttons = [
        html.Button(
            label,
            id={"type": f"{prefix}-export", "fig": spec.name, "fmt": fmt},
            className="btn btn-small",
            n_clicks=0,
            title=f"Download this figure as {fmt.upper()}"
            + (" (its data, one row per point)" if fmt == "csv" else ""),
        )
        for fmt, label in EXPORTS
    ]
    graph = dcc.Graph(
        id=f"{prefix}-fig-{spec.name}",
        figure=on_screen(figure) if figure is not None else _placeholder(),
        config=graph_config(spec.name),
        className="figure-graph",
    )
    return html.Section(
        [
            html.Div(
                [html.H3(spec.title), html.Div(buttons, className="figure-buttons")],
                className="figure-head",
            ),
            dcc.Loading(graph, type="dot", delay_show=400),
            *reading_line(spec),
            html.P(spec.description, className="figure-description"),
        ],
        className=CARD_CLASS,
        id=f"{prefix}-card-{spec.name}",
    )


# ----------------------------------------------------------------------------- cards explain
#: Class of a figure card; a card whose figure is a one-line summary adds SUMMARY_CLASS (short).
CARD_CLASS = "figure-card"
SUMMARY_CLASS = "figure-card figure-card-summary"
#: Top margin (px) of a figure on screen, where the card's header stands for its title.
SCREEN_TOP_MARGIN = 30


def reading_line(spec: Any) -> list[html.P]:
    """The card's "How to read this" line (``spec.reading``), or nothing."""
    if not getattr(spec, "reading", ""):
        return []
    return [html.P([html.B("How to read this: "), spec.reading], className="figure-reading")]


def on_screen(fig: go.Figure | dict[str, Any]) -> go.Figure | dict[str, Any]:
    """``fig`` for a card: without its plot title (the card's header says it; the title's
    text is kept in ``layout.meta["gradlab"]["title"]``, for tests and tools) and with a
    smaller top margin; applying it twice changes nothing. Exports rebuild the figure and keep
    their own layout."""
    if isinstance(fig, go.Figure):
        meta = fig.layout.meta
        if isinstance(meta, Mapping) and isinstance(meta.get("gradlab"), Mapping):
            text = fig.layout.title.text or meta["gradlab"].get("title") or ""  # idempotent
            fig.update_layout(meta={**meta, "gradlab": {**meta["gradlab"], "title": text}})
        fig.update_layout(title=dict(text=""), margin=dict(t=SCREEN_TOP_MARGIN))
        return fig
    layout = dict(fig.get("layout") or {})
    title = layout.get("title") or {}
    text = title.get("text") if isinstance(title, Mapping) else title
    meta = dict(layout.get("meta") or {})
    if isinstance(meta.get("gradlab"), Mapping):
        meta["gradlab"] = {**meta["gradlab"], "title": text or meta["gradlab"].get("title") or ""}
        layout["meta"] = meta
    layout["title"] = {"text": ""}
    layout["margin"] = {**(layout.get("margin") or {}), "t": SCREEN_TOP_MARGIN}
    return {**fig, "layout": layout}


def is_summary(fig: go.Figure | Mapping[str, Any]) -> bool:
    """Whether a figure is a one-line summary in place of a flat plot (its
    ``layout.meta["gradlab"]["summary"]``, e.g. saturation with no unit saturated)."""
    meta = fig.layout.meta if isinstance(fig, go.Figure) else (fig.get("layout") or {}).get("meta")
    return bool(isinstance(meta, Mapping) and (meta.get("gradlab") or {}).get("summary"))


#: Clientside: the card's class from its figure (short when the figure is a summary line).
_CARD_CLASS_JS = f"""function(fig) {{
    const m = fig && fig.layout && fig.layout.meta && fig.layout.meta.gradlab;
    return m && m.summary ? "{SUMMARY_CLASS}" : "{CARD_CLASS}";
}}"""


def summary_cards(prefix: str, names: Iterable[str]) -> None:
    """Register, for each figure ``name`` of a page, a browser-side callback that makes its
    card short when the figure is a one-line summary (`is_summary`): the card then shows that
    line instead of a flat, empty-looking plot."""
    from dash import Input, Output, clientside_callback

    for name in names:
        clientside_callback(
            _CARD_CLASS_JS,
            Output(f"{prefix}-card-{name}", "className"),
            Input(f"{prefix}-fig-{name}", "figure"),
        )


def _placeholder() -> dict[str, Any]:
    """An empty figure (a plain dict: no template to copy) shown until the callback draws; no
    title (the card's header has it)."""
    return {
        "data": [],
        "layout": {
            "margin": {"t": SCREEN_TOP_MARGIN},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
        },
    }


def safe_filename(*parts: Any) -> str:
    """A download file name from parts (letters, digits, '-', '_', '.')."""
    text = "-".join(str(p) for p in parts if p not in (None, ""))
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:150] or "figure"


def export(fig: go.Figure, fmt: str, filename: str) -> dict[str, Any]:
    """dcc.Download data for ``fig`` as csv (``figure_table``), png or pdf
    (``gradlab.export.figure_bytes``). Raises RuntimeError with a message for the page."""
    if is_empty(fig):  # a "no data" card: say why instead of sending a file of that message
        notes = [a.text for a in fig.layout.annotations or () if a.text]
        raise RuntimeError(f"Nothing to export: {'; '.join(notes) or 'the figure is empty'}")
    if fmt == "csv":
        table = figure_table(fig)
        return dcc.send_data_frame(table.to_csv, f"{filename}.csv", index=False)
    if fmt not in ("png", "pdf", "svg"):
        raise RuntimeError(f"unknown export format {fmt!r}")
    try:
        from gradlab.export import figure_bytes
    except ImportError as exc:
        raise RuntimeError(f"Export is not available: {exc}") from exc
    try:
        payload = figure_bytes(fig, fmt, EXPORT_WIDTH, EXPORT_FONT)
    except Exception as exc:  # no browser for kaleido, ...: the message is what the user needs
        raise RuntimeError(f"{fmt.upper()} export failed: {exc}") from exc
    return dcc.send_bytes(payload, f"{filename}.{fmt}")


def export_callback(
    triggered: Any, clicked: Any, make: Callable[[str], go.Figure], stem: str
) -> tuple[Any, Any]:
    """Body of a page's export callback: (download data, message) for the clicked button.

    ``triggered``: ``dash.ctx.triggered_id`` (``{"fig", "fmt", ...}``), ``clicked`` its
    n_clicks; ``make(name)`` rebuilds the figure from the page's current controls, so what is
    exported is what is on screen.
    """
    from dash import no_update

    if not isinstance(triggered, Mapping) or not clicked:
        return no_update, no_update
    name, fmt = str(triggered.get("fig")), str(triggered.get("fmt"))
    if name not in FIGURES:
        return no_update, message(f"There is no figure {name!r}.")
    fig = make(name)
    try:
        return export(fig, fmt, safe_filename(stem, name)), ""
    except RuntimeError as exc:
        return no_update, message(str(exc), "warning")


def triggered_value() -> Any:
    """The new value of the input that fired the running callback (None if none did)."""
    from dash import ctx

    return ctx.triggered[0].get("value") if ctx.triggered else None


# ----------------------------------------------------------------------------- query strings
def query(**params: Any) -> str:
    """``?a=1&b=x`` from the params that are not None / empty ("" when none are left)."""
    items = {}
    for key, value in params.items():
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        items[key] = value
    return f"?{urlencode(items, safe=',:')}" if items else ""


#: Controls a page's link to /compare carries over from the page's URL (see `carry_view`).
CARRIED = ("step", "quantity", "scale", "color_by")


def carry_view(href: str, search: str | None, keys: Sequence[str] = CARRIED) -> str:
    """``href`` (``/compare?runs=...``) with the view ``keys`` of the query string ``search``
    (the page's URL) set, or dropped where the page has none: "Compare with LSTM" shows the
    quantity, scale, step and colouring the user was looking at."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(href)
    params = {k: v[-1] for k, v in parse_qs(parts.query).items() if k not in keys}
    current = parse_qs((search or "").lstrip("?"))
    params.update({k: current[k][-1] for k in keys if current.get(k)})
    return f"{parts.path}{query(**params)}"


def one(value: Any) -> str | None:
    """A query parameter as one string (the last if repeated, None if absent or blank)."""
    if isinstance(value, list | tuple):
        value = value[-1] if value else None
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def as_int(value: Any) -> int | None:
    """A query parameter as an int (None if absent or not a whole number)."""
    text = one(value)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number) or not number.is_integer():
        return None
    return int(number)


def flow_quantities(series: set[tuple[str, str]]) -> list[str]:
    """FLOW_QUANTITIES that occur in ``series`` ((probe, name) pairs); grad_hidden if none."""
    have = [k for k in FLOW_QUANTITIES if (QUANTITIES[k].probe, QUANTITIES[k].name) in series]
    return have or ["grad_hidden"]


#: The "colour by" control's default: each run its own colour (no ``color_by`` option).
OWN_COLOUR = "run"
#: Config keys the "colour by" control offers, when they differ between the page's runs
#: ("cell" is always offered: the cell types' fixed colours).
COLOR_KEYS = (
    "task",
    "seq_len",
    "activation",
    "init",
    "gain",
    "bias_scale",
    "hidden_size",
    "num_layers",
    "optimizer",
    "lr",
    "clip",
    "truncate",
    "forget_bias",
    "update_bias",
    "seed",
    "dtype",
    "sweep",
)


def color_by_options(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Options of the "colour by" control: each run its own colour, the cell type, and every
    key of COLOR_KEYS whose value differs between ``rows`` (the runs rows of the page)."""
    out = [{"label": "each run", "value": OWN_COLOUR}, {"label": "cell type", "value": "cell"}]
    for key in COLOR_KEYS:
        if len({repr(row.get(key)) for row in rows}) > 1:
            out.append({"label": key, "value": key})
    return out


def color_by(value: Any) -> str | None:
    """The builders' ``color_by`` option from the control's value (None: each run its own)."""
    return None if value in (None, "", OWN_COLOUR) else str(value)


def choice(value: Any, allowed: Sequence[str], default: str | None) -> str | None:
    """A query parameter if it is one of ``allowed``, else ``default``."""
    text = one(value)
    return text if text in allowed else default


# ----------------------------------------------------------------------------- drawing speed
#: A scatter trace with more markers than this is drawn by WebGL on the pages.
WEBGL_POINTS = 5000


def webgl_large_traces(fig: go.Figure, points: int = WEBGL_POINTS) -> go.Figure:
    """``fig`` with each scatter trace of more than ``points`` markers drawn by WebGL
    (``scattergl``, same look): Chromium draws 25,000 SVG markers (a 256-unit spectrum over 100
    timesteps) in over a second and holds every other figure of the page back meanwhile, WebGL
    in a fifth of that. Only for the screen: exports build their figures themselves (SVG)."""
    big = [
        i
        for i, t in enumerate(fig.data)
        if t.type == "scatter"
        and t.x is not None
        and len(t.x) > points
        and "markers" in (t.mode or "")
    ]
    if not big:
        return fig
    traces = []
    for i, trace in enumerate(fig.data):
        if i in big:  # a trace's own JSON keeps its arrays as they are (no base64 yet)
            props = {k: v for k, v in trace.to_plotly_json().items() if k != "type"}
            trace = go.Scattergl(props, skip_invalid=True)  # drops SVG-only props
        traces.append(trace)
    return go.Figure(data=traces, layout=fig.layout)


# ----------------------------------------------------------------------------- tags and notes
def annotation_line(root: str, run_ids: list[str], id: str = "annotations") -> html.Div:
    """The tags and note of each of ``run_ids`` that has any (the runs page edits them); an
    empty Div when none has."""
    notes = data.annotations(root)
    items = []
    for run_id in run_ids:
        tags, note = notes.get(run_id, ((), ""))
        if not tags and not note:
            continue
        parts: list[Any] = [html.B(run_id + ": ")] if len(run_ids) > 1 else []
        parts += [html.Span(t, className="run-tag") for t in tags]
        if note:
            parts.append(html.Span(note, className="run-note"))
        items.append(html.Div(parts, className="annotation"))
    return html.Div(items, className="annotations", id=id)


# ----------------------------------------------------------------------------- smoothing
def smoothing(value: Any) -> float:
    """The EMA weight of a ``smooth`` value, clipped to [0, SMOOTH_MAX] (0 if not a number)."""
    from gradlab.figures.aggregate import SMOOTH_MAX

    try:
        weight = float(one(value) or 0)
    except ValueError:
        return 0.0
    return min(max(weight, 0.0), SMOOTH_MAX) if weight == weight else 0.0


def smoothing_control(component_id: str, value: float, shown: bool) -> html.Div:
    """The training curves' smoothing slider (EMA weight 0 … SMOOTH_MAX), hidden when the
    page has no training curve."""
    from gradlab.figures.aggregate import SMOOTH_MAX

    return html.Div(
        [
            html.Label("smoothing (training curves, EMA)"),
            dcc.Slider(
                0,
                SMOOTH_MAX,
                value=value,
                id=component_id,
                marks={0: "0", 0.6: "0.6", 0.9: "0.9", SMOOTH_MAX: str(SMOOTH_MAX)},
                tooltip={"placement": "bottom"},
            ),
        ],
        className="control control-wide",
        style=None if shown else {"display": "none"},
    )
