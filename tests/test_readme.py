"""The README's "Extending gradlab" snippets run as they stand, in order, each in a fresh
namespace (a snippet that stops working fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


SNIPPETS = re.findall(
    r"```python\n(.*?)```", _section(README.read_text("utf-8"), "Extending gradlab"), re.S
)
IDS = ["cell-registration", "cell-use", "activation", "probe", "figure"]


def test_every_extension_point_has_a_snippet():
    assert len(SNIPPETS) == len(IDS)


@pytest.mark.parametrize("code", SNIPPETS, ids=IDS)
def test_snippet_runs(code, capsys):
    exec(compile(code, str(README), "exec"), {"__name__": "readme_snippet"})
    assert capsys.readouterr().out.strip() or "register_cell" in code


OWN_LOOP = re.findall(
    r"```python\n(.*?)```", _section(README.read_text("utf-8"), "Training runs and the store"), re.S
)[-1]


def test_own_training_loop_snippet_runs(tmp_path, monkeypatch, capsys):
    """The "Your own training loop" snippet, in a fresh folder: a complete run the store reads."""
    from gradlab.store import open_store

    assert "gradlab.init(" in OWN_LOOP
    monkeypatch.chdir(tmp_path)
    exec(compile(OWN_LOOP, str(README), "exec"), {"__name__": "readme_snippet"})
    assert "loss" in capsys.readouterr().out
    store = open_store(tmp_path / "runs")
    assert store.run("digits-lstm").status == "complete"
    assert store.run("digits-lstm").array_steps("hidden_sample") == [0, 25, 50, 75]


NOTEBOOK_SNIPPET = re.findall(
    r"```python\n(.*?)```", _section(README.read_text("utf-8"), "Figures"), re.S
)[-1]


def test_notebook_figure_snippet_runs(capsys):
    """The "In a notebook" snippet: gradlab.figure from Recordings, two named lines."""
    assert "gradlab.figure(" in NOTEBOOK_SNIPPET
    exec(compile(NOTEBOOK_SNIPPET, str(README), "exec"), {"__name__": "readme_snippet"})
    assert "before" in capsys.readouterr().out
