"""The text layout of every exported figure, measured in the files (gradlab.export.layout_check).

Every figure of the registry × {single, double} width × {PDF, SVG} is exported from the test
store; the PDF's text boxes (PyMuPDF) must lie inside the visible page, must not overlap, and
must hold every axis / facet / colour-bar title and note; its fonts must be one embedded family
with no Type3; a legend above the plot takes at most 20 % of the height. The SVG must hold the
same text and render non-blank in resvg (no browser).

On main at commit e880c02 (before the paper layout pass) the same check failed 20 of the 22
PDFs: 38 text boxes outside the visible page (kaleido printed with 0.1 in margins, so Chromium
shrank every figure to 94 % and cut its bottom: gradient_flow's "timestep k" at y = 133.9–141.5
pt under a visible edge at 137.8 pt; phase_diagram's "σw (recurrent weight scale)" at
147.3–155.0 under 152.1), 22 required strings not found (the 12 theory notes of
timestep_profile and jacobian_lag, placed below the page, and 10 x-axis titles cut at the
bottom), and 14 of 22 PDFs set ‖ and ∇ in DejaVuSerif inside LiberationSerif text. Legends
above the plot took 42 % of the height of timestep_profile and jacobian_lag at single width, 24 %
of training and saturation (now at most 16 %). `test_the_old_print_margins_cut_the_x_title`
re-creates the clipping.
"""

from __future__ import annotations

import pymupdf
import pytest
from export_cases import browser

from gradlab.export import export_many, load_figure_data
from gradlab.export import render as render_module
from gradlab.export.layout_check import (
    LEGEND_SHARE_MAX,
    check_pdf,
    check_svg,
    legend_share,
    required_text,
    strip_tags,
    svg_ink,
)
from gradlab.export.render import portable_svg
from gradlab.export.template import paper_dict
from gradlab.figures import FIGURES

WIDTHS = ("single", "double")

# ------------------------------------------------------------------ the checker on made-up files


def make_pdf(texts, size=(200, 100), fontsize=10) -> bytes:
    """A one-page PDF with `texts` [(x, y baseline, text)] in Helvetica (a base-14 font:
    not embedded)."""
    doc = pymupdf.open()
    page = doc.new_page(width=size[0], height=size[1])
    for x, y, text in texts:
        page.insert_text((x, y), text, fontsize=fontsize, fontname="helv")
    return doc.tobytes()


def test_clean_page_passes():
    report = check_pdf(make_pdf([(10, 20, "timestep k"), (10, 60, "training step")]))
    assert not (report.outside or report.overlaps or report.missing)
    assert [b.text for b in report.boxes] == ["timestep k", "training step"]
    # ... but its base-14 font is not in the file
    assert [f.name for f in report.not_embedded] == ["Helvetica"] and not report.ok
    assert report.problems() == ["font not embedded: Helvetica (Type1)"]


@pytest.mark.parametrize(
    "where",
    [(-8, 50), (170, 50), (60, 4), (60, 104)],
    ids=["left", "right", "top", "bottom"],
)
def test_text_off_the_page_is_caught(where):
    report = check_pdf(make_pdf([(10, 50, "inside"), (*where, "off page")]))
    assert [b.text for b in report.outside] == ["off page"]
    assert "outside the page" in report.problems()[0]


def test_overlapping_text_is_caught_and_neighbours_are_not():
    report = check_pdf(make_pdf([(10, 30, "lag T-k"), (30, 34, "steps"), (10, 60, "apart")]))
    assert [(a.text, b.text) for a, b in report.overlaps] == [("lag T-k", "steps")]
    # lines set one under the other (font size 10, 12 pt apart) do not overlap
    assert not check_pdf(make_pdf([(10, 30, "first line"), (10, 42, "second line")])).overlaps


def test_missing_titles_are_caught_with_tags_and_spaces_ignored():
    pdf = make_pdf([(10, 30, "gradient norm ||dL/dh"), (10, 60, "timestep k")])
    report = check_pdf(pdf, ["timestep  k", "gradient norm ||dL/dh", "training step"])
    assert report.missing == ["training step"]
    assert strip_tags("‖∂L/∂h<sub>k</sub>‖") == "‖∂L/∂hk‖"


# A hand-written PDF with one Type3 font (its glyph "a" drawn by a content stream).
_TYPE3 = b"""%PDF-1.4
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 100 50]
  /Resources << /Font << /F1 4 0 R >> >> /Contents 6 0 R >> endobj
4 0 obj << /Type /Font /Subtype /Type3 /FontBBox [0 0 750 750]
  /FontMatrix [0.001 0 0 0.001 0 0] /CharProcs << /a 5 0 R >>
  /Encoding << /Type /Encoding /Differences [97 /a] >> /FirstChar 97 /LastChar 97
  /Widths [1000] >> endobj
5 0 obj << /Length 35 >> stream
1000 0 0 0 750 750 d1 0 0 750 750 re f
endstream endobj
6 0 obj << /Length 34 >> stream
BT /F1 12 Tf 10 20 Td (aaa) Tj ET
endstream endobj
trailer << /Root 1 0 R >>
%%EOF
"""


def test_type3_fonts_count_as_embedded_and_are_reported():
    report = check_pdf(_TYPE3)
    assert [f.type for f in report.fonts] == ["Type3"]
    assert report.fonts[0].embedded and not report.not_embedded
    assert report.type3 == report.fonts


def test_svg_ink_and_text_without_a_browser():
    blank = '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"></svg>'
    assert svg_ink(blank) == 0
    drawn = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50">'
        '<rect x="10" y="10" width="30" height="20" fill="black"/>'
        '<text x="50" y="30" font-size="10">lag<tspan>k</tspan></text></svg>'
    )
    assert svg_ink(drawn) > 0.1
    report = check_svg(drawn, ["lagk", "training step"])
    assert report.missing == ["training step"] and report.ink > 0.1


def test_portable_svg_sets_sub_and_superscripts_in_px():
    svg = (
        '<text x="0" y="0" style="font-family: serif; font-size: 10px;">10\u200b'
        '<tspan style="font-size:70%" dy="-0.6em">−3</tspan>'
        '<tspan dy="0.42em">\u200b</tspan></text>'
    )
    out = portable_svg(svg)
    assert '<tspan style="font-size:7.000px"  dy="-4.200">−3</tspan>' in out
    assert '<tspan dy="4.200">' in out and "%" not in out and "em" not in out


def test_required_text_takes_titles_and_notes_apart_at_line_breaks():
    fig = {
        "data": [{"type": "heatmap", "z": [[1]], "colorbar": {"title": {"text": "rate"}}}],
        "layout": {
            "xaxis": {"title": {"text": "σ<sub>w</sub>"}},
            "yaxis": {"title": {"text": "σ<sub>b</sub>"}},
            "yaxis2": {"visible": False, "title": {"text": "hidden"}},
            "annotations": [{"text": "rnn<br>lstm", "xref": "paper", "yref": "paper"}],
        },
    }
    assert required_text(fig) == ["σw", "σb", "rate", "rnn", "lstm"]


# ------------------------------------------------------------------ every figure, both widths


@pytest.fixture(scope="module")
def figures(fig_store, cell_runs, grid_runs):
    """name → figure, as tests/export/test_export.py builds them (`figs`)."""
    from store_cases import figure_run_ids

    out = {}
    for name, spec in FIGURES.items():
        ids = figure_run_ids(spec, fig_store, cell_runs, grid_runs)
        out[name] = spec.builder(load_figure_data(fig_store, name, run_ids=ids))
    return out


@pytest.fixture(scope="module")
def files(figures, tmp_path_factory):
    """(format, width) → {name: bytes}: every figure, one export_many (one browser) per pair."""
    root = tmp_path_factory.mktemp("layout")
    out = {}
    for fmt in ("pdf", "svg"):
        for width in WIDTHS:
            paths = {name: root / f"{name}-{width}.{fmt}" for name in figures}
            export_many([(figures[n], p) for n, p in paths.items()], width=width)
            out[fmt, width] = {n: p.read_bytes() for n, p in paths.items()}
    return out


@browser
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(FIGURES))
def test_pdf_text_is_inside_apart_and_complete(files, figures, name, width):
    paper, _, _ = paper_dict(figures[name], width)
    report = check_pdf(files["pdf", width][name], required_text(paper))
    assert report.ok, "\n".join(report.problems())
    assert {f.family for f in report.fonts} in ({"DejaVuSerifCondensed"}, {"DejaVuSerif"})
    assert not report.type3, f"Type3 fonts: {report.type3}"
    assert legend_share(report, paper) <= LEGEND_SHARE_MAX


@browser
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(FIGURES))
def test_svg_renders_without_a_browser(files, figures, name, width):
    paper, _, _ = paper_dict(figures[name], width)
    report = check_svg(files["svg", width][name], required_text(paper))
    assert not report.missing, report.missing
    assert report.ink is not None and report.ink > 0.005  # axes, ticks and text at least


@browser
def test_the_old_print_margins_cut_the_x_title(figures, tmp_path, monkeypatch):
    """kaleido's own 0.1 in print margins (main before the fix) shrink the figure and cut the
    x-axis title of gradient_flow: the checker sees it."""
    monkeypatch.setattr(render_module, "PDF_MARGIN_IN", 0.1)
    path = tmp_path / "gradient_flow.pdf"
    export_many([(figures["gradient_flow"], path)], width="single")
    report = check_pdf(path.read_bytes(), required_text(paper_dict(figures["gradient_flow"])[0]))
    assert "timestep k" in [b.text for b in report.outside]
    assert max(b.size for b in report.boxes) < 8.6  # 9 pt titles shrunk to 8.5 pt


def facet_figure():
    """Three heatmap facets of one grid, as a phase diagram faceted by cell draws them."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("cell = rnn", "cell = lstm", "cell = gru"))
    for col in (1, 2, 3):
        fig.add_trace(
            go.Heatmap(
                x=["25", "50", "100", "150"],
                y=["0.5", "1", "1.5"],
                z=[[1e-3, 2e-2, 0.5, 1], [1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4]],
                coloraxis="coloraxis",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="sequence length T", type="category", row=1, col=col)
        fig.update_yaxes(title_text="σ<sub>w</sub> (recurrent weight scale)", row=1, col=col)
    fig.update_layout(coloraxis=dict(colorbar=dict(title=dict(text="loss ratio"))))
    return fig


@browser
@pytest.mark.parametrize("width", WIDTHS)
def test_facets_keep_their_titles_and_share_axis_titles(tmp_path, width):
    fig = facet_figure()
    path = tmp_path / f"facets-{width}.pdf"
    export_many([(fig, path)], width=width)
    paper, _, _ = paper_dict(fig, width)
    report = check_pdf(path.read_bytes(), required_text(paper))
    assert report.ok, "\n".join(report.problems())
    texts = [b.text for b in report.boxes]
    for title in ("cell = rnn", "cell = lstm", "cell = gru", "loss ratio"):
        assert texts.count(title) == 1
    assert texts.count("sequence length T") == 1  # one shared x title, not three


@browser
@pytest.mark.parametrize("width", WIDTHS)
def test_float_range_notes_stay_on_the_page(range_store, tmp_path, width):
    """The longest in-plot notes gradlab writes (values outside float32's range, one per run)
    fit the page at both widths."""
    store, ids = range_store
    runs = [ids["underflow"], ids["lstm-underflow"], ids["overflow"]]
    figures = {
        "timestep_profile": FIGURES["timestep_profile"].builder(
            load_figure_data(store, "timestep_profile", run_ids=runs)
        ),
        "gradient_flow": FIGURES["gradient_flow"].builder(
            load_figure_data(store, "gradient_flow", run_ids=runs[:1])
        ),
    }
    paths = {name: tmp_path / f"{name}.pdf" for name in figures}
    export_many([(figures[n], p) for n, p in paths.items()], width=width)
    for name, path in paths.items():
        paper, _, _ = paper_dict(figures[name], width)
        report = check_pdf(path.read_bytes(), required_text(paper))
        assert report.ok, f"{name}: " + "\n".join(report.problems())


@browser
def test_a_note_under_the_plot_is_on_the_page(fig_store, cell_runs, tmp_path):
    """The cell-state profile of an RNN, an LSTM and a GRU names the two runs without a cell
    state in a note placed under the plot (`note_missing`, y = −0.22 on screen)."""
    fig = FIGURES["timestep_profile"].builder(
        load_figure_data(
            fig_store, "timestep_profile", run_ids=list(cell_runs.values()), quantity="grad_cell"
        ),
        quantity="grad_cell",
    )
    assert any(a.y < 0 for a in fig.layout.annotations)
    for width in WIDTHS:
        path = tmp_path / f"cell-{width}.pdf"
        export_many([(fig, path)], width=width)
        paper, _, _ = paper_dict(fig, width)
        required = required_text(paper)
        assert any("no ‖∂L/∂c" in r for r in required)
        report = check_pdf(path.read_bytes(), required)
        assert report.ok, "\n".join(report.problems())
