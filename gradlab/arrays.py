"""Names of the arrays `gradlab.train` saves at every recorded step (one source for train,
figures and the dashboard), with the shape of one saved step."""

from __future__ import annotations

__all__ = [
    "ARRAYS",
    "FIXED_POINT_EIGENVALUES",
    "FIXED_POINT_STATES",
    "HIDDEN_SAMPLE",
    "STEP_JACOBIAN_SV",
]

#: Hidden trajectories of the first ``hidden_samples`` batch rows, layer 0 forward:
#: (T+1, hidden_samples, N).
HIDDEN_SAMPLE = "hidden_sample"
#: Singular values of every step Jacobian ∂s_t/∂s_{t−1} of layer 0 forward, batch row 0:
#: (T, S), S the state size (N; 2N for an LSTM's (h, c)).
STEP_JACOBIAN_SV = "step_jacobian_sv"
#: The fixed / slow points the `fixed_points` probe found, layer 0 forward, in its order (t of
#: its rows): (P, S), at the recordings that searched for them.
FIXED_POINT_STATES = "fixed_point_states"
#: The step Jacobian's eigenvalues at each of those points, |λ| descending: (P, S, 2), the real
#: and imaginary parts.
FIXED_POINT_EIGENVALUES = "fixed_point_eigenvalues"
#: Every array name train writes.
ARRAYS = (HIDDEN_SAMPLE, STEP_JACOBIAN_SV, FIXED_POINT_STATES, FIXED_POINT_EIGENVALUES)
