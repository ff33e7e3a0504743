"""Probes: each turns a `Recording` into tidy metric rows (see `gradlab.probes.base`).

`PROBES` is the registry the trainer runs at every recorded step. Adding a probe is one file
with a `Probe` subclass, one line in `PROBES`, and one reference test in tests/probes/.
Figures and the dashboard name probes by their class constant (`GradHiddenProbe.probe`), never
by a string.
"""

from gradlab.probes.base import COLUMNS, Probe, ProbeContext, Rows, layer_views, run_probes
from gradlab.probes.contribution import ContributionProbe
from gradlab.probes.fixed_points import FixedPointProbe
from gradlab.probes.gates import GatesProbe
from gradlab.probes.grad_cell import GradCellProbe
from gradlab.probes.grad_hidden import GradHiddenProbe
from gradlab.probes.hidden import HiddenProbe
from gradlab.probes.jacobian import JacobianProbe
from gradlab.probes.step_jacobian import StepJacobianProbe
from gradlab.probes.summary import SummaryProbe
from gradlab.probes.training import TrainProbe

#: probe column value → probe class, in the order the trainer runs them.
PROBES: dict[str, type[Probe]] = {
    cls.probe: cls
    for cls in (
        GradHiddenProbe,
        GradCellProbe,
        ContributionProbe,
        StepJacobianProbe,
        JacobianProbe,
        HiddenProbe,
        GatesProbe,
        SummaryProbe,
        FixedPointProbe,
    )
}

__all__ = [
    "COLUMNS",
    "PROBES",
    "ContributionProbe",
    "FixedPointProbe",
    "GatesProbe",
    "GradCellProbe",
    "GradHiddenProbe",
    "HiddenProbe",
    "JacobianProbe",
    "Probe",
    "ProbeContext",
    "Rows",
    "StepJacobianProbe",
    "SummaryProbe",
    "TrainProbe",
    "layer_views",
    "run_probes",
]
