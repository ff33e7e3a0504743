"""Static export of every figure kind (PDF with embedded fonts, SVG, PNG at width × dpi),
the .csv / .json sidecars, widths and fonts, and the no-browser path."""

from __future__ import annotations

import io
import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pypdf
import pytest
from export_cases import CELLS_SWEEP, browser
from store_cases import figure_run_ids

import gradlab
from gradlab.export import (
    EmptyFigureError,
    ExportError,
    default_renderer,
    export,
    export_many,
    export_sweep,
    figure_bytes,
    find_browser,
    load_figure_data,
)
from gradlab.figures import FIGURES, figure_table, is_empty

FORMATS = ("pdf", "svg", "png")
DPI = 300
SVG = "{http://www.w3.org/2000/svg}"


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def pdf_fonts(data: bytes) -> tuple[pypdf.PdfReader, dict[str, bool]]:
    """(reader, base font name → whether its glyphs are embedded) of page 1. A Type3 font has
    no font file by design: its glyphs are content streams (/CharProcs) in the PDF, so it is
    embedded when it has them; `type3_fonts` reports Type3 fonts separately."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    fonts = reader.pages[0]["/Resources"].get("/Font") or {}
    out = {}
    for ref in fonts.values():
        font = ref.get_object()
        if font.get("/Subtype") == "/Type3":
            out[str(font.get("/Name") or font.get("/BaseFont") or "Type3")] = bool(
                font.get("/CharProcs")
            )
            continue
        desc = font.get("/FontDescriptor")
        if desc is None and "/DescendantFonts" in font:
            desc = font["/DescendantFonts"][0].get_object().get("/FontDescriptor")
        desc = desc.get_object() if desc is not None else {}
        embedded = any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3"))
        out[str(font.get("/BaseFont"))] = embedded
    return reader, out


def type3_fonts(data: bytes) -> list[str]:
    """Names of the Type3 fonts of page 1 (Chromium writes one for a glyph it takes from a
    fallback font it cannot embed as TrueType: the paper font stack should cover every glyph)."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    fonts = reader.pages[0]["/Resources"].get("/Font") or {}
    return [str(key) for key, ref in fonts.items() if ref.get_object().get("/Subtype") == "/Type3"]


@pytest.fixture(scope="module")
def figs(fig_store, cell_runs, grid_runs):
    """name → figure built from the store by gradlab.export.load_figure_data, for every figure
    of the registry (from the runs of the test store that have what it draws)."""
    out = {}
    for name, spec in FIGURES.items():
        ids = figure_run_ids(spec, fig_store, cell_runs, grid_runs)
        out[name] = spec.builder(load_figure_data(fig_store, name, run_ids=ids))
        assert not is_empty(out[name]), name
    return out


@pytest.fixture(scope="module")
def exported(figs, fig_store, tmp_path_factory):
    """Every figure in every format, one export_many call (one browser) per format."""
    root = tmp_path_factory.mktemp("exported")
    for fmt in FORMATS:
        export_many(
            [(fig, root / fmt / f"{name}.{fmt}") for name, fig in figs.items()],
            store=fig_store,
            dpi=DPI,
        )
    return root


# ------------------------------------------------------------------------------ every figure
@browser
@pytest.mark.parametrize("name", list(FIGURES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_figure_exports(exported, name, fmt):
    path = exported / fmt / f"{name}.{fmt}"
    assert path.is_file() and path.stat().st_size > 500
    if fmt == "pdf":
        data = path.read_bytes()
        assert data[:4] == b"%PDF"
        reader, fonts = pdf_fonts(data)
        assert len(reader.pages) == 1
        assert float(reader.pages[0].mediabox.width) == pytest.approx(3.25 * 72, abs=0.5)
        assert fonts, "no fonts in the page resources"
        assert all(fonts.values()), f"fonts not embedded: {fonts}"
        assert not type3_fonts(data), f"Type3 fonts (glyphs the font stack lacks): {fonts}"
    elif fmt == "svg":
        root = ET.fromstring(path.read_bytes())
        assert root.tag == f"{SVG}svg"
        assert root.findall(f".//{SVG}text")
    else:
        width, height = png_size(path)
        assert width == round(3.25 * DPI)
        assert height > 0.4 * width


@browser
@pytest.mark.parametrize("name", list(FIGURES))
def test_sidecars_hold_the_plotted_data_and_provenance(exported, figs, fig_store, name):
    fig = figs[name]
    csv = pd.read_csv(exported / "pdf" / f"{name}.csv", dtype={"run_id": str})  # "4e02…" is an id
    table = figure_table(fig)
    assert list(csv.columns) == list(table.columns)
    pd.testing.assert_frame_equal(
        csv.reset_index(drop=True),
        table.reset_index(drop=True),
        check_dtype=False,
        rtol=1e-12,
    )
    doc = json.loads((exported / "pdf" / f"{name}.json").read_text(encoding="utf-8"))
    meta = fig.layout.meta["gradlab"]
    assert doc["figure"] == name
    assert doc["run_ids"] == meta["run_ids"] and doc["run_ids"]
    for rid in doc["run_ids"]:
        assert doc["runs"][rid]["config"] == fig_store.run(rid).config
    assert doc["gradlab_version"] == gradlab.__version__
    assert doc["options"] == meta["options"]
    assert doc["format"] == "pdf" and doc["width_in"] == 3.25 and doc["font"] == "serif"
    assert doc["files"]["image"] == f"{name}.pdf"


# ------------------------------------------------------------------------------ options
@browser
def test_export_by_name_for_a_sweep(fig_store, cell_runs, tmp_path):
    files = export("training", tmp_path / "train", store=fig_store.root, sweep=CELLS_SWEEP)
    assert [f.name for f in files] == ["train.pdf", "train.csv", "train.json"]
    doc = json.loads(files[2].read_text(encoding="utf-8"))
    assert set(doc["run_ids"]) == set(cell_runs.values())
    assert doc["sweep"] == CELLS_SWEEP
    # a run-scope figure by name draws the run asked for
    files = export("gates", tmp_path / "g.svg", store=fig_store, run_ids=[cell_runs["lstm"]])
    assert json.loads(files[2].read_text(encoding="utf-8"))["run_ids"] == [cell_runs["lstm"]]
    # builder options pass through
    files = export(
        "timestep_profile",
        tmp_path / "cell.png",
        store=fig_store,
        run_ids=[cell_runs["lstm"]],
        quantity="grad_cell",
        dpi=100,
    )
    assert json.loads(files[2].read_text(encoding="utf-8"))["options"]["quantity"] == "grad_cell"
    assert png_size(files[0])[0] == 325


@browser
def test_widths_fonts_and_dpi(figs, tmp_path):
    fig = figs["timestep_profile"]
    pdf = export(fig, tmp_path / "d.pdf", width="double", font="sans")[0]
    reader, fonts = pdf_fonts(pdf.read_bytes())
    assert float(reader.pages[0].mediabox.width) == pytest.approx(6.75 * 72, abs=0.5)
    assert any("Sans" in f for f in fonts) and all(fonts.values())
    serif = export(fig, tmp_path / "s.pdf", font="serif")[0]
    assert any("Serif" in f for f in pdf_fonts(serif.read_bytes())[1])
    inches = export(fig, tmp_path / "w.pdf", width="4.5")[0]
    assert float(pypdf.PdfReader(inches).pages[0].mediabox.width) == pytest.approx(
        4.5 * 72, abs=0.5
    )
    png = export(fig, tmp_path / "d.png", width="double", dpi=100)[0]
    assert png_size(png)[0] == 675
    png = export(fig, tmp_path / "h.png", width=2.0, height=1.5, dpi=200)[0]
    assert png_size(png) == (400, 300)


@browser
def test_figure_bytes_for_the_dashboard(figs):
    fig = figs["jacobian_lag"]
    assert figure_bytes(fig, "pdf", "single", "serif")[:4] == b"%PDF"
    assert b"<svg" in figure_bytes(fig, "svg", "double", "sans")[:200]
    assert figure_bytes(fig, "png", 3.25, "sans")[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        figure_bytes(fig, "csv", "single", "serif")
        == figure_table(fig).to_csv(index=False).encode()
    )


@browser
def test_one_browser_serves_every_export(figs, tmp_path):
    first = default_renderer()
    export(figs["training"], tmp_path / "a.svg")
    export(figs["training"], tmp_path / "b.svg")
    assert default_renderer() is first and first.running


@browser
def test_export_sweep_writes_every_figure_and_an_index(fig_store, cell_runs, tmp_path):
    out = tmp_path / "all"
    files = export_sweep(fig_store, CELLS_SWEEP, out, format="svg")
    images = sorted(p.name for p in files if p.suffix == ".svg")
    md = (out / "figures.md").read_text(encoding="utf-8")
    # the rnn of the cells sweep has a Gaussian init at σ_w = 0.9, the gated cells torch's
    # default: two groups, each with its own overlays, named by what tells them apart
    rnn, gated = "init=gaussian-gain=0.9", "init=default-gain=1"
    assert "phase_diagram.svg" in images
    assert f"timestep_profile-{rnn}.svg" in images and f"timestep_profile-{gated}.svg" in images
    for stem in (f"{rnn}-rnn", f"{gated}-lstm", f"{gated}-gru"):
        assert f"gradient_flow-{stem}.svg" in images
    assert f"gates-{gated}-lstm.svg" in images and f"gates-{rnn}-rnn.svg" not in images
    assert f"`gates-{rnn}-rnn`: no data: this run has no gate values (vanilla RNN)" in md
    overlay = json.loads((out / f"timestep_profile-{gated}.json").read_text(encoding="utf-8"))
    assert [r["config"]["cell"] for r in overlay["runs"].values()] == ["lstm", "gru"]
    assert overlay["sweep_export"]["group"]["init"] == "default"
    for image in images:
        assert f"`{image}`" in md
        assert (out / image).with_suffix(".csv").is_file()
        assert (out / image).with_suffix(".json").is_file()


# ------------------------------------------------------------------------------ no browser
def test_no_browser_raises_with_the_install_hint_and_still_writes_data(
    figs, fig_store, tmp_path, monkeypatch
):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    assert find_browser() is None
    with pytest.raises(ExportError, match="apt-get install chromium") as info:
        export(figs["training"], tmp_path / "t.pdf", store=fig_store)
    assert "BROWSER_PATH" in str(info.value)
    assert not (tmp_path / "t.pdf").exists()
    csv, js = tmp_path / "t.csv", tmp_path / "t.json"
    assert csv.is_file() and js.is_file()
    assert sorted(info.value.written) == sorted([csv, js])
    pd.testing.assert_frame_equal(
        pd.read_csv(csv, dtype={"run_id": str}), figure_table(figs["training"]), check_dtype=False
    )
    assert json.loads(js.read_text(encoding="utf-8"))["run_ids"]
    assert figure_bytes(figs["training"], "csv")  # CSV needs no browser
    with pytest.raises(ExportError, match="BROWSER_PATH"):
        figure_bytes(figs["training"], "pdf")


def test_bad_arguments_are_clear_errors(figs, fig_store, tmp_path):
    fig = figs["training"]
    with pytest.raises(ValueError, match="format must be one of"):
        export(fig, tmp_path / "x.gif")
    with pytest.raises(ValueError, match="width must be"):
        export(fig, tmp_path / "x.pdf", width="triple")
    with pytest.raises(ValueError, match="font must be one of"):
        export(fig, tmp_path / "x.pdf", font="comic")
    with pytest.raises(ValueError, match="needs store="):
        export("training", tmp_path / "x.pdf")
    with pytest.raises(ValueError, match="unknown figure 'nope'"):
        export("nope", tmp_path / "x.pdf", store=fig_store)
    with pytest.raises(FileNotFoundError, match="no gradlab store"):
        export("training", tmp_path / "x.pdf", store=tmp_path / "missing")
    with pytest.raises(ValueError, match="no complete runs in sweep 'nope'"):
        export("training", tmp_path / "x.pdf", store=fig_store, sweep="nope")
    with pytest.raises(KeyError, match="no run 'nope'"):
        export("training", tmp_path / "x.pdf", store=fig_store, run_ids=["nope"])
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ honest failures
def test_a_figure_that_cannot_be_made_honestly_writes_nothing(
    fig_store, cell_runs, tmp_path, monkeypatch
):
    """Unknown option, step not recorded, no data: a clear error before any browser is needed
    (BROWSER_PATH names none) and no file, not even the sidecars of the good figures."""
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))
    out = tmp_path / "out"
    kw = dict(store=fig_store, run_ids=[cell_runs["rnn"]])
    with pytest.raises(ValueError, match=r"has no option 'stpe' \(did you mean step\?\)"):
        export("timestep_profile", out / "a.pdf", stpe=3, **kw)
    with pytest.raises(ValueError, match=r"recorded steps: 0, 3, 6 \(nearest: 3\)"):
        export("timestep_profile", out / "a.pdf", step=4, **kw)
    with pytest.raises(ValueError, match=r"a training step must be an integer, got 3\.5"):
        export("timestep_profile", out / "a.pdf", step=3.5, **kw)
    with pytest.raises(EmptyFigureError, match="this run has no gate values") as info:
        export("gates", out / "g.pdf", **kw)
    assert isinstance(info.value, ExportError) and info.value.written == []
    built = FIGURES["gates"].builder(load_figure_data(fig_store, "gates", [cell_runs["rnn"]]))
    with pytest.raises(EmptyFigureError, match=r"nothing to export for g\.svg"):
        export(built, out / "g.svg")
    with pytest.raises(EmptyFigureError):
        export_many([("training", out / "t.pdf"), ("gates", out / "g.pdf")], **kw)
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["csv", "pdf"])
def test_figure_bytes_refuses_a_no_data_figure(fmt):
    from gradlab.export import EmptyFigureError
    from gradlab.figures import FigureData

    empty = FIGURES["gates"].builder(FigureData())
    with pytest.raises(EmptyFigureError, match="nothing to export: no data"):
        figure_bytes(empty, fmt)
