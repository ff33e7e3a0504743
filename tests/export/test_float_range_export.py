"""The float-range note reaches the paper export: the PDF of a float32 run whose adjoint
underflows says where (text extracted with pypdf), the float64-adjoint run's PDF says nothing."""

from __future__ import annotations

import unicodedata

import pypdf
import pytest
from export_cases import browser

from gradlab.export import export


def pdf_text(path) -> str:
    """The PDF's text, ligatures spelled out (the paper font sets "fl" as one glyph, ﬂ)."""
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(path).pages)
    return unicodedata.normalize("NFKC", text)


def last_zero_k(store, run_id: str, latest_step_only: bool) -> int:
    """The largest k whose stored ‖∂L/∂h_k‖ is 0 (at the latest step: the profile's; at any
    step: the heatmap's)."""
    m = store.run(run_id).metrics(probes="grad_hidden")
    m = m[m["layer"] == 0]
    if latest_step_only:
        m = m[m["step"] == m["step"].max()]
    return int(m.loc[m["value"] == 0, "t"].max())


@browser
@pytest.mark.parametrize("figure", ["timestep_profile", "gradient_flow"])
def test_pdf_says_where_float32_underflows(range_store, tmp_path, figure):
    store, ids = range_store
    k = last_zero_k(store, ids["underflow"], latest_step_only=figure == "timestep_profile")
    (pdf, *_) = export(figure, tmp_path / f"{figure}.pdf", store=store, run_ids=[ids["underflow"]])
    text = pdf_text(pdf)
    assert f"below float32 range at k ≤ {k}" in text, text
    assert "recorded as 0" in text
    (clean, *_) = export(figure, tmp_path / "f64.pdf", store=store, run_ids=[ids["float64"]])
    assert "range" not in pdf_text(clean)
