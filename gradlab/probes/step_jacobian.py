"""`step_jacobian` / `fro`, `spectral`: mean over the probe samples of ‖∂s_t/∂s_{t-1}‖, t = 1..T.

`fro` is cheap (no Jacobian is formed) and averages over the whole probe batch; `spectral`
(Lanczos with the step map's JVP / VJP to 100·eps, or the largest singular value of a row
whose spectrum the run already saves) averages over `context.jacobian_samples` only (no rows
when there are none). With padding, means over the sequences still running at t (a finished
sequence's J_t is the identity, not data); no row where none of them runs.
"""

from __future__ import annotations

import numpy as np

from gradlab.probes.base import (
    Probe,
    ProbeContext,
    Rows,
    layer_views,
    masked_mean,
    present,
    running,
)
from gradlab.record import Recording


class StepJacobianProbe(Probe):
    """Norms of the one-step state Jacobians J_t (S×S; S = 2N for an LSTM's (h, c))."""

    probe = "step_jacobian"
    names = ("fro", "spectral")
    needs_loss = False

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        rows = Rows()
        samples = list(context.jacobian_samples)
        for layer, direction, view in layer_views(rec):
            fro = masked_mean(view.step_jacobian_norms("fro"), view, 1)  # (T,)
            keep = present(view, 1, view.T)
            rows.add("fro", fro, t0=1, layer=layer, direction=direction, keep=keep)
            if samples:
                norms = view.step_jacobian_norms(2, samples=samples)  # (T, samples)
                spectral = masked_mean(norms, view, 1, samples)
                mask = running(view, 1, view.T)
                keep = None if mask is None else mask[:, samples].any(1)
                rows.add("spectral", spectral, t0=1, layer=layer, direction=direction, keep=keep)
        return rows.columns()
