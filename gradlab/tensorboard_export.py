"""`gradlab export-tb`: stored runs as TensorBoard event files, next to the rest of an experiment.

For each run, ``<logdir>/<run_id>/`` gets one event file written by TensorBoard's own writer
(``torch.utils.tensorboard.SummaryWriter``):

- scalars: every metric row without a timestep (the ``train`` rows such as ``loss``, the
  ``summary`` probe's rates at each recording) as tag ``<probe>/<name>`` at its training step,
  and the run's final summary (``final_loss``, ...) as ``run/<key>`` at the last step. TensorBoard
  stores scalars in float32.
- per-timestep profiles: every series over t (``grad_hidden/norm``, ``contribution/weight_hh``,
  ...) at each recorded step as a histogram whose buckets are the timesteps: bucket t spans
  (t − 1/2, t + 1/2] and holds the value at t (not a count), so TensorBoard's histogram view
  draws the profile against t, one curve per recorded step. Stored in float64, exactly.
- text: the run's config as JSON (tag ``config``).

A series of layer l > 0 or of the reverse direction gets ``/layer<l>`` and ``/reverse`` appended
to its tag.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["add_arguments", "export_tensorboard", "run", "tag"]


def tag(probe: str, name: str, layer: Any = None, direction: Any = None) -> str:
    """The TensorBoard tag of a series: ``probe/name`` (``/layer<l>``, ``/reverse`` added for
    layers above 0 and the reverse direction)."""
    text = f"{probe}/{name}"
    if layer is not None and not pd.isna(layer) and int(layer) > 0:
        text += f"/layer{int(layer)}"
    if direction is not None and not pd.isna(direction) and int(direction) == 1:
        text += "/reverse"
    return text


def _write_run(writer: Any, metrics: pd.DataFrame, info: Any) -> None:
    scalars = metrics[metrics["t"].isna()]
    for (probe, name, layer, direction), rows in scalars.groupby(
        ["probe", "name", "layer", "direction"], dropna=False, sort=True
    ):
        series = tag(probe, name, layer, direction)
        for step, value in zip(rows["step"], rows["value"], strict=True):
            writer.add_scalar(series, float(value), int(step))
    profiles = metrics[metrics["t"].notna()]
    keys = ["probe", "name", "layer", "direction", "step"]
    for (probe, name, layer, direction, step), rows in profiles.groupby(
        keys, dropna=False, sort=True
    ):
        rows = rows.sort_values("t")
        t = rows["t"].to_numpy(dtype=np.float64)
        values = rows["value"].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        writer.add_histogram_raw(
            tag(probe, name, layer, direction),
            min=float(t[0] - 0.5),
            max=float(t[-1] + 0.5),
            num=len(t),
            sum=float(finite.sum()),
            sum_squares=float((finite**2).sum()),
            bucket_limits=(t + 0.5).tolist(),
            bucket_counts=values.tolist(),
            global_step=int(step),
        )
    last = int(metrics["step"].max()) if len(metrics) else 0
    for key, value in sorted((info.summary or {}).items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            writer.add_scalar(f"run/{key}", float(value), last)
    writer.add_text("config", json.dumps(info.config, indent=1, default=str), 0)


def export_tensorboard(
    store: Any, run_ids: Iterable[str], logdir: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write each run's TensorBoard event file under ``<logdir>/<run_id>/`` (see the module
    docstring); returns run_id → its folder. `store`: a Store or a store folder. An unknown run
    raises KeyError, a corrupt one ValueError."""
    from torch.utils.tensorboard import SummaryWriter

    from gradlab.store import Store, open_store

    if not isinstance(store, Store):
        store = open_store(store, fsync=False)
    infos = [store.run(run_id) for run_id in run_ids]
    for info in infos:
        if info.status == "corrupt":
            raise ValueError(f"run {info.run_id!r} is corrupt: {info.reason}")
    folders = {}
    for info in infos:
        folder = Path(logdir) / info.run_id
        writer = SummaryWriter(log_dir=str(folder))
        try:
            _write_run(writer, store.metrics(info.run_id), info)
        finally:
            writer.close()
        folders[info.run_id] = folder
    return folders


# ------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``gradlab export-tb``."""
    parser.add_argument("run_ids", nargs="+", metavar="RUN", help="run ids (see `gradlab runs`)")
    parser.add_argument("--store", default="runs", metavar="DIR", help="run store folder")
    parser.add_argument(
        "--logdir", required=True, metavar="DIR", help="TensorBoard log folder (one per run)"
    )


def run(args: argparse.Namespace) -> int:
    """``gradlab export-tb``: write the runs, print each folder."""
    from gradlab.cli import CommandError, _existing_store

    store = _existing_store(args.store)
    try:
        folders = export_tensorboard(store, args.run_ids, args.logdir)
    except (KeyError, ValueError) as exc:
        raise CommandError(str(exc).strip("\"'")) from None
    for run_id, folder in folders.items():
        print(f"{run_id}: {folder}")
    print(f"tensorboard --logdir {args.logdir}")
    return 0
