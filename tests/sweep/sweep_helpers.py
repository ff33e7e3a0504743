"""Plain helpers shared by the sweep tests (imported as ``sweep_helpers``)."""

from __future__ import annotations

from pathlib import Path


def run_dirs(store: Path) -> list[str]:
    """Run ids that have a folder in the store."""
    return sorted(p.name.removeprefix("run_id=") for p in (store / "runs").glob("run_id=*"))
