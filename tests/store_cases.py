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


def run_series(store, run_id: str) -> set[tuple[str, str]]:
    """The (probe, name) series a run of `store` has rows of."""
    rows = store.run(run_id).metrics()[["probe", "name"]].drop_duplicates()
    return set(zip(rows["probe"], rows["name"], strict=True))


def figure_run_ids(spec, store, cell_runs: dict[str, str], grid_runs: list[str]) -> list[str]:
    """The runs of the test store to draw `spec` from: the grid sweep for a sweep figure, every
    cell's run for a "runs" figure, and for a "run" figure the first cell's run that has what it
    draws (`FigureSpec.has_data`: the gates need a gated cell, the cell state an LSTM)."""
    if spec.scope == "sweep":
        return list(grid_runs)
    if spec.scope == "runs":
        return list(cell_runs.values())
    for run_id in cell_runs.values():
        if spec.has_data(run_series(store, run_id), store.run(run_id).array_names()):
            return [run_id]
    raise AssertionError(f"no run of the test store has anything {spec.name!r} draws")


#: The phase-diagram store (tests/conftest.py's `phase_store`): one sweep named like the demo's,
#: tanh RNN / LSTM / GRU × task (adding, identity) × unevenly spaced seq_len, the RNN at two
#: seeds — three varying keys besides x and y, and cells averaging 1 or 2 seeds.
PHASE_SWEEP = "vanishing-vs-lstm"
PHASE_CELLS, PHASE_TASKS, PHASE_SEQ_LENS = (
    ("rnn", "lstm", "gru"),
    ("adding", "identity"),
    (5, 10, 20, 30),
)
