"""Names of the small REAL store shared by tests/figures and tests/export (a plain module, so
test modules can import them; tests/ is not a package). The store itself — its runs, its
builder and the session fixtures `fig_store`, `cell_runs`, `grid_runs` — is in tests/conftest.py.
"""

CELLS_SWEEP, GRID_SWEEP = "figtest-cells", "figtest-grid"
