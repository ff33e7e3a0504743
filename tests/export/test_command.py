"""The ``gradlab export`` subcommand through `add_arguments` / `run`."""

from __future__ import annotations

import argparse
import json

import pytest
from export_cases import CELLS_SWEEP, GRID_SWEEP, browser

from gradlab.export.command import add_arguments, run
from gradlab.figures import FIGURES


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gradlab export")
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


def test_list_names_every_figure_with_scope_and_needs(capsys):
    assert cli("--list") == 0
    out = capsys.readouterr().out
    for name, spec in FIGURES.items():
        assert f"{name}  [{spec.scope}]" in out
    assert "needs: grad_hidden/norm" in out
    assert "array step_jacobian_sv" in out


@browser
def test_one_figure(fig_store, cell_runs, tmp_path, capsys):
    out = tmp_path / "fig" / "profile.svg"
    ids = ",".join([cell_runs["rnn"], cell_runs["lstm"]])
    code = cli(
        "--store", str(fig_store.root), "--runs", ids, "--figure", "timestep_profile",
        "--option", "fit=false", "--width", "double", "--font", "sans", "--out", str(out),
    )  # fmt: skip
    assert code == 0
    assert out.is_file() and out.with_suffix(".csv").is_file()
    doc = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert doc["run_ids"] == [cell_runs["rnn"], cell_runs["lstm"]]
    assert doc["options"]["fit"] is False and doc["width_in"] == 6.75 and doc["font"] == "sans"
    assert str(out) in capsys.readouterr().out


@browser
def test_all_figures_of_a_sweep(fig_store, tmp_path, capsys):
    out = tmp_path / "grid"
    code = cli("--store", str(fig_store.root), "--sweep", GRID_SWEEP, "--all", "--format", "png",
               "--dpi", "60", "--out", str(out))  # fmt: skip
    assert code == 0
    md = (out / "figures.md").read_text(encoding="utf-8")
    assert "`phase_diagram.png`" in md and (out / "phase_diagram.png").is_file()
    assert "wrote" in capsys.readouterr().out


def test_usage_errors(fig_store, capsys):
    assert cli("--store", str(fig_store.root), "--all") == 2
    assert "--all needs --sweep" in capsys.readouterr().err
    assert cli("--store", str(fig_store.root), "--sweep", CELLS_SWEEP) == 2
    assert cli("--store", str(fig_store.root), "--figure", "training") == 2
    assert cli("--store", str(fig_store.root), "--run", "x", "--figure", "nope") == 2
    assert "unknown figure 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli("--width", "wide")


def test_failures_exit_1_with_a_message(fig_store, tmp_path, capsys, monkeypatch):
    assert cli("--store", str(fig_store.root), "--run", "nope", "--figure", "training") == 1
    assert "no run 'nope'" in capsys.readouterr().err
    assert cli("--store", str(tmp_path / "none"), "--sweep", "s", "--figure", "training") == 1
    assert "no gradlab store" in capsys.readouterr().err
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))
    out = tmp_path / "t.pdf"
    code = cli("--store", str(fig_store.root), "--sweep", CELLS_SWEEP, "--figure", "training",
               "--out", str(out))  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "apt-get install chromium" in err and "CSV and JSON were written" in err
    assert out.with_suffix(".csv").is_file() and not out.exists()
