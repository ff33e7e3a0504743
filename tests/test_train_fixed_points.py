"""Fixed points over training, read back from a real store: a GRU trained briefly on a
long-memory task (recall x_0 after 20 steps) builds slow points with |λ| ≥ 0.98 at the states
its trajectories end in, the untrained one has none; the slowest time constant grows over
training beside the measured decay rate; the schedule, arrays and summary follow the config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradlab.arrays import FIXED_POINT_EIGENVALUES, FIXED_POINT_STATES
from gradlab.config import RunConfig
from gradlab.probes import FixedPointProbe, SummaryProbe
from gradlab.store import open_store
from gradlab.train import train

#: 100 Adam steps at lr 1e-2 take the GRU from ~0.45 to well below the baseline loss 1 (about
#: 0.4–0.6) in about 2 s; recorded at 0, 25, 50, 75, 99 and searched at 0, 50, 99.
MEMORY = RunConfig(
    cell="gru",
    task="identity",
    seq_len=20,
    hidden_size=16,
    steps=100,
    lr=1e-2,
    record_every=25,
    batch_size=32,
    probe_batch=16,
    fixed_point_every=2,
)
SEARCHED = [0, 50, 99]
SLOW = 0.98


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return open_store(tmp_path_factory.mktemp("fixed-points"), fsync=False)


def per_step(store, run_id: str) -> dict[str, dict[int, float]]:
    """name → step → value of the fixed-point probe's per-step rows (layer 0 forward) and of
    the summary's decay_rate."""
    m = store.run(run_id).metrics()
    rows = m[(m.probe == FixedPointProbe.probe) & m.t.isna() & (m.layer == 0)]
    out = {
        name: dict(zip(g.step.astype(int), g.value, strict=True))
        for name, g in rows.groupby("name")
    }
    decay = m[(m.probe == SummaryProbe.probe) & (m.name == "decay_rate")]
    out["decay_rate"] = dict(zip(decay.step.astype(int), decay.value, strict=True))
    return out


def point_moduli(store, run_id: str, step: int) -> np.ndarray:
    m = store.run(run_id).metrics()
    rows = m[
        (m.probe == FixedPointProbe.probe) & (m.name == "max_abs_eigenvalue") & (m.step == step)
    ]
    return rows.sort_values("t").value.to_numpy()


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_training_builds_a_slow_point_the_trajectories_visit(store, seed):
    run_id = train(MEMORY.replace(seed=seed), store)
    run = store.run(run_id)
    assert run.status == "complete" and run.summary["final_loss"] < 0.7
    values = per_step(store, run_id)
    assert sorted(values["rate"]) == SEARCHED
    first, last = SEARCHED[0], SEARCHED[-1]
    # untrained: every point (one stable fixed point) decays within a few steps
    assert point_moduli(store, run_id, first).max() < SLOW
    assert values["modulus"][first] < SLOW
    # trained: the trajectories end at slow points with |λ_max| ≥ 0.98
    assert point_moduli(store, run_id, last).max() >= SLOW
    assert values["modulus"][last] >= SLOW
    # the slowest time constant grows, beside the measured rate (a slower decay, or none)
    assert values["tau"][last] > 10 * values["tau"][first]
    assert values["decay_rate"][last] > values["decay_rate"][first] + 0.3
    assert values["lyapunov"][last] > values["lyapunov"][first]
    # the run's summary is the last search's
    summary = run.summary
    assert summary["fixed_point_rate"] == pytest.approx(values["rate"][last])
    assert summary["slowest_fixed_point_modulus"] == pytest.approx(values["modulus"][last])
    assert summary["lyapunov_exponent"] == pytest.approx(values["lyapunov"][last])
    assert math.exp(summary["fixed_point_rate"]) == pytest.approx(
        summary["slowest_fixed_point_modulus"]
    )


def test_arrays_are_saved_where_the_probe_searched(store):
    run = store.run(MEMORY.run_id if MEMORY.run_id in store else train(MEMORY, store))
    assert run.array_steps(FIXED_POINT_STATES) == SEARCHED
    assert run.array_steps(FIXED_POINT_EIGENVALUES) == SEARCHED
    states = run.array(FIXED_POINT_STATES, 99)
    pairs = run.array(FIXED_POINT_EIGENVALUES, 99)
    assert states.shape[1] == MEMORY.hidden_size and pairs.shape == (*states.shape, 2)
    assert np.abs(states).max() <= 1  # a GRU's h stays in [−1, 1]: no point outside it
    moduli = np.hypot(pairs[..., 0], pairs[..., 1])
    np.testing.assert_allclose(moduli[:, 0], point_moduli(store, run.run_id, 99))
    assert (np.diff(moduli, axis=1) <= 1e-12).all()  # |λ| descending


def test_fixed_point_every_zero_turns_the_probe_off(store):
    config = MEMORY.replace(steps=3, record_every=1, fixed_point_every=0)
    run = store.run(train(config, store))
    m = run.metrics()
    assert FixedPointProbe.probe not in set(m.probe)
    assert FIXED_POINT_STATES not in run.array_names()
    assert math.isnan(run.summary["fixed_point_rate"])


def test_fixed_point_keys_enter_the_run_id_only_when_set():
    base = RunConfig()
    values = base.to_dict()
    assert values["fixed_point_every"] == 1 and values["fixed_point_inits"] == 16
    assert base.replace(fixed_point_every=3).run_id != base.run_id
    assert base.replace(fixed_point_inits=8).run_id != base.run_id
