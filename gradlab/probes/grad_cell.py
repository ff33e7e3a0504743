"""`grad_cell` / `norm`: ‖∂L/∂c_t‖ of a cell with a cell state (LSTM), Frobenius norm over the
batch (the sequences still running at t), t = 0..T."""

from __future__ import annotations

import numpy as np

from gradlab.cells import get_cell
from gradlab.probes.base import Probe, ProbeContext, Rows, layer_views, masked_norms, present
from gradlab.record import Recording


class GradCellProbe(Probe):
    """The cell-state adjoint's norm per step; cells without a cell state write nothing."""

    probe = "grad_cell"
    names = ("norm",)
    needs_loss = True

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        rows = Rows()
        if get_cell(rec.model.cell).has_cell_state:
            for layer, direction, view in layer_views(rec):
                norms = masked_norms(view.grad_cell, view, 0)  # (T+1,), float64
                keep = present(view, 0, norms.shape[0])
                rows.add("norm", norms, t0=0, layer=layer, direction=direction, keep=keep)
        return rows.columns()
