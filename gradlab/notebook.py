"""`figure`: any gradlab figure in a notebook, from a Recording or from stored runs.

``gradlab.figure(name, source, runs=None, **options)`` returns the plotly figure the dashboard
and `gradlab export` draw, built by the same builder (``FIGURES[name].builder(FigureData)``):

- from a `Recording` (or name → Recording, as ``gradlab.record(model, ...)`` returns for several
  recurrent submodules, or a list of Recordings to overlay): the probes run on it in memory
  exactly as a run writes them (`gradlab.train.write_recording`: the same rows and arrays, at
  step 0), and each recording gets a runs row made from its model (cell, hidden_size,
  num_layers, seq_len, ...). Nothing is written to disk.
- from a `Store` or a store folder: `gradlab.export.load_figure_data` reads what the figure
  needs of `runs` (run ids; or ``sweep=``; default every complete run).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from gradlab.figures import FigureData, FigureSpec
    from gradlab.record import Recording

__all__ = ["figure", "recording_data"]

#: Where a Recording's rows are put: the step a figure reads (a recording is one step).
RECORDING_STEP = 0


def figure(
    name: str,
    source: Any,
    runs: str | Sequence[str] | None = None,
    *,
    sweep: str | None = None,
    **options: Any,
) -> go.Figure:
    """Figure `name` (a key of `gradlab.figures.FIGURES`) of `source`.

    `source`: a Recording, a dict name → Recording, a list of Recordings (overlaid, named
    "rec 0", "rec 1", ...), or a Store / store folder; `runs` (run ids) and `sweep`
    pick stored runs and only apply to a store. `options`: the figure's own options
    (``FIGURES[name].option_names()``, e.g. ``quantity="contribution:weight_hh"``, ``scale``).
    A run-scope figure draws the first recording (its option run_id picks another by name).
    From recordings there is no theory line (the theory is of a gradlab task's run at
    initialisation; a recording's inputs and training are unknown), so ``theory=True`` is a
    ValueError. A figure that needs what the source lacks (the training curves of a bare
    Recording, the gates of an RNN, gradients of a recording without a loss) comes back as the
    builder's "no data" figure, which says why.
    """
    spec = _spec(name)
    spec.check_options(options)
    if _is_store(source):
        from gradlab.export import load_figure_data

        data = load_figure_data(source, name, runs, sweep, **options)
    else:
        if runs is not None or sweep is not None:
            raise ValueError(
                "runs= and sweep= pick stored runs; a Recording source draws every recording "
                "it holds (pass a dict or list of Recordings to choose)"
            )
        if options.get("theory"):
            raise ValueError(
                "no theory line for a Recording: the theory is of a gradlab task's run at "
                "initialisation (train one with gradlab.train and pass its store)"
            )
        data = recording_data(source)
        reason = _missing(spec, data, options)
        if reason is not None:
            from gradlab.figures._common import no_data

            return no_data(name, spec.title, reason, options, data.run_ids)
    build = dict(options)
    if not _is_store(source) and "theory" in spec.option_names():
        build["theory"] = False
    if spec.scope == "run" and "run_id" not in build and data.run_ids:
        build["run_id"] = data.run_ids[0]
    return spec.builder(data, **build)


def recording_data(source: Any) -> FigureData:
    """A FigureData holding what a run keeps of each recording in `source` (a Recording, a
    dict name → Recording or a list of them), at step 0: the metrics every probe writes, with
    the columns and dtypes ``Store.metrics`` returns, the arrays `hidden_sample` and
    `step_jacobian_sv`, and one runs row per recording (run_id = its name)."""
    from gradlab.figures import FigureData
    from gradlab.store import metrics_frame

    frames, arrays, rows = [], {}, []
    for run_id, rec in _named(source).items():
        collected = _Collected()
        _write(collected, rec)
        frames.append(metrics_frame(collected.rows, run_id))
        arrays.update({(run_id, a, s): v for (a, s), v in collected.arrays.items()})
        rows.append({"run_id": run_id, **model_row(rec)})
    metrics = pd.concat(frames, ignore_index=True)  # runs in order, as Store.metrics sorts them
    return FigureData(metrics=metrics, runs=pd.DataFrame(rows), arrays=arrays)


def model_row(rec: Recording) -> dict[str, Any]:
    """The runs row a recording stands for: its model's config (cell, activation,
    hidden_size, num_layers, bidirectional, bias, proj_size), seq_len (T), batch (B), dtype,
    status "complete" and final_loss (the recorded loss, None without one)."""
    model = rec.model
    activation = getattr(model, "activation", None)
    row: dict[str, Any] = {
        "status": "complete",
        "cell": str(model.cell),
        "activation": getattr(activation, "name", activation),
        "hidden_size": int(model.hidden_size),
        "num_layers": int(model.num_layers),
        "bidirectional": bool(model.bidirectional),
        "bias": bool(model.bias),
        "seq_len": int(rec.T),
        "batch": int(rec.hidden.shape[1]),
        "dtype": str(rec.hidden.dtype).removeprefix("torch."),
        "final_loss": rec.loss,
    }
    proj = int(getattr(model, "proj_size", 0) or 0)
    if proj:
        row["proj_size"] = proj
    return row


class _Collected:
    """What `write_recording` writes, kept in memory: metric tables and arrays."""

    def __init__(self) -> None:
        self.rows: list[Any] = []  # checked and typed by `metrics_frame`, as the store does
        self.arrays: dict[tuple[str, int], np.ndarray] = {}

    def log_metrics(self, rows: Any) -> None:
        self.rows.append(rows)

    def save_array(self, name: str, step: int, array: np.ndarray) -> None:
        self.arrays[(name, int(step))] = np.asarray(array)


def _write(collected: _Collected, rec: Recording) -> None:
    """Every probe's rows and the arrays of `rec`, as `gradlab.Run.record` writes them."""
    from gradlab.probes import PROBES, ProbeContext
    from gradlab.tracking import HIDDEN_SAMPLES, JACOBIAN_SAMPLES
    from gradlab.train import write_recording

    batch = rec.hidden.shape[1]
    context = ProbeContext(jacobian_samples=tuple(range(min(JACOBIAN_SAMPLES, batch))))
    probes = [cls() for cls in PROBES.values()]
    write_recording(collected, rec, RECORDING_STEP, context, probes, HIDDEN_SAMPLES)  # type: ignore[arg-type]


def _named(source: Any) -> dict[str, Recording]:
    """name → Recording of a Recording, a mapping or a sequence of them (TypeError else)."""
    from gradlab.record import Recording

    if isinstance(source, Recording):
        return {"recording": source}
    if isinstance(source, Mapping):
        named = {str(k): v for k, v in source.items()}
    elif isinstance(source, Sequence) and not isinstance(source, str | bytes):
        named = {f"rec {i}": v for i, v in enumerate(source)}
    else:
        raise TypeError(
            f"source must be a Recording, a dict or list of Recordings, a Store or a store "
            f"folder, got {type(source).__name__}"
        )
    if not named:
        raise ValueError("source holds no recordings")
    for key, value in named.items():
        if not isinstance(value, Recording):
            raise TypeError(f"source[{key!r}] is a {type(value).__name__}, not a Recording")
    return named


def _is_store(source: Any) -> bool:
    from gradlab.store import Store

    return isinstance(source, Store | str | os.PathLike)


def _spec(name: str) -> FigureSpec:
    from gradlab.figures import FIGURES

    try:
        return FIGURES[name]
    except KeyError:
        raise ValueError(f"unknown figure {name!r}; figures: {', '.join(FIGURES)}") from None


def _missing(spec: FigureSpec, data: FigureData, options: Mapping[str, Any]) -> str | None:
    """Why recordings cannot show `spec` (None when they can)."""
    from gradlab.probes import PROBES, TrainProbe

    if spec.scope == "sweep":
        return f"{spec.name} compares the runs of a sweep; pass a store (and sweep=)"
    if any(p == TrainProbe.probe for p, _ in spec.probes) and len(spec.probes) == 1:
        return "a Recording has no training curve; log one with gradlab.init and pass its store"
    series = set(zip(data.metrics["probe"], data.metrics["name"], strict=True))
    arrays = {a for (_, a, _) in data.arrays}
    main = spec.probes_for(**options)[:1]  # the series it draws; others are read beside it
    if main and all(data.run(r).get("final_loss") is None for r in data.run_ids):
        probe = PROBES.get(main[0][0])
        if probe is not None and probe.needs_loss:
            return f"{spec.name} draws gradients: record with a loss_fn"
    if not spec.has_data(series, arrays):
        cells = ", ".join(sorted({data.cell(r) for r in data.run_ids}))
        return f"the recorded model ({cells}) has none of what {spec.name} draws"
    return None
