"""Figures that explain themselves: EMA smoothing of the training curves (against a plain numpy
reference of TensorBoard's debiased EMA), seed bands (against pandas on the same rows), and the
saturation figure's one-line summary when no unit saturates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gradlab.figures import FIGURES, FigureData, figure_table
from gradlab.figures.aggregate import ema, seed_band, seed_groups


def ema_reference(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing, written out: last = last·w + (1−w)·x over the finite values,
    each shown divided by 1 − w^(number of finite values so far); non-finite values as is."""
    out, last, count = [], 0.0, 0
    for x in values:
        if not np.isfinite(x):
            out.append(x)
            continue
        count += 1
        last = last * weight + (1 - weight) * x
        out.append(last / (1 - weight**count))
    return np.array(out)


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99], ids=lambda w: f"w{w}")
@pytest.mark.parametrize("gaps", [False, True], ids=["finite", "nan-and-inf"])
def test_ema_matches_the_reference(weight, gaps):
    rng = np.random.default_rng(3)
    values = np.exp(rng.normal(size=250)) * np.linspace(2, 0.1, 250)
    if gaps:
        values[[0, 17, 18, 120]] = [np.nan, np.inf, np.nan, -np.inf]
    got = ema(values, weight)
    np.testing.assert_allclose(got, ema_reference(values, weight), rtol=1e-12, equal_nan=True)
    first = int(np.flatnonzero(np.isfinite(values))[0])
    assert got[first] == pytest.approx(values[first], rel=1e-14)  # debiased: starts there


@pytest.mark.parametrize("weight", [-0.1, 1.0, 2.0])
def test_ema_rejects_weights_outside_0_to_0_99(weight):
    with pytest.raises(ValueError, match="smoothing weight"):
        ema([1.0, 2.0], weight)


# ----------------------------------------------------------------------------- training figure
def training_data(seeds_of: dict[str, tuple[int, float]], steps: int = 30) -> FigureData:
    """Runs ``name → (seed, gain)`` of one config otherwise, with random loss / grad_norm rows
    (run r2 misses step 5 of its loss: the band's n drops there)."""
    rng = np.random.default_rng(0)
    rows, runs = [], []
    for rid, (seed, gain) in seeds_of.items():
        runs.append(dict(run_id=rid, cell="rnn", task="adding", seq_len=10, gain=gain, seed=seed))
        for step in range(steps):
            for name in ("loss", "grad_norm", "clipped"):
                if rid == "r2" and name == "loss" and step == 5:
                    continue
                value = 0.0 if name == "clipped" else float(rng.lognormal())
                rows.append(dict(run_id=rid, step=step, probe="train", name=name, layer=None,
                                 direction=None, t=None, value=value))  # fmt: skip
    return FigureData(metrics=pd.DataFrame(rows), runs=pd.DataFrame(runs))


RUNS = {"r0": (0, 1.0), "r1": (1, 1.0), "r2": (2, 1.0), "r3": (0, 1.5)}


def traces(fig, name: str) -> dict[str, object]:
    """run_id → the trace whose meta names ``name``."""
    return {
        t.meta["const"].get("run_id"): t for t in fig.data if t.meta["const"].get("name") == name
    }


def test_seed_groups_split_on_every_config_key_but_the_seed():
    data = training_data(RUNS)
    assert seed_groups(data, ["r0", "r3", "r1", "r2"]) == [["r0", "r1", "r2"], ["r3"]]


@pytest.mark.parametrize("name", ["loss", "grad_norm"])
def test_seed_band_values_match_pandas(name):
    data = training_data(RUNS)
    fig = FIGURES["training"].builder(data, seeds="band")
    rows = data.metrics[
        (data.metrics["name"] == name) & data.metrics["run_id"].isin(["r0", "r1", "r2"])
    ]
    expected = rows.groupby("step")["value"].agg(["mean", "min", "max"])
    for stat in ("mean", "min", "max"):
        trace = traces(fig, f"{name}_{stat}")["r0"]  # the group is drawn under its first run
        assert list(trace.x) == list(expected.index)
        np.testing.assert_allclose(np.asarray(trace.y), expected[stat].to_numpy(), rtol=1e-12)
    assert set(traces(fig, name)) == {"r3"}  # the lone run is drawn as itself
    mean = traces(fig, f"{name}_mean")["r0"]
    assert mean.name.endswith("mean of 3 seeds (0, 1, 2)") and "seed 0" not in mean.name
    assert traces(fig, f"{name}_min")["r0"].fill == "tonexty"  # shaded up to the max
    band = seed_band({r: rows[rows["run_id"] == r][["step", "value"]] for r in ("r0", "r1", "r2")})
    assert band.loc[band["step"] == 5, "n"].item() == (2 if name == "loss" else 3)


def test_smoothed_training_curves_over_faint_raw():
    data = training_data(RUNS)
    fig = FIGURES["training"].builder(data, smooth=0.9)
    table = figure_table(fig)
    for rid in RUNS:
        raw = traces(fig, "loss")[rid]
        smooth = traces(fig, "loss_smoothed")[rid]
        assert raw.opacity < 1 and not raw.showlegend
        np.testing.assert_allclose(np.asarray(smooth.y), ema_reference(np.asarray(raw.y), 0.9))
    assert "loss_smoothed" in set(table["name"])  # the export's table has both curves
    band = FIGURES["training"].builder(data, smooth=0.6, seeds="band")
    mean = traces(band, "loss_mean_smoothed")["r0"]
    unsmoothed = traces(FIGURES["training"].builder(data, seeds="band"), "loss_mean")["r0"]
    np.testing.assert_allclose(np.asarray(mean.y), ema_reference(np.asarray(unsmoothed.y), 0.6))
    with pytest.raises(ValueError, match="smooth"):
        FIGURES["training"].builder(data, smooth=1.5)
    with pytest.raises(ValueError, match="seeds"):
        FIGURES["training"].builder(data, seeds="median")


# ----------------------------------------------------------------------------- saturation
def saturation_data(peak: float) -> FigureData:
    rows = [
        dict(run_id=rid, step=0, probe="hidden", name=name, layer=0, direction=0, t=t,
             value=peak * t / 4 if (rid, name) == ("b", "saturation") else 0.0)
        for rid in ("a", "b")
        for name in ("saturation", "dead")
        for t in range(1, 5)
    ]  # fmt: skip
    runs = pd.DataFrame([dict(run_id=r, cell="rnn", seed=0) for r in ("a", "b")])
    return FigureData(metrics=pd.DataFrame(rows), runs=runs)


def test_saturation_is_a_one_line_summary_only_when_no_unit_saturates():
    flat = FIGURES["saturation"].builder(saturation_data(0.0))
    assert len(flat.data) == 0 and flat.layout.meta["gradlab"]["summary"]
    text = flat.layout.annotations[0].text
    assert text == "no unit saturated (max fraction 0.00); none dead (max fraction 0.00) in 2 runs"
    drawn = FIGURES["saturation"].builder(saturation_data(0.25))
    assert len(drawn.data) == 4 and not drawn.layout.meta["gradlab"].get("summary")
    assert max(max(t.y) for t in drawn.data) == 0.25
    forced = FIGURES["saturation"].builder(saturation_data(0.0), always=True)
    assert len(forced.data) == 4


def test_reading_lines_say_what_a_newcomer_misreads():
    assert "non-normal" in FIGURES["step_jacobian"].reading
    assert "state decay rate" in FIGURES["jacobian_lag"].reading
    assert "lag T−k" in FIGURES["timestep_profile"].reading
    assert "step 0 at the bottom" in FIGURES["gradient_flow"].description
