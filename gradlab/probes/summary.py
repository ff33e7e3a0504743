"""`summary` / `decay_rate`, ..., `theory_rate`: `gradlab.fits.summarize` of one recording.

Fitted on layer 0, forward direction: the hidden-gradient norms ‖∂L/∂h_t‖ (t = 0..T) and the
W_hh contribution norms (t = 1..T), with the theory's rate for the run's config beside them.
One row per name; t, layer and direction are null.
"""

from __future__ import annotations

import numpy as np
import torch

from gradlab.fits import SUMMARY_KEYS, summarize
from gradlab.probes.base import Probe, ProbeContext, Rows
from gradlab.record import Recording


class SummaryProbe(Probe):
    """Decay rate, memory horizons and early-step share of one recording, and the theory."""

    probe = "summary"
    names = SUMMARY_KEYS
    needs_loss = True

    def rows(self, rec: Recording, context: ProbeContext) -> dict[str, list | np.ndarray]:
        view = rec.layer(0)
        grad_norms = view.grad_hidden.flatten(1).to("cpu", torch.float64).norm(dim=1)
        contributions = view.contribution_norms("weight_hh").to("cpu", torch.float64)
        values = summarize(grad_norms.numpy(), contributions.numpy(), context.theory_rate)
        rows = Rows()
        for name in self.names:
            rows.add(name, [values[name]])
        return rows.columns()
