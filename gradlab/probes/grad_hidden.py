"""`grad_hidden` / `norm`: ‖∂L/∂h_t‖, Frobenius norm over the batch (the sequences still running
at t, see `masked_norms`), t = 0..T."""

from __future__ import annotations

import numpy as np

from gradlab.probes.base import Probe, ProbeContext, Rows, layer_views, masked_norms, present
from gradlab.record import Recording


class GradHiddenProbe(Probe):
    """The total BPTT adjoint's norm per step, for every layer and direction."""

    probe = "grad_hidden"
    names = ("norm",)
    needs_loss = True

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        rows = Rows()
        for layer, direction, view in layer_views(rec):
            norms = masked_norms(view.grad_hidden, view, 0)  # (T+1,), float64
            keep = present(view, 0, norms.shape[0])
            rows.add("norm", norms, t0=0, layer=layer, direction=direction, keep=keep)
        return rows.columns()
