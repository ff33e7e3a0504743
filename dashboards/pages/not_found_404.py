"""Any other path: say so and link the pages (Dash shows this for unknown URLs)."""

from __future__ import annotations

from typing import Any

import dash
from dash import dcc, html

from dashboards.pages import _common as common

dash.register_page(__name__, path="/404", title="Not found · gradlab", name="Not found")


def layout(**_: Any) -> html.Div:
    """A message and links to the Runs and Compare pages."""
    return html.Div(
        [
            html.H2("Page not found"),
            common.message(
                [
                    "There is no page at this address. Go to ",
                    dcc.Link("the runs", href="/"),
                    " or ",
                    dcc.Link("compare runs", href="/compare"),
                    ".",
                ],
                "info",
                id="notfound-message",
            ),
        ]
    )
