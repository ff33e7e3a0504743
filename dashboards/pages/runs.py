"""Runs page (``/``): every run of the store in one filterable, sortable table.

Tick rows, then "Open" (``/run/<id>``) or "Compare" (``/compare?runs=a,b``). Failed, diverged
and corrupt runs are listed with their reason. The table's filter, sort and selection live in
the URL (``?filter=&sort=&sel=``); ``?<column>=<value>`` (as the sweep page links) filters by
equality.
"""

from __future__ import annotations

import math
from typing import Any

import dash
import pandas as pd
from dash import Input, Output, State, callback, ctx, dash_table, dcc, html, no_update
from dash.dash_table.Format import Format, Scheme

from dashboards import data
from dashboards.pages import _common as common
from gradlab.cells import shown_activation
from gradlab.figures.style import cell_colors

PREFIX = "runs"

dash.register_page(__name__, path="/", title="Runs · gradlab", name="Runs", order=0)

#: Table columns (id, header), shown when the store has them.
COLUMNS = (
    ("run_id", "run"),
    ("sweep", "sweep"),
    ("task", "task"),
    ("cell", "cell"),
    ("activation", "activation"),
    ("seq_len", "seq_len"),
    ("hidden_size", "N"),
    ("init", "init"),
    ("gain", "gain"),
    ("seed", "seed"),
    ("status", "status"),
    ("final_loss", "final loss"),
    ("baseline_loss", "baseline"),
    ("loss_ratio", "final / baseline"),
    ("decay_rate", "state decay rate, last step"),
    ("decay_rate_init", "state decay rate, step 0"),
    ("adjoint_decay_rate", "∂L/∂h decay rate, last step"),
    ("theory_rate", "theory rate, step 0"),
    ("steps_done", "steps"),
    ("reason", "reason"),
)
NUMERIC = {"seq_len", "hidden_size", "gain", "seed", "steps_done"}
FLOATS = {
    "final_loss",
    "baseline_loss",
    "loss_ratio",
    "decay_rate",
    "decay_rate_init",
    "adjoint_decay_rate",
    "theory_rate",
}
BAD_STATUSES = ("failed", "diverged", "corrupt", "interrupted")
PAGE_SIZE = 50
EMPTY_HELP = [
    "This store has no runs yet. Make some with ",
    html.Code("gradlab sweep experiments/vanishing-vs-lstm.toml"),
    " (RNN vs LSTM vs GRU on the adding task) or ",
    html.Code("gradlab demo"),
    " (a small store, then this dashboard), and reload.",
]


def _short_reason(value: Any) -> str:
    """The last non-blank line of a reason (tracebacks end with the exception), clipped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    lines = [line for line in str(value).strip().splitlines() if line.strip()]
    text = lines[-1].strip() if lines else ""
    return text if len(text) <= 160 else text[:157] + "…"


def table_rows(frame: pd.DataFrame) -> tuple[list[dict[str, Any]], list[str]]:
    """(DataTable records with ``id`` = run_id, the column ids present)."""
    present = [c for c, _ in COLUMNS if c in frame.columns]
    view = frame[present].copy()
    if "reason" in view:
        view["reason"] = view["reason"].map(_short_reason)
    if "activation" in view and "cell" in view:  # a cell's default activation where unset
        shown = [
            shown_activation(c, a) for c, a in zip(view["cell"], view["activation"], strict=True)
        ]
        view["activation"] = pd.Series(shown, index=view.index, dtype=object)
    records = []
    for rec in view.to_dict("records"):
        rec = {k: data._plain(v) for k, v in rec.items()}
        rec["id"] = rec["run_id"]
        records.append(rec)
    return records, present


def equality_filter(query: dict[str, Any], present: list[str]) -> str:
    """A DataTable filter_query from ``?column=value`` parameters (columns of the table only)."""
    parts = []
    for col in present:
        value = common.one(query.get(col))
        if value is None:
            continue
        try:
            number = float(value)
            parts.append(f"{{{col}}} = {number:g}" if math.isfinite(number) else "")
        except ValueError:
            text = value.replace('"', "")
            parts.append(f'{{{col}}} = "{text}"')
    return " && ".join(p for p in parts if p)


def parse_sort(value: Any, present: list[str]) -> list[dict[str, str]]:
    """``"a:asc,b:desc"`` → DataTable sort_by (unknown columns dropped)."""
    out = []
    for item in (common.one(value) or "").split(","):
        col, _, direction = item.partition(":")
        if col in present:
            out.append({"column_id": col, "direction": "desc" if direction == "desc" else "asc"})
    return out


def _style_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "if": {"filter_query": f'{{status}} = "{status}"'},
            "backgroundColor": "#FBEAE0",
        }
        for status in BAD_STATUSES
    ]
    rules.append({"if": {"filter_query": '{status} = "running"'}, "backgroundColor": "#EAF3FB"})
    rules += [
        {
            "if": {"filter_query": f'{{cell}} = "{cell}"', "column_id": "cell"},
            "color": color,
            "fontWeight": "600",
        }
        for cell, color in cell_colors().items()
    ]
    return rules


def runs_table(frame: pd.DataFrame, query: dict[str, Any]) -> dash_table.DataTable:
    """The runs table with filter / sort / selection taken from the query string."""
    records, present = table_rows(frame)
    columns = []
    for col, header in COLUMNS:
        if col not in present:
            continue
        spec: dict[str, Any] = {"id": col, "name": header}
        if col in FLOATS:
            spec.update(
                type="numeric", format=Format(precision=4, scheme=Scheme.decimal_or_exponent)
            )
        elif col in NUMERIC:
            spec.update(type="numeric")
        columns.append(spec)
    filter_query = common.one(query.get("filter")) or equality_filter(query, present)
    selected_ids, _ = data.parse_run_ids(query.get("sel"))
    index = {r["id"]: i for i, r in enumerate(records)}
    selected = [index[i] for i in selected_ids if i in index]
    tooltips = [
        {"reason": {"value": str(frame["reason"].iloc[i])[-1500:], "type": "text"}}
        if rec.get("reason")
        else {}
        for i, rec in enumerate(records)
    ]
    return dash_table.DataTable(
        id=f"{PREFIX}-table",
        data=records,
        columns=columns,
        filter_action="native",
        sort_action="native",
        sort_mode="multi",
        row_selectable="multi",
        selected_rows=selected,
        filter_query=filter_query,
        sort_by=parse_sort(query.get("sort"), present),
        page_action="native",
        page_size=PAGE_SIZE,
        tooltip_data=tooltips,
        tooltip_duration=None,
        style_table={"overflowX": "auto"},
        style_cell={
            "fontFamily": "inherit",
            "fontSize": "13px",
            "padding": "4px 8px",
            "maxWidth": "340px",
            "overflow": "hidden",
            "textOverflow": "ellipsis",
        },
        style_cell_conditional=[{"if": {"column_type": "text"}, "textAlign": "left"}],
        style_header={"fontWeight": "600", "backgroundColor": "#F3F3F3"},
        style_data_conditional=_style_rules(),
        style_filter={"backgroundColor": "#FAFAFA"},
    )


@common.safe_layout("Runs")
def layout(**query: Any) -> html.Div:
    """The runs table, or how to make runs when there are none."""
    root = data.current_root()
    try:
        frame = data.runs(root)
    except Exception as exc:  # an unreadable store folder: say so
        return html.Div([html.H2("Runs"), common.message(f"Cannot read the store: {exc}")])
    head = html.Div(
        [
            html.H2("Runs"),
            html.Span(
                f"{len(frame)} runs in {data.public_text(root, root)}/",  # the folder's name
                className="muted",
                id=f"{PREFIX}-count",
            ),
        ],
        className="page-head",
    )
    if frame.empty:
        return html.Div(
            [head, common.message(EMPTY_HELP, "info", id=f"{PREFIX}-empty")],
            className="runs-page",
        )
    bad = frame["status"].isin(BAD_STATUSES).sum()
    notes = []
    if bad:
        notes.append(
            html.Span(
                f"{bad} failed / diverged / corrupt / interrupted "
                "(shaded; the reason column says why)",
                className="muted",
            )
        )
    sweeps = data.sweeps(root)
    sweep_links = (
        [html.Span("Sweeps: ")]
        + [dcc.Link(n, href=f"/sweep/{n}", className="small-link") for n in sweeps]
        if sweeps
        else []
    )
    return html.Div(
        [
            dcc.Location(id=f"{PREFIX}-url", refresh=False),
            dcc.Location(id=f"{PREFIX}-nav", refresh="callback-nav"),
            head,
            html.Div(sweep_links, className="sweep-links"),
            html.Div(
                [
                    html.Button("Open", id=f"{PREFIX}-open", className="btn", disabled=True),
                    html.Button("Compare", id=f"{PREFIX}-compare", className="btn", disabled=True),
                    html.Span(id=f"{PREFIX}-selection", className="muted"),
                    *notes,
                ],
                className="toolbar",
            ),
            runs_table(frame, query),
        ],
        className="runs-page",
    )


# ----------------------------------------------------------------------------- callbacks
def _selected_ids(selected_rows: list[int] | None, rows: list[dict[str, Any]] | None) -> list[str]:
    rows = rows or []
    return [rows[i]["id"] for i in (selected_rows or []) if 0 <= i < len(rows)]


@callback(
    Output("selected-runs", "data"),
    Output(f"{PREFIX}-open", "disabled"),
    Output(f"{PREFIX}-compare", "disabled"),
    Output(f"{PREFIX}-selection", "children"),
    Input(f"{PREFIX}-table", "selected_rows"),
    State(f"{PREFIX}-table", "data"),
)
def selection(selected_rows: list[int] | None, rows: list[dict[str, Any]] | None):
    """Remember the ticked runs (shared with the other pages) and enable the buttons."""
    ids = _selected_ids(selected_rows, rows)
    text = f"{len(ids)} selected" if ids else "tick runs to open or compare them"
    return ids, len(ids) != 1, len(ids) < 2, text


@callback(
    Output(f"{PREFIX}-nav", "href"),
    Input(f"{PREFIX}-open", "n_clicks"),
    Input(f"{PREFIX}-compare", "n_clicks"),
    State(f"{PREFIX}-table", "selected_rows"),
    State(f"{PREFIX}-table", "data"),
    prevent_initial_call=True,
)
def navigate(open_clicks: Any, compare_clicks: Any, selected_rows: Any, rows: Any):
    """ "Open" → /run/<id>; "Compare" → /compare?runs=a,b,..."""
    ids = _selected_ids(selected_rows, rows)
    if not ids:
        return no_update
    if ctx.triggered_id == f"{PREFIX}-open":
        return f"/run/{ids[0]}"
    if ctx.triggered_id == f"{PREFIX}-compare":
        return f"/compare{common.query(runs=ids)}"
    return no_update


@callback(
    Output(f"{PREFIX}-url", "search"),
    Input(f"{PREFIX}-table", "filter_query"),
    Input(f"{PREFIX}-table", "sort_by"),
    Input(f"{PREFIX}-table", "selected_rows"),
    State(f"{PREFIX}-table", "data"),
    prevent_initial_call=True,
)
def url_search(filter_query: Any, sort_by: Any, selected_rows: Any, rows: Any) -> str:
    """The table's filter, sort and selection as the page's query string."""
    sort = ",".join(f"{s['column_id']}:{s['direction']}" for s in sort_by or [])
    return common.query(
        filter=filter_query or None, sort=sort or None, sel=_selected_ids(selected_rows, rows)
    )
