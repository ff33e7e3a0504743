"""`train` / `loss`, `grad_norm`, `clipped`: one row per optimiser step, written by
`gradlab.train` (not from a Recording, so it is not in `PROBES`). t, layer, direction are null."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np


class TrainProbe:
    """The per-step training scalars: the batch loss, the global gradient norm before clipping
    and whether clipping scaled the gradient (0/1)."""

    probe: ClassVar[str] = "train"
    names: ClassVar[tuple[str, ...]] = ("loss", "grad_norm", "clipped")

    @classmethod
    def rows(
        cls,
        steps: Sequence[int],
        loss: Sequence[float],
        grad_norm: Sequence[float],
        clipped: Sequence[bool],
    ) -> dict[str, str | list[str] | np.ndarray]:
        """Columns `step, probe, name, value` for the given steps (t, layer, direction null)."""
        series = (loss, grad_norm, clipped)
        n = len(steps)
        if any(len(s) != n for s in series):
            raise ValueError("steps, loss, grad_norm and clipped must have equal lengths")
        step = np.asarray(steps, dtype=np.int64)
        return {
            "step": np.tile(step, len(series)),
            "probe": cls.probe,
            "name": [name for name in cls.names for _ in range(n)],
            "value": np.concatenate([np.asarray(s, dtype=np.float64) for s in series]),
        }
