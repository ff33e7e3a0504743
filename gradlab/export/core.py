"""export / export_many / export_sweep / figure_bytes: figures to PDF, SVG or PNG in the paper
template, each with a .csv of exactly the data plotted and a .json of where it came from."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from gradlab.export.data import (
    RunGroup,
    comparable_groups,
    file_safe,
    get_spec,
    load_figure_data,
    open_existing,
    resolve_run_ids,
)
from gradlab.export.render import ExportError, Renderer, start_default_renderer
from gradlab.export.template import PX_PER_INCH, paper_dict, width_inches
from gradlab.figures import FIGURES, figure_table, is_empty
from gradlab.store import Store

__all__ = ["FORMATS", "EmptyFigureError", "export", "export_many", "export_sweep", "figure_bytes"]

FORMATS = ("pdf", "svg", "png")


class EmptyFigureError(ExportError):
    """The figure has nothing to draw (a "no data" figure: `gradlab.figures.is_empty`), so
    nothing was written; the message says why (e.g. "this run has no gate values")."""


def _version() -> str:
    try:
        from gradlab import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


def _format(path: Path, format: str | None) -> tuple[Path, str]:
    fmt = (format or path.suffix.lstrip(".") or "pdf").lower()
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if path.suffix.lower() != f".{fmt}":
        path = (
            path.with_name(path.name + f".{fmt}")
            if not path.suffix
            else path.with_suffix(f".{fmt}")
        )
    return path, fmt


def _render_opts(fmt: str, width_in: float, height_in: float, dpi: float) -> dict[str, Any]:
    return {
        "format": fmt,
        "width": width_in * PX_PER_INCH,
        "height": height_in * PX_PER_INCH,
        "scale": dpi / PX_PER_INCH if fmt == "png" else 1,
    }


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf → None, numpy scalars → Python."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _meta(fig: go.Figure) -> dict[str, Any]:
    meta = fig.layout.meta
    return dict(meta.get("gradlab") or {}) if isinstance(meta, dict) else {}


@dataclass
class _Job:
    fig: go.Figure
    path: Path
    fmt: str
    info: dict[str, Any] = field(default_factory=dict)


def _figure(
    fig_or_name: go.Figure | str,
    store: Store | None,
    run_ids: Any,
    sweep: str | None,
    options: dict[str, Any],
) -> go.Figure:
    if isinstance(fig_or_name, go.Figure):
        return fig_or_name
    if store is None:
        raise ValueError(f"exporting figure {fig_or_name!r} by name needs store=")
    spec = get_spec(fig_or_name)
    spec.check_options(options)
    data = load_figure_data(store, fig_or_name, run_ids, sweep, **options)
    build_opts = dict(options)
    if spec.scope == "run" and "run_id" not in build_opts and data.run_ids:
        build_opts["run_id"] = data.run_ids[0]
    return spec.builder(data, **build_opts)


def _sidecar(fig: go.Figure, store: Store | None, sweep: str | None, extra: dict) -> dict:
    meta = _meta(fig)
    name = meta.get("figure")
    spec = FIGURES.get(name) if name else None
    run_ids = list(meta.get("run_ids") or [])
    runs: dict[str, Any] = {}
    for rid in run_ids:
        entry: dict[str, Any] = {"config": None, "status": None}
        if store is not None:
            try:
                info = store.run(rid)
                entry = {"config": info.config, "status": info.status, "summary": info.summary}
            except (KeyError, ValueError):
                pass
        runs[rid] = entry
    doc = {
        "figure": name,
        "title": spec.title if spec else None,
        "description": spec.description if spec else None,
        "scope": spec.scope if spec else None,
        "options": meta.get("options", {}),
        "run_ids": run_ids,
        "runs": runs,
        "sweep": sweep,
        "store": str(store.root) if store is not None else None,
        "empty": bool(meta.get("empty")),
        "gradlab_version": _version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
    if meta.get("message"):
        doc["message"] = meta["message"]
    return _clean(doc)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _run_jobs(
    jobs: Sequence[_Job],
    *,
    store: Store | None,
    sweep: str | None,
    width: str | float,
    font: str,
    dpi: float,
    height: float | None,
    renderer: Renderer | Future[Renderer] | None,
) -> list[Path]:
    """Write every job's CSV and JSON, then render all images in one browser session
    (`renderer`: a Renderer, the future of one being started, or None for the shared one)."""
    written: list[Path] = []
    render_jobs = []
    for job in jobs:
        paper, width_in, height_in = paper_dict(job.fig, width, font, height)
        csv_path, json_path = job.path.with_suffix(".csv"), job.path.with_suffix(".json")
        _write_text(csv_path, figure_table(job.fig).to_csv(index=False))
        extra = {
            "format": job.fmt,
            "width_in": width_in,
            "height_in": height_in,
            "font": font,
            "dpi": dpi if job.fmt == "png" else None,
            "files": {"image": job.path.name, "csv": csv_path.name, "json": json_path.name},
            **job.info,
        }
        doc = _sidecar(job.fig, store, sweep, extra)
        _write_text(json_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        written += [csv_path, json_path]
        render_jobs.append((paper, _render_opts(job.fmt, width_in, height_in, dpi)))
    try:
        if renderer is None:
            renderer = start_default_renderer()
        r = renderer.result() if isinstance(renderer, Future) else renderer
        images = r.render(render_jobs)
    except ExportError as exc:
        names = ", ".join(p.name for p in written)
        raise ExportError(f"{exc} (CSV and JSON were written: {names})", written) from exc
    out: list[Path] = []
    for job, data in zip(jobs, images, strict=True):
        job.path.parent.mkdir(parents=True, exist_ok=True)
        job.path.write_bytes(data)
        out += [job.path, job.path.with_suffix(".csv"), job.path.with_suffix(".json")]
    return out


def export(
    fig_or_name: go.Figure | str,
    path: str | os.PathLike[str],
    *,
    store: Store | str | os.PathLike[str] | None = None,
    run_ids: str | Sequence[str] | None = None,
    sweep: str | None = None,
    format: str | None = None,
    width: str | float = "single",
    font: str = "serif",
    dpi: float = 300,
    height: float | None = None,
    renderer: Renderer | None = None,
    **options: Any,
) -> list[Path]:
    """Export one figure in the paper template; returns [image, .csv, .json].

    `fig_or_name`: a plotly Figure (from `gradlab.figures`) or a name in `FIGURES`, built from
    `store` for `run_ids` / `sweep` with the builder `options` (``step=``, ``quantity=``...).
    `format`: "pdf", "svg" or "png" (default: from the suffix of `path`, else pdf). `width`:
    "single" (3.25 in), "double" (6.75 in) or inches; `height` in inches (default from the
    width); `font`: "serif" or "sans"; `dpi`: PNG resolution (pixel width = inches × dpi).
    The .csv (the data plotted, `figure_table`) and .json (figure, options, run ids and their
    configs, gradlab version) are written first, so they exist even when rendering fails:
    without a browser this raises ExportError (with the install hint) after writing them.
    Nothing at all is written when the figure cannot be made honestly: ValueError for an
    option the figure does not take ("did you mean step?") or a ``step`` the run did not
    record (naming the recorded ones), `EmptyFigureError` when it has no data (e.g. gates of
    a vanilla RNN).
    """
    store_obj = open_existing(store) if store is not None else None
    _format(Path(path), format)  # a bad format is reported before a bad width
    return export_many(
        [(fig_or_name, path)],
        store=store_obj,
        run_ids=run_ids,
        sweep=sweep,
        format=format,
        width=width,
        font=font,
        dpi=dpi,
        height=height,
        renderer=renderer,
        **options,
    )


def export_many(
    items: Iterable[tuple[go.Figure | str, str | os.PathLike[str]]],
    *,
    store: Store | str | os.PathLike[str] | None = None,
    run_ids: str | Sequence[str] | None = None,
    sweep: str | None = None,
    format: str | None = None,
    width: str | float = "single",
    font: str = "serif",
    dpi: float = 300,
    height: float | None = None,
    renderer: Renderer | None = None,
    **options: Any,
) -> list[Path]:
    """`export` for many ``(figure or name, path)`` pairs in one call: Chromium starts (or the
    shared one is reused) once the first figure is built, while the others are read and built,
    then every image renders in the same browser. Returns [image, .csv, .json] for each pair,
    in order. `renderer`: a `Renderer` of your own (or a Future of one being started); default
    the shared one. Nothing is written when any figure fails: an unknown option or a step not
    recorded (ValueError), a figure with no data (`EmptyFigureError`)."""
    store_obj = open_existing(store) if store is not None else None
    width_inches(width)
    items = list(items)
    for fig_or_name, path in items:  # validate everything before doing any work
        _format(Path(path), format)
        if isinstance(fig_or_name, str):
            get_spec(fig_or_name).check_options(options)
    starting: Renderer | Future[Renderer] | None = renderer
    jobs = []
    for fig_or_name, path in items:
        out, fmt = _format(Path(path), format)
        fig = _figure(fig_or_name, store_obj, run_ids, sweep, options)
        if is_empty(fig):
            what = _meta(fig).get("figure") or "the figure"
            raise EmptyFigureError(
                f"nothing to export for {out.name} ({what}): "
                f"{_meta(fig).get('message', 'no data')}; no file was written"
            )
        jobs.append(_Job(fig, out, fmt))
        if starting is None:  # the first figure is fine: Chromium starts while the rest build
            starting = start_default_renderer()
    return _run_jobs(
        jobs,
        store=store_obj,
        sweep=sweep,
        width=width,
        font=font,
        dpi=dpi,
        height=height,
        renderer=starting,
    )


def figure_bytes(
    fig: go.Figure,
    format: str = "pdf",
    width: str | float = "single",
    font: str = "serif",
    dpi: float = 300,
    height: float | None = None,
) -> bytes:
    """The figure as the bytes of a file, for the dashboard's Export button: "pdf", "svg" or
    "png" in the paper template (shared browser; ExportError without one), or "csv" — the
    data plotted (`figure_table`), which needs no browser. A "no data" figure raises
    `EmptyFigureError` with its message: there is nothing to put in the file."""
    fmt = format.lower().lstrip(".")
    if is_empty(fig):
        raise EmptyFigureError(f"nothing to export: {_meta(fig).get('message', 'no data')}")
    if fmt == "csv":
        return figure_table(fig).to_csv(index=False).encode("utf-8")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {(*FORMATS, 'csv')}, got {format!r}")
    paper, width_in, height_in = paper_dict(fig, width, font, height)
    return (
        start_default_renderer()
        .result()
        .render([(paper, _render_opts(fmt, width_in, height_in, dpi))])[0]
    )


# ---------------------------------------------------------------------- a whole sweep
@dataclass
class _Target:
    """One file of a sweep export: its stem, the runs drawn, the builder's options and why
    these runs (one line of the command's output and of figures.md)."""

    stem: str
    run_ids: list[str]
    options: dict[str, Any]
    why: str
    group: RunGroup | None = None


def _ids_text(ids: Sequence[str]) -> str:
    return ", ".join(f"`{r}`" for r in ids)


def _targets(spec: Any, ids: Sequence[str], groups: Sequence[RunGroup]) -> list[_Target]:
    """The files a sweep export makes of figure `spec`: one over the whole sweep, one overlay
    per group of comparable runs, or one per representative run."""
    if spec.scope == "sweep":
        return [_Target(spec.name, list(ids), {}, f"all {len(ids)} runs of the sweep")]
    out = []
    for g in groups:
        prefix = "-".join(p for p in (spec.name, g.stem) if p)
        seeds = g.seed_note()
        if spec.scope == "runs":
            reps = g.representatives
            shown = ", ".join(f"{g.label(v)} `{r}`" for v, r in reps.items())
            why = (
                f"{shown}: differ only in {g.compare}"
                if len(reps) > 1
                else f"{shown}: no other {g.compare} shares its config"
            )
            why += f" ({'; '.join(p for p in (g.describe(), seeds) if p)})"
            out.append(_Target(prefix, list(reps.values()), {}, why, g))
            continue
        for value, rid in g.representatives.items():
            stem = f"{prefix}-{file_safe(g.label(value))}"
            notes = "; ".join(p for p in (g.describe(), g.seed_note(value)) if p)
            why = f"{g.label(value)} `{rid}` ({notes})"
            out.append(_Target(stem, [rid], {"run_id": rid}, why, g))
    return out


def export_sweep(
    store: Store | str | os.PathLike[str],
    sweep: str,
    out_dir: str | os.PathLike[str],
    *,
    format: str = "pdf",
    width: str | float = "single",
    font: str = "serif",
    dpi: float = 300,
    renderer: Renderer | None = None,
    compare: str = "cell",
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Every figure of a sweep into `out_dir`, in one browser session, with a figures.md.

    Sweep-scope figures cover all the sweep's complete runs. The runs are split into groups
    that share every config key but `compare` (seed aside: `comparable_groups`); "runs"-scope
    figures overlay one run per value of `compare` within a group (the lowest seed), one file
    per group named by what tells the groups apart (``timestep_profile-task=adding-seq_len=50``;
    no suffix when the sweep is one group); run-scope figures are made for each of those runs
    (``gradient_flow-task=adding-seq_len=50-lstm``). Figures with nothing to show for a run
    (gates of a vanilla RNN, the cell state of a GRU) are skipped and listed as such.
    `log(line)` is called for each file, with which runs it shows and why, and for each skip.
    Returns every file written (images, .csv, .json, figures.md).
    """
    store_obj = open_existing(store)
    out = Path(out_dir)
    _, fmt = _format(Path(f"x.{format}"), format)
    ids = resolve_run_ids(store_obj, sweep=sweep)
    groups = comparable_groups(store_obj, ids, compare)
    starting = renderer or start_default_renderer()
    jobs: list[_Job] = []
    rows: list[tuple[str, str, str, str, str]] = []
    skipped: list[str] = []
    lines: list[str] = []
    for spec in FIGURES.values():
        for target in _targets(spec, ids, groups):
            opts = dict(target.options)
            if spec.defaults is not None:
                everything = load_figure_data(store_obj, spec.name, run_ids=target.run_ids)
                opts = {**opts, **spec.default_options(everything)}
            data = load_figure_data(store_obj, spec.name, run_ids=target.run_ids, **opts)
            fig = spec.builder(data, **opts)
            if is_empty(fig):
                msg = _meta(fig).get("message", "no data")
                skipped.append(f"`{target.stem}`: {msg}")
                lines.append(f"skipped {target.stem}: {msg}")
                continue
            path = out / f"{target.stem}.{fmt}"
            shown = _ids_text(_meta(fig).get("run_ids", target.run_ids))
            info: dict[str, Any] = {"stem": target.stem, "why": target.why}
            if target.group is not None:
                info.update(compare=compare, group=target.group.shared)
            jobs.append(_Job(fig, path, fmt, {"sweep_export": info}))
            rows.append((path.name, spec.name, shown, target.why, spec.description))
            lines.append(f"{path}: {target.why.replace('`', '')}")
    files = _run_jobs(
        jobs,
        store=store_obj,
        sweep=sweep,
        width=width,
        font=font,
        dpi=dpi,
        height=None,
        renderer=starting,
    )
    md = _figures_md(store_obj, sweep, ids, groups, compare, rows, skipped, fmt, width, font)
    _write_text(out / "figures.md", md)
    if log is not None:
        for line in lines:
            log(line)
    return [*files, out / "figures.md"]


def _figures_md(
    store: Store,
    sweep: str,
    ids: Sequence[str],
    groups: Sequence[RunGroup],
    compare: str,
    rows: Sequence[tuple[str, str, str, str, str]],
    skipped: Sequence[str],
    fmt: str,
    width: str | float,
    font: str,
) -> str:
    differ = list(dict.fromkeys(k for g in groups for k in g.name))  # config order
    lines = [
        f"# Figures of sweep `{sweep}`",
        "",
        f"Store `{store.root}`, {len(ids)} runs, exported "
        f"{datetime.now(UTC).isoformat(timespec='seconds')} by gradlab {_version()} "
        f"({fmt.upper()}, width {width}, {font} font).",
        "",
        f"Sweep figures use every run of the sweep. Overlay figures draw only runs that share "
        f"every config key but `{compare}` (one run per `{compare}`: the lowest seed), so the "
        f"sweep's runs fall into {len(groups)} group(s)"
        + (f", told apart by {', '.join(f'`{k}`' for k in differ)}" if differ else "")
        + "; each group has its own overlay figures, named by the group, and single-run "
        "figures for each of its runs:",
        "",
    ]
    for g in groups:
        reps = ", ".join(f"{g.label(v)} `{r}`" for v, r in g.representatives.items())
        seeds = f"; {g.seed_note()}" if g.seed_note() else ""
        lines.append(f"- `{g.stem or '(one group)'}` ({g.describe()}): {reps}{seeds}")
    lines += [
        "",
        "Each image has a `.csv` beside it with exactly the data plotted and a `.json` with "
        "the run ids, their configs and the figure options.",
        "",
        "| file | figure | runs | why these runs | what it shows |",
        "|---|---|---|---|---|",
    ]
    for file, name, shown, why, description in rows:
        cells = [c.replace("|", "\\|") for c in (why, description)]
        lines.append(f"| `{file}` | {name} | {shown} | {cells[0]} | {cells[1]} |")
    if skipped:
        lines += ["", "Skipped (nothing to show):", ""]
        lines += [f"- {s}" for s in skipped]
    return "\n".join(lines) + "\n"
