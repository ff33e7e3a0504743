"""The compare page in a real headless Chromium: every figure the compared runs all have data for
is on the page and drawn (figures of several runs overlaid, figures of one run one panel per
run), the others are named, and the side-by-side / overlaid choice is kept in the URL.

Reuses the browser fixtures of test_dashboard_browser.py over the session's REAL store.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import test_dashboard_browser as browser_tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:dash.development.base_component"),
]

browser, context, page, server = (
    browser_tests.browser,
    browser_tests.context,
    browser_tests.page,
    browser_tests.server,
)

#: JS: true when every graph (``.figure-graph``, a dcc.Graph) holds a figure built by gradlab
#: (not the placeholder, and plotly has drawn it).
ALL_BUILT = """() => {
    const g = Array.from(document.querySelectorAll('.figure-graph'));
    const built = (d) => {
        const p = d.classList.contains('js-plotly-plot') ? d : d.querySelector('.js-plotly-plot');
        return p && p.layout && p.layout.meta && p.layout.meta.gradlab;
    };
    return g.length > 0 && g.every(built);
}"""
#: JS: per card, its figure name and per graph [run ids of its traces, empty?, summary?].
CARDS = """() => Array.from(document.querySelectorAll('section.figure-card')).map(c => [
    c.id.replace('compare-card-', ''),
    Array.from(c.querySelectorAll('.js-plotly-plot')).map(g => [
        Array.from(new Set(g.data.map(t => t.meta && t.meta.const && t.meta.const.run_id)
            .filter(r => r))),
        !!g.layout.meta.gradlab.empty,
        !!g.layout.meta.gradlab.summary,
    ]),
])"""


def common_figures(root: str, ids: list[str]) -> set[str]:
    """Names of the figures every run of ``ids`` has data for, from the store."""
    from dashboards import data
    from gradlab.figures import FIGURES

    have = [(data.series(root, r), data.array_names(root, r)) for r in ids]
    return {
        s.name
        for s in FIGURES.values()
        if s.scope in ("run", "runs") and all(s.has_data(*h) for h in have)
    }


def cards(pg) -> dict[str, list]:
    pg.wait_for_function(ALL_BUILT)
    return dict(pg.evaluate(CARDS))


@pytest.mark.parametrize("cells", [("lstm", "gru"), ("rnn", "lstm")], ids="-".join)
def test_compare_shows_every_common_figure_and_keeps_the_view_in_the_url(page, real_store, cells):
    ids = [real_store.ids[(c, 1.5)] for c in cells]
    expected = common_figures(real_store.root, ids)
    assert {"training", "gradient_flow", "step_jacobian"} <= expected
    assert ("gates" in expected) == ("rnn" not in cells)  # an RNN has no gates
    page.goto(f"{page.base}/compare?runs={','.join(ids)}")
    shown = cards(page)
    assert set(shown) == expected
    for name, graphs in shown.items():
        overlaid = len(graphs) == 1
        assert overlaid or len(graphs) == len(ids), name
        for k, (runs, empty, summary) in enumerate(graphs):
            assert summary or not empty, name  # drawn from data, or a one-line summary
            if not summary:
                assert set(runs) == (set(ids) if overlaid else {ids[k]}), name
    if "rnn" in cells:
        assert "Gate means per timestep" in page.inner_text("#compare-left-out")

    page.locator("#compare-view input[value=side]").check()
    page.wait_for_url("**view=side**")
    page.wait_for_function("() => !document.getElementById('compare-fig-training')")
    side = cards(page)
    assert set(side) == expected
    assert all(len(graphs) == len(ids) for graphs in side.values())  # one panel per run
    assert [g[0] for g in side["training"]] == [[r] for r in ids]
    assert parse_qs(urlsplit(page.url).query)["view"] == ["side"]

    page.reload()  # the URL brings the view back
    assert set(cards(page)) == expected
    assert page.locator("#compare-view input[value=side]").is_checked()
    assert page.locator("#compare-fig-training").count() == 0
