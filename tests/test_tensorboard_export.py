"""`gradlab export-tb`: the event files TensorBoard's own reader (EventAccumulator) reads back
hold the store's values: scalars to float32 (TensorBoard's scalar precision), per-timestep
profiles exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gradlab
from gradlab.cli import main
from gradlab.store import open_store
from gradlab.tensorboard_export import tag

EVERYTHING = {"scalars": 0, "histograms": 0, "tensors": 0}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One run of a 2-layer bidirectional GRU (layer and direction tags), three recordings, a
    NaN metric (NaN is data)."""
    store = open_store(tmp_path_factory.mktemp("tb") / "store", fsync=False)
    torch.manual_seed(0)
    model = gradlab.GRU(3, 5, num_layers=2, bidirectional=True)
    x = torch.randn(7, 4, 3)
    with gradlab.init(store, name="gru", config={"lr": 0.1, "note": "tb"}) as run:
        for step in range(6):
            if step % 2 == 0:
                run.record(model, x, lambda out: out.square().mean(), step=step)
            run.log({"loss": 1.0 / (step + 1), "odd": float("nan") if step == 3 else step})
    return store


def read(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance=EVERYTHING)
    events.Reload()
    return events


def test_export_tb_round_trips_through_event_accumulator(store, tmp_path, capsys):
    logdir = tmp_path / "tb"
    assert main(["export-tb", "gru", "--store", str(store.root), "--logdir", str(logdir)]) == 0
    assert f"gru: {logdir / 'gru'}" in capsys.readouterr().out
    events = read(logdir / "gru")
    metrics = store.metrics("gru")

    scalars = metrics[metrics["t"].isna()]
    groups = scalars.groupby(["probe", "name", "layer", "direction"], dropna=False)
    assert set(events.Tags()["scalars"]) >= {tag(*key) for key, _ in groups}
    for key, rows in groups:
        read_back = events.Scalars(tag(*key))
        assert [e.step for e in read_back] == rows["step"].tolist()
        np.testing.assert_array_equal(
            np.array([e.value for e in read_back], dtype=np.float32),
            rows["value"].to_numpy(np.float32),  # NaN compares equal here
        )

    profiles = metrics[metrics["t"].notna()]
    keys = ["probe", "name", "layer", "direction"]
    assert set(events.Tags()["histograms"]) == {
        tag(*k) for k, _ in profiles.groupby(keys, dropna=False)
    }
    assert {"grad_hidden/norm/layer1/reverse", "contribution/weight_hh"} <= set(
        events.Tags()["histograms"]
    )
    for key, rows in profiles.groupby(keys, dropna=False):
        read_back = events.Histograms(tag(*key))
        assert [e.step for e in read_back] == [0, 2, 4]
        for event in read_back:
            want = rows[rows["step"] == event.step].sort_values("t")
            histogram = event.histogram_value
            np.testing.assert_array_equal(histogram.bucket, want["value"].to_numpy())
            np.testing.assert_array_equal(histogram.bucket_limit, want["t"].to_numpy() + 0.5)

    summary = store.run("gru").summary
    assert events.Scalars("run/final_loss")[0].value == pytest.approx(summary["final_loss"])
    assert events.Scalars("run/final_loss")[0].step == 5
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    # the user's config, and the cell and shape the recording added (gradlab.tracking)
    assert json.loads(config) == store.run("gru").config
    assert json.loads(config).items() >= {"lr": 0.1, "note": "tb", "cell": "gru"}.items()


def test_export_tb_names_an_unknown_run(store, tmp_path, capsys):
    argv = ["export-tb", "gru", "nope", "--store", str(store.root), "--logdir", str(tmp_path)]
    assert main(argv) == 1
    assert "no run 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "gru").exists()  # nothing written before every run is found
