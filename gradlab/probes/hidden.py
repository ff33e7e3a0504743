"""`hidden` / `mean_abs`, `saturation`, `dead`: statistics of the hidden states, t = 0..T
(see `LayerRecording.hidden_stats`)."""

from __future__ import annotations

import numpy as np

from gradlab.probes.base import Probe, ProbeContext, Rows, layer_views
from gradlab.record import Recording


class HiddenProbe(Probe):
    """Mean |h|, fraction of saturated units and fraction of dead (relu) units per step."""

    probe = "hidden"
    names = ("mean_abs", "saturation", "dead")
    needs_loss = False

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        rows = Rows()
        for layer, direction, view in layer_views(rec):
            stats = view.hidden_stats()
            for name in self.names:
                rows.add(name, stats[name], t0=0, layer=layer, direction=direction)
        return rows.columns()
