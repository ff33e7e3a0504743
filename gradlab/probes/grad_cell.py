"""`grad_cell` / `norm`: LSTM ‖∂L/∂c_t‖, Frobenius norm over the batch, t = 0..T."""

from __future__ import annotations

import numpy as np
import torch

from gradlab.probes.base import Probe, ProbeContext, Rows, layer_views
from gradlab.record import Recording


class GradCellProbe(Probe):
    """The LSTM cell-state adjoint's norm per step; RNN and GRU write nothing."""

    probe = "grad_cell"
    names = ("norm",)
    needs_loss = True

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        rows = Rows()
        if rec.model.cell == "lstm":
            for layer, direction, view in layer_views(rec):
                norms = view.grad_cell.flatten(1).to(torch.float64).norm(dim=1)  # (T+1,)
                rows.add("norm", norms, t0=0, layer=layer, direction=direction)
        return rows.columns()
