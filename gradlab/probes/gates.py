"""`gates` / `i`, `f`, `g`, `o` (LSTM), `r`, `z`, `n` (GRU): batch-and-unit means of each gate,
t = 1..T. A vanilla RNN has no gates and writes nothing."""

from __future__ import annotations

import numpy as np

from gradlab.probes.base import Probe, ProbeContext, Rows, layer_views
from gradlab.record import Recording


class GatesProbe(Probe):
    """Mean gate activations per step, for every layer and direction."""

    probe = "gates"
    names = ("i", "f", "g", "o", "r", "z", "n")
    needs_loss = False

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        rows = Rows()
        for layer, direction, view in layer_views(rec):
            for name, means in view.gate_means().items():
                rows.add(name, means, t0=1, layer=layer, direction=direction)
        return rows.columns()
