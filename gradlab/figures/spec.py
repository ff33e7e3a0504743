"""`FigureSpec`: one registry entry of `gradlab.figures.FIGURES`."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from gradlab.figures.data import FigureData

__all__ = ["FLOW", "GROUPS", "SCOPES", "FigureSpec", "ProbeNames"]

#: "run": one run; "runs": one or more runs overlaid; "sweep": all runs of a sweep.
SCOPES = ("run", "runs", "sweep")
#: Group of the figures whose ``quantity`` option is a per-timestep gradient norm (the pages'
#: "quantity" control drives them).
FLOW = "flow"
#: Figure groups: figures of one group share a page control.
GROUPS = (FLOW,)

#: ``((probe, (name, ...)), ...)``: series a figure reads, by probe.
ProbeNames = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class FigureSpec:
    """A figure: its name, a title and one-paragraph description, its scope, the data it needs
    and its builder ``builder(data: FigureData, **options) -> go.Figure``.

    `probes`: ``((probe, names), ...)`` with the probe classes' constants, so a caller fetches
    exactly that with ``store.metrics(run_ids, probes=probe, names=list(names))``. `arrays`: the
    array names it reads (``store.run(id).array(name, step)``). `options`: keyword options of the
    builder → one-line help (for ``gradlab export --list`` and the dashboard's controls).
    `requires(options)`: the (probe, names) needed for given options (see `probes_for`).
    `group`: one of GROUPS or None (``"flow"``: the page's quantity control drives it).
    `reading`: one "how to read this" line for where a newcomer misreads the figure ("" when
    the description says enough); pages show it under the figure.
    `needs_probe`: a probe a run must have for the figure to mean anything (gates: only gated
    cells record them); None: any series it lists will do (see `has_data`). `defaults(data)`:
    options picked from the data when a caller (a sweep export) gives none.

    Pages list figures and export writes them in `FIGURES` order: the registry is the order.
    """

    name: str
    title: str
    description: str
    scope: str
    probes: ProbeNames
    builder: Callable[..., go.Figure]
    arrays: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    requires: Callable[[Mapping[str, Any]], ProbeNames] | None = None
    group: str | None = None
    needs_probe: str | None = None
    defaults: Callable[[FigureData], Mapping[str, Any]] | None = None
    reading: str = ""

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")
        if self.group is not None and self.group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS} or None, got {self.group!r}")
        if self.needs_probe is not None and self.needs_probe not in {p for p, _ in self.probes}:
            raise ValueError(f"needs_probe {self.needs_probe!r} is not among the probes it reads")

    def has_data(self, series: Collection[tuple[str, str]], arrays: Collection[str]) -> bool:
        """Whether a run with these (probe, name) series and array names has anything this
        figure draws: (with `needs_probe` present) one of its arrays, or one of its series."""
        if self.needs_probe is not None and not any(p == self.needs_probe for p, _ in series):
            return False
        if self.arrays:
            return any(a in arrays for a in self.arrays)
        return any((p, n) in series for p, names in self.probes for n in names)

    def default_options(self, data: FigureData) -> dict[str, Any]:
        """Options chosen from ``data`` by `defaults` ({} when the figure has none)."""
        return dict(self.defaults(data)) if self.defaults is not None else {}

    def option_names(self) -> list[str]:
        """Every option the builder takes: the documented `options` first, then its other
        keyword parameters (``layer``, ``direction``...), in signature order."""
        params = inspect.signature(self.builder).parameters
        keyword = [
            n
            for n, p in list(params.items())[1:]  # the first parameter is the FigureData
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        return [*self.options, *(n for n in keyword if n not in self.options)]

    def check_options(self, options: Mapping[str, Any]) -> None:
        """ValueError naming an option the builder does not take, the closest valid one
        ("did you mean step?") and every valid option; nothing when all are known."""
        params = inspect.signature(self.builder).parameters.values()
        if any(p.kind == p.VAR_KEYWORD for p in params):
            return
        valid = self.option_names()
        for key in options:
            if key in valid:
                continue
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(
                f"figure {self.name!r} has no option {key!r}{hint}; its options: {', '.join(valid)}"
            )

    def probes_for(self, **options: Any) -> ProbeNames:
        """The (probe, names) needed for these options (e.g. only the chosen ``quantity``);
        `probes` (everything any option may need) when the figure does not narrow it."""
        if self.requires is None:
            return self.probes
        return self.requires(options)

    def __call__(self, data: FigureData, **options: Any) -> go.Figure:
        """Same as ``self.builder(data, **options)``."""
        return self.builder(data, **options)
