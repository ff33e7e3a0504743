"""Check an exported figure's text layout from the file itself, not from a screenshot.

``check_pdf(pdf_bytes, required)`` returns a `LayoutReport`: every text box (PyMuPDF's text
extraction, boxes from the glyph outlines), the boxes that leave the visible page, the pairs of
boxes that overlap, the `required` strings (axis, facet and colour-bar titles and notes:
`required_text(fig)`) not found as text, and the fonts (embedded? Type3?).
``check_svg(svg_bytes, required)`` reports the SVG's text (missing strings) and its `ink`: the
fraction of dark pixels when resvg (no browser) renders it — a blank SVG has none.
``report.ok`` is True when nothing is wrong; ``report.problems()`` says what is, in words;
``legend_share(report, fig)`` is the share of the page's height a legend above the plot takes.

>>> from gradlab.export.layout_check import strip_tags
>>> strip_tags("‖∂L/∂h<sub>k</sub>‖")
'‖∂L/∂hk‖'

Needs ``pymupdf`` (and ``resvg_py`` for `svg_ink`): ``pip install 'gradlab[test]'``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LEGEND_SHARE_MAX",
    "FontInfo",
    "LayoutReport",
    "TextBox",
    "check_pdf",
    "check_svg",
    "legend_share",
    "required_text",
    "strip_tags",
    "svg_ink",
]

#: Boxes may overlap (and leave the page) by this much, in points, before it counts.
TOLERANCE_PT = 0.5
#: A clip rectangle centred on the page and covering at least this fraction of it clips the
#: whole page (the printable area inside the print margins Chromium draws into); other clips
#: are plot areas, which text is not in.
PAGE_CLIP_FRACTION = 0.75
#: The most of a figure's height a legend above or under the plot may take.
LEGEND_SHARE_MAX = 0.2
#: A pixel is "dark" (ink) below this grey level (0–255) in `svg_ink`.
DARK_LEVEL = 160

_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACE = re.compile(r"[\s\u200b]+")


def strip_tags(text: str) -> str:
    """Plotly's HTML-ish label as plain text: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", str(text)))


@dataclass(frozen=True)
class TextBox:
    """One span of text on the page: its text, box (x0, y0, x1, y1 in points, y down), font
    and size, and the (block, line) it belongs to (spans of one line never count as
    overlapping: a superscript touches its base)."""

    text: str
    bbox: tuple[float, float, float, float]
    font: str
    size: float
    line: tuple[int, int]

    def overlap(self, other: TextBox) -> tuple[float, float]:
        """(width, height) in points of the intersection with `other` (≤ 0: apart)."""
        a, b = self.bbox, other.bbox
        return min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])


@dataclass(frozen=True)
class FontInfo:
    """A font of the page: its name, PDF type ("Type0", "TrueType", "Type3"...) and whether
    its glyphs are in the file (a font program, or a Type3 font's glyph procedures)."""

    name: str
    type: str
    embedded: bool

    @property
    def family(self) -> str:
        """The name without its subset prefix ("AAAAAA+DejaVuSerif" → "DejaVuSerif")."""
        return self.name.split("+", 1)[-1]


@dataclass
class LayoutReport:
    """What `check_pdf` / `check_svg` found. Page size in points; `ink`: fraction of dark
    pixels of the SVG rendered without a browser (None for a PDF)."""

    page: tuple[float, float]
    visible: tuple[float, float, float, float]
    boxes: list[TextBox]
    outside: list[TextBox] = field(default_factory=list)
    overlaps: list[tuple[TextBox, TextBox]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    fonts: list[FontInfo] = field(default_factory=list)
    ink: float | None = None

    @property
    def type3(self) -> list[FontInfo]:
        """Type3 fonts (glyphs drawn as PDF procedures: embedded, but not as a real font)."""
        return [f for f in self.fonts if f.type == "Type3"]

    @property
    def not_embedded(self) -> list[FontInfo]:
        return [f for f in self.fonts if not f.embedded]

    @property
    def ok(self) -> bool:
        """No text off the page, no overlaps, nothing missing, every font embedded."""
        return not (self.outside or self.overlaps or self.missing or self.not_embedded)

    def problems(self) -> list[str]:
        """Every problem in words (empty when `ok`)."""
        out = [
            f"outside the page {_fmt(self.visible)}: {b.text!r} at {_fmt(b.bbox)}"
            for b in self.outside
        ]
        out += [
            f"overlap: {a.text!r} {_fmt(a.bbox)} and {b.text!r} {_fmt(b.bbox)}"
            for a, b in self.overlaps
        ]
        out += [f"missing text: {m!r}" for m in self.missing]
        out += [f"font not embedded: {f.name} ({f.type})" for f in self.not_embedded]
        return out


def _fmt(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in box) + ")"


def _pymupdf() -> Any:
    try:
        import pymupdf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "gradlab.export.layout_check needs PyMuPDF: pip install 'gradlab[test]'"
        ) from exc
    return pymupdf


def required_text(fig: Any) -> list[str]:
    """The text a reader needs from a figure (plotly Figure or its dict): every visible axis
    title, colour-bar title and annotation (facet titles, notes), without tags; a `<br>`
    splits a text into lines, each required on its own."""
    d = fig.to_dict() if hasattr(fig, "to_dict") else fig
    layout: Mapping[str, Any] = d.get("layout", {})
    texts: list[str] = []
    for key, axis in layout.items():
        if key.startswith(("xaxis", "yaxis")) and isinstance(axis, Mapping):
            if axis.get("visible") is not False:
                texts.append(_title(axis.get("title")))
    for trace in d.get("data", []):
        if trace.get("showscale") is not False and trace.get("type") in ("heatmap", "contour"):
            texts.append(_title((trace.get("colorbar") or {}).get("title")))
    for key, value in layout.items():
        if key.startswith("coloraxis") and isinstance(value, Mapping):
            texts.append(_title((value.get("colorbar") or {}).get("title")))
    for ann in layout.get("annotations") or []:
        if ann.get("visible") is not False:
            texts.append(str(ann.get("text") or ""))
    out: list[str] = []
    for text in texts:
        for line in _BREAK.split(text):
            plain = strip_tags(line).strip()
            if plain and plain not in out:
                out.append(plain)
    return out


def _title(title: Any) -> str:
    if isinstance(title, Mapping):
        return str(title.get("text") or "")
    return str(title or "")


def _squash(text: str) -> str:
    """Text compared without spaces and with ligatures ("ﬁ") spelled out (NFKC)."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text))


def _page_clip(page: Any) -> tuple[float, float, float, float]:
    """The page rectangle, cut to every clip centred on it that covers most of it (Chromium
    clips the print to the area inside its margins: text beyond it is in the file, not shown)."""
    r = page.rect
    x0, y0, x1, y1 = r.x0, r.y0, r.x1, r.y1
    area = max(r.width * r.height, 1e-9)
    for item in page.get_drawings(extended=True):
        clip = item.get("scissor") if item.get("type") == "clip" else None
        if clip is None or clip.width * clip.height < PAGE_CLIP_FRACTION * area:
            continue
        if (
            abs((clip.x0 - r.x0) - (r.x1 - clip.x1)) > 1
            or abs((clip.y0 - r.y0) - (r.y1 - clip.y1)) > 1
        ):
            continue
        x0, y0 = max(x0, clip.x0), max(y0, clip.y0)
        x1, y1 = min(x1, clip.x1), min(y1, clip.y1)
    return x0, y0, x1, y1


def _flags() -> int:
    """Text extraction flags: boxes from the glyphs' outlines (the ink), not the font's
    ascender/descender, so two lines set tight but apart do not count as overlapping."""
    pymupdf = _pymupdf()
    flags = pymupdf.TEXTFLAGS_RAWDICT | pymupdf.TEXT_ACCURATE_BBOXES
    return int(flags & ~pymupdf.TEXT_MEDIABOX_CLIP)  # text off the page is "outside"


def _boxes(page: Any) -> list[TextBox]:
    """Every non-blank span, its box shrunk to its non-blank characters."""
    out = []
    raw = page.get_text("rawdict", flags=_flags(), clip=_pymupdf().INFINITE_RECT())
    for bi, block in enumerate(raw.get("blocks", [])):
        for li, line in enumerate(block.get("lines", [])):
            for span in line.get("spans", []):
                chars = [c for c in span.get("chars", []) if c["c"].strip() and c["c"] != "\u200b"]
                if not chars:
                    continue
                xs0, ys0, xs1, ys1 = zip(*(c["bbox"] for c in chars), strict=True)
                text = "".join(c["c"] for c in span["chars"]).strip()
                box = (min(xs0), min(ys0), max(xs1), max(ys1))
                out.append(TextBox(text, box, span["font"], float(span["size"]), (bi, li)))
    return out


def _fonts(doc: Any, page: Any) -> list[FontInfo]:
    out = []
    for xref, ext, ftype, basefont, *_ in page.get_fonts(full=False):
        if ftype == "Type3":
            embedded = "/CharProcs" in doc.xref_object(xref, compressed=True)
        else:
            embedded = ext not in ("n/a", "")
        out.append(FontInfo(str(basefont), str(ftype), bool(embedded)))
    return out


def _check_page(doc: Any, required: Iterable[str], tolerance: float) -> LayoutReport:
    page = doc[0]
    visible = _page_clip(page)
    boxes = _boxes(page)
    outside = [
        b
        for b in boxes
        if b.bbox[0] < visible[0] - tolerance
        or b.bbox[1] < visible[1] - tolerance
        or b.bbox[2] > visible[2] + tolerance
        or b.bbox[3] > visible[3] + tolerance
    ]
    overlaps = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if a.line == b.line:
                continue
            w, h = a.overlap(b)
            if w > tolerance and h > tolerance:
                overlaps.append((a, b))
    # all the page's text in reading order, without spaces: a title split into spans
    # (sub/superscripts, another font for one glyph) is still one substring
    text = _squash(page.get_text("text")) + _squash("".join(b.text for b in boxes))
    missing = [r for r in required if _squash(r) not in text]
    return LayoutReport(
        page=(page.rect.width, page.rect.height),
        visible=visible,
        boxes=boxes,
        outside=outside,
        overlaps=overlaps,
        missing=missing,
        fonts=_fonts(doc, page),
    )


def check_pdf(
    data: bytes, required: Iterable[str] = (), tolerance: float = TOLERANCE_PT
) -> LayoutReport:
    """Text layout of page 1 of a PDF: boxes outside the visible page (the page cut to a clip
    covering most of it), overlapping pairs (by more than `tolerance` points both ways; spans
    of one line excepted), `required` strings missing (spaces ignored), fonts."""
    pymupdf = _pymupdf()
    with pymupdf.open(stream=bytes(data), filetype="pdf") as doc:
        return _check_page(doc, list(required), tolerance)


def check_svg(data: bytes | str, required: Iterable[str] = ()) -> LayoutReport:
    """What an SVG holds without a browser: its text (every ``<text>`` element, tags and
    zero-width spaces dropped; `required` strings not found are `missing`) and `ink`, the
    fraction of dark pixels when resvg renders it (`svg_ink`). Text boxes are not measured
    here: kaleido prints the PDF from this same SVG, so `check_pdf` measures its layout
    (MuPDF's own SVG layout misplaces plotly's sub/superscripts, so it is no judge)."""
    import xml.etree.ElementTree as ET

    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    root = ET.fromstring(raw)
    ns = "{http://www.w3.org/2000/svg}"
    texts = ["".join(t.itertext()) for t in root.iter(f"{ns}text")]
    width, height = (float(root.get(k, "0").rstrip("px") or 0) for k in ("width", "height"))
    boxes = [TextBox(t.strip(), (0.0, 0.0, 0.0, 0.0), "", 0.0, (i, 0)) for i, t in enumerate(texts)]
    found = _squash("".join(texts))
    return LayoutReport(
        page=(width, height),
        visible=(0.0, 0.0, width, height),
        boxes=[b for b in boxes if _squash(b.text)],
        missing=[r for r in required if _squash(r) not in found],
        ink=svg_ink(raw),
    )


def svg_ink(data: bytes | str) -> float:
    """Fraction of the pixels that are dark when resvg (no browser) renders the SVG on white
    with the system fonts: 0 for an SVG that renders blank."""
    import numpy as np
    import resvg_py

    pymupdf = _pymupdf()
    svg = data.decode("utf-8") if isinstance(data, bytes) else data
    png = bytes(resvg_py.svg_to_bytes(svg_string=svg, background="white"))
    pix = pymupdf.Pixmap(png)
    pixels = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.h, pix.w, pix.n)
    return float((pixels[..., :3].min(axis=-1) < DARK_LEVEL).mean())


def legend_share(report: LayoutReport, fig: Any) -> float:
    """Fraction of the page height spanned by the legend's text, for a legend above or under
    the plot (horizontal); 0 for a legend beside it or none. `fig`: the figure as exported
    (`gradlab.export.template.paper_dict`), whose legend names are looked for in the boxes of
    the legend's half of the page (notes under the plot name runs too)."""
    d = fig.to_dict() if hasattr(fig, "to_dict") else fig
    layout = d.get("layout", {})
    legend = layout.get("legend") or {}
    if layout.get("showlegend") is False or legend.get("orientation") != "h":
        return 0.0
    lines = [
        _squash(strip_tags(line))
        for t in d.get("data", [])
        if t.get("showlegend") is not False and t.get("name")
        for line in _BREAK.split(str(t["name"]))
    ]
    top = float(legend.get("y", 1)) >= 0.5
    half = report.page[1] / 2
    ys = [
        (b.bbox[1], b.bbox[3])
        for b in report.boxes
        if (b.bbox[3] <= half if top else b.bbox[1] >= half)
        and len(_squash(b.text)) >= 2
        and not _squash(b.text).replace(".", "").isdigit()
        and any(_squash(b.text) in line for line in lines)
    ]
    if not ys:
        return 0.0
    return (max(y1 for _, y1 in ys) - min(y0 for y0, _ in ys)) / report.page[1]
