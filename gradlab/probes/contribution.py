"""`contribution` / `weight_hh`, `weight_ih`, `bias_hh`, `bias_ih` (and `weight_hr` of an LSTM
with proj_size): the Frobenius norm of step t's term of ∂L/∂param, t = 1..T (summed over t, the
terms are the gradient)."""

from __future__ import annotations

import numpy as np

from gradlab.probes.base import Probe, ProbeContext, Rows, layer_views
from gradlab.record import Recording


class ContributionProbe(Probe):
    """Per-timestep gradient contributions of every parameter (biases only if the model has
    them), computed from Gram matrices without forming the (T, *shape) terms."""

    probe = "contribution"
    names = ("weight_hh", "weight_ih", "bias_hh", "bias_ih")
    needs_loss = True

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        rows = Rows()
        names = self.names if rec.model.bias else self.names[:2]
        if getattr(rec.model, "proj_size", 0):  # a projected LSTM: h_t = W_hr (o ⊙ tanh c_t)
            names = (*names, "weight_hr")
        for layer, direction, view in layer_views(rec):
            for name in names:
                norms = view.contribution_norms(name)  # (T,)
                rows.add(name, norms, t0=1, layer=layer, direction=direction)
        return rows.columns()
