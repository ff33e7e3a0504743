"""Names of the arrays `gradlab.train` saves at every recorded step (one source for train,
figures and the dashboard), with the shape of one saved step."""

from __future__ import annotations

__all__ = ["ARRAYS", "HIDDEN_SAMPLE", "STEP_JACOBIAN_SV"]

#: Hidden trajectories of the first ``hidden_samples`` batch rows, layer 0 forward:
#: (T+1, hidden_samples, N).
HIDDEN_SAMPLE = "hidden_sample"
#: Singular values of every step Jacobian ∂s_t/∂s_{t−1} of layer 0 forward, batch row 0:
#: (T, S), S the state size (N; 2N for an LSTM's (h, c)).
STEP_JACOBIAN_SV = "step_jacobian_sv"
#: Every array name train writes.
ARRAYS = (HIDDEN_SAMPLE, STEP_JACOBIAN_SV)
