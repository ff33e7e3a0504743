"""gradlab.figures: every figure gradlab shows, built from DataFrames (never from the store).

``builder(data: FigureData, **options) -> plotly.graph_objects.Figure``; the dashboard and
`gradlab.export` call the same builders, so what is on screen is what is exported.
`FIGURES` maps each name to its `FigureSpec` (title, description, scope, the probes and arrays it
reads, its options, its group and the probe it needs); pages, export and tests enumerate it, in
its order. `figure_table(fig)` returns exactly the data a figure plots; `run_styles(data, ids)`
the colour, dash and marker each run gets (pages use it to show a run's colour).

Adding a figure: write one module with ``build`` and ``SPEC`` and add one line to `FIGURES`
(where it goes in the list is where pages show it).

>>> from gradlab.figures import FIGURES, FigureData
>>> fig = FIGURES["timestep_profile"].builder(FigureData())
>>> fig.layout.annotations[0].text
'no data: no runs selected'
"""

from gradlab.figures import (  # the registry's modules, one per figure
    cell_vs_hidden,
    fixed_point_pca,
    fixed_point_rates,
    fixed_point_spectrum,
    gates,
    gradient_flow,
    hidden_trajectory,
    jacobian_lag,
    phase_diagram,
    saturation,
    singular_values,
    step_jacobian,
    style,
    timestep_profile,
    training,
)
from gradlab.figures._common import RunStyle, is_empty, message_figure, run_styles
from gradlab.figures.data import FigureData
from gradlab.figures.spec import FLOW, GROUPS, SCOPES, FigureSpec
from gradlab.figures.table import figure_table

#: name → FigureSpec, in the order pages show figures and export writes them.
FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        gradient_flow.SPEC,
        timestep_profile.SPEC,
        jacobian_lag.SPEC,
        step_jacobian.SPEC,
        singular_values.SPEC,
        hidden_trajectory.SPEC,
        saturation.SPEC,
        gates.SPEC,
        cell_vs_hidden.SPEC,
        training.SPEC,
        fixed_point_rates.SPEC,
        fixed_point_spectrum.SPEC,
        fixed_point_pca.SPEC,
        phase_diagram.SPEC,
    )
}

__all__ = [
    "FIGURES",
    "FLOW",
    "GROUPS",
    "SCOPES",
    "FigureData",
    "FigureSpec",
    "RunStyle",
    "figure_table",
    "is_empty",
    "message_figure",
    "run_styles",
    "style",
]
