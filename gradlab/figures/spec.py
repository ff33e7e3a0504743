"""`FigureSpec`: one registry entry of `gradlab.figures.FIGURES`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from gradlab.figures.data import FigureData

__all__ = ["SCOPES", "FigureSpec"]

#: "run": one run; "runs": one or more runs overlaid; "sweep": all runs of a sweep.
SCOPES = ("run", "runs", "sweep")


@dataclass(frozen=True)
class FigureSpec:
    """A figure: its name, a title and one-paragraph description, its scope, the data it needs
    and its builder ``builder(data: FigureData, **options) -> go.Figure``.

    `probes`: ``((probe, names), ...)`` with the probe classes' constants, so a caller fetches
    exactly that with ``store.metrics(run_ids, probes=probe, names=list(names))``. `arrays`: the
    array names it reads (``store.run(id).array(name, step)``). `options`: keyword options of the
    builder → one-line help (for ``gradlab export --list`` and the dashboard's controls).
    `requires(options)`: the (probe, names) needed for given options (see `probes_for`).
    """

    name: str
    title: str
    description: str
    scope: str
    probes: tuple[tuple[str, tuple[str, ...]], ...]
    builder: Callable[..., go.Figure]
    arrays: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    requires: Callable[[Mapping[str, Any]], tuple[tuple[str, tuple[str, ...]], ...]] | None = None

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")

    def probes_for(self, **options: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The (probe, names) needed for these options (e.g. only the chosen ``quantity``);
        `probes` (everything any option may need) when the figure does not narrow it."""
        if self.requires is None:
            return self.probes
        return self.requires(options)

    def __call__(self, data: FigureData, **options: Any) -> go.Figure:
        """Same as ``self.builder(data, **options)``."""
        return self.builder(data, **options)
