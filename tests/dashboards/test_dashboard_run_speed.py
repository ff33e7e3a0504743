"""What makes a first visit of a run page fast: the first row of figures comes drawn with the
page (its callbacks' first calls keep it), and a scatter of tens of thousands of markers is drawn
by WebGL on screen (the same points; exports keep SVG). Timings live in benchmarks/dashboard.py.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:dash.development.base_component"
)


def _graphs(component, out=None):
    """Every dcc.Graph in a layout tree, by id."""
    from dash import dcc

    out = {} if out is None else out
    if isinstance(component, dcc.Graph):
        out[component.id] = component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            _graphs(child, out)
    return out


def test_the_first_row_of_figures_comes_drawn_with_the_page(dash_app, real_store, request_ctx):
    page = dash_app.pages.run
    rid = real_store.ids[("lstm", 0.9)]
    graphs = _graphs(page.layout(run_id=rid))
    names = [g.removeprefix("run-fig-") for g in graphs]
    first, rest = names[: page.INLINE_FIGURES], names[page.INLINE_FIGURES :]
    assert len(first) == page.INLINE_FIGURES and rest
    for name in first:  # drawn, and as the callback draws it for the same controls
        fig = graphs[f"run-fig-{name}"].figure
        assert len(fig.data) > 0, name
        steps = page.data.recorded_steps(real_store.root, rid)
        values = {"step": len(steps) - 1, **{k: v for k, v in page.DEFAULTS.items()}}
        spec = next(s for s in page.SPECS if s.name == name)
        again = page.FIGURE_CALLBACKS[name](rid, *[values[n] for n in page.uses(spec)])
        assert fig.to_plotly_json()["data"] == again.to_plotly_json()["data"]
    for name in rest:  # placeholders until their callbacks answer
        assert len(graphs[f"run-fig-{name}"].figure["data"]) == 0, name


@pytest.mark.parametrize(
    ("points", "mode", "gl"),
    [(20_000, "markers", True), (20_000, "lines", False), (100, "markers", False)],
    ids=["many-markers-webgl", "many-points-as-lines-svg", "few-markers-svg"],
)
def test_big_marker_scatters_are_drawn_by_webgl(dash_app, points, mode, gl):
    from dashboards.pages import _common as common

    x = np.arange(points, dtype=float)
    fig = go.Figure(
        [go.Scatter(x=x, y=np.sin(x), mode=mode, marker={"size": 3}, cliponaxis=False)],
        layout={"title": {"text": "t"}},
    )
    out = common.webgl_large_traces(fig)
    assert out.data[0].type == ("scattergl" if gl else "scatter")
    np.testing.assert_array_equal(out.data[0].x, x)
    np.testing.assert_array_equal(out.data[0].y, np.sin(x))
    assert out.data[0].marker.size == 3 and out.layout.title.text == "t"
