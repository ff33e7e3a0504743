"""The ``gradlab`` command line: sweeps, the run store, the dashboard, export.

``gradlab sweep SPEC.toml``, ``gradlab runs``, ``gradlab show RUN_ID``, ``gradlab demo``,
``gradlab dash``, ``gradlab export``. Errors go to stderr; the exit code is 2 for a usage error
or an invalid spec, 1 for a failure (a run failed, a run id is unknown), 130 after Ctrl-C.

Each command imports what it needs when it runs: ``--help``, ``--version``, ``runs`` and
``show`` import neither torch, the dashboard nor DuckDB (benchmarks/cli.py times them).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import gradlab

__all__ = ["build_parser", "demo_spec_path", "main", "run_demo"]

DEFAULT_STORE = "runs"
DEMO_SPEC = "vanishing-vs-lstm.toml"
#: gradlab.store.STATUSES (not imported: the CLI starts without the store)
STATUSES = ("running", "complete", "failed", "diverged", "interrupted", "corrupt")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """A command that cannot go on; ``code`` is the exit status (1 failure, 2 usage)."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------------------- helpers
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {value}")
    return value


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="DIR",
        help=f"run store folder (default: ./{DEFAULT_STORE})",
    )


def _add_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to serve on (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=_port, default=8050, help="port to serve on (default: 8050)")


def _existing_store(path: str) -> Any:
    """The store at ``path`` for reading; a missing store is an error, never created here."""
    from gradlab.store import is_store, open_store

    if not is_store(path):
        raise CommandError(
            f"no run store at {str(Path(path).absolute())!r} "
            "(run `gradlab sweep SPEC.toml` first, or pass --store DIR)"
        )
    return open_store(path, fsync=False)


def _experiments_dir() -> Path:
    """``<repo>/experiments``, next to the installed ``gradlab`` package."""
    return Path(gradlab.__file__).resolve().parent.parent / "experiments"


# ------------------------------------------------------------------------------- sweep
def _cmd_sweep(args: argparse.Namespace) -> int:
    from gradlab.sweep.bounds import oversized

    # refuse an oversized grid from its axis lengths before validation imports torch
    refusal = oversized(args.spec, args.scale, args.max_runs)
    if refusal is not None:
        raise CommandError(refusal, EXIT_USAGE)
    from gradlab.sweep import load_spec, plan_sweep, run_sweep

    # A .py plugin on the command line is relative to the current folder (in a spec, to the spec).
    plugins = tuple(str(Path(p).resolve()) if p.endswith(".py") else p for p in args.plugin or ())
    spec = load_spec(args.spec, scale=args.scale, plugins=plugins, max_runs=args.max_runs)
    if args.dry_run:
        return _dry_run(spec, plan_sweep(spec, args.store), args.store)
    if args.dask and args.workers:
        print("note: --workers is ignored with --dask (the cluster decides)", file=sys.stderr)
    result = run_sweep(
        spec,
        args.store,
        workers=args.workers,
        dask_address=args.dask,
        progress=not args.no_progress,
    )
    return result.exit_code


def _dry_run(spec: Any, plan: list[Any], store: str) -> int:
    from gradlab.sweep.memory import format_bytes, run_memory_bytes

    keys = spec.varying_keys
    print(f"sweep {spec.name} ({spec.scale}): {len(plan)} runs — {spec.description}")
    rows = []
    memory = [run_memory_bytes(p.config) for p in plan]
    for p, size in zip(plan, memory, strict=True):
        values = p.config.to_dict()
        values["activation"] = p.config.activation_name or "-"  # None means tanh for an RNN
        shown = ("none" if values[k] is None else values[k] for k in keys)
        rows.append([p.run_id, p.action, *shown, format_bytes(size)])
    print(_format_table(["run_id", "action", *keys, "memory"], rows))
    if plan:
        largest = max(range(len(plan)), key=memory.__getitem__)
        print(
            f"memory: a lower bound, each run's largest tensors (gradlab.sweep.memory; the "
            f"process peaks higher); largest {format_bytes(memory[largest])} "
            f"({plan[largest].run_id})"
        )
    todo = sum(p.submit for p in plan)
    print(f"dry run: {todo} to run, {len(plan) - todo} to skip in {store}; nothing written")
    return EXIT_OK


def _format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Aligned columns through rich (text left, numbers right, None blank), one line per row
    at whatever width the rows need, no trailing blanks."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text  # cells are plain text: "[x]" in a reason is not markup

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for i, name in enumerate(header):
        numeric = all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool))
            for v in (r[i] for r in rows)
        )
        table.add_column(str(name), justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    console.width = Measurement.get(console, console.options.update_width(1 << 20), table).maximum
    with console.capture() as captured:
        console.print(table)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


# ------------------------------------------------------------------------------- runs / show
TABLE_COLUMNS = ("run_id", "sweep", "status", "task", "cell", "activation", "seq_len")
SUMMARY_COLUMNS = ("duration_s", "final_loss", "decay_rate", "decay_rate_init", "theory_rate")
#: The runs table's activation of a run that left it to its cell.
DEFAULT_ACTIVATION = "default"
#: Printed under the runs table: what the rate columns measure and at which training step.
RATE_LEGEND = (
    "decay_rate: slope of ln ‖∂s_T/∂s_k‖ per step of lag T−k at the last recording; "
    "decay_rate_init: the same at step 0; theory_rate: the theory's rate at initialisation "
    "(step 0), empty where no theory applies"
)


def _cmd_runs(args: argparse.Namespace) -> int:
    store = _existing_store(args.store)
    runs = store.runs()
    if args.sweep is not None:
        names = sorted({str(n) for n in runs.get("sweep", []) if isinstance(n, str) and n})
        if args.sweep not in names:
            known = ", ".join(names) if names else "(none: no run of this store names a sweep)"
            raise CommandError(f"no sweep {args.sweep!r} in {args.store}; sweeps: {known}")
        runs = runs[runs["sweep"] == args.sweep]
    if args.status is not None:
        runs = runs[runs["status"] == args.status]
    sort = [c for c in ("sweep", "created", "run_id") if c in runs]
    runs = runs.sort_values(sort, kind="stable").reset_index(drop=True)
    if args.format == "json":
        print(runs.to_json(orient="records", date_format="iso", indent=1))
    elif args.format == "csv":
        runs.to_csv(sys.stdout, index=False)
    elif runs.empty:
        print("no runs match" if len(store.run_ids()) else f"no runs in {args.store}")
    else:
        header, rows = _table(runs, _config_keys(store, runs["run_id"]))
        print(_format_table(header, rows))
        if any(c in header for c in ("decay_rate", "decay_rate_init", "theory_rate")):
            print(RATE_LEGEND)
    return EXIT_OK


def _config_keys(store: Any, run_ids: Iterable[str]) -> list[str]:
    """The keys of these runs' stored configs, in order of first appearance."""
    keys: dict[str, None] = {}
    for run_id in run_ids:
        try:
            config = store.run(run_id).config
        except (KeyError, ValueError):  # removed since it was listed
            continue
        keys.update(dict.fromkeys(config if isinstance(config, dict) else ()))
    return list(keys)


def _table(runs: Any, config_keys: Iterable[str]) -> tuple[list[str], list[list[Any]]]:
    """The columns worth a glance: identity, the config keys that vary between the rows, a
    few results. An unset activation is shown as ``default`` (the cell's own; naming it would
    need the cell registry, which imports torch)."""
    varying = [
        k
        for k in config_keys
        if k in runs and k not in TABLE_COLUMNS and runs[k].astype(str).nunique(dropna=False) > 1
    ]
    columns = [c for c in (*TABLE_COLUMNS, *varying, *SUMMARY_COLUMNS) if c in runs]
    with_reason = bool(runs["reason"].notna().any())
    rows = []
    for record in runs.to_dict("records"):
        if "activation" in record and _missing(record["activation"]):
            record["activation"] = DEFAULT_ACTIVATION
        row = [None if _missing(record[c]) else record[c] for c in columns]
        row = [float(f"{v:.4g}") if isinstance(v, float) else v for v in row]
        if with_reason:
            row.append(_short(record["reason"]))
        rows.append(row)
    return columns + (["reason"] if with_reason else []), rows


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _short(text: Any, width: int = 70) -> str:
    if not isinstance(text, str) or not text.strip():
        return ""
    line = text.strip().splitlines()[-1]
    return line if len(line) <= width else line[: width - 1] + "…"


def _cmd_show(args: argparse.Namespace) -> int:
    from gradlab.store import AmbiguousRunIdError

    store = _existing_store(args.store)
    try:
        info = store.run(store.resolve_id(args.run_id))
    except AmbiguousRunIdError as exc:
        raise CommandError(str(exc)) from None
    except (KeyError, ValueError):
        raise CommandError(f"no run {args.run_id!r} in store {args.store!r}") from None
    note = store.annotations().get(info.run_id)
    if args.format == "json":
        record = {"run_id": info.run_id, "status": info.status, "alive": info.alive}
        record |= {"reason": info.reason, "run_json": info.meta}
        record |= {"tags": list(note.tags) if note else [], "note": note.note if note else ""}
        print(json.dumps(record, indent=1, default=str))
        return EXIT_OK
    meta = info.meta
    print(f"run        {info.run_id}")
    print(f"status     {info.status}" + (" (writer alive)" if info.alive else ""))
    for key in ("created", "finished", "duration_s"):
        if meta.get(key) is not None:
            print(f"{key:<10} {meta[key]}")
    print(f"path       {info.path}")
    if note is not None:
        if note.tags:
            print(f"tags       {', '.join(note.tags)}")
        if note.note:
            print(f"note       {note.note}")
    print("config:")
    for key, value in info.config.items():
        print(f"  {key} = {value!r}")
    print("summary:" if info.summary else "summary:  (none)")
    for key, value in info.summary.items():
        print(f"  {key} = {value!r}")
    if info.reason:
        print("reason:")
        for line in str(info.reason).rstrip().splitlines():
            print(f"  {line}")
    return EXIT_OK


# ------------------------------------------------------------------------------- demo / dash
def _serve_fn() -> Callable[..., None]:
    try:
        from dashboards.app import serve
    except ImportError as exc:
        raise CommandError(
            f"the dashboard is not available ({exc}); install gradlab with its dashboards "
            "package, or use --no-dash"
        ) from None
    return serve


def demo_spec_path() -> Path:
    """``experiments/vanishing-vs-lstm.toml`` of this checkout; CommandError where it is not."""
    spec_path = _experiments_dir() / DEMO_SPEC
    if not spec_path.is_file():
        raise CommandError(
            f"the demo spec is not at {str(spec_path)!r}: `gradlab demo` runs from a checkout "
            "of the gradlab repository (experiments/ next to gradlab/); elsewhere run "
            "`gradlab sweep PATH/TO/vanishing-vs-lstm.toml` then `gradlab dash`"
        )
    return spec_path


def run_demo(store: str | Path, workers: int | None = None, progress: bool = True) -> Any:
    """The demo sweep into ``store`` exactly as ``gradlab demo`` runs it (the default local
    process pool, one worker per CPU unless ``workers``); returns the SweepResult."""
    from gradlab.sweep import run_sweep

    return run_sweep(demo_spec_path(), store, workers=workers, progress=progress)


def _cmd_demo(args: argparse.Namespace) -> int:
    spec_path = demo_spec_path()
    serve = None if args.no_dash else _serve_fn()
    result = run_demo(args.store, workers=args.workers, progress=not args.no_progress)
    if result.interrupted:
        return result.exit_code
    view = _demo_view(spec_path, args.store) if result.ok else None
    if view is not None:
        print(f"the demo's story, first view: http://{args.host}:{args.port}{view}")
    if serve is not None:
        serve(args.store, host=args.host, port=args.port)
    return result.exit_code


def _demo_view(spec_path: Path, store: str) -> str | None:
    """The dashboard path of the demo's first compare view (gradlab.story.compare_path), or
    None where the store does not hold every demo run complete."""
    from gradlab.store import open_store
    from gradlab.story import compare_path, measure
    from gradlab.sweep import load_spec

    try:
        return compare_path(measure(load_spec(spec_path), open_store(store, fsync=False)))
    except (KeyError, ValueError):
        return None


def _cmd_dash(args: argparse.Namespace) -> int:
    serve = _serve_fn()
    serve(args.store, host=args.host, port=args.port)
    return EXIT_OK


# ------------------------------------------------------------------------------- plug-in commands
# Commands whose options live in another module: name -> (module, help, description). The module
# provides ``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when that
# command is asked for (export pulls in plotly and kaleido), so other commands start fast.
# Adding a command (``theory``, say) is one line here.
PLUGINS: dict[str, tuple[str, str, str]] = {
    "export": (
        "gradlab.export.command",
        "export figures and data",
        "Export figures and data from the run store (PDF/SVG/PNG/CSV).",
    ),
    "export-tb": (
        "gradlab.tensorboard_export",
        "write runs as TensorBoard event files",
        "Write runs as TensorBoard event files, one folder per run under --logdir: training "
        "metrics and summaries as scalars, per-timestep profiles as histograms over t.",
    ),
}


def _add_plugin(sub: Any, name: str, load: bool) -> None:
    module, help_text, description = PLUGINS[name]
    if load:
        try:
            imported = importlib.import_module(module)
            add_arguments, run = imported.add_arguments, imported.run
        except (ImportError, AttributeError) as exc:
            reason = str(exc)
        else:
            parser = sub.add_parser(name, help=help_text, description=description)
            add_arguments(parser)
            parser.set_defaults(func=run)
            return
    else:
        reason = ""
    parser = sub.add_parser(
        name,
        help=help_text if not reason else f"{help_text} (not available)",
        description=description if not reason else f"{description} Not available: {reason}",
    )

    def unavailable(args: argparse.Namespace) -> int:
        raise CommandError(f"{name} is not available: {reason or 'its module did not load'}")

    parser.set_defaults(func=unavailable, any_arguments=True)


# ------------------------------------------------------------------------------- parser
def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``argv`` decides which plug-in command's options are loaded."""
    parser = argparse.ArgumentParser(
        prog="gradlab",
        description="See how gradients flow back through time in recurrent networks.",
        epilog="Run `gradlab COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"gradlab {gradlab.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "sweep",
        help="run a sweep spec (skips runs already in the store)",
        description="Run every run of a sweep spec that the store does not already hold. "
        "Complete and diverged runs are skipped; failed, corrupt and abandoned ones are redone.",
    )
    p.add_argument("spec", metavar="SPEC.toml", help="sweep spec (see experiments/)")
    _add_store(p)
    p.add_argument(
        "--workers", type=_positive_int, metavar="N", help="local worker processes (default: cores)"
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on a dask.distributed scheduler (tcp://host:8786) instead of local processes",
    )
    p.add_argument(
        "--scale",
        choices=("demo", "full"),
        default="demo",
        help="demo (default) or full: apply the spec's [full] table (paper-sized runs)",
    )
    p.add_argument(
        "--plugin",
        action="append",
        metavar="MODULE",
        help="a module (or .py file) that registers cells or activations; imported here and in "
        "every worker before a run is built (repeatable; adds to the spec's plugins list)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the runs (id, grid values, memory estimate) and write nothing",
    )
    from gradlab.sweep.bounds import DEFAULT_MAX_RUNS

    p.add_argument(
        "--max-runs",
        type=_positive_int,
        default=DEFAULT_MAX_RUNS,
        metavar="N",
        help="refuse a spec of more than N runs before building any "
        f"(default {DEFAULT_MAX_RUNS:,})",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="one line per run instead of a progress bar"
    )
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser(
        "runs",
        help="list the runs in the store",
        description="List the runs in the store, one row each.",
    )
    _add_store(p)
    p.add_argument("--sweep", metavar="NAME", help="only runs of this sweep")
    p.add_argument("--status", choices=STATUSES, help="only runs with this status")
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table (default; a few columns), csv or json (every column)",
    )
    p.set_defaults(func=_cmd_runs)

    p = sub.add_parser(
        "show",
        help="config, status, reason and summary of one run",
        description="Show one run: config, status, reason (traceback of a failed run), summary.",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="the run's id (see `gradlab runs`)")
    _add_store(p)
    p.add_argument("--format", choices=("text", "json"), default="text", help="text or json")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser(
        "demo",
        help="run the demo sweep (vanishing-vs-lstm) and open the dashboard",
        description=f"Run experiments/{DEMO_SPEC} into the store (skipping runs already done), "
        "then serve the dashboard.",
    )
    _add_store(p)
    p.add_argument("--no-dash", action="store_true", help="run the sweep only, no dashboard")
    _add_server(p)
    p.add_argument(
        "--workers", type=_positive_int, metavar="N", help="local worker processes (default: cores)"
    )
    p.add_argument(
        "--no-progress", action="store_true", help="one line per run instead of a progress bar"
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "dash",
        help="serve the dashboard over the store",
        description="Serve the dashboard over the run store.",
    )
    _add_store(p)
    _add_server(p)
    p.set_defaults(func=_cmd_dash)

    args = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args if not a.startswith("-")), None)
    for name in PLUGINS:
        _add_plugin(sub, name, load=first == name)
    return parser


#: Errors of other modules a command may raise, (module, class name) -> exit code: a config or
#: spec error is a usage error, a sweep that cannot go on a failure.
ERROR_CODES: dict[tuple[str, str], int] = {
    ("gradlab.config", "ConfigError"): EXIT_USAGE,
    ("gradlab.sweep", "SweepError"): EXIT_FAILURE,
}


def _exit_code(exc: Exception) -> int | None:
    """The exit code of an ERROR_CODES error, None for any other exception. Only modules
    already loaded are looked at (an error of a module never imported cannot have been raised),
    so ``--help`` and ``runs`` do not import torch to handle errors."""
    for (module, name), code in ERROR_CODES.items():
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return code
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (console script ``gradlab``)."""
    parser = build_parser(argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "any_arguments", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed them)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = f"gradlab {args.command}"
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `gradlab runs | head`
        return EXIT_OK
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return code
