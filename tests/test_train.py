"""gradlab.train end to end, into a real store in tmp_path (no mocks)."""

from __future__ import annotations

import importlib
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import torch

from gradlab.config import RunConfig
from gradlab.fits import SUMMARY_KEYS, decay_fit
from gradlab.probes import PROBES, TrainProbe
from gradlab.record import record
from gradlab.store import RunExistsError, open_store
from gradlab.tasks import make
from gradlab.theory import mean_field, pascanu_bound, predict_rate, theory_rate
from gradlab.train import bptt_forward, build_model, record_steps, train

train_module = importlib.import_module(
    "gradlab.train"
)  # the module (gradlab.train is the function)

SMALL = dict(hidden_size=8, seq_len=10, steps=6, record_every=2, batch_size=8, probe_batch=6)
GATES = {"rnn": (), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
# relu IRNN trained by plain SGD with a huge step: finite for a few steps, then NaN.
DIVERGING = RunConfig(
    activation="relu",
    init="identity",
    optimizer="sgd",
    lr=10.0,
    hidden_size=8,
    seq_len=20,
    steps=20,
    record_every=2,
    batch_size=8,
    probe_batch=8,
)


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "store", fsync=False)


def catalogue(cell: str) -> set[tuple[str, str]]:
    """Every (probe, name) of docs/contracts.md's catalogue that a `cell` run writes."""
    expected = {(TrainProbe.probe, name) for name in TrainProbe.names}
    for cls in PROBES.values():
        names = cls.names
        if cls.probe == "gates":
            names = GATES[cell]
        if cls.probe == "grad_cell" and cell != "lstm":
            names = ()
        expected |= {(cls.probe, name) for name in names}
    return expected


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_short_run_is_complete_with_every_series(cell, store):
    config = RunConfig(cell=cell, **SMALL)
    run_id = train(config, store)
    assert run_id == config.run_id
    run = store.run(run_id)
    assert run.status == "complete"
    assert run.config == config.to_dict()
    m = run.metrics()
    assert set(zip(m.probe, m.name, strict=True)) == catalogue(cell)

    train_rows = m[m.probe == "train"]
    assert train_rows.groupby("name").step.apply(sorted).map(tuple).to_dict() == {
        name: tuple(range(6)) for name in TrainProbe.names
    }
    assert train_rows[["t", "layer", "direction"]].isna().all().all()
    recorded = m[m.probe != "train"]
    assert sorted(recorded.step.unique()) == [0, 2, 4, 5]

    T = config.seq_len
    spans = {
        "grad_hidden": (0, T),
        "contribution": (1, T),
        "step_jacobian": (1, T),
        "jacobian": (0, T - 1),
        "hidden": (0, T),
        "gates": (1, T),
    }
    for probe, (lo, hi) in spans.items():
        rows = recorded[recorded.probe == probe]
        if len(rows):
            assert (rows.t.min(), rows.t.max()) == (lo, hi), probe
            assert set(rows.layer) == {0} and set(rows.direction) == {0}
    summary_rows = recorded[recorded.probe == "summary"]
    assert summary_rows[["t", "layer", "direction"]].isna().all().all()
    assert len(summary_rows) == 4 * len(SUMMARY_KEYS)

    S = 2 * 8 if cell == "lstm" else 8
    assert run.array_steps("hidden_sample") == [0, 2, 4, 5]
    assert run.array("hidden_sample", 4).shape == (T + 1, config.hidden_samples, 8)
    assert run.array("step_jacobian_sv", 5).shape == (T, S)

    summary = run.summary
    assert summary["steps_done"] == 6
    assert summary["baseline_loss"] == pytest.approx(1 / 6)
    losses = train_rows[train_rows.name == "loss"].sort_values("step").value
    assert summary["final_loss"] == pytest.approx(losses.iloc[-1])  # last 10% of 6 steps: 1
    last_norm = train_rows[(train_rows.name == "grad_norm") & (train_rows.step == 5)].value
    assert summary["final_grad_norm"] == pytest.approx(last_norm.item())

    def stored(name: str, step: int) -> float:
        rows = summary_rows[(summary_rows.name == name) & (summary_rows.step == step)]
        return rows.value.item()

    assert summary["decay_rate"] == pytest.approx(stored("decay_rate", 5))
    assert summary["decay_rate_init"] == pytest.approx(stored("decay_rate", 0))
    assert summary["adjoint_decay_rate"] == pytest.approx(stored("adjoint_decay_rate", 5))
    # The state decay rate is the fit of the stored jacobian/spectral series.
    spectral = recorded[(recorded.probe == "jacobian") & (recorded.step == 5)].sort_values("t")
    assert summary["decay_rate"] == pytest.approx(decay_fit(spectral.value.to_numpy()).rate)
    if cell == "rnn":  # torch's default init is i.i.d.: driven mean field applies
        assert summary["theory_rate"] == pytest.approx(theory_rate(config), rel=1e-12)
        assert stored("theory_rate", 0) == pytest.approx(theory_rate(config), rel=1e-12)
    else:
        assert math.isnan(summary["theory_rate"])  # no mean-field theory for gated cells


def test_stored_theory_rate_is_the_driven_theory_of_the_config(store):
    """A gaussian tanh RNN on the sine task (input power 1/2 + noise² every step, through
    W_ih ~ N(0, 1)): the stored rate is the driven one, not the undriven ½ ln χ."""
    config = RunConfig(task="sine", init="gaussian", gain=1.2, **SMALL)
    run = store.run(train(config, store))
    expected = predict_rate(config)
    assert run.summary["theory_rate"] == expected.rate
    assert expected.sigma_v == pytest.approx(math.sqrt(0.5 + 0.1**2))
    undriven = mean_field("tanh", 1.2).rate
    assert abs(expected.rate - undriven) > 0.05  # the input drive matters here


def _step0_state_slope(config: RunConfig) -> float:
    """The slope of ln ‖∂s_T/∂s_k‖₂ at initialisation on the run's probe batch, from full
    Jacobian products (not the probe's backward accumulation)."""
    task = make(config.task, seq_len=config.seq_len)
    model = build_model(config, task)
    generator = train_module._generator(config.seed, train_module._STREAM_PROBE, "cpu")
    x, _ = task.sample(config.probe_batch, generator, dtype=torch.float32)
    view = record(model, x).layer(0)
    samples = list(range(config.jacobian_samples))
    norms = [
        float(torch.linalg.matrix_norm(view.jacobian(view.T, k, samples), ord=2).mean())
        for k in range(view.T)
    ]
    return decay_fit(np.array(norms)).rate


def test_copy_task_headline_rate_is_negative_and_orders_the_cells(tmp_path):
    """On the many-to-many copy task the adjoint fit says little (per-step loss terms), but the
    state decay rate is negative for every cell and ranks them as their Jacobians do."""
    store = open_store(tmp_path / "store", fsync=False)
    small = dict(SMALL, seq_len=30, steps=2, record_every=1, hidden_size=16)
    rates, slopes = {}, {}
    for cell in ("rnn", "lstm", "gru"):
        config = RunConfig(task="copy", cell=cell, **small)
        summary = store.run(train(config, store)).summary
        rates[cell] = summary["decay_rate_init"]
        slopes[cell] = _step0_state_slope(config)
        assert rates[cell] < 0 and summary["decay_rate"] < 0
        assert rates[cell] == pytest.approx(slopes[cell], rel=1e-4, abs=1e-6)
    assert sorted(rates, key=rates.get) == sorted(slopes, key=slopes.get)


def test_multilayer_bidirectional_and_dict_config(tmp_path):
    config = dict(SMALL, cell="gru", num_layers=2, bidirectional=True, init="orthogonal")
    path = tmp_path / "store"
    run_id = train(config, str(path))
    run = open_store(path).run(run_id)
    assert run.status == "complete"
    m = run.metrics(probes="grad_hidden")
    assert set(zip(m.layer, m.direction, strict=True)) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    with pytest.raises(RunExistsError):
        train(config, path)


def test_same_config_and_seed_gives_identical_metrics(tmp_path):
    config = RunConfig(cell="lstm", init="gaussian", gain=1.2, **SMALL)
    runs = []
    for name in ("a", "b"):
        store = open_store(tmp_path / name, fsync=False)
        runs.append(store.run(train(config, store)))
    pd.testing.assert_frame_equal(runs[0].metrics(), runs[1].metrics(), check_exact=True)
    for step in (0, 5):
        for array in ("hidden_sample", "step_jacobian_sv"):
            np.testing.assert_array_equal(runs[0].array(array, step), runs[1].array(array, step))
    # another seed gives other numbers
    other = open_store(tmp_path / "c", fsync=False)
    m = other.run(train(config.replace(seed=1), other)).metrics(probes="train")
    assert not np.array_equal(m.value, runs[0].metrics(probes="train").value)


def test_divergence_ends_the_run_and_keeps_what_came_before(store):
    run = store.run(train(DIVERGING, store))
    assert run.status == "diverged"
    assert "diverged" in run.meta["error"]
    m = run.metrics()
    losses = m[(m.probe == "train") & (m.name == "loss")].sort_values("step")
    last = int(losses.step.max())
    assert 1 <= last < DIVERGING.steps - 1  # it ran a few steps, then stopped
    assert losses.step.tolist() == list(range(last + 1))
    assert np.isfinite(losses.value.iloc[:-1]).all() and not np.isfinite(losses.value.iloc[-1])
    recorded = sorted(m[m.probe == "grad_hidden"].step.unique())
    assert recorded and recorded == [s for s in range(0, last + 1, 2)]
    assert run.summary["steps_done"] == last


def test_a_recording_that_overflows_ends_the_run_as_diverged(store):
    # relu with W_hh ~ N(0, 50²/N): the probe batch's states overflow float32 within T = 60.
    config = RunConfig(activation="relu", init="gaussian", gain=50.0, **dict(SMALL, seq_len=60))
    run = store.run(train(config, store))
    assert run.status == "diverged" and "recording of step 0" in run.meta["error"]
    m = run.metrics()
    assert set(m.step) == {0} and "train" not in set(m.probe)  # stopped before any update
    assert run.summary["steps_done"] == 0 and math.isnan(run.summary["final_loss"])


def test_clipping_is_marked_and_the_norm_is_taken_before_clipping(store):
    clip = 1e-3
    m = store.run(train(RunConfig(clip=clip, **SMALL), store)).metrics(probes="train")
    clipped = m[m.name == "clipped"].value
    norms = m[m.name == "grad_norm"].value
    assert (clipped == 1.0).all() and (norms > clip).all()
    free = store.run(train(RunConfig(**SMALL), store)).metrics(probes="train", names="clipped")
    assert (free.value == 0.0).all()


@pytest.mark.parametrize("init", ["orthogonal", "gaussian"])
def test_summary_reports_the_pascanu_bound_of_the_initial_weights(init, store):
    config = RunConfig(init=init, gain=1.3, **SMALL)
    run = store.run(train(config, store))
    model = build_model(config, make(config.task, seq_len=config.seq_len))
    expected = pascanu_bound(model).bound  # γ = 1 for tanh, times σ_max(W_hh)
    assert run.summary["pascanu_bound_init"] == pytest.approx(expected, rel=1e-6)
    if init == "orthogonal":
        assert expected == pytest.approx(1.3, rel=1e-6)
    assert math.isfinite(run.summary["pascanu_bound"])


def test_truncated_bptt_runs(store):
    run = store.run(train(RunConfig(truncate=3, task="copy", seq_len=21, **_no_seq()), store))
    assert run.status == "complete"
    with pytest.raises(ValueError, match="forward-only"):
        RunConfig(truncate=3, bidirectional=True, **SMALL)


def _no_seq() -> dict:
    return {k: v for k, v in SMALL.items() if k != "seq_len"}


def test_truncated_forward_cuts_the_gradient_at_window_boundaries():
    config = RunConfig(cell="lstm", hidden_size=4, seq_len=10)
    task = make("adding", seq_len=10)
    model = build_model(config, task)
    x = torch.randn(10, 3, 2, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    full = bptt_forward(model, x, None)
    torch.testing.assert_close(bptt_forward(model, x, 4), full)  # same values, other graph
    (grad,) = torch.autograd.grad(bptt_forward(model, x, 4)[-1].sum(), x)
    assert (grad[:8] == 0).all() and (grad[8:] != 0).any()  # windows [0,4) [4,8) [8,10)


def test_record_steps():
    assert record_steps(6, 2) == [0, 2, 4, 5]
    assert record_steps(6, 5) == [0, 5]
    assert record_steps(1, 10) == [0]
    log = record_steps(1000, "log")
    assert log[0] == 0 and log[-1] == 999 and 20 <= len(log) <= 30
    assert log == sorted(set(log))
    assert record_steps(5, "log") == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        record_steps(5, 0)


def test_progress_and_a_failing_run(store):
    seen = []
    train(RunConfig(**SMALL), store, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(1, 7)]

    def boom(done: int, total: int) -> None:
        if done == 3:
            raise RuntimeError("boom at 3")

    config = RunConfig(seed=7, **SMALL)
    with pytest.raises(RuntimeError, match="boom"):
        train(config, store, progress=boom)
    run = store.run(config.run_id)
    assert run.status == "failed"
    assert "RuntimeError: boom at 3" in run.meta["error"]
    assert sorted(run.metrics(probes="hidden").step.unique()) == [0, 2]  # flushed at step 2
    train(config, store, overwrite=True)
    assert store.run(config.run_id).status == "complete"


KILLED = RunConfig(hidden_size=8, seq_len=10, steps=100_000, record_every=1, probe_batch=4)


@pytest.mark.slow
def test_kill_9_mid_run_leaves_the_store_usable(tmp_path):
    path = tmp_path / "store"
    store = open_store(path, fsync=False)
    done = train(RunConfig(**SMALL), store)
    script = textwrap.dedent(
        f"""
        from gradlab.config import RunConfig
        from gradlab.train import train
        train(RunConfig.from_dict({KILLED.to_dict()!r}), {str(path)!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])

    def flushed() -> int:
        return len(store.metrics(KILLED.run_id)) if KILLED.run_id in store else 0

    try:
        # Killed once it has flushed twice: some way into the run (every step records and
        # flushes; 100,000 steps cannot finish first). The deadline only bounds a failure.
        deadline = time.monotonic() + 300
        first = 0
        while not first or flushed() <= first:
            first = first or flushed()
            assert proc.poll() is None, "the training subprocess ended early"
            assert time.monotonic() < deadline, "fewer than two flushes within 300 s"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    runs = store.runs().set_index("run_id")
    assert runs.loc[done, "status"] == "complete"
    assert runs.loc[KILLED.run_id, "status"] == "interrupted"
    assert not runs.loc[KILLED.run_id, "alive"]
    assert flushed() > 0  # the killed run's flushed part files stay readable
    assert len(store.metrics(done)) > 0
    assert len(store.metrics()) >= len(store.metrics(done))  # a scan over all runs works
    with pytest.raises(RunExistsError):
        train(KILLED, store)  # not silently redone ...
    train(KILLED.replace(steps=3), store)  # ... and other runs still go in


def test_a_float64_adjoint_keeps_what_a_float32_run_records_as_zero(store):
    """Default-init tanh RNN at T = 250 (‖∂L/∂h_k‖ falls ~0.6 nats a step): the float32 adjoint
    underflows to 0 at the first steps; with adjoint_dtype = "float64" every step is positive,
    the config says so, and the two runs agree where float32 has the value."""
    base = RunConfig(hidden_size=16, seq_len=250, steps=1, batch_size=4, probe_batch=4)
    norms = {}
    for adjoint in (None, "float64"):
        run = store.run(train(base.replace(adjoint_dtype=adjoint), store))
        assert run.status == "complete" and run.config["adjoint_dtype"] == adjoint
        m = run.metrics(probes="grad_hidden").sort_values("t")
        norms[adjoint] = m["value"].to_numpy()
    float32, float64 = norms[None], norms["float64"]
    assert float32[0] == 0 and np.all(float64 > 0)
    normal = float32 >= np.finfo(np.float32).tiny  # subnormals keep only a few digits
    assert not normal[0] and normal[-1]
    np.testing.assert_allclose(float32[normal], float64[normal], rtol=1e-4)
