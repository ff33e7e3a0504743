"""The ``gradlab export`` subcommand through `add_arguments` / `run`."""

from __future__ import annotations

import argparse
import json

import pytest
from export_cases import CELLS_SWEEP, GRID_SWEEP, GROUP_SWEEP, browser

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
    assert "    also: layer, direction" in out  # options the builder takes beyond the documented


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


# --------------------------------------------------------------- honest failures, no browser
# Each fails before a browser is needed: BROWSER_PATH names no browser, so an attempt to render
# would end in the no-browser message instead, and nothing may be written (no image, CSV, JSON).
@pytest.fixture
def no_browser(tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))
    out = tmp_path / "out"
    out.mkdir()
    return out


@pytest.mark.parametrize(
    ("figure", "option", "message"),
    [
        pytest.param("timestep_profile", "stpe=3",
                     "figure 'timestep_profile' has no option 'stpe' (did you mean step?); ",
                     id="typo"),
        pytest.param("gradient_flow", "step=3",
                     "figure 'gradient_flow' has no option 'step'; ",
                     id="not-an-option-of-this-figure"),
    ],
)  # fmt: skip
def test_an_unknown_option_exits_2_with_the_valid_ones(
    fig_store, cell_runs, no_browser, capsys, figure, option, message
):
    code = cli("--store", str(fig_store.root), "--run", cell_runs["rnn"], "--figure", figure,
               "--option", option, "--out", str(no_browser / "f.pdf"))  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    valid = ", ".join(FIGURES[figure].option_names())
    assert f"{message}its options: {valid}" in err and "unexpected keyword" not in err
    assert list(no_browser.iterdir()) == []


@pytest.mark.parametrize(
    ("figure", "option"),
    [
        pytest.param("timestep_profile", "step=4", id="metrics"),
        pytest.param("singular_values", "step=4", id="arrays"),
        pytest.param("step_jacobian", "steps=0,4", id="steps"),
        # its training loss is logged at every step, its summaries (the colour) are not
        pytest.param("phase_diagram", "step=4", id="summaries"),
    ],
)
def test_a_step_not_recorded_exits_1_naming_the_recorded_steps(
    fig_store, cell_runs, no_browser, capsys, figure, option
):
    rid = cell_runs["rnn"]  # 7 steps, recorded every 3: steps 0, 3, 6
    code = cli("--store", str(fig_store.root), "--run", rid, "--figure", figure,
               "--option", option, "--out", str(no_browser / "f.pdf"))  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert f"step 4 was not recorded for run {rid} ({figure}); " in err
    assert "recorded steps: 0, 3, 6 (nearest: 3)" in err
    assert list(no_browser.iterdir()) == []


def test_a_recorded_step_is_not_refused(fig_store, cell_runs, no_browser, capsys):
    out = no_browser / "f.pdf"
    code = cli("--store", str(fig_store.root), "--run", cell_runs["rnn"], "--figure",
               "timestep_profile", "--option", "step=3", "--out", str(out))  # fmt: skip
    assert code == 1  # gets as far as the browser: there is none
    assert "apt-get install chromium" in capsys.readouterr().err
    assert sorted(p.name for p in no_browser.iterdir()) == ["f.csv", "f.json"]


def test_an_empty_figure_exits_1_and_writes_nothing(fig_store, cell_runs, no_browser, capsys):
    code = cli("--store", str(fig_store.root), "--run", cell_runs["rnn"], "--figure", "gates",
               "--out", str(no_browser / "gates.pdf"))  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "nothing to export for gates.pdf (gates): no data: this run has no gate values" in err
    assert "no file was written" in err
    assert list(no_browser.iterdir()) == []


def test_the_gradlab_command_passes_the_exit_codes_on(fig_store, cell_runs, no_browser, capsys):
    from gradlab.cli import main

    base = ["export", "--store", str(fig_store.root), "--run", cell_runs["rnn"]]
    assert main([*base, "--figure", "gates", "--out", str(no_browser / "g.pdf")]) == 1
    assert main([*base, "--figure", "training", "--option", "scal=log"]) == 2
    assert "did you mean scale?" in capsys.readouterr().err
    assert list(no_browser.iterdir()) == []


# ------------------------------------------------------------------ --all: comparable groups
@browser
def test_all_overlays_only_runs_that_differ_in_the_cell(group_store, tmp_path, capsys):
    out = tmp_path / "groups"
    code = cli("--store", str(group_store.root), "--sweep", GROUP_SWEEP, "--all",
               "--format", "svg", "--out", str(out))  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    docs = {p: json.loads(p.read_text(encoding="utf-8")) for p in out.glob("*.json")}
    overlays = [d for d in docs.values() if d["scope"] == "runs"]
    assert overlays
    for doc in docs.values():
        configs = [run["config"] for run in doc["runs"].values()]
        keys = {k for c in configs for k in c}
        differ = {k for k in keys if len({repr(c.get(k)) for c in configs}) > 1}
        if doc["scope"] == "sweep":
            assert len(doc["run_ids"]) == 9
            continue
        assert differ <= {"cell"}, (doc["files"]["image"], differ)
        image = doc["files"]["image"]
        line = next(s for s in printed if s.startswith(str(out / image)))
        shared = configs[0]
        assert f"task={shared['task']}, seq_len={shared['seq_len']}" in line
        assert image.startswith(
            f"{doc['figure']}-task={shared['task']}-seq_len={shared['seq_len']}"
        )
        if doc["scope"] == "runs":
            assert len(configs) == 2 and "differ only in cell" in line
    names = [d["files"]["image"] for d in overlays]
    for task in ("adding", "identity"):
        for seq_len in (6, 10):
            assert f"timestep_profile-task={task}-seq_len={seq_len}.svg" in names
    assert "gradient_flow-task=adding-seq_len=6-rnn.svg" in [
        d["files"]["image"] for d in docs.values()
    ]
    assert any("seed 0 shown (seeds 0, 1)" in s for s in printed)
    (gru,) = [s for s in printed if "gradient_flow-task=adding-seq_len=6-gru.svg" in s]
    assert "seed" not in gru  # the gru has one seed there; only the rnn has two
    assert any(s.startswith("skipped gates-") and "vanilla RNN" in s for s in printed)
    md = (out / "figures.md").read_text(encoding="utf-8")
    assert "fall into 4 group(s), told apart by `task`, `seq_len`" in md
    assert "| `timestep_profile-task=adding-seq_len=6.svg` | timestep_profile |" in md
