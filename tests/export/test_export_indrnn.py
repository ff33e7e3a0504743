"""A registry-added cell goes through paper export like the built-in ones: one IndRNN run's
gradient-norm profile to PDF + CSV + JSON, in its own colour."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from export_cases import browser

from gradlab.cells import get_cell
from gradlab.export import export, load_figure_data
from gradlab.figures import FIGURES, figure_table


@pytest.fixture(scope="module")
def indrnn_store(tmp_path_factory):
    from gradlab.store import open_store
    from gradlab.train import train

    root = tmp_path_factory.mktemp("indrnn-export") / "store"
    config = dict(cell="indrnn", seq_len=10, hidden_size=6, steps=4, record_every=2,
                  batch_size=8, probe_batch=4, jacobian_samples=1, hidden_samples=2)  # fmt: skip
    run_id = train(config, open_store(root, fsync=False))
    return root, run_id


@browser
def test_indrnn_profile_exports(indrnn_store, tmp_path):
    root, run_id = indrnn_store
    files = export("timestep_profile", tmp_path / "indrnn.pdf", store=root, run_ids=[run_id])
    assert [f.name for f in files] == ["indrnn.pdf", "indrnn.csv", "indrnn.json"]
    assert files[0].read_bytes().startswith(b"%PDF") and files[0].stat().st_size > 1000
    doc = json.loads(files[2].read_text(encoding="utf-8"))
    assert doc["run_ids"] == [run_id] and doc["runs"][run_id]["config"]["cell"] == "indrnn"
    csv = pd.read_csv(files[1])
    assert len(csv) > 0
    data = load_figure_data(root, "timestep_profile", [run_id])
    fig = FIGURES["timestep_profile"].builder(data)
    pd.testing.assert_frame_equal(csv, figure_table(fig), check_dtype=False, rtol=1e-12)
    by_cell = FIGURES["timestep_profile"].builder(data, color_by="cell")
    run_traces = [t for t in by_cell.data if t.meta and t.meta.get("const", {}).get("run_id")]
    assert {t.line.color for t in run_traces} == {get_cell("indrnn").color}
