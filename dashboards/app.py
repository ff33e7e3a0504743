"""The dashboard's shell: the Dash app, its navbar and page container. Pages live in ``pages/``.

``create_app(store_path)`` builds the app over one store (the folder is fixed here, in the Flask
config; nothing in a URL can name another). ``serve(store_path)`` runs it on 127.0.0.1:8050, and
says so on stderr when asked to listen on an address other machines can reach.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path
from types import ModuleType

import dash
from dash import Dash, dcc, html
from dash.development.base_component import Component

from dashboards import data

__all__ = [
    "create_app",
    "exposure_warning",
    "is_loopback",
    "page_module",
    "serve",
    "warm_exports",
]

HERE = Path(__file__).resolve().parent
PAGES = HERE / "pages"
ASSETS = HERE / "assets"

#: Navbar entries (label, path); sweeps are listed after them.
NAV = (("Runs", "/"), ("Compare", "/compare"))
#: Dash loads each file of PAGES as module ``pages.<file>`` (named after this module's folder).
PAGE_PACKAGE = "pages"


def _navbar() -> html.Nav:
    """Links to the pages, and one per sweep in the store."""
    links: list[Component] = [
        dcc.Link(label, href=href, className="nav-link") for label, href in NAV
    ]
    try:
        names = data.sweeps(data.current_root())
    except Exception:  # a broken store still gets a navbar; the pages say what is wrong
        names = []
    if names:
        links.append(html.Span("Sweeps:", className="nav-label"))
        links += [
            dcc.Link(name, href=f"/sweep/{name}", className="nav-link nav-sweep")
            for name in names[:12]
        ]
    return html.Nav(
        [dcc.Link("gradlab", href="/", className="nav-brand"), *links],
        className="navbar",
        id="navbar",
    )


def _shell() -> html.Div:
    """The layout around every page: navbar, the selected-runs store, the page container."""
    return html.Div(
        [
            _navbar(),
            # Run ids ticked in the runs table, kept while the user moves between pages.
            dcc.Store(id="selected-runs", storage_type="session", data=[]),
            html.Main(dash.page_container, className="page"),
        ]
    )


def create_app(store_path: str | os.PathLike[str]) -> Dash:
    """The Dash app over the store in ``store_path`` (a folder; created empty if missing)."""
    root = data.resolve_root(store_path)
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder=str(PAGES),
        assets_folder=str(ASSETS),
        title="gradlab",
        update_title="",  # falsy: the tab title does not flash "Updating..."
        suppress_callback_exceptions=True,
        # plotly.js loads with the page, not after the first graph asks for it: a run page's
        # first figures are drawn as soon as its layout arrives
        eager_loading=True,
    )
    app.server.config[data.STORE_KEY] = root
    app.layout = _shell
    # Dash collects the pages' callbacks from a module-level list when it serves its first
    # request; doing that now binds them to this app even if another app is created later.
    with app.server.test_request_context("/"):
        app.server.preprocess_request()
    return app


def warm_exports() -> None:
    """Start the PNG / PDF renderer (kaleido's Chromium) in a background thread now, so the
    first export a user asks for does not wait for the browser to start (returns at once; a
    missing browser is reported when an export is asked for, as before)."""
    try:
        from gradlab.export import start_default_renderer
    except ImportError:  # export extras not installed: exports say so when clicked
        return
    start_default_renderer()


def page_module(name: str) -> ModuleType:
    """The loaded module of page ``name`` ("runs", "run", "compare", "sweep") of the app
    created last (Dash executes page files itself; their callbacks are plain functions)."""
    return sys.modules[f"{PAGE_PACKAGE}.{name}"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) reaches only this machine: every address it
    resolves to is a loopback address (127.0.0.0/8, ::1). A name that does not resolve: False."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    addresses = {str(info[4][0]).split("%")[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def exposure_warning(host: str, port: int) -> str | None:
    """What serving on ``host`` exposes, or None for a loopback address (the default)."""
    if is_loopback(host):
        return None
    try:
        everywhere = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        everywhere = False
    where = (
        f"on every network interface of this machine (--host {host})"
        if everywhere
        else f"on {host}, which is not a loopback address"
    )
    return (
        f"warning: serving the dashboard {where}: anyone who can reach port {port} of this "
        "machine can browse every run in the store and download its data; the dashboard has no "
        "login and no encryption. Use --host 127.0.0.1 (the default) to keep it to this machine."
    )


def serve(
    store_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8050,
    debug: bool = False,
) -> None:
    """Serve the dashboard of ``store_path`` on http://host:port (127.0.0.1 unless told; any
    other address gets :func:`exposure_warning` on stderr first)."""
    app = create_app(store_path)
    warm_exports()
    warning = exposure_warning(host, port)
    if warning is not None:
        print(warning, file=sys.stderr)
    print(f"gradlab dashboard of {data.resolve_root(store_path)} on http://{host}:{port}/")
    app.run(host=host, port=port, debug=debug)
