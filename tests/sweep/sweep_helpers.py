"""Plain helpers shared by the sweep tests (imported as ``sweep_helpers``)."""

from __future__ import annotations

from pathlib import Path


def run_dirs(store: Path) -> list[str]:
    """Run ids that have a folder in the store."""
    return sorted(p.name.removeprefix("run_id=") for p in (store / "runs").glob("run_id=*"))


# A run that every config check accepts and that fails inside its worker: the activation
# registered by tests/failing_activation.py raises when the run first applies it.
FAILING_PLUGIN = str(Path(__file__).resolve().parents[1] / "failing_activation.py")
FAILING_INCLUDE = '[[include]]\nactivation = "failing"\n'
FAILING_MESSAGE = "the failing activation raised on purpose"
