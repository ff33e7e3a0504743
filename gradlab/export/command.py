"""The ``gradlab export`` subcommand: `add_arguments(parser)` and `run(args) -> int`.

    gradlab export --store DIR (--run ID | --runs ID,ID | --sweep NAME) --figure NAME
                   [--format pdf|svg|png] [--width single|double|INCHES] [--font serif|sans]
                   [--dpi N] [--height INCHES] [--option KEY=VALUE ...] [--out PATH]
    gradlab export --store DIR --sweep NAME --all [--compare KEY] [--out DIR] [--format ...]
    gradlab export --list

``--all`` prints one line per file: which runs it draws and why (they differ only in the
compared key, ``cell`` by default), and one per figure skipped for having nothing to show.

Exit codes:
    0  done.
    1  failure, nothing written: no store, unknown run or sweep, a ``--compare`` key no run
       has, a ``step`` the run did not record (the message names the recorded steps), a
       figure with no data (e.g. gates of a vanilla RNN; `EmptyFigureError`). No browser: 1
       too, but the CSV/JSON are written.
    2  usage: bad arguments, unknown figure, an option the figure does not take (the message
       lists its options: "did you mean step?").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gradlab.export.core import FORMATS, export, export_sweep
from gradlab.export.render import ExportError
from gradlab.export.template import FONTS, width_inches
from gradlab.figures import FIGURES

__all__ = ["add_arguments", "figure_list", "run"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _width(text: str) -> str:
    try:
        width_inches(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), _parse_value(value.strip())


def _parse_value(text: str) -> Any:
    """Parse an option value: none → None, true/false → bool, numbers, "a,b" → list, else text."""
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    if "," in text:
        return [_parse_value(part.strip()) for part in text.split(",") if part.strip()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``gradlab export``'s options to `parser`."""
    parser.add_argument("--store", default="runs", metavar="DIR", help="run store (default ./runs)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="ID", help="one run")
    which.add_argument("--runs", metavar="ID,ID", help="several runs, comma-separated")
    which.add_argument("--sweep", metavar="NAME", help="every complete run of a sweep")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--figure", metavar="NAME", help=f"one of: {', '.join(FIGURES)}")
    what.add_argument(
        "--all",
        action="store_true",
        help="every figure of --sweep into --out DIR, with a figures.md",
    )
    what.add_argument("--list", action="store_true", help="list the figures and what they need")
    parser.add_argument(
        "--compare",
        default="cell",
        metavar="KEY",
        help="--all: overlay only runs that differ in this config key alone (default cell)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, help="pdf, svg or png (default: from --out, else pdf)"
    )
    parser.add_argument(
        "--width",
        type=_width,
        default="single",
        metavar="single|double|INCHES",
        help="single column 3.25 in (default), double 6.75 in, or inches",
    )
    parser.add_argument("--height", type=float, metavar="INCHES", help="default: from the width")
    parser.add_argument("--font", choices=sorted(FONTS), default="serif", help="default serif")
    parser.add_argument("--dpi", type=float, default=300, help="PNG resolution (default 300)")
    parser.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="figure option, e.g. step=100, quantity=grad_cell, color=loss_ratio (repeatable)",
    )
    parser.add_argument(
        "--out", metavar="PATH", help="file (--figure) or folder (--all); default ./<figure>.<fmt>"
    )


def figure_list() -> str:
    """Every figure: name, scope, what it shows, the probes / arrays it reads, its options."""
    lines = []
    for spec in FIGURES.values():
        needs = [f"{probe}/{','.join(names)}" for probe, names in spec.probes_for()]
        needs += [f"array {a}" for a in spec.arrays]
        if spec.requires is not None:
            needs.append("(another quantity / norm: its probe instead)")
        lines.append(f"{spec.name}  [{spec.scope}]  {spec.title}")
        lines.append(f"    {spec.description}")
        lines.append(f"    needs: {'; '.join(needs) or '-'}")
        if spec.options:
            opts = "; ".join(f"{k}: {v}" for k, v in spec.options.items())
            lines.append(f"    options: {opts}")
        more = [n for n in spec.option_names() if n not in spec.options]
        if more:
            lines.append(f"    also: {', '.join(more)}")
        lines.append("")
    scopes = "scope: run = one run, runs = runs overlaid, sweep = all runs of a sweep"
    return "\n".join([scopes, "", *lines]).rstrip() + "\n"


def _fail(message: str, code: int = EXIT_FAILURE) -> int:
    print(f"gradlab export: {message}", file=sys.stderr)
    return code


def _resolved(store: str, run_ids: list[str]) -> list[str]:
    """``run_ids`` with each unique prefix of a run id replaced by that id (a store that does not
    exist, or an id no run starts, is left for ``export`` to report); AmbiguousRunIdError."""
    from gradlab.store import is_store, open_store

    if not is_store(store):
        return run_ids
    opened = open_store(store, fsync=False)
    out = []
    for run_id in run_ids:
        try:
            out.append(opened.resolve_id(run_id))
        except (KeyError, ValueError):
            out.append(run_id)
    return out


def run(args: argparse.Namespace) -> int:
    """Carry out ``gradlab export``; returns the exit code (errors are printed to stderr)."""
    if args.list:
        sys.stdout.write(figure_list())
        return EXIT_OK
    run_ids = None
    if args.run:
        run_ids = [args.run]
    elif args.runs:
        run_ids = [r.strip() for r in args.runs.split(",") if r.strip()]
    options = dict(args.option or [])
    if run_ids:
        from gradlab.store import AmbiguousRunIdError

        try:
            run_ids = _resolved(args.store, run_ids)
        except AmbiguousRunIdError as exc:
            return _fail(str(exc), EXIT_USAGE)
    try:
        if args.all:
            if not args.sweep:
                return _fail("--all needs --sweep NAME", EXIT_USAGE)
            out = Path(args.out or f"figures-{args.sweep}")
            files = export_sweep(
                args.store,
                args.sweep,
                out,
                format=args.format or "pdf",
                width=args.width,
                font=args.font,
                dpi=args.dpi,
                compare=args.compare,
                log=print,
            )
            images = [f for f in files if f.suffix.lstrip(".") in FORMATS]
            print(f"wrote {len(images)} figures (+ .csv, .json each) and {out / 'figures.md'}")
            return EXIT_OK
        if not args.figure:
            return _fail("give --figure NAME, --all or --list", EXIT_USAGE)
        if args.figure not in FIGURES:
            return _fail(
                f"unknown figure {args.figure!r}; figures: {', '.join(FIGURES)}", EXIT_USAGE
            )
        if run_ids is None and not args.sweep:
            return _fail("give --run ID, --runs ID,ID or --sweep NAME", EXIT_USAGE)
        try:
            FIGURES[args.figure].check_options(options)
        except ValueError as exc:
            return _fail(str(exc), EXIT_USAGE)
        fmt = args.format or (Path(args.out).suffix.lstrip(".") if args.out else "") or "pdf"
        out = Path(args.out or f"{args.figure}.{fmt}")
        files = export(
            args.figure,
            out,
            store=args.store,
            run_ids=run_ids,
            sweep=args.sweep,
            format=fmt,
            width=args.width,
            font=args.font,
            dpi=args.dpi,
            height=args.height,
            **options,
        )
        for f in files:
            print(f)
        return EXIT_OK
    except ExportError as exc:
        return _fail(str(exc))
    except (KeyError, ValueError, FileNotFoundError, TypeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return _fail(str(message))
