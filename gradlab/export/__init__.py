"""gradlab.export: figures as paper-ready PDF / SVG / PNG, each with a .csv and a .json.

``export(fig_or_name, path, *, store=None, run_ids=None, sweep=None, format=None,
width="single", font="serif", dpi=300, **options) -> list[Path]`` renders a figure of
`gradlab.figures` in the paper template (`gradlab.export.template`) through plotly + kaleido,
which drives a system Chrome/Chromium (``BROWSER_PATH`` overrides the search). Batches
(`export_many`, `export_sweep`, the ``gradlab export --all`` command) share one browser.
`figure_bytes(fig, format, width, font)` is what the dashboard's Export button calls.
Without a browser: `ExportError` with how to install one; the CSV/JSON are still written. A
figure with nothing to draw raises `EmptyFigureError` (an ExportError) and writes nothing.
`gradlab.export.layout_check` measures the text of an exported PDF / SVG (needs PyMuPDF).
"""

from gradlab.export.core import (
    FORMATS,
    EmptyFigureError,
    export,
    export_many,
    export_sweep,
    figure_bytes,
)
from gradlab.export.data import load_figure_data
from gradlab.export.render import (
    ExportError,
    Renderer,
    close_default_renderer,
    default_renderer,
    find_browser,
    start_default_renderer,
)
from gradlab.export.template import FONTS, WIDTHS, paper_figure

__all__ = [
    "FONTS",
    "FORMATS",
    "WIDTHS",
    "EmptyFigureError",
    "ExportError",
    "Renderer",
    "close_default_renderer",
    "default_renderer",
    "export",
    "export_many",
    "export_sweep",
    "figure_bytes",
    "find_browser",
    "load_figure_data",
    "paper_figure",
    "start_default_renderer",
]
