"""Runs page (``/``): every run of the store in one filterable, sortable, live table.

Tick rows, then "Open" (``/run/<id>``) or "Compare" (``/compare?runs=a,b``). Failed, diverged
and corrupt runs are listed with their reason. A search box matches every word against the
run's id, config, sweep, status, tags and note (``key=value`` matches one column); the count says
how many runs the search and the column filters leave ("4 of 24 runs"); "Select all shown" ticks
them. "Group by" config keys lists each group's n and mean ± std of the numeric columns; a click
on a group lists its runs under it. "Columns" picks the columns shown. Tags and a note per run
are edited here and kept in the store. Default order: sweep, then the grid's axes.

Live: the page polls the store's change signature (every LIVE_MS while some run is being
written, every IDLE_MS otherwise: one cheap look, no re-read unless it changed); new runs appear
and running runs show steps done / total with a bar, their loss so far and latest decay rate,
without losing the selection, the filters, the sort or the page.

The table's filter, sort and selection, the search, the columns and the grouping live in the
URL (``?filter=&sort=&sel=&q=&cols=&group=``); ``?<column>=<value>`` (as the sweep page links)
filters by equality.
"""

from __future__ import annotations

import json
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
    ("progress", "progress"),
    ("final_loss", "final loss"),
    ("baseline_loss", "baseline"),
    ("loss_ratio", "final / baseline"),
    ("decay_rate", "state decay rate, last step"),
    ("decay_rate_init", "state decay rate, step 0"),
    ("adjoint_decay_rate", "∂L/∂h decay rate, last step"),
    ("theory_rate", "theory rate, step 0"),
    ("steps_done", "steps"),
    ("tags", "tags"),
    ("note", "note"),
    ("reason", "reason"),
)
#: Columns hidden until chosen (the chooser lists every column).
HIDDEN_BY_DEFAULT = ("task", "init", "baseline_loss", "decay_rate_init", "steps_done")
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
#: Polling period (ms) while some run is being written, and otherwise.
LIVE_MS = 1000
IDLE_MS = 2500
#: Columns a search word is matched against besides the config's.
SEARCHED = ("run_id", "sweep", "status", "tags", "note")
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


def _columns(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(id, header) of every column the table offers: COLUMNS then the other config keys."""
    known = {c for c, _ in COLUMNS}
    extra = sorted(c for c in frame.columns if c in data.CONFIG_AXES and c not in known)
    return [*COLUMNS, *((c, c) for c in extra)]


def _with_annotations(frame: pd.DataFrame, notes: dict[str, Any]) -> pd.DataFrame:
    """``frame`` plus ``tags`` (comma-joined) and ``note`` columns and the ``progress`` text."""
    pairs = [notes.get(r, ((), "")) for r in frame["run_id"]]
    out = frame.assign(
        tags=pd.Series([", ".join(t) for t, _ in pairs], index=frame.index, dtype=object),
        note=pd.Series([n for _, n in pairs], index=frame.index, dtype=object),
    )
    if "steps" in frame:
        total = pd.to_numeric(frame["steps"], errors="coerce")
        done = pd.to_numeric(out.get("steps_done", pd.Series(index=frame.index)), errors="coerce")
        running = frame["status"] == "running"
        done = done.where(done.notna() | ~running, 0)
        text = [
            f"{int(d)} / {int(t)}" if pd.notna(d) and pd.notna(t) else ""
            for d, t in zip(done, total, strict=True)
        ]
        out["progress"] = pd.Series(text, index=frame.index, dtype=object)
        out["_fraction"] = (done / total.where(total > 0)).clip(0, 1)
    return out


def default_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by sweep, then the grid's axes (config keys that vary), then run id."""
    axes = [c for c, _ in _columns(frame) if c in data.grid_axes(frame)]
    keys = [c for c in ("sweep", *axes) if c in frame] + ["run_id"]
    sortable = frame.assign(**{f"_k{i}": frame[k].map(_sort_key) for i, k in enumerate(keys)})
    order = sortable.sort_values([f"_k{i}" for i in range(len(keys))], kind="stable").index
    return frame.loc[order]


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before text, missing last, so mixed columns sort without errors."""
    value = data._plain(value)
    if value is None:
        return (2, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


def search_mask(frame: pd.DataFrame, text: str | None) -> pd.Series:
    """Rows whose id, config, sweep, status, tags or note contain every word of ``text``
    (case-insensitive); a word ``key=value`` must equal that column's value."""
    mask = pd.Series(True, index=frame.index)
    words = (text or "").split()
    if not words:
        return mask
    searched = [c for c in frame.columns if c in data.CONFIG_AXES or c in SEARCHED]
    texts = [" ".join(_text(v) for v in row) for row in frame[searched].itertuples(index=False)]
    haystack = pd.Series(texts, index=frame.index, dtype=object).str.lower()
    for word in words:
        key, eq, value = word.partition("=")
        if eq and key in frame.columns:
            as_text = frame[key].map(_text).str.lower()
            mask &= data._equal(frame[key], _number_or_text(value)) | (as_text == value.lower())
        else:
            mask &= haystack.str.contains(word.lower(), regex=False)
    return mask


def _text(value: Any) -> str:
    value = data._plain(value)
    return "" if value is None else str(value)


def _number_or_text(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def table_rows(frame: pd.DataFrame) -> tuple[list[dict[str, Any]], list[str]]:
    """(DataTable records with ``id`` = run_id, the column ids present)."""
    present = [c for c, _ in _columns(frame) if c in frame.columns]
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
        rec = {k: _cell(v) for k, v in rec.items()}
        rec["id"] = rec["run_id"]
        records.append(rec)
    return records, present


def _cell(value: Any) -> Any:
    """A table cell: JSON scalars as they are, lists and dicts as text."""
    value = data._plain(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


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


def _style_rules(frame: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Shading of bad and running rows, cell colours, and a progress bar per running run."""
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
    if frame is not None and "_fraction" in frame:
        running = frame[(frame["status"] == "running") & frame["_fraction"].notna()]
        for run_id, fraction in zip(running["run_id"], running["_fraction"], strict=True):
            pct = round(100 * float(fraction), 1)
            rules.append(
                {
                    "if": {"filter_query": f'{{id}} = "{run_id}"', "column_id": "progress"},
                    "background": f"linear-gradient(90deg, #8DB8E0 {pct}%, #EAF3FB {pct}%)",
                }
            )
    return rules


def _tooltips(frame: pd.DataFrame) -> list[dict[str, Any]]:
    reasons = frame["reason"].map(_short_reason) if "reason" in frame else None
    out: list[dict[str, Any]] = []
    for i in range(len(frame)):
        tip: dict[str, Any] = {}
        if reasons is not None and reasons.iloc[i]:
            tip["reason"] = {"value": str(frame["reason"].iloc[i])[-1500:], "type": "text"}
        if "note" in frame and frame["note"].iloc[i]:
            tip["note"] = {"value": str(frame["note"].iloc[i]), "type": "text"}
        out.append(tip)
    return out


def table_frame(root: str, search: str | None) -> tuple[pd.DataFrame, int]:
    """(the runs the search leaves, with tags, note and progress, in default order; how many
    runs the store has)."""
    frame = data.runs(root)
    full = _with_annotations(frame, data.annotations(root))
    shown = full[search_mask(full, search)]
    return default_order(shown), len(frame)


def hidden_columns(frame: pd.DataFrame, chosen: str | None) -> list[str]:
    """Columns not shown: those not in ``chosen`` (``"a,b"``), or by default the hidden ones,
    the config keys outside COLUMNS and the config columns with one value in the whole store."""
    present = [c for c, _ in _columns(frame) if c in frame.columns]
    if chosen:
        keep = set(chosen.split(","))
        return [c for c in present if c not in keep and c != "run_id"]
    known = {c for c, _ in COLUMNS}
    single = {
        c
        for c in present
        if (c in data.CONFIG_AXES or c == "sweep")
        and c not in ("cell", "activation")  # the activation shown differs with the cell
        and len(frame) > 1
        and frame[c].map(data._hashable).nunique(dropna=True) <= 1  # a corrupt run's NA too
    }
    return [c for c in present if c in HIDDEN_BY_DEFAULT or c not in known or c in single]


def runs_table(frame: pd.DataFrame, query: dict[str, Any], total: int) -> dash_table.DataTable:
    """The runs table with filter / sort / selection / columns taken from the query string."""
    records, present = table_rows(frame)
    columns = []
    for col, header in _columns(frame):
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
    return dash_table.DataTable(
        id=f"{PREFIX}-table",
        data=records,
        columns=columns,
        hidden_columns=hidden_columns(frame, common.one(query.get("cols"))),
        filter_action="native",
        sort_action="native",
        sort_mode="multi",
        row_selectable="multi",
        selected_rows=selected,
        filter_query=filter_query,
        sort_by=parse_sort(query.get("sort"), present),
        page_action="native",
        page_size=PAGE_SIZE,
        tooltip_data=_tooltips(frame),
        tooltip_duration=None,
        css=[
            {"selector": ".show-hide", "rule": "display: none"},
            # typed filter text starts after the case toggle ("Aa"), not under it
            {
                "selector": ".dash-filter input[type=text]",
                "rule": "text-align: left !important; padding-left: 26px !important",
            },
        ],
        filter_options={"placeholder_text": "filter"},
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
        style_header={
            "fontWeight": "600",
            "backgroundColor": "#F3F3F3",
            "whiteSpace": "normal",  # long headers wrap: more columns fit at 1440 px
            "height": "auto",
            "minWidth": "56px",
            "maxWidth": "104px",
        },
        style_data_conditional=_style_rules(frame),
        style_filter={"backgroundColor": "#FAFAFA"},
    )


def count_text(shown: int, total: int) -> str:
    """``"24 runs"`` or ``"4 of 24 runs"``."""
    noun = "run" if total == 1 else "runs"
    return f"{total} {noun}" if shown == total else f"{shown} of {total} {noun}"


def group_options(frame: pd.DataFrame) -> list[dict[str, str]]:
    """Dropdown options of the keys runs can be grouped by (config keys and sweep, status)."""
    keys = [c for c, _ in _columns(frame) if c in frame and (c in data.CONFIG_AXES)]
    keys = [k for k in ("sweep", "status", "tags") if k in frame] + keys
    return [{"label": k, "value": k} for k in keys]


#: Columns summarised per group (mean ± std), in table order.
AGGREGATED = tuple(c for c, _ in COLUMNS if c in FLOATS or c == "steps_done")


def mean_std_text(values: pd.Series) -> str:
    """``"0.1234 ± 0.00561"`` (sample std, as pandas' ``std``); the mean alone for one value."""
    x = pd.to_numeric(values, errors="coerce").dropna()
    if x.empty:
        return ""
    if len(x) == 1:
        return f"{x.iloc[0]:.4g}"
    return f"{x.mean():.4g} ± {x.std():.3g}"


def group_table(
    records: list[dict[str, Any]],
    keys: list[str],
    expanded: list[str],
    hidden: list[str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, columns) of the group-by table: per group of equal ``keys`` its n and mean ± std
    of the numeric columns not ``hidden`` in the runs table, groups in the order of their first
    row; the runs of an expanded group (its id in ``expanded``) listed under it."""
    frame = pd.DataFrame(records)
    keys = [k for k in keys if k in frame]
    if frame.empty or not keys:
        return [], []
    numeric = [c for c in AGGREGATED if c in frame and c not in keys and c not in (hidden or [])]
    headers = dict(COLUMNS)
    rows: list[dict[str, Any]] = []
    for values, members in frame.groupby(keys, dropna=False, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        shown = dict(zip(keys, (_cell(v) for v in values), strict=True))
        gid = "group:" + json.dumps(list(shown.values()))
        is_open = gid in expanded
        row = {"id": gid, "_open": "▾" if is_open else "▸", **shown, "n": len(members)}
        row |= {c: mean_std_text(members[c]) for c in numeric}
        rows.append(row)
        if is_open:
            for rec in members.to_dict("records"):
                member = {"id": rec["id"], "_open": "", "run_id": rec["run_id"]}
                member |= {c: _member_value(rec.get(c)) for c in numeric}
                rows.append(member)
    columns = [{"id": "_open", "name": ""}]
    columns += [{"id": k, "name": headers.get(k, k)} for k in keys]
    columns += [{"id": "n", "name": "n"}, {"id": "run_id", "name": "run"}]
    columns += [{"id": c, "name": f"{headers.get(c, c)}, mean ± std"} for c in numeric]
    return rows, columns


def _member_value(value: Any) -> str:
    value = data._plain(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _dropdown(id_: str, options: list[dict[str, str]], value: list[str], text: str) -> html.Div:
    return html.Div(
        [
            html.Span(text, className="muted"),
            dcc.Dropdown(id=id_, options=options, value=value, multi=True, clearable=True),
        ],
        className="runs-dropdown",
        style={"minWidth": "260px", "flex": "1 1 260px"},
    )


@common.safe_layout("Runs")
def layout(**query: Any) -> html.Div:
    """The runs table, or how to make runs when there are none."""
    root = data.current_root()
    search = common.one(query.get("q")) or ""
    try:
        frame, total = table_frame(root, search)
    except Exception as exc:  # an unreadable store folder: say so
        return html.Div([html.H2("Runs"), common.message(f"Cannot read the store: {exc}")])
    head = html.Div(
        [
            html.H2("Runs"),
            html.Span(count_text(len(frame), total), className="muted", id=f"{PREFIX}-count"),
            html.Span(  # the folder's name, not its path
                f"in {data.public_text(root, root)}/", className="muted", id=f"{PREFIX}-folder"
            ),
        ],
        className="page-head",
    )
    live = [
        dcc.Interval(id=f"{PREFIX}-live", interval=LIVE_MS, n_intervals=0),
        dcc.Store(id=f"{PREFIX}-sig", data=data.signature(root)),
        dcc.Store(id=f"{PREFIX}-total", data=total),
    ]
    if total == 0:  # no table to update: reload when the first run lands
        return html.Div(
            [
                head,
                common.message(EMPTY_HELP, "info", id=f"{PREFIX}-empty"),
                dcc.Interval(id=f"{PREFIX}-empty-live", interval=IDLE_MS),
                dcc.Store(id=f"{PREFIX}-empty-sig", data=data.signature(root)),
                dcc.Location(id=f"{PREFIX}-reload", refresh=True),
            ],
            className="runs-page",
        )
    full = data.runs(root)
    bad = full["status"].isin(BAD_STATUSES).sum()
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
    table = runs_table(frame, query, total)
    hidden = set(table.hidden_columns or [])
    column_options = [
        {"label": header, "value": c}
        for c, header in _columns(frame)
        if c in frame and c != "run_id"
    ]
    group_by = [g for g in (common.one(query.get("group")) or "").split(",") if g]
    return html.Div(
        [
            dcc.Location(id=f"{PREFIX}-url", refresh=False),
            dcc.Location(id=f"{PREFIX}-nav", refresh="callback-nav"),
            *live,
            dcc.Store(id=f"{PREFIX}-expanded", data=[]),
            dcc.Store(id=f"{PREFIX}-annotated", data=0),
            head,
            html.Div(sweep_links, className="sweep-links"),
            html.Div(
                [
                    dcc.Input(
                        id=f"{PREFIX}-search",
                        type="search",
                        value=search,
                        debounce=0.3,
                        placeholder="search config, sweep, tags, notes (gain=1.5 for one column)",
                        style={"width": "420px"},
                    ),
                    _dropdown(f"{PREFIX}-group", group_options(frame), group_by, "group by"),
                    _dropdown(
                        f"{PREFIX}-columns",
                        column_options,
                        [o["value"] for o in column_options if o["value"] not in hidden],
                        "columns",
                    ),
                ],
                className="runs-controls",
            ),
            html.Div(
                [
                    html.Button("Open", id=f"{PREFIX}-open", className="btn", disabled=True),
                    html.Button("Compare", id=f"{PREFIX}-compare", className="btn", disabled=True),
                    html.Button("Select all shown", id=f"{PREFIX}-select-all", className="btn"),
                    html.Button("Clear selection", id=f"{PREFIX}-select-none", className="btn"),
                    html.Span(id=f"{PREFIX}-selection", className="muted"),
                    *notes,
                ],
                className="toolbar",
            ),
            html.Div(
                [
                    dcc.Input(
                        id=f"{PREFIX}-tags",
                        type="text",
                        placeholder="tags, comma-separated",
                        style={"width": "240px"},
                    ),
                    html.Button("Add tags", id=f"{PREFIX}-tag-add", className="btn"),
                    html.Button("Remove tags", id=f"{PREFIX}-tag-remove", className="btn"),
                    dcc.Input(
                        id=f"{PREFIX}-note",
                        type="text",
                        placeholder="a note on the ticked runs",
                        style={"width": "320px"},
                    ),
                    html.Button("Save note", id=f"{PREFIX}-note-save", className="btn"),
                    html.Span(id=f"{PREFIX}-annotate-status", className="muted"),
                ],
                className="runs-controls",
            ),
            html.Div(
                dash_table.DataTable(
                    id=f"{PREFIX}-groups",
                    data=[],
                    columns=[],
                    style_cell={"fontFamily": "inherit", "fontSize": "13px", "padding": "4px 8px"},
                    style_header={"fontWeight": "600", "backgroundColor": "#F3F3F3"},
                    style_table={"overflowX": "auto"},
                    style_data_conditional=[
                        {"if": {"filter_query": '{_open} = ""'}, "backgroundColor": "#FAFAFA"}
                    ],
                ),
                id=f"{PREFIX}-groups-box",
                className="runs-groups",
                style={"display": "none"},
            ),
            table,
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
    Input(f"{PREFIX}-search", "value"),
    Input(f"{PREFIX}-columns", "value"),
    Input(f"{PREFIX}-group", "value"),
    State(f"{PREFIX}-table", "data"),
    prevent_initial_call=True,
)
def url_search(
    filter_query: Any,
    sort_by: Any,
    selected_rows: Any,
    search: Any,
    columns: Any,
    group: Any,
    rows: Any,
) -> str:
    """The table's filter, sort, selection, search, columns and grouping as the query string
    (``cols`` only when it differs from the default columns)."""
    sort = ",".join(f"{s['column_id']}:{s['direction']}" for s in sort_by or [])
    cols = None
    if columns is not None:
        frame = data.runs(data.current_root())
        default = set(_shown_by_default(frame))
        if set(columns) != default:
            cols = ",".join(c for c, _ in _columns(frame) if c in set(columns)) or "run_id"
    return common.query(
        filter=filter_query or None,
        sort=sort or None,
        sel=_selected_ids(selected_rows, rows),
        q=search or None,
        cols=cols,
        group=",".join(group or []) or None,
    )


def _shown_by_default(frame: pd.DataFrame) -> list[str]:
    full = _with_annotations(frame, {})
    hidden = set(hidden_columns(full, None))
    return [c for c, _ in _columns(full) if c in full and c != "run_id" and c not in hidden]


@callback(
    Output(f"{PREFIX}-table", "data"),
    Output(f"{PREFIX}-table", "selected_rows"),
    Output(f"{PREFIX}-table", "tooltip_data"),
    Output(f"{PREFIX}-table", "style_data_conditional"),
    Output(f"{PREFIX}-total", "data"),
    Output(f"{PREFIX}-sig", "data"),
    Output(f"{PREFIX}-live", "interval"),
    Input(f"{PREFIX}-live", "n_intervals"),
    Input(f"{PREFIX}-search", "value"),
    Input(f"{PREFIX}-annotated", "data"),
    State(f"{PREFIX}-table", "data"),
    State(f"{PREFIX}-table", "selected_rows"),
    State(f"{PREFIX}-sig", "data"),
    prevent_initial_call=True,
)
def refresh(
    _tick: Any, search: Any, _annotated: Any, rows: Any, selected_rows: Any, shown_sig: Any
):
    """New rows and progress while runs are written (only when the store's signature changed),
    or the rows a new search leaves; the ticked runs stay ticked."""
    root = data.current_root()
    signature = data.signature(root)
    if ctx.triggered_id == f"{PREFIX}-live" and signature == shown_sig:
        return (no_update,) * 7
    frame, total = table_frame(root, search)
    records, _ = table_rows(frame)
    index = {r["id"]: i for i, r in enumerate(records)}
    ticked = [index[i] for i in _selected_ids(selected_rows, rows) if i in index]
    running = bool((data.runs(root)["status"] == "running").any())
    return (
        records,
        ticked,
        _tooltips(frame),
        _style_rules(frame),
        total,
        signature,
        LIVE_MS if running else IDLE_MS,
    )


@callback(
    Output(f"{PREFIX}-reload", "href"),
    Input(f"{PREFIX}-empty-live", "n_intervals"),
    State(f"{PREFIX}-empty-sig", "data"),
    prevent_initial_call=True,
)
def first_run(_tick: Any, shown_sig: Any) -> Any:
    """An empty store's page reloads once something was written to the store."""
    return "/" if data.signature(data.current_root()) != shown_sig else no_update


@callback(
    Output(f"{PREFIX}-count", "children"),
    Input(f"{PREFIX}-table", "derived_virtual_data"),
    Input(f"{PREFIX}-total", "data"),
)
def count(shown_rows: Any, total: Any) -> str:
    """How many runs the search and the column filters leave, of all."""
    total = int(total or 0)
    return count_text(total if shown_rows is None else len(shown_rows), total)


@callback(
    Output(f"{PREFIX}-table", "selected_rows", allow_duplicate=True),
    Input(f"{PREFIX}-select-all", "n_clicks"),
    Input(f"{PREFIX}-select-none", "n_clicks"),
    State(f"{PREFIX}-table", "derived_virtual_indices"),
    prevent_initial_call=True,
)
def select_all(_all: Any, _none: Any, shown: Any) -> list[int]:
    """Tick every run the search and filters leave (all pages), or none."""
    if ctx.triggered_id == f"{PREFIX}-select-none":
        return []
    return list(shown or [])


@callback(
    Output(f"{PREFIX}-table", "hidden_columns"),
    Input(f"{PREFIX}-columns", "value"),
    State(f"{PREFIX}-table", "columns"),
    prevent_initial_call=True,
)
def choose_columns(chosen: Any, columns: Any) -> list[str]:
    """Hide the columns not chosen (the run id always shows)."""
    keep = set(chosen or [])
    return [c["id"] for c in columns or [] if c["id"] not in keep and c["id"] != "run_id"]


@callback(
    Output(f"{PREFIX}-groups", "data"),
    Output(f"{PREFIX}-groups", "columns"),
    Output(f"{PREFIX}-groups-box", "style"),
    Input(f"{PREFIX}-group", "value"),
    Input(f"{PREFIX}-table", "derived_virtual_data"),
    Input(f"{PREFIX}-expanded", "data"),
    Input(f"{PREFIX}-table", "hidden_columns"),
)
def groups(keys: Any, shown_rows: Any, expanded: Any, hidden: Any):
    """The group-by table over the runs the search and filters leave, of the shown columns."""
    rows, columns = group_table(
        shown_rows or [], list(keys or []), list(expanded or []), list(hidden or [])
    )
    return rows, columns, {} if rows else {"display": "none"}


@callback(
    Output(f"{PREFIX}-expanded", "data"),
    Output(f"{PREFIX}-groups", "active_cell"),
    Input(f"{PREFIX}-groups", "active_cell"),
    State(f"{PREFIX}-expanded", "data"),
    prevent_initial_call=True,
)
def expand(cell: Any, expanded: Any):
    """A click on a group's row lists its runs under it (or hides them again)."""
    row_id = (cell or {}).get("row_id")
    if not isinstance(row_id, str) or not row_id.startswith("group:"):
        return no_update, None
    expanded = list(expanded or [])
    return (
        [e for e in expanded if e != row_id] if row_id in expanded else [*expanded, row_id]
    ), None


@callback(
    Output(f"{PREFIX}-annotated", "data"),
    Output(f"{PREFIX}-annotate-status", "children"),
    Input(f"{PREFIX}-tag-add", "n_clicks"),
    Input(f"{PREFIX}-tag-remove", "n_clicks"),
    Input(f"{PREFIX}-note-save", "n_clicks"),
    State(f"{PREFIX}-tags", "value"),
    State(f"{PREFIX}-note", "value"),
    State(f"{PREFIX}-table", "selected_rows"),
    State(f"{PREFIX}-table", "data"),
    State(f"{PREFIX}-annotated", "data"),
    prevent_initial_call=True,
)
def annotate(
    _add: Any, _remove: Any, _save: Any, tags: Any, note: Any, selected: Any, rows: Any, n: Any
):
    """Add or remove tags, or set the note, of the ticked runs (kept in the store)."""
    ids = _selected_ids(selected, rows)
    if not ids:
        return no_update, "tick runs to tag them or note something"
    words = [t.strip() for t in str(tags or "").split(",") if t.strip()]
    action = ctx.triggered_id
    try:
        if action == f"{PREFIX}-note-save":
            data.annotate(data.current_root(), ids, note=str(note or ""))
            done = f"note saved on {len(ids)} run(s)"
        elif not words:
            return no_update, "type tags first (comma-separated)"
        elif action == f"{PREFIX}-tag-add":
            data.annotate(data.current_root(), ids, add_tags=words)
            done = f"tagged {len(ids)} run(s)"
        else:
            data.annotate(data.current_root(), ids, remove_tags=words)
            done = f"removed tags from {len(ids)} run(s)"
    except data.DataError as exc:
        return no_update, str(exc)
    return int(n or 0) + 1, done
