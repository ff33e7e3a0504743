"""gradlab.config: validation (every error at once, limits, devices) and run ids that do not
change (sweep-spec errors are checked in tests/sweep/test_sweep_spec.py)."""

from __future__ import annotations

import pytest

from gradlab.config import LIMITS, ConfigError, RunConfig, available_devices, limit_env


@pytest.mark.parametrize(
    ("dtype", "adjoint_dtype"),
    [("float32", None), ("float32", "float64"), ("float64", None)],
    ids=["f32-default", "f32-f64", "f64-default"],
)
def test_valid_adjoint_dtypes(dtype, adjoint_dtype):
    config = RunConfig(dtype=dtype, adjoint_dtype=adjoint_dtype)
    assert config.to_dict()["adjoint_dtype"] == adjoint_dtype


@pytest.mark.parametrize(
    ("dtype", "adjoint_dtype"),
    [
        ("float32", "float32"),
        ("float32", "float16"),
        ("float64", "float64"),
        ("float64", "float32"),
    ],
    ids=["same-as-dtype", "half", "f64-f64", "narrower"],
)
def test_bad_adjoint_dtype_names_the_key(dtype, adjoint_dtype):
    with pytest.raises(ConfigError, match="'adjoint_dtype'") as info:
        RunConfig(dtype=dtype, adjoint_dtype=adjoint_dtype)
    assert repr(adjoint_dtype) in str(info.value)


def test_adjoint_dtype_from_toml_values():
    assert RunConfig.from_dict({"adjoint_dtype": "none"}).adjoint_dtype is None
    with pytest.raises(ConfigError, match="adjoint_dtype"):
        RunConfig.from_dict({"adjoint_dtype": 64})


# Run ids computed on main (commit 9563a8c, before validation moved to pydantic): the id is a
# hash of to_dict(), so a validation change must leave every stored run findable.
KNOWN_RUN_IDS = {
    "defaults": ({}, "288cd798dbfc"),
    "lstm-log-schedule": (
        {"cell": "lstm", "gain": 2, "seed": 3, "sweep": "demo", "clip": "none"}
        | {"record_every": "log"},
        "2b179d9ce4c6",
    ),
    "gru-copy-float64": (
        {"cell": "gru", "update_bias": 1, "hidden_size": 128, "lr": 0.01}
        | {"dtype": "float64", "task": "copy", "seq_len": 30},
        "c04a7f38e8a3",
    ),
    "relu-truncated": (
        {"activation": "relu", "init": "orthogonal", "gain": 1.0, "bias_scale": 0.1}
        | {"truncate": 5, "adjoint_dtype": "float64", "sweep": "x"},
        "30624d2825fb",
    ),
}


@pytest.mark.parametrize("case", list(KNOWN_RUN_IDS))
def test_run_ids_are_those_of_main(case):
    values, run_id = KNOWN_RUN_IDS[case]
    config = RunConfig.from_dict(dict(values))
    assert config.run_id == run_id
    assert config.replace().run_id == run_id
    assert RunConfig.from_dict(config.to_dict()).run_id == run_id


def test_every_error_at_once_with_keys_and_did_you_mean():
    bad = {"stpes": 10, "hidden_size": -1, "lr": 0, "cell": "lstmm", "bidirectional": 1}
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(bad, source="my.toml")
    message = str(info.value)
    assert message.startswith("my.toml: ")
    for part in [
        "unknown key 'stpes' (did you mean 'steps'?)",
        "key 'hidden_size' must be a number >= 1, got -1",
        "key 'lr' must be a number > 0, got 0.0",
        "key 'cell' must be one of",
        "key 'bidirectional' must be bool, got 1 (int)",
    ]:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("steps", 2**63 - 1),
        ("seq_len", 10**10),
        ("hidden_size", 10**8),
        ("batch_size", 10**7),
        ("record_every", 10**9),
        ("probe_batch", 10**6),
    ],
    ids=[
        "steps-2^63-1",
        "seq_len-1e10",
        "hidden-1e8",
        "batch-1e7",
        "record_every-1e9",
        "probe-1e6",
    ],
)
def test_sizes_past_the_limit_are_refused_with_how_to_raise_it(key, value, monkeypatch):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({key: value})
    message = str(info.value)
    assert f"key {key!r} must be <= {LIMITS[key]}" in message and str(value) in message
    assert limit_env(key) in message
    # The override named in the message works, and only raises that one limit.
    monkeypatch.setenv(limit_env(key), str(value))
    assert getattr(RunConfig.from_dict({key: value}), key) == value
    monkeypatch.setenv(limit_env(key), "lots")
    with pytest.raises(ConfigError, match=limit_env(key)):
        RunConfig.from_dict({key: value})


def test_limit_is_inclusive(monkeypatch):
    assert RunConfig(steps=LIMITS["steps"]).steps == LIMITS["steps"]
    with pytest.raises(ConfigError, match="'steps' must be <="):
        RunConfig(steps=LIMITS["steps"] + 1)


@pytest.mark.parametrize("device", ["cuda:99", "no-such-device", "cuda:-1", ""], ids=repr)
def test_device_torch_does_not_see_is_refused_with_the_list(device, monkeypatch):
    with pytest.raises(ConfigError) as info:
        RunConfig(device=device)
    message = str(info.value)
    assert f"got {device!r}" in message
    assert "(" + ", ".join(available_devices()) + ")" in message
    assert "cpu" in available_devices()
    monkeypatch.setenv("GRADLAB_DEVICE_CHECK", "0")
    assert RunConfig(device=device).device == device


def test_devices_torch_sees_are_accepted():
    for device in available_devices():
        assert RunConfig(device=device).device == device


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"seq_len": "50"}, "key 'seq_len' must be int, got '50' (str)"),
        ({"seq_len": True}, "key 'seq_len' must be int, got True (bool)"),
        ({"record_every": "linear"}, "key 'record_every' must be int or \"log\", got 'linear'"),
        ({"record_every": 0}, "key 'record_every' must be a number >= 1, got 0"),
        ({"clip": -1}, "key 'clip' must be null or a number > 0, got -1.0"),
        ({"gain": float("nan")}, "key 'gain' must be a number >= 0, got nan"),
        ({"truncate": 0}, "key 'truncate' must be a number >= 1, got 0"),
    ],
    ids=[
        "str-int",
        "bool-int",
        "record-word",
        "record-zero",
        "clip-negative",
        "gain-nan",
        "truncate-zero",
    ],
)
def test_type_and_range_messages(values, expected):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(values)
    assert expected in str(info.value)


def test_readme_lists_every_limit_and_how_to_raise_it():
    from pathlib import Path

    from gradlab.sweep import DEFAULT_MAX_RUNS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    limits = readme.split("**Limits.**", 1)[1].split("\n\n", 1)[0]
    text = " ".join(limits.split())
    assert f"more than {DEFAULT_MAX_RUNS:,} runs" in text and "--max-runs N" in text
    for key, value in LIMITS.items():
        assert f"`{key}`" in text and f"`{limit_env(key)}`" in text, key
        assert f"{value:,}" in text, key
    assert "GRADLAB_DEVICE_CHECK=0" in text
