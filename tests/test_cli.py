"""The command line, called in-process (``gradlab.cli.main`` with capsys) where a subprocess adds
nothing, and as a user calls it (``python -m gradlab``) for what only a fresh process shows: the
exit status and which modules a command imports.

The store the read-only commands look at is filled once, in-process, with `gradlab.train`.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradlab import cli
from gradlab.cli import RATE_LEGEND, main
from gradlab.store import open_store
from gradlab.sweep import load_spec

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["sweep", "runs", "show", "demo", "dash", "export", "export-tb"]
#: Modules the read-only commands must not import (start-up time; see benchmarks/cli.py).
HEAVY = ("torch", "dash", "plotly", "duckdb")

# The run that fails uses the activation of tests/failing_activation.py, which raises.
FAILING_PLUGIN = Path(__file__).resolve().parent / "failing_activation.py"
FAILING_MESSAGE = "the failing activation raised on purpose"
SPEC = f"""
name = "cli"
description = "Two tiny runs and one that fails."
plugins = ['{FAILING_PLUGIN}']
[base]
hidden_size = 4
seq_len = 5
steps = 3
batch_size = 8
probe_batch = 4
[grid]
cell = ["rnn", "gru"]
[[include]]
activation = "failing"
"""


def gradlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gradlab", *args], capture_output=True, text=True, timeout=600
    )


def write_spec(folder: Path) -> Path:
    spec = folder / "cli.toml"
    spec.write_text(textwrap.dedent(SPEC), encoding="utf-8")
    return spec


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """(spec path, store path, run ids): 2 complete runs and 1 failed run of the spec."""
    from gradlab.train import train

    root = tmp_path_factory.mktemp("cli")
    spec_path = write_spec(root)
    store = root / "store"
    rnn, gru, broken = load_spec(spec_path).configs
    assert train(rnn, store) == rnn.run_id and train(gru, store) == gru.run_id
    with pytest.raises(RuntimeError, match=FAILING_MESSAGE):
        train(broken, store)
    return spec_path, store, [rnn.run_id, gru.run_id, broken.run_id]


# ----------------------------------------------------------------------------- a fresh process
def test_read_only_commands_import_neither_torch_nor_the_dashboard(filled):
    """--help, --version, runs and show in a fresh interpreter: none imports torch, dash,
    plotly or DuckDB; --help and --version not even pandas."""
    _spec, store, (rnn, _gru, _broken) = filled
    calls = {
        "help": ["--help"],
        "version": ["--version"],
        "runs": ["runs", "--store", str(store)],
        "show": ["show", rnn, "--store", str(store)],
    }
    script = textwrap.dedent(
        f"""
        import contextlib, io, json, sys
        from gradlab.cli import main
        seen = {{}}
        for name, argv in {calls!r}.items():
            with contextlib.redirect_stdout(io.StringIO()) as out:
                code = main(argv)
            loaded = [m for m in {(*HEAVY, "pandas")!r} if m in sys.modules]
            seen[name] = [code, loaded, out.getvalue()]
        print(json.dumps(seen))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["help"] == [0, [], seen["help"][2]] and seen["help"][2].startswith("usage:")
    assert seen["version"][:2] == [0, []] and seen["version"][2].startswith("gradlab ")
    for name in ("runs", "show"):
        code, loaded, out = seen[name]
        assert code == 0 and loaded == ["pandas"], (name, loaded)
        assert rnn in out, name


def test_readme_quotes_the_start_up_benchmarks_cli_measured():
    """The README's start-up line is benchmarks/cli.py's output (``--write``), within target."""
    spec = importlib.util.spec_from_file_location("bench_cli", REPO / "benchmarks" / "cli.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (block,) = (m.group(0) for m in bench.STARTUP.finditer(readme))
    paragraph = readme[: readme.index(block) + len(block)].rsplit("\n\n", 1)[-1]
    assert "`gradlab --help`, `--version`, `runs` and `show` import" in paragraph  # as tested above
    quoted = re.search(r"^<!-- cli-startup -->Measured by .*?`gradlab --help` (\S+) s", block)
    assert quoted and float(quoted.group(1)) <= bench.HELP_TARGET_S


def test_exit_status_of_the_real_command(filled):
    _spec, store, _ids = filled
    usage = gradlab("sweep", "x.toml", "--workers", "0")
    assert usage.returncode == 2 and usage.stdout == ""
    assert "usage: gradlab sweep" in usage.stderr
    assert "--workers: expected a whole number >= 1, got 0" in usage.stderr
    unknown = gradlab("show", "0123456789ab", "--store", str(store))
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr == f"gradlab show: error: no run '0123456789ab' in store {str(store)!r}\n"


# ----------------------------------------------------------------------------- in-process
@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: gradlab {command}"), out
    options = {
        "sweep": ("--store", "--workers", "--dask", "--scale", "--dry-run"),
        "runs": ("--sweep", "--status", "--format"),
        "demo": ("--host", "--port"),
        "dash": ("--host", "--port"),
        "export-tb": ("--store", "--logdir"),
    }
    for option in options.get(command, ()):
        assert option in out, (command, option)


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gradlab")
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "usage: gradlab"),
        (["sweep"], "the following arguments are required: SPEC.toml"),
        (["sweep", "x.toml", "--workers", "0"], "--workers: expected a whole number >= 1"),
        (["runs", "--format", "xml"], "invalid choice: 'xml'"),
        (["runs", "--status", "done"], "invalid choice: 'done'"),
        (["dash", "--port", "70000"], "expected a port number 1-65535"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
    ids=["nothing", "sweep-no-spec", "workers-0", "format-xml", "status-done", "port", "unknown"],
)
def test_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_dry_run_lists_runs_and_writes_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path)
    store = tmp_path / "store"
    assert main(["sweep", str(spec), "--store", str(store), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sweep cli (demo): 3 runs — Two tiny runs and one that fails."
    assert lines[1].split() == ["run_id", "action", "cell", "activation", "memory"]
    for config, line in zip(load_spec(spec).configs, lines[2:5], strict=True):
        fields = [config.run_id, "run", config.cell, config.activation_name or "-"]
        assert line.split()[:4] == fields and line.split()[-1].endswith("iB")
    assert "dry run: 3 to run, 0 to skip" in lines[6]
    assert not store.exists()


def test_invalid_spec_exits_2_with_the_message_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "broken.toml"
    spec.write_text('name = "x"\n[grid]\ncell = ["rnn", "lstm"]\nactivation = ["relu"]\n')
    store = tmp_path / "store"
    assert main(["sweep", str(spec), "--store", str(store)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"gradlab sweep: error: {spec}" in captured.err
    assert "'activation' applies to cell 'rnn'" in captured.err
    assert main(["sweep", str(tmp_path / "absent.toml"), "--store", str(store)]) == 2
    assert not store.exists()


def test_runs_as_json_and_csv_and_show(filled, capsys):
    _spec, store, (rnn, gru, broken) = filled
    assert main(["runs", "--store", str(store), "--format", "json"]) == 0
    records = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert {r: records[r]["status"] for r in records} == {
        rnn: "complete",
        gru: "complete",
        broken: "failed",
    }
    assert records[gru]["cell"] == "gru" and records[rnn]["hidden_size"] == 4
    assert records[rnn]["sweep"] == "cli" and "final_loss" in records[rnn]

    assert main(["runs", "--store", str(store), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {row["run_id"]: row["status"] for row in rows} == {
        r: records[r]["status"] for r in records
    }
    assert FAILING_MESSAGE in next(row["reason"] for row in rows if row["run_id"] == broken)

    assert main(["show", rnn, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"run        {rnn}" in out and "status     complete" in out
    assert "cell = 'rnn'" in out and "final_loss = " in out
    assert f"duration_s {records[rnn]['duration_s']}" in out


def test_runs_table_filters_and_show_json(filled, capsys):
    _spec, store, (rnn, gru, broken) = filled
    assert main(["runs", "--store", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:3] == ["run_id", "sweep", "status"] and header[-1] == "reason"
    assert "activation" in header and "hidden_size" not in header  # what varies, not what is equal
    assert len(lines) == 5  # header, three runs, the rate columns' legend
    assert lines[-1] == RATE_LEGEND and "step 0" in lines[-1] and "decay_rate_init" in lines[0]
    row = next(line for line in lines if line.startswith(broken))
    assert "failed" in row and "raised on purpose" in row
    by_id = {line.split()[0]: line.split() for line in lines[1:4]}
    assert by_id[rnn][header.index("activation")] == cli.DEFAULT_ACTIVATION
    assert by_id[gru][header.index("cell")] == "gru"

    assert main(["runs", "--store", str(store), "--status", "failed", "--format", "json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [broken]
    assert main(["runs", "--store", str(store), "--sweep", "cli", "--status", "running"]) == 0
    assert capsys.readouterr().out == "no runs match\n"
    for fmt in ("table", "json"):  # a sweep the store does not have: the ones it has, exit 1
        assert main(["runs", "--store", str(store), "--sweep", "clj", "--format", fmt]) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and "no sweep 'clj'" in captured.err
        assert "sweeps: cli" in captured.err

    assert main(["show", broken, "--store", str(store), "--format", "json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["status"] == "failed" and "Traceback" in detail["reason"]
    assert detail["run_json"]["config"]["activation"] == "failing"

    nowhere = store.parent / "nowhere"
    assert main(["runs", "--store", str(nowhere)]) == 1
    assert "no run store at" in capsys.readouterr().err
    assert main(["show", "bad/id", "--store", str(store)]) == 1
    assert "no run 'bad/id'" in capsys.readouterr().err
    assert not nowhere.exists()


def test_show_and_export_take_a_unique_prefix_and_list_an_ambiguous_one(filled, tmp_path, capsys):
    _spec, shared, ids = filled
    store = shutil.copytree(shared, tmp_path / "store")  # the module's store stays as it is
    run_id = ids[0]
    prefix = next(
        run_id[:n] for n in range(4, 13) if sum(i.startswith(run_id[:n]) for i in ids) == 1
    )
    assert main(["show", prefix, "--store", str(store)]) == 0
    assert f"run        {run_id}" in capsys.readouterr().out
    twin = run_id[: len(prefix)] + "twin"  # a second run sharing the prefix
    open_store(store, fsync=False).create_run(twin, {"cell": "rnn"}).finish("failed")
    assert main(["show", prefix, "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert f"matches 2 runs: {', '.join(sorted([run_id, twin]))}" in err
    assert main(["export", "--store", str(store), "--run", prefix, "--figure", "x"]) == 2
    assert "matches 2 runs" in capsys.readouterr().err


def test_show_prints_tags_and_note(filled, tmp_path, capsys):
    _spec, shared, (rnn, _gru, _broken) = filled
    store = shutil.copytree(shared, tmp_path / "store")
    open_store(store, fsync=False).annotate(rnn, add_tags=["best", "lr"], note="check gain")
    assert main(["show", rnn, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "tags       best, lr" in out and "note       check gain" in out
    assert main(["show", rnn, "--store", str(store), "--format", "json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert (detail["tags"], detail["note"]) == (["best", "lr"], "check gain")


def test_runs_table_aligns_columns_and_prints_text_as_it_is(filled, capsys):
    """rich lays the table out: every column starts at one place on every line, numbers are
    right-aligned, nothing is wrapped or cut at any width, no line ends in blanks, and markup
    in a cell ("[bold]") is printed, not interpreted."""
    _spec, store, _ids = filled
    header = ["run_id", "loss", "note"]
    rows = [["a", 1.5, "[bold]x[/bold] " + "y" * 300], ["bbbbbbbb", 12.25, None]]
    lines = cli._format_table(header, rows).splitlines()
    assert lines[0].split() == header and len(lines) == 3
    assert lines[1].endswith("[bold]x[/bold] " + "y" * 300)
    assert all(line == line.rstrip() for line in lines)
    loss_end = lines[0].index("loss") + len("loss")  # a numeric column: right-aligned
    assert lines[1][:loss_end].endswith(" 1.5") and lines[2][:loss_end].endswith("12.25")
    assert {line.index("[bold]") for line in lines[1:2]} == {lines[0].index("note")}

    assert main(["runs", "--store", str(store)]) == 0
    table = capsys.readouterr().out.splitlines()[:4]
    starts = [i for i, c in enumerate(table[0]) if c != " " and (i == 0 or table[0][i - 1] == " ")]
    for line in table[1:]:
        for start in starts[:3]:  # run_id, sweep, status: left-aligned text
            assert line[start] != " " and (start == 0 or line[start - 1] == " "), line


def test_sweep_again_skips_complete_runs_and_exits_1_on_a_failure(filled, capsys):
    spec, store, (_rnn, _gru, broken) = filled
    assert main(["sweep", str(spec), "--store", str(store), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "sweep cli: 3 runs, 1 to run (2 already done, 1 to redo)" in out
    assert f"{broken} failed" in out and FAILING_MESSAGE in out
    assert "sweep cli done: 3 runs: 0 complete, 0 diverged, 1 failed, 2 skipped in" in out


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("0.0.0.0", "on every network interface of this machine (--host 0.0.0.0)"),
        ("::", "on every network interface of this machine (--host ::)"),
        ("192.0.2.7", "on 192.0.2.7, which is not a loopback address"),
        ("127.0.0.1", None),
        ("::1", None),
        ("localhost", None),
    ],
    ids=["all-ipv4", "all-ipv6", "lan-address", "loopback-ipv4", "loopback-ipv6", "localhost"],
)
def test_dash_warns_when_the_host_is_not_loopback(host, words, filled, monkeypatch, capsys):
    """`gradlab dash --host X` through the real app up to the socket (Dash.run is replaced)."""
    import dashboards.app

    _spec, store, _ids = filled
    served = {}
    monkeypatch.setattr(dashboards.app.Dash, "run", lambda self, **kw: served.update(kw))
    assert main(["dash", "--store", str(store), "--host", host, "--port", "8123"]) == 0
    assert served == {"host": host, "port": 8123, "debug": False}
    err = capsys.readouterr().err
    if words is None:
        assert err == ""
    else:
        assert err.startswith("warning: serving the dashboard " + words)
        assert "anyone who can reach port 8123" in err and "--host 127.0.0.1" in err


def test_a_plugin_command_whose_module_is_missing_exits_1(monkeypatch, capsys):
    _, help_text, description = cli.PLUGINS["export"]
    monkeypatch.setitem(cli.PLUGINS, "export", ("gradlab.no_such_module", help_text, description))
    assert main(["export", "--run", "x"]) == 1
    assert "gradlab export: error: export is not available" in capsys.readouterr().err
    assert main(["--help"]) == 0  # the other commands are unaffected
    assert "export" in capsys.readouterr().out


def test_demo_finds_its_spec():
    spec = load_spec(cli._experiments_dir() / cli.DEMO_SPEC)
    assert spec.name == "vanishing-vs-lstm" and len(spec.configs) <= 24
