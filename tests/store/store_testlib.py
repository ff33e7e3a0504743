"""Helpers shared by the store tests (imported as a plain module: tests/ is not a package)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradlab.store import Store


def make_rows(step: int, T: int = 5, seed: int = 0) -> pd.DataFrame:
    """One recorded step: train scalars (t null) and two per-timestep series."""
    rng = np.random.default_rng(seed * 1000 + step)
    t = np.arange(1, T + 1)
    frames = [
        pd.DataFrame(
            {
                "step": step,
                "probe": "train",
                "name": ["loss", "grad_norm"],
                "value": rng.random(2),
            }
        ),
        pd.DataFrame(
            {
                "step": step,
                "probe": "contribution",
                "name": "weight_hh",
                "layer": 0,
                "direction": 0,
                "t": t,
                "value": rng.random(T),
            }
        ),
        pd.DataFrame(
            {
                "step": step,
                "probe": "grad_hidden",
                "name": "norm",
                "layer": 0,
                "direction": 1,
                "t": np.arange(T + 1),
                "value": rng.random(T + 1),
            }
        ),
    ]
    return pd.concat(frames, ignore_index=True)


def write_run(
    store: Store,
    run_id: str,
    config: dict | None = None,
    steps: int = 3,
    T: int = 5,
    status: str = "complete",
    summary: dict | None = None,
) -> pd.DataFrame:
    """Write a finished run; returns the rows logged (in logging order)."""
    config = {"cell": "rnn", "seed": 0} if config is None else config
    rows = [make_rows(s, T, seed=hash(run_id) % 1000) for s in range(steps)]
    with store.create_run(run_id, config) as writer:
        for r in rows:
            writer.log_metrics(r)
        writer.finish(status, summary=summary or {"final_loss": 0.5, "steps_done": steps})
    return pd.concat(rows, ignore_index=True)
