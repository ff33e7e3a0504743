"""`grad_hidden` / `norm`: ‖∂L/∂h_t‖, Frobenius norm over the batch, t = 0..T."""

from __future__ import annotations

import numpy as np
import torch

from gradlab.probes.base import Probe, ProbeContext, Rows, layer_views
from gradlab.record import Recording


class GradHiddenProbe(Probe):
    """The total BPTT adjoint's norm per step, for every layer and direction."""

    probe = "grad_hidden"
    names = ("norm",)
    needs_loss = True

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        rows = Rows()
        for layer, direction, view in layer_views(rec):
            # float64 norms: the squares of a float32 adjoint below ~1e-23 would underflow
            norms = view.grad_hidden.flatten(1).to(torch.float64).norm(dim=1)  # (T+1,)
            rows.add("norm", norms, t0=0, layer=layer, direction=direction)
        return rows.columns()
