"""Every page's layout builder and callbacks, called as plain functions (no browser)."""

from __future__ import annotations

import base64
import io
from contextvars import copy_context
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import dash
import pandas as pd
import plotly.graph_objects as go
import pytest
from dash import dash_table, dcc, html
from dash._callback_context import context_value
from dash._utils import AttributeDict

import dashboards.app as app_module
from dashboards import data
from dashboards.pages import _common as common
from gradlab.figures import FIGURES, FigureData
from gradlab.probes import FixedPointProbe

# dash 4 warns that DataTable will leave dash one day (dash-ag-grid is not installed here).
pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:dash.development.base_component"
)


# ----------------------------------------------------------------------------- helpers
def walk(component: Any):
    """Every component in a layout tree."""
    if isinstance(component, list | tuple):
        for c in component:
            yield from walk(c)
        return
    if component is None or isinstance(component, str | int | float):
        return
    yield component
    yield from walk(getattr(component, "children", None))


def find(layout: Any, cid: Any) -> Any:
    for c in walk(layout):
        if getattr(c, "id", None) == cid:
            return c
    raise LookupError(cid)


def ids(layout: Any) -> set[str]:
    return {c.id for c in walk(layout) if isinstance(getattr(c, "id", None), str)}


def text(layout: Any) -> str:
    parts = []
    for c in walk(layout):
        kids = getattr(c, "children", None)
        for k in kids if isinstance(kids, list) else [kids]:
            if isinstance(k, str):
                parts.append(k)
    return " ".join(parts)


def triggered(prop_id: str, value: Any, fn, *args):
    """Run a callback as if ``prop_id`` fired with ``value`` (for callbacks that read ctx)."""

    def run():
        context_value.set(AttributeDict(triggered_inputs=[{"prop_id": prop_id, "value": value}]))
        return fn(*args)

    return copy_context().run(run)


def query_of(search: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(search).query))


def traces(fig: Any) -> int:
    return len(fig.data if isinstance(fig, go.Figure) else fig["data"])


# ----------------------------------------------------------------------------- app shell
def test_create_app_pins_the_store_and_serve_binds_localhost(real_store, dash_app, monkeypatch):
    assert dash_app.app.server.config[data.STORE_KEY] == real_store.root
    seen = {}
    monkeypatch.setattr(app_module.Dash, "run", lambda self, **kw: seen.update(kw), raising=True)
    app_module.serve(real_store.root)
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8050 and seen["debug"] is False


def test_navbar_links_pages_and_sweeps(dash_app, request_ctx):
    nav = app_module._navbar()
    hrefs = [c.href for c in walk(nav) if isinstance(c, dcc.Link)]
    assert {"/", "/compare", "/sweep/tiny", "/sweep/broken"} <= set(hrefs)


def test_app_serves_index_and_dependencies(dash_app):
    client = dash_app.app.server.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/run/whatever").status_code == 200
    deps = client.get("/_dash-dependencies").get_json()
    outputs = " ".join(str(d["output"]) for d in deps)
    for fig in FIGURES:  # every figure of the registry is drawn by some page's callback
        assert f"-fig-{fig}." in outputs, fig


# ----------------------------------------------------------------------------- runs page
def test_runs_layout_lists_runs_with_reasons(dash_app, real_store, request_ctx):
    layout = dash_app.pages.runs.layout()
    table = find(layout, "runs-table")
    assert isinstance(table, dash_table.DataTable)
    rows = {r["id"]: r for r in table.data}
    assert set(rows) == set(data.runs(real_store.root)["run_id"])
    assert rows[real_store.failed]["status"] == "failed"
    assert rows[real_store.failed]["reason"] == "ValueError: boom at step 2"
    assert rows[real_store.corrupt]["status"] == "corrupt"
    cols = [c["id"] for c in table.columns]
    for col in ("sweep", "cell", "activation", "seq_len", "init", "gain", "seed", "status"):
        assert col in cols
    for col in ("final_loss", "baseline_loss", "loss_ratio", "decay_rate"):
        assert col in cols
    assert rows[real_store.ids[("rnn", 0.9)]]["activation"] == "tanh"
    assert table.filter_action == "native" and table.sort_action == "native"
    assert table.row_selectable == "multi"


def test_runs_layout_reads_filter_sort_and_selection_from_the_query(
    dash_app, real_store, request_ctx
):
    rid = real_store.ids[("lstm", 0.9)]
    layout = dash_app.pages.runs.layout(cell="lstm", gain="0.9", sort="gain:desc", sel=rid)
    table = find(layout, "runs-table")
    assert table.filter_query == '{cell} = "lstm" && {gain} = 0.9'
    assert table.sort_by == [{"column_id": "gain", "direction": "desc"}]
    assert [table.data[i]["id"] for i in table.selected_rows] == [rid]
    layout = dash_app.pages.runs.layout(filter="{seed} = 0")
    assert find(layout, "runs-table").filter_query == "{seed} = 0"


def test_empty_store_says_how_to_make_runs(make_app, tmp_path):
    empty = make_app(str(tmp_path / "empty"))
    with empty.app.server.test_request_context("/"):
        layout = empty.pages.runs.layout()
    words = text(layout)
    assert "gradlab sweep experiments/vanishing-vs-lstm.toml" in words
    assert "gradlab demo" in words
    assert "runs-table" not in ids(layout)


def test_runs_selection_open_compare_and_url(dash_app, request_ctx):
    page = dash_app.pages.runs
    rows = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    assert page.selection([1], rows)[:3] == (["b"], False, True)
    assert page.selection([0, 2], rows)[:3] == (["a", "c"], True, False)
    assert triggered("runs-open.n_clicks", 1, page.navigate, 1, None, [1], rows) == "/run/b"
    href = triggered("runs-compare.n_clicks", 1, page.navigate, None, 1, [0, 2], rows)
    assert href == "/compare?runs=a,c"
    search = page.url_search(
        '{cell} = "rnn"', [{"column_id": "gain", "direction": "asc"}], [0], "", None, [], rows
    )
    assert query_of(search) == {"filter": '{cell} = "rnn"', "sort": "gain:asc", "sel": "a"}
    assert page.url_search(None, [], [], None, None, None, rows) == ""
    search = page.url_search(None, [], [], "lstm", ["cell", "gain"], ["seed"], rows)
    assert query_of(search) == {"q": "lstm", "cols": "cell,gain", "group": "seed"}


# ----------------------------------------------------------------------------- run page
def figure_names(layout: Any, prefix: str) -> set[str]:
    out = set()
    for c in walk(layout):
        cid = getattr(c, "id", None)
        if isinstance(c, dcc.Graph) and isinstance(cid, str):
            out.add(cid.removeprefix(f"{prefix}-fig-"))
    return out


def test_run_layout_shows_the_figures_the_run_has(dash_app, real_store, request_ctx):
    page = dash_app.pages.run
    lstm = page.layout(run_id=real_store.ids[("lstm", 0.9)])
    rnn = page.layout(run_id=real_store.ids[("rnn", 0.9)])
    gru = page.layout(run_id=real_store.ids[("gru", 0.9)])
    # every run / runs figure of the registry that needs no particular probe, in FIGURES order;
    # the gates only for gated cells, the cell state only for the LSTM; the fixed-point
    # figures for every run here (each searched for fixed points: the default schedule)
    run_figures = [s for s in FIGURES.values() if s.scope in ("run", "runs")]
    wanted = {s.name for s in run_figures if s.needs_probe in (None, FixedPointProbe.probe)}
    assert wanted | {"gates", "cell_vs_hidden"} == figure_names(lstm, "run")
    assert wanted == figure_names(rnn, "run")
    assert wanted | {"gates"} == figure_names(gru, "run")
    shown = [c.id.removeprefix("run-fig-") for c in walk(lstm) if isinstance(c, dcc.Graph)]
    assert shown == [s.name for s in run_figures]
    slider = find(lstm, "run-step")
    # the slider runs over the positions of the recorded steps 0, 3, 5, marks labelled by step
    assert slider.marks == {0: "0", 1: "3", 2: "5"} and slider.value == 2
    assert (slider.min, slider.max, slider.step) == (0, 2, 1)
    # every figure card has CSV / PNG / PDF buttons and the toolbar exports SVG
    graph = find(lstm, "run-fig-gates")
    assert graph.config["toImageButtonOptions"]["format"] == "svg"
    buttons = [c.id for c in walk(lstm) if isinstance(getattr(c, "id", None), dict)]
    assert {"type": "run-export", "fig": "gates", "fmt": "pdf"} in buttons
    assert {"type": "run-export", "fig": "gates", "fmt": "csv"} in buttons


def test_run_layout_links_counterparts(dash_app, real_store, request_ctx):
    rnn = real_store.ids[("rnn", 1.5)]
    layout = dash_app.pages.run.layout(run_id=rnn)
    links = {c.children: c.href for c in walk(layout) if isinstance(c, dcc.Link)}
    assert links["Compare with LSTM"] == (f"/compare?runs={rnn},{real_store.ids[('lstm', 1.5)]}")
    assert real_store.ids[("gru", 1.5)] in links["Compare with GRU"]
    assert "Compare all cells" in links


@pytest.mark.parametrize(
    "run_id, words",
    [
        ("../etc", "not a run id"),
        ("..%2Fetc", "not a run id"),
        ("a.b", "not a run id"),
        ("nope", "no run 'nope'"),
        ("corrupt-run", "corrupt"),
    ],
)
def test_run_layout_bad_ids_show_a_message(dash_app, request_ctx, run_id, words):
    layout = dash_app.pages.run.layout(run_id=run_id)
    assert words in text(layout)
    assert not figure_names(layout, "run")


def test_failed_run_shows_its_reason(dash_app, real_store, request_ctx):
    layout = dash_app.pages.run.layout(run_id=real_store.failed)
    assert "boom at step 2" in text(layout)
    assert "no recorded data" in text(layout)


KILLED_LOOP = """
import sys, time, gradlab
run = gradlab.init(sys.argv[1], name="killed", config={"cell": "rnn"})
run.log({"loss": 1.0}, step=0)
run.flush()
print("ready", flush=True)
time.sleep(600)
"""


def test_an_interrupted_run_is_shaded_and_explained(make_app, tmp_path):
    """A training loop killed mid-run: the runs page counts it with the bad runs and its run
    page says why (the store's reason names the dead writer)."""
    import signal
    import subprocess
    import sys
    import time

    from gradlab.store import open_store

    root = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_LOOP, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    store = open_store(root)
    deadline = time.monotonic() + 30  # the kernel frees the writer's lock as it is reaped
    while store.runs().iloc[0]["status"] != "interrupted" and time.monotonic() < deadline:
        time.sleep(0.05)
    app = make_app(root)
    with app.app.server.test_request_context("/"):
        runs_page = text(app.pages.runs.layout())
        run_page = text(app.pages.run.layout(run_id="killed"))
    assert "1 failed / diverged / corrupt / interrupted" in runs_page
    assert "interrupted: " in run_page and f"pid {proc.pid}" in run_page


def test_run_figure_callbacks_draw_every_figure(dash_app, real_store, request_ctx):
    page = dash_app.pages.run
    rid = real_store.ids[("lstm", 0.9)]
    values = {
        "step": 1,  # the slider's position of step 3
        "quantity": "grad_hidden",
        "norm": "spectral",
        "scale": "log",
        "layer": "0:0",
        "color_by": "run",
        "smooth": 0,
    }
    for name, cb in page.FIGURE_CALLBACKS.items():
        spec = next(s for s in page.SPECS if s.name == name)
        fig = cb(rid, *[values[n] for n in page.uses(spec)])
        assert isinstance(fig, go.Figure)
        assert traces(fig) > 0 or common.is_summary(fig), name  # no unit saturated: one line
        assert "colorway" in fig.layout.template.layout  # the figures' own template
        assert not fig.layout.title.text and fig.layout.meta["gradlab"]["title"], name


def test_run_controls_change_the_figures(dash_app, real_store, request_ctx):
    page = dash_app.pages.run
    rid = real_store.ids[("rnn", 0.9)]
    base = {"step": 0, "quantity": "grad_hidden", "scale": "log", "layer": "0:0"}
    early = page.figure(dash_app.root, "timestep_profile", rid, base)
    late = page.figure(dash_app.root, "timestep_profile", rid, {**base, "step": 5})
    assert list(early.data[0].y) != list(late.data[0].y)
    assert early.layout.yaxis.type == "log"
    linear = page.figure(dash_app.root, "timestep_profile", rid, {**base, "scale": "linear"})
    assert linear.layout.yaxis.type == "linear"
    weight = page.figure(
        dash_app.root, "gradient_flow", rid, {**base, "quantity": "contribution:weight_hh"}
    )
    assert "W" in weight.layout.title.text
    fro = page.figure(dash_app.root, "step_jacobian", rid, {"norm": "fro", "scale": "log"})
    assert "F" in fro.layout.yaxis.title.text
    missing = page.figure(dash_app.root, "gates", real_store.corrupt, base)
    assert traces(missing) == 0


def test_run_url_round_trip(dash_app, real_store, request_ctx):
    page = dash_app.pages.run
    rid = real_store.ids[("lstm", 0.9)]
    search = page.url_search(1, "contribution:weight_ih", "fro", "linear", "0:0", "cell", 0.8, rid)
    params = query_of(search)
    assert params == {
        "step": "3",
        "quantity": "contribution:weight_ih",
        "norm": "fro",
        "scale": "linear",
        "color_by": "cell",
        "smooth": "0.8",
    }
    layout = page.layout(run_id=rid, **params)
    assert find(layout, "run-step").value == 1  # position of step 3
    assert find(layout, "run-smooth").value == 0.8  # the training curves' smoothing
    assert text(find(layout, "run-step-shown")) == "(step 3)"
    assert not text(find(layout, "run-step-notice"))
    assert find(layout, "run-color-by").value == "cell"
    assert find(layout, "run-quantity").value == "contribution:weight_ih"
    assert find(layout, "run-norm").value == "fro"
    assert find(layout, "run-scale").value == "linear"
    # junk in the query falls back to defaults instead of failing
    layout = page.layout(run_id=rid, step="x", quantity="<script>", scale=["a", "b"])
    assert find(layout, "run-step").value == 2  # the latest step, 5
    assert find(layout, "run-quantity").value == "grad_hidden"
    assert find(layout, "run-scale").value == "log"


def test_run_step_snaps_to_a_recorded_step(dash_app, real_store, request_ctx):
    """Steps 0, 3, 5 are recorded: ?step=4 shows step 3 and says so; the slider's positions
    map back to recorded steps in every callback that reads it."""
    page = dash_app.pages.run
    rid = real_store.ids[("rnn", 0.9)]
    layout = page.layout(run_id=rid, step="4")
    assert find(layout, "run-step").value == 1
    assert text(find(layout, "run-step-notice")) == "step 4 was not recorded; showing 3"
    assert page.step_shown(2, rid) == ("(step 5)", None)  # moving the slider clears the notice
    assert query_of(page.url_search(2, "grad_hidden", "spectral", "log", "0:0", "run", 0, rid)) == {
        "step": "5"
    }
    assert [page.step_at([0, 3, 5], i) for i in (0, 1, 2, 3, -1, None)] == [
        0,
        3,
        5,
        None,
        None,
        None,
    ]
    at = page.control_values(dash_app.root, rid, {"step": 1, "scale": "log"})
    assert at == {"step": 3, "scale": "log"}
    fig = page.FIGURE_CALLBACKS["timestep_profile"](rid, 1, "grad_hidden", "log", "0:0", "run")
    lines = [t.meta["const"] for t in fig.data if t.meta["const"].get("line") is None]
    assert lines and {c["step"] for c in lines} == {3}


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
def test_exporting_a_no_data_card_says_why_and_sends_nothing(
    dash_app, real_store, request_ctx, fmt
):
    rid = real_store.ids[("rnn", 0.9)]  # a vanilla RNN records no gates
    controls = (2, "grad_hidden", "spectral", "log", "0:0", "run", 0)
    download, msg = triggered(
        f'{{"fig":"gates","fmt":"{fmt}","type":"run-export"}}.n_clicks',
        1,
        dash_app.pages.run.export,
        [1],
        rid,
        *controls,
    )
    assert download is dash.no_update
    assert "Nothing to export: no data" in text(msg)


def test_run_exports(dash_app, real_store, request_ctx, monkeypatch):
    import gradlab.export as export_module

    page = dash_app.pages.run
    rid = real_store.ids[("gru", 0.9)]
    controls = (2, "grad_hidden", "spectral", "log", "0:0", "run", 0)
    button = {"type": "run-export", "fig": "timestep_profile", "fmt": "csv"}
    download, msg = triggered(
        '{"fig":"timestep_profile","fmt":"csv","type":"run-export"}.n_clicks',
        1,
        page.export,
        [1],
        rid,
        *controls,
    )
    assert download["filename"] == f"run-{rid}-timestep_profile.csv"
    table = pd.read_csv(io.StringIO(download["content"]))
    assert {"run_id", "t", "value"} <= set(table.columns) and len(table) > 0
    assert button["fig"] in download["filename"]

    def no_browser(*args, **kwargs):
        raise RuntimeError("no Chrome or Chromium found; install one")

    monkeypatch.setattr(export_module, "figure_bytes", no_browser)
    download, msg = triggered(
        '{"fig":"gates","fmt":"pdf","type":"run-export"}.n_clicks',
        1,
        page.export,
        [1],
        rid,
        *controls,
    )
    assert "no Chrome or Chromium found" in text(msg)
    seen = {}

    def fake_pdf(fig, fmt, width, font):
        seen.update(fmt=fmt, width=width, font=font, traces=len(fig.data))
        return b"%PDF-1.7 fake"

    monkeypatch.setattr(export_module, "figure_bytes", fake_pdf)
    download, msg = triggered(
        '{"fig":"gates","fmt":"pdf","type":"run-export"}.n_clicks',
        1,
        page.export,
        [1],
        rid,
        *controls,
    )
    assert base64.b64decode(download["content"]) == b"%PDF-1.7 fake"
    assert download["filename"].endswith("gates.pdf")
    assert seen["fmt"] == "pdf" and seen["traces"] > 0


# ----------------------------------------------------------------------------- compare page
def panel_names(layout: Any) -> set[str]:
    """Figures shown side by side: the ``fig`` of the pattern-id graphs, one per run."""
    return {
        c.id["fig"]
        for c in walk(layout)
        if isinstance(c, dcc.Graph) and isinstance(getattr(c, "id", None), dict)
    }


def test_compare_layout_and_figures(dash_app, real_store, request_ctx):
    """Every figure all the runs have is on the page (those of several runs overlaid, those of
    one run side by side), the others are named; each overlay callback draws every run."""
    page = dash_app.pages.compare
    ids = [real_store.ids[(c, 0.9)] for c in ("rnn", "lstm", "gru")]
    layout = page.layout(runs=",".join(ids), step="3", scale="linear")
    names = figure_names(layout, "compare")
    assert names == {s.name for s in FIGURES.values() if s.scope == "runs"}
    run_figures = {s.name for s in FIGURES.values() if s.scope == "run"}
    assert panel_names(layout) == run_figures - {"gates", "cell_vs_hidden"}  # the RNN has neither
    assert "Gate means" in text(find(layout, "compare-left-out"))
    assert find(layout, "compare-ids").data == ids
    assert find(layout, "compare-step").value == "3"
    assert find(layout, "compare-scale").value == "linear"
    values = {"step": "3", "quantity": "grad_hidden", "scale": "log", "color_by": "run"}
    values.update(smooth=0, seeds="each")
    for name, cb in page.FIGURE_CALLBACKS.items():
        spec = next(s for s in page.SPECS if s.name == name)
        fig = cb(ids, *[values[n] for n in page.uses(spec)])
        assert not fig.layout.title.text, name  # the card's header is the title on screen
        if common.is_summary(fig):  # saturation: no unit saturated, one line for all runs
            assert fig.layout.meta["gradlab"]["run_ids"] == ids
            continue
        drawn = {(t.meta or {}).get("const", {}).get("run_id") for t in fig.data if t.meta}
        assert set(ids) <= drawn, name
    search = page.url_search(ids, "3", "grad_hidden", "linear")
    assert query_of(search) == {"runs": ",".join(ids), "step": "3", "scale": "linear"}
    side = page.layout(runs=",".join(ids), view="side")
    assert figure_names(side, "compare") == set()  # every figure as panels
    assert panel_names(side) == panel_names(layout) | names
    assert (
        query_of(page.url_search(ids, "latest", "grad_hidden", "log", "run", 0, "each", "side"))[
            "view"
        ]
        == "side"
    )


def test_compare_colour_by(dash_app, real_store, request_ctx):
    """Swatches in the run list show each run's colour in the figures; ``color_by`` (offered for
    the cell type and the keys that differ, here gain) recolours both and is kept in the URL."""
    from gradlab.figures import style

    page = dash_app.pages.compare
    ids = [real_store.ids[(c, g)] for c in ("rnn", "lstm") for g in (0.9, 1.5)]
    layout = page.layout(runs=",".join(ids))
    control = find(layout, "compare-color-by")
    assert control.value == "run" and [o["value"] for o in control.options] == [
        "run",
        "cell",
        "gain",
    ]

    def swatches(items):
        return [
            c.style["backgroundColor"]
            for c in walk(items)
            if getattr(c, "className", None) == "run-swatch"
        ]

    assert swatches(find(layout, "compare-runs")) == list(style.RUN_COLORS[:4])
    fig = page.FIGURE_CALLBACKS["training"](ids, "log", "run", 0, "each")  # + smooth, seeds
    consts = [(t.meta["const"], t.line.color) for t in fig.data]
    own = {c["run_id"]: color for c, color in consts if c.get("name") == "loss"}
    assert own == dict(zip(ids, style.RUN_COLORS[:4], strict=True))
    by_cell = swatches(page.recolour_runs("cell", ids))
    assert by_cell == [style.cell_color(c) for c in ("rnn", "rnn", "lstm", "lstm")]
    layout = page.layout(runs=",".join(ids), color_by="gain")
    assert find(layout, "compare-color-by").value == "gain"
    assert query_of(page.url_search(ids, "latest", "grad_hidden", "log", "gain")) == {
        "runs": ",".join(ids),
        "color_by": "gain",
    }


def test_run_page_compare_links_carry_the_view(dash_app, real_store, request_ctx):
    """ "Compare with LSTM" passes the run page's step, quantity, scale and colouring on (and
    nothing the compare page has no control for)."""
    rnn, lstm = real_store.ids[("rnn", 0.9)], real_store.ids[("lstm", 0.9)]
    href = f"/compare?runs={rnn},{lstm}"
    search = "?step=3&quantity=grad_cell&scale=linear&layer=0:0&color_by=cell&norm=fro"
    (got,) = dash_app.pages.run.compare_links(search, [href])
    assert urlsplit(got).path == "/compare"
    assert query_of(got) == {
        "runs": f"{rnn},{lstm}",
        "step": "3",
        "quantity": "grad_cell",
        "scale": "linear",
        "color_by": "cell",
    }
    assert dash_app.pages.run.compare_links("", [got]) == [href]  # back to the defaults
    layout = dash_app.pages.compare.layout(**query_of(got))
    assert find(layout, "compare-step").value == "3"
    assert find(layout, "compare-scale").value == "linear"
    assert find(layout, "compare-color-by").value == "cell"


def test_compare_problems_and_empty(dash_app, real_store, request_ctx):
    page = dash_app.pages.compare
    good = real_store.ids[("rnn", 0.9)]
    layout = page.layout(runs=f"{good},../x,nope,{real_store.corrupt}")
    words = text(layout)
    assert "not a run id" in words and "no run 'nope'" in words and "corrupt" in words
    assert find(layout, "compare-ids").data == [good]
    empty = page.layout()
    assert "No runs to compare" in text(empty)
    link = page.offer_selection(["a", "b"])
    assert link.href == "/compare?runs=a,b"
    assert page.offer_selection(["a"]) is None


# ----------------------------------------------------------------------------- sweep page
def test_sweep_layout_and_phase_diagram(dash_app, real_store, request_ctx):
    page = dash_app.pages.sweep
    layout = page.layout(name="tiny")
    assert find(layout, "sweep-x").value == "gain"
    assert find(layout, "sweep-y").value == "cell"
    assert set(find(layout, "sweep-x").options) == {"cell", "gain"}
    layout = page.layout(name="tiny", x="cell", y="gain", color="loss_ratio")
    assert (find(layout, "sweep-x").value, find(layout, "sweep-color").value) == (
        "cell",
        "loss_ratio",
    )
    for color in ("decay_rate", "loss_ratio", "first_fraction"):
        fig = page.update_phase_diagram("tiny", "gain", "cell", color)
        assert traces(fig) > 0 and fig.data[0].type == "heatmap", color
        assert set(fig.layout.meta["gradlab"]["run_ids"]) == set(
            data.sweep_runs(real_store.root, "tiny")["run_id"]
        )
    assert query_of(page.url_search("gain", "cell", "decay_rate")) == {
        "x": "gain",
        "y": "cell",
        "color": "decay_rate",
    }
    assert "no sweep" in text(page.layout(name="nope"))
    assert "no sweep" in text(page.layout(name="../../etc"))


@pytest.mark.parametrize("color", ["decay_rate", "loss_ratio", "first_fraction"])
def test_sweep_page_draws_what_the_builder_draws_from_every_run(dash_app, real_store, color):
    """The sweep page hands the builder runs rows with the summary as a column, no metrics;
    the picture must be the one drawn from every run's metrics."""
    page = dash_app.pages.sweep
    root = real_store.root
    frame = data.sweep_runs(root, "tiny")
    spec = FIGURES["phase_diagram"]
    full = FigureData(metrics=data.metrics(root, list(frame["run_id"]), spec.probes), runs=frame)
    expected = spec.builder(full, x="gain", y="cell", color=color)
    with dash_app.app.server.test_request_context("/"):
        got = page.update_phase_diagram("tiny", "gain", "cell", color)
    assert list(got.data[0].x) == list(expected.data[0].x)
    assert list(got.layout.yaxis.ticktext) == list(expected.layout.yaxis.ticktext)
    values = [pd.DataFrame([[c[0] for c in row] for row in f.data[0].customdata]).to_numpy()
              for f in (got, expected)]  # fmt: skip
    assert values[0] == pytest.approx(values[1], rel=1e-9, nan_ok=True)
    assert [c[2] for row in got.data[0].customdata for c in row] == [
        c[2] for row in expected.data[0].customdata for c in row
    ]


def test_sweep_click_opens_the_runs_of_a_cell(dash_app, real_store, request_ctx, monkeypatch):
    page = dash_app.pages.sweep
    fig = page.update_phase_diagram("tiny", "gain", "cell", "decay_rate").to_plotly_json()
    rows = list(fig["layout"]["yaxis"]["ticktext"])
    click = {"points": [{"curveNumber": 0, "pointNumber": [rows.index("lstm"), 1]}]}
    href, _ = page.click_target(real_store.root, "tiny", click, fig)
    assert href == f"/compare?runs={real_store.ids[('lstm', 1.5)]}"
    fig = page.update_phase_diagram("tiny", "gain", "seed", "decay_rate").to_plotly_json()
    panels = [t.get("name") for t in fig["data"] if t["type"] == "heatmap"]
    assert panels == ["gru", "lstm", "rnn"]  # one panel per cell: each cell names its runs
    click = {"points": [{"curveNumber": 2, "pointNumber": [0, 0]}]}
    href, _ = page.click_target(real_store.root, "tiny", click, fig)
    assert href == f"/compare?runs={real_store.ids[('rnn', 0.9)]}"
    monkeypatch.setattr(page, "MAX_COMPARE", 0)
    href, _ = page.click_target(real_store.root, "tiny", click, fig)
    assert urlsplit(href).path == "/"
    assert query_of(href) == {"sweep": "tiny", "cell": "rnn", "gain": "0.9", "seed": "0"}
    layout = dash_app.pages.runs.layout(**query_of(href))
    table = find(layout, "runs-table")
    assert table.filter_query == '{sweep} = "tiny" && {cell} = "rnn" && {gain} = 0.9 && {seed} = 0'


# ----------------------------------------------------------------------------- misc
def test_not_found_page(dash_app, request_ctx):
    assert "no page" in text(dash_app.pages.not_found.layout())


def test_build_figure_never_raises(dash_app, real_store, request_ctx, monkeypatch):
    fig = common.build_figure(real_store.root, "nope", ["x"], {})
    assert traces(fig) == 0 and "no figure" in fig.layout.annotations[0].text
    spec = FIGURES["training"]

    def broken(data, **options):
        raise ZeroDivisionError("bad builder")

    monkeypatch.setitem(FIGURES, "training", type(spec)(**{**spec.__dict__, "builder": broken}))
    fig = common.build_figure(real_store.root, "training", [real_store.ids[("rnn", 0.9)]], {})
    assert "bad builder" in fig.layout.annotations[0].text


def test_query_helpers():
    assert common.query(a=None, b="", runs=["x", "y"], g=2.0) == "?runs=x,y&g=2"
    assert common.as_int("3") == 3 and common.as_int("3.5") is None
    assert common.as_int(["1", "2"]) == 2 and common.as_int("nan") is None
    assert common.choice("log", ("log",), "x") == "log"
    assert common.choice("zzz", ("log",), "x") == "x"
    assert common.safe_filename("run", "../a b", None) == "run-.._a_b"
    assert isinstance(html.Div(), html.Div)


def test_unexpected_layout_errors_become_messages(dash_app, real_store, request_ctx, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(data, "run_row", broken)
    layout = dash_app.pages.run.layout(run_id=real_store.ids[("rnn", 0.9)])
    assert "could not be built: disk on fire" in text(layout)


def test_on_screen_drops_the_title_once_and_keeps_its_text():
    fig = FIGURES["timestep_profile"].builder(FigureData())
    title = fig.layout.title.text
    twice = common.on_screen(common.on_screen(go.Figure(fig)))
    assert twice.layout.title.text in ("", None)
    assert twice.layout.meta["gradlab"]["title"] == title != ""
    as_dict = common.on_screen(common.on_screen(fig.to_dict()))
    assert as_dict["layout"]["meta"]["gradlab"]["title"] == title


def test_run_page_smooths_its_training_curves(dash_app, real_store, request_ctx):
    page = dash_app.pages.run
    rid = real_store.ids[("lstm", 0.9)]
    spec = next(s for s in page.SPECS if s.name == "training")
    assert "smooth" in page.uses(spec)
    values = {"scale": "log", "color_by": "run", "smooth": 0.9}
    raw = page.FIGURE_CALLBACKS["training"](
        rid, *[{**values, "smooth": 0}[n] for n in page.uses(spec)]
    )
    smooth = page.FIGURE_CALLBACKS["training"](rid, *[values[n] for n in page.uses(spec)])
    assert len(smooth.data) > len(raw.data)  # each curve smoothed, its raw values faint behind
    assert any("smoothed: EMA weight 0.9" in (a.text or "") for a in smooth.layout.annotations)
