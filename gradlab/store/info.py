"""RunInfo: a read-only view of one run (a snapshot of its run.json taken when it was opened)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import files
from .ids import validate_id

if TYPE_CHECKING:
    from .store import RunState, Store


class RunInfo:
    """One run. ``meta`` is the whole run.json dict ({} if unreadable; as found, bad fields
    included, when ``status`` is ``corrupt``)."""

    def __init__(self, store: Store, state: RunState) -> None:
        self._store = store
        self._state = state
        self.run_id: str = state.run_id
        self.path = state.path
        self.status: str = state.status
        self.alive: bool = state.alive
        self.reason: str | None = state.reason
        self.meta: dict[str, Any] = state.meta

    @property
    def config(self) -> dict[str, Any]:
        """The config the run was created with ({} if run.json has none or a malformed one)."""
        config = self.meta.get("config")
        return config if isinstance(config, dict) else {}

    @property
    def summary(self) -> dict[str, Any]:
        """The summary passed to ``finish`` ({} before that, or if run.json's is malformed)."""
        summary = self.meta.get("summary")
        return summary if isinstance(summary, dict) else {}

    @property
    def seed(self) -> Any:
        """``config["seed"]`` when there is one."""
        return self.meta.get("seed")

    def metrics(
        self,
        probes: str | list[str] | None = None,
        names: str | list[str] | None = None,
        steps: int | list[int] | range | None = None,
        t: int | list[int] | range | None = None,
    ) -> pd.DataFrame:
        """This run's metrics (see :meth:`Store.metrics`)."""
        return self._store.metrics([self.run_id], probes=probes, names=names, steps=steps, t=t)

    def array_names(self) -> list[str]:
        """Names under ``arrays/``."""
        base = self.path / files.ARRAYS_DIR
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def array_steps(self, name: str) -> list[int]:
        """Sorted steps for which array ``name`` was saved ([] if none)."""
        folder = self.path / files.ARRAYS_DIR / validate_id(name, "array name")
        if not folder.is_dir():
            return []
        steps = []
        for entry in folder.iterdir():
            m = files.STEP_FILE_RE.match(entry.name)
            if m:
                steps.append(int(m.group(1)))
        return sorted(steps)

    def array(self, name: str, step: int) -> np.ndarray:
        """Load array ``name`` at ``step`` (``np.load(allow_pickle=False)``)."""
        validate_id(name, "array name")
        if isinstance(step, bool) or not isinstance(step, int | np.integer):
            raise TypeError(f"step must be an int, got {step!r}")
        path = files.array_path(self.path, name, int(step))
        if not path.is_file():
            raise KeyError(
                f"run {self.run_id!r} has no array {name!r} at step {step} "
                f"(steps: {self.array_steps(name)[:20]})"
            )
        return files.read_array(path)

    def __repr__(self) -> str:
        return f"RunInfo({self.run_id!r}, status={self.status!r})"
