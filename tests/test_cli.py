"""The command line as a user calls it: ``python -m gradlab ...`` in a subprocess.

Independent commands run a few at a time (each one pays for importing torch). The store the
read-only commands look at is filled once, in-process, by a real sweep.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gradlab.cli import RATE_LEGEND, main
from gradlab.sweep import load_spec, run_sweep

COMMANDS = ["sweep", "runs", "show", "demo", "dash", "export"]

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


def gradlab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gradlab", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def gradlab_many(calls: list[tuple[str, ...]]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands concurrently, results in order."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: gradlab(*args), calls))


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """(spec path, store path, run ids): 2 complete runs and 1 failed run."""
    root = tmp_path_factory.mktemp("cli")
    spec_path = root / "cli.toml"
    spec_path.write_text(textwrap.dedent(SPEC), encoding="utf-8")
    store = root / "store"
    result = run_sweep(spec_path, store, workers=2, progress=False)
    assert (result.complete, result.failed) == (2, 1)
    return spec_path, store, [c.run_id for c in load_spec(spec_path).configs]


def test_help_for_every_command():
    results = gradlab_many([("--help",), *((c, "--help") for c in COMMANDS)])
    top = results[0]
    assert top.returncode == 0 and top.stdout.startswith("usage: gradlab")
    for command in COMMANDS:
        assert command in top.stdout
    for command, result in zip(COMMANDS, results[1:], strict=True):
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith(f"usage: gradlab {command}"), result.stdout
    sweep_help = results[1].stdout
    for option in ("--store", "--workers", "--dask", "--scale", "--dry-run"):
        assert option in sweep_help
    runs_help = results[2].stdout
    for option in ("--sweep", "--status", "--format"):
        assert option in runs_help
    for result in results[4:6]:  # demo, dash
        assert "--host" in result.stdout and "--port" in result.stdout


def test_usage_errors_exit_2(capsys):
    result = gradlab("sweep", "x.toml", "--workers", "0")
    assert result.returncode == 2 and result.stdout == ""
    assert "usage: gradlab sweep" in result.stderr
    assert "--workers: expected a whole number >= 1, got 0" in result.stderr
    # The same parser in-process (no torch import per call).
    for argv, message in [
        ([], "usage: gradlab"),
        (["sweep"], "the following arguments are required: SPEC.toml"),
        (["runs", "--format", "xml"], "invalid choice: 'xml'"),
        (["runs", "--status", "done"], "invalid choice: 'done'"),
        (["dash", "--port", "70000"], "expected a port number 1-65535"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ]:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_dry_run_lists_runs_and_writes_nothing(tmp_path):
    spec = tmp_path / "cli.toml"
    spec.write_text(textwrap.dedent(SPEC), encoding="utf-8")
    store = tmp_path / "store"
    result = gradlab("sweep", str(spec), "--store", str(store), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "sweep cli (demo): 3 runs — Two tiny runs and one that fails."
    assert lines[1].split() == ["run_id", "action", "cell", "activation", "memory"]
    for config, line in zip(load_spec(spec).configs, lines[2:5], strict=True):
        fields = [config.run_id, "run", config.cell, config.activation_name or "-"]
        assert line.split()[:4] == fields and line.split()[-1].endswith("iB")
    assert "dry run: 3 to run, 0 to skip" in lines[6]
    assert not store.exists()


def test_invalid_spec_exits_2_with_the_message_and_writes_nothing(tmp_path):
    spec = tmp_path / "broken.toml"
    spec.write_text('name = "x"\n[grid]\ncell = ["rnn", "lstm"]\nactivation = ["relu"]\n')
    store = tmp_path / "store"
    bad = gradlab("sweep", str(spec), "--store", str(store))
    assert bad.returncode == 2 and bad.stdout == ""
    assert f"gradlab sweep: error: {spec}" in bad.stderr
    assert "'activation' applies to cell 'rnn'" in bad.stderr
    assert main(["sweep", str(tmp_path / "absent.toml"), "--store", str(store)]) == 2
    assert not store.exists()


def test_runs_and_show_on_a_filled_store(filled):
    _spec, store, (rnn, gru, broken) = filled
    results = gradlab_many(
        [
            ("runs", "--store", str(store), "--format", "json"),
            ("runs", "--store", str(store), "--format", "csv"),
            ("show", rnn, "--store", str(store)),
            ("show", "0123456789ab", "--store", str(store)),
        ]
    )
    as_json, as_csv, show, unknown = results
    for result in results[:3]:
        assert result.returncode == 0, result.stderr

    records = {r["run_id"]: r for r in json.loads(as_json.stdout)}
    assert {r: records[r]["status"] for r in records} == {
        rnn: "complete",
        gru: "complete",
        broken: "failed",
    }
    assert records[gru]["cell"] == "gru" and records[rnn]["hidden_size"] == 4
    assert records[rnn]["sweep"] == "cli" and "final_loss" in records[rnn]

    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {row["run_id"]: row["status"] for row in rows} == {
        r: records[r]["status"] for r in records
    }
    assert FAILING_MESSAGE in next(row["reason"] for row in rows if row["run_id"] == broken)

    assert f"run        {rnn}" in show.stdout and "status     complete" in show.stdout
    assert "cell = 'rnn'" in show.stdout and "final_loss = " in show.stdout

    assert unknown.returncode == 1 and unknown.stdout == ""
    assert "gradlab show: error: no run '0123456789ab'" in unknown.stderr


def test_runs_filters_table_and_show_json_in_process(filled, capsys):
    _spec, store, (_rnn, _gru, broken) = filled
    assert main(["runs", "--store", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["run_id", "sweep", "status"] and "reason" in lines[0]
    assert len(lines) == 5  # header, three runs, the rate columns' legend
    assert lines[-1] == RATE_LEGEND and "step 0" in lines[-1] and "decay_rate_init" in lines[0]
    row = next(line for line in lines if line.startswith(broken))
    assert "failed" in row and "raised on purpose" in row

    assert main(["runs", "--store", str(store), "--status", "failed", "--format", "json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [broken]
    assert main(["runs", "--store", str(store), "--sweep", "other", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []

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


def test_sweep_again_skips_complete_runs_and_exits_1_on_a_failure(filled, capsys):
    spec, store, (_rnn, _gru, broken) = filled
    assert main(["sweep", str(spec), "--store", str(store), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "sweep cli: 3 runs, 1 to run (2 already done, 1 to redo)" in out
    assert f"{broken} failed" in out and FAILING_MESSAGE in out
    assert "sweep cli done: 3 runs: 0 complete, 0 diverged, 1 failed, 2 skipped in" in out


def test_a_plugin_command_whose_module_is_missing_exits_1(monkeypatch, capsys):
    from gradlab import cli

    _, help_text, description = cli.PLUGINS["export"]
    monkeypatch.setitem(cli.PLUGINS, "export", ("gradlab.no_such_module", help_text, description))
    assert main(["export", "--run", "x"]) == 1
    assert "gradlab export: error: export is not available" in capsys.readouterr().err
    assert main(["--help"]) == 0  # the other commands are unaffected
    assert "export" in capsys.readouterr().out


def test_demo_finds_its_spec():
    from gradlab.cli import DEMO_SPEC, _experiments_dir

    spec = load_spec(_experiments_dir() / DEMO_SPEC)
    assert spec.name == "vanishing-vs-lstm" and len(spec.configs) <= 24
