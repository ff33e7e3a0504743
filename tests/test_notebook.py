"""`gradlab.figure` (gradlab/notebook.py): a Recording's figures are a stored run's figures, built
in memory; and docs/notebook.ipynb runs clean under nbclient with the venv's kernel."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import gradlab
from gradlab.arrays import ARRAYS
from gradlab.figures import FIGURES, figure_table
from gradlab.notebook import model_row, recording_data
from gradlab.store import open_store

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "notebook.ipynb"


@pytest.fixture(scope="module", autouse=True)
def _one_thread(single_thread):
    """See conftest.single_thread: small tensors, loaded machine."""


class Tagger(nn.Module):
    """Embedding + 2-layer LSTM + Linear head, as a user writes one."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.lstm = nn.LSTM(6, 12, num_layers=2)
        self.head = nn.Linear(12, 11)

    def forward(self, tokens):
        out, _ = self.lstm(self.emb(tokens))
        return self.head(out)


@pytest.fixture(scope="module")
def case():
    """(model, tokens (T, B), loss_fn, its Recording)."""
    torch.manual_seed(0)
    model = Tagger().eval()
    tokens = torch.randint(0, 11, (25, 6))

    def loss_fn(logits):
        return nn.functional.cross_entropy(logits[:-1].reshape(-1, 11), tokens[1:].reshape(-1))

    return model, tokens, loss_fn, gradlab.record(model, tokens, loss_fn, module="lstm")


@pytest.fixture(scope="module")
def stored(case, tmp_path_factory):
    """(store, run_id) of the same recording written by `run.record` at step 0."""
    model, tokens, loss_fn, rec = case
    store = open_store(tmp_path_factory.mktemp("store") / "runs", fsync=False)
    config = {k: v for k, v in model_row(rec).items() if k not in ("status", "final_loss")}
    with gradlab.init(store=store, name="tagger", config=config) as run:
        run.record(model, tokens, loss_fn, step=0, module="lstm")
    return store, run.run_id


def test_recording_rows_are_what_the_store_returns(case, stored):
    """Same columns, dtypes, rows and arrays as `Store.metrics` / the run's arrays."""
    store, run_id = stored
    data = recording_data(case[3])
    want = store.metrics(run_id)
    got = data.metrics.assign(run_id=run_id)
    assert list(got.columns) == list(want.columns)
    assert dict(got.dtypes) == dict(want.dtypes)
    pd.testing.assert_frame_equal(got, want)  # in the store's row order too
    info = store.run(run_id)
    assert {(a, s) for (_, a, s) in data.arrays} == {(a, 0) for a in ARRAYS}  # every array
    for (_, name, step), array in data.arrays.items():
        np.testing.assert_array_equal(array, info.array(name, step))


def test_model_row_describes_the_model(case):
    row = recording_data(case[3]).run("recording")
    assert row["cell"] == "lstm" and row["hidden_size"] == 12 and row["num_layers"] == 2
    assert row["seq_len"] == 25 and row["batch"] == 6 and row["dtype"] == "float32"
    assert row["final_loss"] == pytest.approx(case[3].loss)


DRAWN = [n for n, s in FIGURES.items() if s.scope != "sweep" and n != "training"]


@pytest.mark.parametrize("name", DRAWN)
def test_a_recording_draws_what_its_stored_run_draws(case, stored, name):
    """Every figure a recording can show plots the stored run's numbers (theory off both)."""
    store, run_id = stored
    options = {"theory": False} if "theory" in FIGURES[name].option_names() else {}
    if name == "saturation":  # drawn even where no unit saturates (else a one-line summary)
        options["always"] = True
    mine = gradlab.figure(name, case[3], **options)
    theirs = gradlab.figure(name, store, runs=[run_id], **options)
    assert isinstance(mine, go.Figure) and len(mine.data) > 0
    drop = ["trace", "run_id"]
    got = figure_table(mine).drop(columns=drop, errors="ignore")
    want = figure_table(theirs).drop(columns=drop, errors="ignore")
    pd.testing.assert_frame_equal(got, want)


def test_no_theory_line_for_a_recording():
    """The theory is of a gradlab task at initialisation: never drawn for a recording."""
    torch.manual_seed(0)
    model = gradlab.RNN(3, 8)
    rec = gradlab.record(model, torch.randn(20, 4, 3), lambda out: out[-1].square().sum())
    lines = {(t.meta or {}).get("line") for t in gradlab.figure("timestep_profile", rec).data}
    assert "theory" not in lines
    names = [str(t.name) for t in gradlab.figure("timestep_profile", rec).data]
    assert not any(n.startswith("theory") for n in names)


def test_recordings_overlay_by_name(case):
    """A dict (or list) of Recordings: one line each, labelled by its name."""
    rec = case[3]
    fig = gradlab.figure("timestep_profile", {"before": rec, "after": rec}, fit=False)
    assert [t.meta["const"]["run_id"] for t in fig.data] == ["before", "after"]
    assert [t.name for t in fig.data] == ["lstm · seq 25 · before", "lstm · seq 25 · after"]
    table = figure_table(gradlab.figure("saturation", [rec, rec], always=True))
    assert set(table["run_id"]) == {"rec 0", "rec 1"}


def test_what_a_recording_lacks_says_why(case):
    rec = case[3]
    text = gradlab.figure("training", rec).layout.annotations[0].text
    assert "no training curve" in text and "gradlab.init" in text
    assert "sweep" in gradlab.figure("phase_diagram", rec).layout.annotations[0].text
    rnn = gradlab.record(gradlab.RNN(2, 3), torch.randn(4, 2, 2))  # no gates, no loss
    assert "none of what gates draws" in gradlab.figure("gates", rnn).layout.annotations[0].text
    text = gradlab.figure("timestep_profile", rnn).layout.annotations[0].text
    assert "draws gradients: record with a loss_fn" in text


def test_bad_calls_are_errors(case, stored):
    rec = case[3]
    with pytest.raises(ValueError, match=r"unknown figure 'profile'; figures: gradient_flow, "):
        gradlab.figure("profile", rec)
    with pytest.raises(ValueError, match=r"has no option 'quantiy' \(did you mean quantity\?\)"):
        gradlab.figure("timestep_profile", rec, quantiy="grad_hidden")
    with pytest.raises(ValueError, match=r"no theory line for a Recording"):
        gradlab.figure("jacobian_lag", rec, theory=True)
    with pytest.raises(ValueError, match=r"runs= and sweep= pick stored runs"):
        gradlab.figure("timestep_profile", rec, runs=["x"])
    with pytest.raises(TypeError, match=r"source must be a Recording.*got int"):
        gradlab.figure("timestep_profile", 3)
    with pytest.raises(TypeError, match=r"source\['a'\] is a str, not a Recording"):
        gradlab.figure("timestep_profile", {"a": "b"})
    with pytest.raises(KeyError, match=r"no run 'nope'"):
        gradlab.figure("timestep_profile", stored[0], runs=["nope"])


def test_packed_recording_profile_shows_no_padded_step():
    """A PackedSequence batch: the profile's points are steps some sequence really took."""
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5)
    x = torch.randn(9, 3, 3)
    packed = pack_padded_sequence(x, torch.tensor([4, 2, 9]), enforce_sorted=False)
    rec = gradlab.record(lstm, packed, lambda r: pad_packed_sequence(r[0])[0].sum())
    # spectral norms average the Jacobian samples, rows 0 and 1, which end at step 4
    spectral = figure_table(gradlab.figure("step_jacobian", rec, norm="spectral"))
    assert sorted(spectral["t"].unique()) == [1, 2, 3, 4]
    fro = figure_table(gradlab.figure("step_jacobian", rec, norm="fro"))
    assert sorted(fro["t"].unique()) == list(range(1, 10))  # row 2 runs all 9 steps


def test_the_example_notebook_runs_clean(tmp_path, monkeypatch):
    """docs/notebook.ipynb under nbclient with the "python3" kernel (the venv's own: jupyter
    runs a "python" kernel spec with the running interpreter), in a fresh folder: no error, its
    figures displayed, its run complete in the store it made."""
    import sys

    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == sum("gradlab.figure(" in c.source for c in nb.cells)
    assert outputs[-1].text.strip() == sys.executable
    runs = open_store(tmp_path / "runs").runs()
    assert runs["status"].tolist() == ["complete"]
    for figure in figures:
        layout = figure["data"]["application/vnd.plotly.v1+json"]["layout"]
        notes = [a.get("text", "") for a in layout.get("annotations", [])]
        assert not any(n.startswith("no data") for n in notes), notes
