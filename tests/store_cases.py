"""Names of the small REAL store shared by tests/figures and tests/export (a plain module, so
test modules can import them; tests/ is not a package). The store itself — its runs, its
builder and the session fixtures `fig_store`, `cell_runs`, `grid_runs` — is in tests/conftest.py.
"""

CELLS_SWEEP, GRID_SWEEP = "figtest-cells", "figtest-grid"

#: The float-range store (tests/conftest.py's `range_store`): which run shows what.
RANGE_SWEEP = "figtest-range"
#: ‖∂L/∂h_k‖ of a default-init tanh RNN at T = 300 falls ~0.6 nats a step: in float32 it
#: underflows to 0 at the first steps ("underflow"); the same run with adjoint_dtype = "float64"
#: keeps them ("float64"); a relu RNN whose units are all dead has true zeros ("dead-relu");
#: an LSTM's ‖∂L/∂h_k‖ underflows at T = 300 while its ‖∂L/∂c_k‖ does not ("lstm-underflow");
#: a relu RNN's states overflow to Inf ("overflow").
RANGE_RUNS = ("underflow", "float64", "dead-relu", "lstm-underflow", "overflow")
