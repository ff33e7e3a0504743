"""The example scripts in experiments/ (run with tiny settings into a temporary store) and the
README's sequential-digits result, checked against the file the documented run wrote."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from gradlab.store import open_store

ROOT = Path(__file__).resolve().parents[1]
DIGITS_RESULT = ROOT / "docs" / "digits.json"
DIGITS_FLOW = ROOT / "docs" / "digits_gradient_flow.png"  # with its .csv and .json
TINY_CHAR_LM = ["--steps", "7", "--record-every", "3", "--seq-len", "12", "--embedding", "4",
                "--hidden", "8", "--batch", "4"]  # fmt: skip


def example(name: str) -> ModuleType:
    """experiments/<name>.py as a module (its `main(argv)` is the command line)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "store", fsync=False)


def test_the_char_lm_example_trains_and_records_a_torch_model(store, capsys):
    argv = ["--store", str(store.root), "--name", "zen", *TINY_CHAR_LM, "--figure", ""]
    scores = example("char_lm").main(argv)
    info = store.run("zen")
    assert info.status == "complete"
    # the config names no cell: the recording of the nn.LSTM added it
    assert info.config["cell"] == "lstm" and info.config["hidden_size"] == 8
    assert store.runs().set_index("run_id").loc["zen", "cell"] == "lstm"
    train = store.metrics("zen", probes="train")
    assert set(train["name"]) == {"loss", "bits_per_char"}
    assert sorted(train["step"].unique()) == list(range(7))
    for probe in ("grad_hidden", "contribution", "gates", "summary"):
        steps = store.metrics("zen", probes=probe)["step"].unique()
        assert sorted(steps.tolist()) == [0, 3, 6], probe
    assert info.array("hidden_sample", 6).shape == (13, 4, 8)  # h_0..h_12 of the 4 probe rows
    assert info.summary["baseline_loss"] == pytest.approx(scores["baseline_loss"])
    assert info.summary["final_loss"] == pytest.approx(scores["final_loss"])
    assert "heatmap" not in capsys.readouterr().out  # --figure '': none asked for


@pytest.mark.browser
def test_the_char_lm_example_exports_its_gradient_flow_heatmap(store, tmp_path, capsys):
    from gradlab.export import find_browser

    figure = tmp_path / "flow.png"
    argv = ["--store", str(store.root), "--name", "zen", *TINY_CHAR_LM, "--figure", str(figure)]
    example("char_lm").main(argv)
    out = capsys.readouterr().out
    meta = json.loads(figure.with_suffix(".json").read_text())  # written with or without browser
    assert meta["figure"] == "gradient_flow" and meta["run_ids"] == ["zen"]
    if find_browser() is None:
        assert "not rendered" in out and not figure.exists()
    else:
        assert f"gradient flow heatmap: {figure}" in out
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_short_digits_run_beats_chance_clearly(store):
    """250 steps of the digits example (seed 0): well above the ~10 % of guessing."""
    argv = ["--store", str(store.root), "--name", "short", "--steps", "250", "--hidden", "32",
            "--batch", "32", "--record-every", "1000", "--figure", ""]  # fmt: skip
    scores = example("train_digits").main(argv)
    assert scores["test_acc"] > 0.3
    assert store.run("short").array_steps("hidden_sample") == [0, 249]


def test_the_digits_result_file_is_a_full_run_above_90_percent():
    result = json.loads(DIGITS_RESULT.read_text("utf-8"))
    assert result["task"] == "seq_digits" and result["test_acc"] >= 0.90
    assert result["steps"] == result["settings"]["steps"]
    assert result["command"].endswith(
        "--write=docs/digits.json --figure=docs/digits_gradient_flow.png"
    )
    defaults = vars(example("train_digits").make_parser().parse_args([]))
    assert result["settings"] == {
        k: v for k, v in defaults.items() if k not in ("store", "name", "write", "figure")
    }  # the documented run is the script at its defaults


def flow_ratios() -> dict[int, float]:
    """‖∂L/∂h_0‖ / ‖∂L/∂h_T‖ at each recorded step, from the committed heatmap's data."""
    import pandas as pd

    table = pd.read_csv(DIGITS_FLOW.with_suffix(".csv")).sort_values("t")
    return {
        int(step): rows["value"].iloc[0] / rows["value"].iloc[-1]
        for step, rows in table.groupby("step")
    }


def test_the_committed_heatmap_is_the_documented_run():
    result = json.loads(DIGITS_RESULT.read_text("utf-8"))
    meta = json.loads(DIGITS_FLOW.with_suffix(".json").read_text("utf-8"))
    assert meta["figure"] == "gradient_flow" and meta["run_ids"] == [result["run_id"]]
    assert meta["runs"][result["run_id"]]["summary"]["test_acc"] == result["test_acc"]
    assert DIGITS_FLOW.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ratios = flow_ratios()
    assert sorted(ratios) == [*range(0, 2000, 250), 1999]
    assert all(1 / 5 < r < 5 for step, r in ratios.items() if step >= 250)  # the README's words


def test_the_readme_quotes_the_committed_digits_result():
    result = json.loads(DIGITS_RESULT.read_text("utf-8"))
    readme = (ROOT / "README.md").read_text("utf-8")
    quoted = dict(re.findall(r"<!-- digits:(\w+) -->(.*?)<!-- /digits -->", readme))
    assert quoted == {
        "test_acc": f"{100 * result['test_acc']:.1f} %",
        "test_size": f"{result['test_size']:,}",
        "steps": f"{result['steps']:,}",
        "wall_s": f"{result['wall_s']:.0f} s",
        "flow_init": f"{flow_ratios()[0]:.0e}",
    }
    assert "](docs/digits_gradient_flow.png)" in readme
