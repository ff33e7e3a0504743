"""gradlab.init / Run: your own training loop as a run every reader sees (runs table, metrics,
CLI), its statuses (complete, failed with the traceback, interrupted when killed) and the
errors a wrong config or metric gets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import gradlab
from gradlab.cli import main as cli_main
from gradlab.store import RunExistsError, open_store
from gradlab.tasks import make

PROBE_ROWS = 8


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "store", fsync=False)


def digits_loop(run: gradlab.Run, steps: int, record_every: int) -> list[float]:
    """Train an LSTM on sequential digits, logging every step and recording on a fixed batch;
    returns the logged losses."""
    task = make("seq_digits")
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model, head = gradlab.LSTM(1, 16), torch.nn.Linear(16, 10)
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-2)
    x_probe, y_probe = task.sample(PROBE_ROWS, gen)

    def probe_loss(out):
        return task.loss(head(out), y_probe)

    losses = []
    for step in range(steps):
        if step % record_every == 0 or step == steps - 1:
            run.record(model, x_probe, probe_loss, step=step)
        x, y = task.sample(16, gen)
        pred = head(model(x)[0])
        loss = task.loss(pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.log({"loss": loss, "acc": task.accuracy(pred, y)}, step=step)
        losses.append(float(loss.detach()))
    return losses


def test_a_digits_loop_is_a_run_every_reader_sees(store, capsys):
    config = {"lr": 1e-2, "model": {"cell": "lstm", "hidden": 16}, "tags": ["digits", None]}
    with gradlab.init(store, name="digits", config=config) as run:
        assert store.runs().loc[0, "status"] == "running"
        losses = digits_loop(run, steps=200, record_every=50)
    info = store.run("digits")
    assert info.status == "complete"
    shape = {"cell": "lstm", "hidden_size": 16, "num_layers": 1, "bidirectional": False}
    assert info.config == {**config, **shape}  # the recorded model's, where config lacks them
    train = store.metrics("digits", probes="train")
    loss = train[train["name"] == "loss"].sort_values("step")
    assert loss["step"].tolist() == list(range(200))
    np.testing.assert_allclose(loss["value"].to_numpy(), losses, rtol=1e-6)
    assert set(train["name"]) == {"loss", "acc"}
    assert info.summary["final_loss"] == pytest.approx(np.mean(losses[-20:]))
    assert info.summary["steps_done"] == 200
    recorded = [0, 50, 100, 150, 199]
    for probe in ("hidden", "grad_hidden", "contribution", "summary"):
        steps = store.metrics("digits", probes=probe)["step"].unique()
        assert sorted(steps.tolist()) == recorded, probe
    assert info.array_steps("hidden_sample") == recorded
    assert info.array("hidden_sample", 0).shape == (65, 4, 16)  # h_0..h_64 of 4 rows
    assert cli_main(["runs", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "complete" in out


def test_an_exception_inside_with_fails_the_run_with_its_traceback(store):
    with pytest.raises(ZeroDivisionError), gradlab.init(store, name="crash") as run:
        run.log({"loss": 1.0}, step=0)
        run.log({"loss": 0.5}, step=1)
        1 / 0  # noqa: B018
    info = store.run("crash")
    assert info.status == "failed"
    assert "ZeroDivisionError: division by zero" in info.meta["error"]
    assert "Traceback" in info.meta["error"]
    assert store.metrics("crash")["value"].tolist() == [1.0, 0.5]  # what was logged is kept


KILLED = """
import sys, time, torch, gradlab
run = gradlab.init(sys.argv[1], name="killed", config={"lr": 0.1})
model = gradlab.RNN(2, 4)
x = torch.randn(6, 3, 2)
run.record(model, x, lambda out: out.square().mean(), step=0)
for step in range(5):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
run.flush()
print("ready", flush=True)
time.sleep(600)
"""


def test_a_killed_loop_leaves_an_interrupted_run(store, capsys):
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED), str(store.root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        row = store.runs().iloc[0]
        assert row["status"] == "running" and row["alive"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 30  # the kernel frees the lock as the process is reaped
    while store.runs().iloc[0]["alive"] and time.monotonic() < deadline:
        time.sleep(0.05)
    row = store.runs().iloc[0]
    assert row["status"] == "interrupted" and not row["alive"]
    assert f"pid {proc.pid}" in row["reason"]
    assert len(store.metrics("killed", probes="train")) == 5  # flushed rows stay readable
    assert cli_main(["runs", "--store", str(store.root), "--status", "interrupted"]) == 0
    assert "killed" in capsys.readouterr().out
    with pytest.raises(RunExistsError, match="overwrite=True"):
        gradlab.init(store, name="killed")
    gradlab.init(store, name="killed", overwrite=True).finish()
    assert store.run("killed").status == "complete"


BAD_CONFIGS = {
    "object": ({"model": object()}, r"config\['model'\]"),
    "set-nested": ({"optim": {"betas": {0.9, 0.99}}}, r"config\['optim.betas'\]"),
    "tensor-in-list": ({"sizes": [1, torch.tensor(2)]}, r"config\['sizes\[1\]'\]"),
    "int-key": ({"a": {1: "x"}}, "config key 1 under 'a'"),
}


@pytest.mark.parametrize("config,message", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_a_config_that_is_not_json_is_refused_naming_the_key(store, config, message):
    with pytest.raises(TypeError, match=message):
        gradlab.init(store, name="bad", config=config)
    assert "bad" not in store  # nothing written


def test_json_config_values_are_stored_as_given(store):
    config = {"a": 1, "b": 2.5, "c": "x", "d": None, "e": [1, [2, 3]], "f": {"g": {"h": True}}}
    gradlab.init(store, name="cfg", config={**config, "n": np.float64(0.5)}).finish()
    stored = json.loads((store.run("cfg").path / "run.json").read_text())["config"]
    assert stored == {**config, "n": 0.5}


BAD_METRICS = {
    "string": ({"loss": "low"}, TypeError, "metric 'loss' must be a real number"),
    "vector": ({"acc": torch.ones(3)}, TypeError, r"metric 'acc' must be one real number.*\(3,\)"),
    "none": ({"loss": None}, TypeError, "metric 'loss'"),
    "empty-name": ({"": 1.0}, TypeError, "non-empty strings"),
}


@pytest.mark.parametrize("metrics,error,message", BAD_METRICS.values(), ids=BAD_METRICS.keys())
def test_a_metric_that_is_not_a_number_is_refused_naming_it(store, metrics, error, message):
    with gradlab.init(store, name="m") as run, pytest.raises(error, match=message):
        run.log(metrics, step=0)


def test_log_steps_and_values(store):
    with gradlab.init(store, name="steps") as run:
        run.log({"loss": torch.tensor(2.0), "acc": np.float32(0.25)})  # step 0
        run.log({"loss": 1})  # step 1
        run.log({"loss": 0.5}, step=10)
        run.log({"loss": 0.25})  # step 11
        with pytest.raises(ValueError, match="step must be an integer >= 0"):
            run.log({"loss": 1.0}, step=-1)
    rows = store.metrics("steps", names="loss").sort_values("step")
    assert rows["step"].tolist() == [0, 1, 10, 11]
    assert rows["value"].tolist() == [2.0, 1.0, 0.5, 0.25]
    assert store.run("steps").summary["steps_done"] == 12
    with pytest.raises(RuntimeError, match="finished"):
        run.log({"loss": 1.0})
    run.finish()  # a second finish does nothing
    assert store.run("steps").status == "complete"


def test_recording_a_step_twice_is_refused(store):
    model = gradlab.GRU(2, 3)
    x = torch.randn(5, 2, 2)
    with gradlab.init(store, name="twice") as run:
        rec = run.record(model, x, lambda out: F.mse_loss(out, torch.zeros_like(out)), step=3)
        assert isinstance(rec, gradlab.Recording) and rec.T == 5
        with pytest.raises(ValueError, match=r"step 3 .* already recorded"):
            run.record(model, x, step=3)


def test_runs_get_fresh_names_and_a_taken_name_is_refused(store):
    first, second = gradlab.init(store), gradlab.init(store)
    assert first.run_id != second.run_id and first.run_id.startswith("run-")
    with pytest.raises(RunExistsError):
        gradlab.init(store, name=first.run_id)
    first.finish()
    second.finish()
    with pytest.raises(ValueError, match="invalid run_id"):
        gradlab.init(store, name="has space")


def test_the_digits_example_script_runs(store):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "train_digits.py"
    spec = importlib.util.spec_from_file_location("train_digits", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--store", str(store.root), "--name", "ex", "--steps", "12", "--record-every", "5"]
    argv += ["--figure", ""]
    scores = module.main([*argv, "--hidden", "8", "--batch", "8"])
    info = store.run("ex")
    assert info.status == "complete" and info.config["task"] == "seq_digits"
    assert info.summary["test_acc"] == pytest.approx(scores["test_acc"])
    assert 0.0 <= scores["test_acc"] <= 1.0
    assert info.array_steps("hidden_sample") == [0, 5, 10, 11]


def test_a_finished_run_refuses_a_recording(store):
    run = gradlab.init(store, name="done")
    run.finish()
    with pytest.raises(RuntimeError, match="finished"):
        run.record(gradlab.RNN(2, 3), torch.randn(4, 2, 2), step=0)


class CharModel(torch.nn.Module):
    """nn.Embedding + 2-layer nn.LSTM + nn.Linear: the model a user trains, not a gradlab one."""

    def __init__(self, vocab: int = 11, emb: int = 5, hidden: int = 7) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, emb)
        self.lstm = torch.nn.LSTM(emb, hidden, num_layers=2)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(self, tokens):
        return self.head(self.lstm(self.emb(tokens))[0])  # (T, B, vocab)


def test_a_whole_torch_model_is_recorded_into_the_run(store):
    torch.manual_seed(0)
    model = CharModel()
    tokens = torch.randint(0, 11, (9, 4), generator=torch.Generator().manual_seed(1))
    targets = tokens.roll(-1, 0)

    def loss_fn(logits):
        return F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))

    loss_fn(model(tokens)).backward()  # the whole model's autograd gradient
    grads = {name: p.grad.clone() for name, p in model.lstm.named_parameters()}
    model.zero_grad()
    with gradlab.init(store, name="char", config={"lr": 0.1, "hidden_size": 7}) as run:
        rec = run.record(model, tokens, loss_fn, step=3, module="lstm")
        assert store.run("char").config["cell"] == "lstm"  # readers see it while it runs
    assert all(p.grad is None for p in model.parameters())  # record leaves .grad alone
    for name, grad in grads.items():
        torch.testing.assert_close(rec.contributions(name).sum(0), grad, rtol=0, atol=1e-6)
    info = store.run("char")
    assert info.status == "complete"
    # the cell and its shape come from the recorded module; the user's own keys are kept
    assert info.config == {"lr": 0.1, "hidden_size": 7, "cell": "lstm", "num_layers": 2,
                           "bidirectional": False}  # fmt: skip
    assert "char" in store.runs()["run_id"].tolist()
    assert store.runs().set_index("run_id").loc["char", "cell"] == "lstm"
    rows = store.metrics("char", probes="contribution")
    assert set(rows["step"]) == {3} and set(rows["layer"]) == {0, 1}
    for layer in (0, 1):  # the stored norms are the norms of the terms that sum to autograd's
        for name in ("weight_hh", "weight_ih"):
            mine = rows[(rows["layer"] == layer) & (rows["name"] == name)].sort_values("t")
            terms = rec.layer(layer).contributions(name).flatten(1).norm(dim=1)
            np.testing.assert_allclose(mine["t"], np.arange(1, 10))
            np.testing.assert_allclose(mine["value"], terms.numpy(), rtol=1e-5, atol=1e-12)
    assert np.isfinite(info.summary["decay_rate"])
    assert info.array("hidden_sample", 3).shape == (10, 4, 7)  # h_0..h_9 of the 4 rows
    # the step-Jacobian spectra and spectral norms it stores are those of the formed J_t
    # (svdvals in float64; the norms of rows other than 0 come from Lanczos, to 1e-5 in float32)
    jacobians = torch.stack([rec.step_jacobian(t) for t in range(1, 10)]).double()
    exact = torch.linalg.svdvals(jacobians)  # (T, B, S)
    np.testing.assert_allclose(info.array("step_jacobian_sv", 3), exact[:, 0], rtol=1e-5, atol=1e-6)
    spectral = store.metrics("char", probes="step_jacobian")
    spectral = spectral[(spectral["name"] == "spectral") & (spectral["layer"] == 0)]
    samples = list(range(min(gradlab.tracking.JACOBIAN_SAMPLES, 4)))
    expected = exact[:, samples, 0].mean(1).numpy()
    np.testing.assert_allclose(spectral.sort_values("t")["value"], expected, rtol=1e-5)


def test_a_model_with_several_recurrent_modules_needs_module(store):
    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.GRU(2, 3), torch.nn.RNN(3, 3)

        def forward(self, x):
            return self.b(self.a(x)[0])[0]

    with gradlab.init(store, name="two") as run:
        with pytest.raises(ValueError, match=r"several recurrent submodules \['a', 'b'\].*module="):
            run.record(Two(), torch.randn(4, 2, 2), lambda out: out.sum(), step=0)
        run.record(Two(), torch.randn(4, 2, 2), lambda out: out.sum(), step=0, module="b")
    assert store.run("two").config["cell"] == "rnn"
    assert store.run("two").config["activation"] == "tanh"


def test_a_live_run_shows_its_progress_after_each_flush(store):
    """While the loop runs, readers (the runs page) see steps done and the loss so far."""
    with gradlab.init(store, name="live") as run:
        for step in range(4):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        run.flush()
        live = store.run("live")
        assert live.status == "running"
        assert live.summary["steps_done"] == 4
        assert live.summary["final_loss"] == pytest.approx(0.25)
    assert store.run("live").summary["steps_done"] == 4


# ----- the background analysis ---------------------------------------------------------------


class Gate:
    """Stands in for `gradlab.tracking.write_recording` (the real one, called): the worker
    waits at it until the test opens it, so the test knows what happened before the analysis."""

    def __init__(self, monkeypatch, fail: Exception | None = None) -> None:
        import gradlab.tracking as tracking

        self.real = tracking.write_recording
        self.open = threading.Event()
        self.started = threading.Semaphore(0)  # one release per analysis begun
        self.fail = fail
        monkeypatch.setattr(tracking, "write_recording", self)

    def __call__(self, *args, **kwargs):
        self.started.release()
        self.open.wait()
        if self.fail is not None:
            raise self.fail
        return self.real(*args, **kwargs)


def all_rows(store, run_id):
    columns = ["probe", "name", "layer", "direction", "step", "t"]
    rows = store.metrics(run_id).drop(columns="run_id").sort_values(columns)
    return rows.reset_index(drop=True)


def torch_char_model():
    torch.manual_seed(0)
    model = CharModel()
    tokens = torch.randint(0, 11, (9, 4), generator=torch.Generator().manual_seed(1))

    def loss_fn(logits):
        return F.cross_entropy(logits.reshape(-1, 11), tokens.roll(-1, 0).reshape(-1))

    return model, tokens, loss_fn, {"module": "lstm"}


def gradlab_model(cls, *args):
    def make():
        torch.manual_seed(0)
        model = cls(3, 5, *args)
        x = torch.randn(7, 4, 3, generator=torch.Generator().manual_seed(1))
        return model, x, lambda out: out[-1].square().sum(), {}

    return make


MODELS = {
    "torch-lstm-module": torch_char_model,
    "gradlab-lstm": gradlab_model(gradlab.LSTM),
    "gradlab-gru": gradlab_model(gradlab.GRU),
    "gradlab-rnn-tanh": gradlab_model(gradlab.RNN, "tanh"),
}


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def caller_threads(request):
    """The caller's torch thread count for the test (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("make_model", MODELS.values(), ids=MODELS.keys())
def test_background_rows_equal_synchronous_ones_though_the_model_changes_after_record(
    store, monkeypatch, make_model, caller_threads
):
    """The optimiser updates the weights (and the loop refills the probe batch) in place right
    after run.record returns, before the worker starts: the stored rows and arrays are still
    exactly those of a synchronous recording of the model as it was (bit for bit, at the
    caller's thread count: both modes analyse on one thread)."""
    model, x, loss_fn, kwargs = make_model()
    with gradlab.init(store, name="sync", background=False) as run:
        run.record(model, x, loss_fn, step=0, **kwargs)
        assert run.pending == 0 and len(store.metrics("sync", probes="jacobian")) > 0
    gate = Gate(monkeypatch)
    with gradlab.init(store, name="background") as run:
        assert run.background
        run.record(model, x, loss_fn, step=0, **kwargs)
        gate.started.acquire()  # the worker has the recording and waits at the gate
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.5).add_(0.25)
            if x.is_floating_point():
                x.add_(1.0)
        gate.open.set()
    sync, background = all_rows(store, "sync"), all_rows(store, "background")
    assert set(sync["probe"]) >= {"jacobian", "step_jacobian", "contribution", "summary"}
    pd.testing.assert_frame_equal(background, sync, check_exact=True)
    for name in ("hidden_sample", "step_jacobian_sv"):
        np.testing.assert_array_equal(
            store.run("background").array(name, 0), store.run("sync").array(name, 0)
        )
    assert store.run("background").summary == store.run("sync").summary


def test_record_blocks_while_max_pending_recordings_wait(store, monkeypatch):
    gate = Gate(monkeypatch)
    model, x = gradlab.RNN(2, 3), torch.randn(5, 2, 2)
    with gradlab.init(store, name="bounded") as run:
        for step in range(gradlab.tracking.MAX_PENDING):
            run.record(model, x, lambda out: out.sum(), step=step)
        assert run.pending == gradlab.tracking.MAX_PENDING
        blocked = threading.Thread(target=run.record, args=(model, x, lambda out: out.sum()),
                                   kwargs={"step": 9})  # fmt: skip
        blocked.start()
        blocked.join(timeout=1.0)
        assert blocked.is_alive()  # waits for a slot: the worker holds the first recording
        gate.open.set()
        blocked.join()
    assert store.run("bounded").array_steps("hidden_sample") == [0, 1, 9]
    assert store.run("bounded").summary["steps_done"] == 10


def test_flush_and_summary_wait_for_the_analysis_and_note_its_progress(store, monkeypatch):
    gate = Gate(monkeypatch)
    with gradlab.init(store, name="progress") as run:
        run.record(gradlab.LSTM(2, 4), torch.randn(6, 3, 2), lambda out: out.sum(), step=4)
        run.log({"loss": 0.5}, step=4)
        gate.started.acquire()
        assert len(store.metrics("progress")) == 0  # nothing written while it is analysed
        gate.open.set()
        run.flush()
        assert run.pending == 0
        live = store.run("progress")
        assert live.status == "running" and live.summary["steps_done"] == 5
        assert np.isfinite(live.summary["decay_rate"])  # the recording's, for the runs page
        assert run.summary()["decay_rate"] == live.summary["decay_rate"]
        assert sorted(set(store.metrics("progress")["step"])) == [4]


WHERE = ["log", "record", "flush", "finish", "with-exit"]


@pytest.mark.parametrize("where", WHERE)
def test_a_failed_analysis_is_raised_on_the_callers_thread_and_fails_the_run(
    store, monkeypatch, where
):
    gate = Gate(monkeypatch, fail=ZeroDivisionError("the analysis broke"))
    gate.open.set()
    model, x = gradlab.RNN(2, 3), torch.randn(5, 2, 2)
    with pytest.raises(ZeroDivisionError, match="the analysis broke") as raised:
        with gradlab.init(store, name="broken") as run:
            run.record(model, x, lambda out: out.sum(), step=0)
            run.summary()  # waits for the worker: it has failed now
            assert run.status == "running"
            if where == "log":
                run.log({"loss": 1.0}, step=1)
            elif where == "record":
                run.record(model, x, lambda out: out.sum(), step=1)
            elif where == "flush":
                run.flush()
            elif where == "finish":
                run.finish()
    assert "recording at step 0" in "".join(raised.value.__notes__)
    info = store.run("broken")
    assert info.status == "failed"
    assert "ZeroDivisionError: the analysis broke" in info.meta["error"]
    assert "step 0" in info.meta["error"] and "Traceback" in info.meta["error"]
    assert set(store.metrics("broken")["probe"]) <= {"train"}  # no row of the broken analysis


def test_a_crash_of_the_loop_keeps_the_pending_analyses_and_fails_the_run(store, monkeypatch):
    gate = Gate(monkeypatch)
    with pytest.raises(KeyError), gradlab.init(store, name="crash-bg") as run:
        run.record(gradlab.GRU(2, 3), torch.randn(5, 2, 2), lambda out: out.sum(), step=0)
        gate.open.set()
        raise KeyError("the loop broke")
    info = store.run("crash-bg")
    assert info.status == "failed" and "KeyError: 'the loop broke'" in info.meta["error"]
    assert info.array_steps("hidden_sample") == [0]  # finished before the run ended
    assert set(store.metrics("crash-bg")["step"]) == {0}


def test_the_worker_leaves_the_callers_thread_count_alone(store, monkeypatch):
    """The worker's SVDs run on one thread (`one_thread`): torch's count is per thread (its
    OpenMP backend), so the caller's stays what it was, during the analysis and after."""
    from gradlab.record import one_thread

    seen = []

    def analyse(*args, **kwargs):
        with one_thread():
            seen.append(torch.get_num_threads())
            inside.set()
            leave.wait()
        return real(*args, **kwargs)

    import gradlab.tracking as tracking

    real, inside, leave = tracking.write_recording, threading.Event(), threading.Event()
    monkeypatch.setattr(tracking, "write_recording", analyse)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with gradlab.init(store, name="threads") as run:
            run.record(gradlab.RNN(2, 3), torch.randn(5, 2, 2), lambda out: out.sum(), step=0)
            inside.wait()
            assert torch.get_num_threads() == 2  # while the worker is at one thread
            leave.set()
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_readme_states_the_pending_bound_as_it_is():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    assert f"`gradlab.tracking.MAX_PENDING` = {gradlab.tracking.MAX_PENDING} recordings" in readme


def test_a_record_waiting_for_a_slot_raises_the_failure_it_waited_on(store, monkeypatch):
    gate = Gate(monkeypatch, fail=ZeroDivisionError("the analysis broke"))
    model, x = gradlab.RNN(2, 3), torch.randn(5, 2, 2)
    run = gradlab.init(store, name="waited")
    for step in range(gradlab.tracking.MAX_PENDING):
        run.record(model, x, lambda out: out.sum(), step=step)
    raised = []

    def third():
        try:
            run.record(model, x, lambda out: out.sum(), step=9)
        except ZeroDivisionError as exc:
            raised.append(exc)

    blocked = threading.Thread(target=third)
    blocked.start()
    gate.open.set()  # the first analysis fails; the second is dropped; the slot frees
    blocked.join()
    assert len(raised) == 1 and store.run("waited").status == "failed"
    run.finish()  # finished already: nothing more to do
    assert store.run("waited").array_steps("hidden_sample") == []


UNFINISHED = """
import sys, torch, gradlab
run = gradlab.init(sys.argv[1], name="unfinished")
model, x = gradlab.LSTM(3, 16), torch.randn(20, 4, 3)
run.record(model, x, lambda out: out.sum(), step=0)
run.record(model, x, lambda out: out.sum(), step=1)
"""


def test_a_loop_that_exits_without_finish_keeps_its_analyses_and_exits_cleanly(store):
    """The interpreter waits for the pending analyses (no abort in the middle of a torch call);
    the run, never finished, is interrupted with both recordings."""
    done = subprocess.run([sys.executable, "-c", UNFINISHED, str(store.root)], check=False)
    assert done.returncode == 0
    row = store.runs().iloc[0]
    assert row["status"] == "interrupted" and not row["alive"]
    assert store.run("unfinished").array_steps("hidden_sample") == [0, 1]
