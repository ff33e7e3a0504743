"""`summary` / `decay_rate`, ..., `theory_rate`: `gradlab.fits.summarize` of one recording.

Layer 0, forward direction. `decay_rate` is the *state decay rate*: the fitted slope of
ln ‖∂s_T/∂s_k‖ against the lag T−k, with ‖·‖ the spectral norm averaged over the probe's
Jacobian samples — the same series the `jacobian` probe stores, computed once per recording
(`state_jacobian_norms`). With no Jacobian samples it falls back to the Frobenius norm averaged
over the whole probe batch (no SVD needed); the run's `jacobian_samples` says which.
`adjoint_decay_rate` is the slope of ‖∂L/∂h_t‖ against T−t. The W_hh contribution norms
(t = 1..T) and the theory's rate for the run's config stand beside them. One row per name; t,
layer and direction are null.
"""

from __future__ import annotations

import numpy as np
import torch

from gradlab.fits import SUMMARY_KEYS, summarize
from gradlab.probes.base import Probe, ProbeContext, Rows, masked_norms, state_jacobian_norms
from gradlab.record import Recording


class SummaryProbe(Probe):
    """State and adjoint decay rates, memory horizons, early-step share, and the theory."""

    probe = "summary"
    names = SUMMARY_KEYS
    needs_loss = True

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        view = rec.layer(0)
        state = state_jacobian_norms(rec, context).to("cpu", torch.float64)
        grad_norms = masked_norms(view.grad_hidden, view, 0).cpu()  # NaN: no sequence at t
        contributions = view.contribution_norms("weight_hh").to("cpu", torch.float64)
        values = summarize(
            state.numpy(), grad_norms.numpy(), contributions.numpy(), context.theory_rate
        )
        rows = Rows()
        for name in self.names:
            rows.add(name, [values[name]])
        return rows.columns()
