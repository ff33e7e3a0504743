"""`jacobian` / `spectral`: mean over the probe samples of ‖∂s_T/∂s_k‖₂, t = k = 0..T-1.

One backward accumulation of the products J_T ⋯ J_{k+1} per layer and direction, over
`context.jacobian_samples` rows only (no rows when there are none); shared with the summary
probe's state decay rate through `state_jacobian_norms`, so it is computed once per recording.
With padding, sequence b counts at k < its length (`state_jacobian_norms`); no row where none
of the samples does.
"""

from __future__ import annotations

import numpy as np

from gradlab.probes.base import (
    Probe,
    ProbeContext,
    Rows,
    layer_views,
    running,
    state_jacobian_norms,
)
from gradlab.record import Recording


class JacobianProbe(Probe):
    """Spectral norm of the long-range state Jacobian from every step k to the last step T."""

    probe = "jacobian"
    names = ("spectral",)
    needs_loss = False

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        rows = Rows()
        if context.jacobian_samples:
            samples = list(context.jacobian_samples)
            for layer, direction, view in layer_views(rec):
                norms = state_jacobian_norms(rec, context, layer, direction)  # (T,), k = 0..T-1
                mask = running(view, 1, view.T)  # k counts while step k+1 is real
                keep = None if mask is None else mask[:, samples].any(1)
                rows.add("spectral", norms, t0=0, layer=layer, direction=direction, keep=keep)
        return rows.columns()
