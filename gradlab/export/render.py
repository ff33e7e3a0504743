"""Static rendering through plotly's kaleido (>= 1), which drives a Chrome/Chromium browser.

`Renderer` keeps ONE headless browser (with a few tabs) running on a private event-loop thread,
so a batch of figures — or many calls from the dashboard — do not start Chromium each time.
kaleido's own `start_sync_server` is a process-wide singleton whose thread dies silently when the
browser cannot start (later calls then block forever), so gradlab runs kaleido's `Kaleido`
class on its own loop and turns every failure into an `ExportError`.

Browser lookup (`find_browser`): the ``BROWSER_PATH`` environment variable if set (it must name
an executable file, else nothing is found), otherwise choreographer's search — a browser
downloaded by ``kaleido_get_chrome``, then chrome / chromium / edge / brave on PATH and their
usual install paths (Debian's /usr/bin/chromium included).

PDFs are printed without kaleido's 0.1 in page margins (`PDF_MARGIN_IN`: with them Chromium shrank
each figure to 94 % and cut off its bottom); SVGs are made portable (`portable_svg`).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

__all__ = [
    "INSTALL_HINT",
    "ExportError",
    "Renderer",
    "close_default_renderer",
    "default_renderer",
    "find_browser",
    "portable_svg",
    "start_default_renderer",
]

INSTALL_HINT = (
    "Static export (PDF/SVG/PNG) needs Chrome or Chromium. Install one — Debian/Ubuntu: "
    "`apt-get install chromium`; elsewhere: `kaleido_get_chrome` (or `plotly_get_chrome`) — "
    "or set BROWSER_PATH to a Chrome/Chromium executable."
)
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_TYPICAL = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


class ExportError(RuntimeError):
    """A figure could not be exported (no browser, the browser failed, a render timed out).

    `written`: files that were written anyway (the CSV and JSON sidecars)."""

    def __init__(self, message: str, written: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.written = list(written)


def _is_exe(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_browser() -> str | None:
    """Path of the Chrome/Chromium kaleido will use, or None (see the module docstring)."""
    override = os.environ.get("BROWSER_PATH")
    if override:
        return override if _is_exe(override) else None
    try:
        from choreographer.browsers.chromium import Chromium

        found = Chromium.find_browser(skip_local=False)
        if found and _is_exe(str(found)):
            return str(found)
    except Exception:  # best effort: fall back to our own search
        pass
    for name in _NAMES:
        found = shutil.which(name)
        if found and _is_exe(found):
            return found
    for path in _TYPICAL:
        if _is_exe(path):
            return path
    return None


def no_browser_message() -> str:
    """Why no browser was found, and how to get one."""
    override = os.environ.get("BROWSER_PATH")
    where = (
        f"BROWSER_PATH={override!r} is not an executable file"
        if override
        else "no Chrome/Chromium found on PATH or in the usual places"
    )
    return f"No browser for static export: {where}. {INSTALL_HINT}"


#: Reload a tab (reparsing plotly.js) after this many renders instead of after every one.
RELOAD_EVERY = 25


#: Page margins (inches) of Chromium's print to PDF. kaleido prints with 0.1 in margins, so
#: Chromium shrinks the figure to the printable width (8 pt text came out at 7.5 pt) and cuts
#: off its bottom (the x-axis title of a wide figure): the page IS the figure, so none.
PDF_MARGIN_IN = 0.0


async def _print_pdf(tab: Any) -> Any:
    """kaleido's print of the page to PDF, with `PDF_MARGIN_IN` margins."""
    from kaleido._kaleido_tab import _devtools_utils as dtools

    margin = PDF_MARGIN_IN
    response = await tab.send_command(
        "Page.printToPDF",
        params={
            "printBackground": True,
            "marginTop": margin,
            "marginBottom": margin,
            "marginLeft": margin,
            "marginRight": margin,
            "preferCSSPageSize": True,
            "pageRanges": "1",
        },
    )
    dtools._raise_error(response)
    return response.get("result", {}).get("data")


def _use_full_page_pdf() -> None:
    """Point kaleido's tabs at `_print_pdf` (a private kaleido 1.x function: if a later kaleido
    moves it, its own print applies and tests/export/test_layout_check.py reports the clipping).
    """
    try:
        from kaleido._kaleido_tab import _devtools_utils as dtools
    except ImportError:  # pragma: no cover - another kaleido layout
        return
    if hasattr(dtools, "print_pdf") and hasattr(dtools, "_raise_error"):
        dtools.print_pdf = _print_pdf


_FONT_SIZE = re.compile(r"font-size:\s*([\d.]+)px")
_TSPAN_PCT = re.compile(r'<tspan([^>]*?)style="font-size:\s*([\d.]+)%"([^>]*)>')
_DY_EM = re.compile(r'dy="(-?[\d.]+)em"')
_TEXT = re.compile(r"(<text\b[^>]*>)(.*?)(</text>)", re.DOTALL)


def portable_svg(svg: str) -> str:
    """plotly's SVG made to render the same outside a browser: sub/superscripts sized in px
    instead of % and shifted in px instead of em (MuPDF reads "70%" as 70 px, librsvg 2.4x
    ignores some), and heatmap images drawn pixelated by renderers that ignore the CSS."""

    def text(m: re.Match[str]) -> str:
        head, body, tail = m.groups()
        size = _FONT_SIZE.search(head)
        if size is None or "<tspan" not in body:
            return m.group(0)
        base = float(size.group(1))

        def tspan(t: re.Match[str]) -> str:
            before, pct, after = t.groups()
            px = base * float(pct) / 100
            rest = _DY_EM.sub(lambda d: f'dy="{float(d.group(1)) * px:.3f}"', before + after)
            return f'<tspan style="font-size:{px:.3f}px"{rest}>'

        body = _TSPAN_PCT.sub(tspan, body)
        body = _DY_EM.sub(lambda d: f'dy="{float(d.group(1)) * base:.3f}"', body)
        return head + body + tail

    svg = _TEXT.sub(text, svg)
    return svg.replace(
        'style="image-rendering: pixelated;',
        'image-rendering="optimizeSpeed" style="image-rendering: pixelated;',
    )


def _kaleido_class() -> type:
    """kaleido.Kaleido, reloading each tab only every `reload_every` renders.

    Stock kaleido reloads the tab's page (plotly.js, ~4 MB) after every figure, which is ~0.25 s
    of the ~0.3 s a figure takes; the page is stateless between renders (each render plots into a
    fresh div, and gradlab passes no topojson or MathJax), so gradlab reloads only now and then
    to bound memory. The override is of a private kaleido 1.x hook: if a later kaleido drops it,
    kaleido's own per-render reload simply applies.
    """
    import kaleido

    _use_full_page_pdf()

    class _Kaleido(kaleido.Kaleido):
        def __init__(self, *args: Any, reload_every: int = RELOAD_EVERY, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._reload_every = max(1, int(reload_every))
            self._renders: dict[int, int] = {}

        async def _return_kaleido_tab(self, tab: Any) -> None:
            n = self._renders.get(id(tab), 0) + 1
            if n >= self._reload_every:
                self._renders[id(tab)] = 0
                await super()._return_kaleido_tab(tab)  # reloads, then queues the tab
                return
            self._renders[id(tab)] = n
            await self.tabs_ready.put(tab)

    return _Kaleido


class Renderer:
    """One headless browser for many renders. Use as a context manager, or `start`/`close`.

    `tabs`: browser tabs rendering in parallel (one is fastest to start, and renders are
    quick); `timeout`: seconds per figure; `reload_every`: renders between tab reloads.
    """

    def __init__(
        self,
        browser_path: str | None = None,
        tabs: int = 1,
        timeout: float = 90,
        reload_every: int = RELOAD_EVERY,
    ) -> None:
        self.browser_path = browser_path
        self.tabs = tabs
        self.timeout = timeout
        self.reload_every = reload_every
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kaleido: Any = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._kaleido is not None and self._thread is not None and self._thread.is_alive()

    def start(self) -> Renderer:
        """Find the browser and open it (ExportError if there is none or it fails to start)."""
        with self._lock:
            if self.running:
                return self
            path = self.browser_path or find_browser()
            if path is None or not _is_exe(path):
                raise ExportError(no_browser_message())
            self.browser_path = path
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="gradlab-kaleido", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
            try:
                self._kaleido = self._call(self._open(path), timeout=120)
            except BaseException as exc:
                self._stop_loop()
                if isinstance(exc, ExportError):
                    raise
                raise ExportError(
                    f"the browser at {path!r} failed to start for static export: {exc}. "
                    f"{INSTALL_HINT}"
                ) from exc
        return self

    async def _open(self, path: str) -> Any:
        k = _kaleido_class()(
            n=self.tabs,
            timeout=self.timeout,
            mathjax=False,
            path=path,
            reload_every=self.reload_every,
        )
        await k.open()
        return k

    def _call(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout as exc:
            future.cancel()
            raise ExportError(f"static export timed out after {timeout:.0f} s") from exc

    def render(self, jobs: Sequence[tuple[Any, dict[str, Any]]]) -> list[bytes]:
        """Render ``[(figure, opts), ...]`` → bytes each; opts: format, width, height (px),
        scale. All jobs share the browser; up to `tabs` render at once."""
        if not jobs:
            return []
        if not self.running:
            self.start()
        k = self._kaleido

        async def batch() -> list[bytes]:
            return await asyncio.gather(*(k.calc_fig(fig, opts=opts) for fig, opts in jobs))

        try:
            out = self._call(batch(), timeout=self.timeout * max(1, len(jobs) / self.tabs) + 30)
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(f"static export failed: {exc}") from exc
        return [
            portable_svg(data.decode("utf-8")).encode("utf-8")
            if opts.get("format") == "svg"
            else data
            for data, (_, opts) in zip(out, jobs, strict=True)
        ]

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop = self._thread = None
        self._kaleido = None

    def close(self) -> None:
        """Close the browser and stop the loop thread (safe to call twice)."""
        with self._lock:
            if self._kaleido is not None and self._loop is not None:
                try:
                    self._call(self._kaleido.close(), timeout=30)
                except Exception:  # closing a dead browser is fine
                    pass
            self._stop_loop()

    def __enter__(self) -> Renderer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: Renderer | None = None
_default_lock = threading.Lock()


def default_renderer() -> Renderer:
    """The shared renderer, started on first use and kept for later exports; restarted when
    the browser `find_browser` names has changed (e.g. BROWSER_PATH was set)."""
    global _default
    with _default_lock:
        path = find_browser()
        if path is None:
            raise ExportError(no_browser_message())
        if _default is not None and (not _default.running or _default.browser_path != path):
            _default.close()
            _default = None
        if _default is None:
            _default = Renderer(path).start()
        return _default


def start_default_renderer() -> Future[Renderer]:
    """Start (or reuse) the shared renderer in a background thread and return at once.

    Exports call this before they read the store and build figures, so Chromium's start-up
    overlaps that work; ``future.result()`` gives the renderer or raises its ExportError."""
    future: Future[Renderer] = Future()

    def work() -> None:
        try:
            future.set_result(default_renderer())
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)

    threading.Thread(target=work, name="gradlab-kaleido-start", daemon=True).start()
    return future


def close_default_renderer() -> None:
    """Close the shared renderer (also done at interpreter exit)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
            _default = None


atexit.register(close_default_renderer)
