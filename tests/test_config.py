"""gradlab.config: the adjoint_dtype field (other fields are checked through sweep specs in
tests/sweep/test_sweep_spec.py)."""

from __future__ import annotations

import pytest

from gradlab.config import ConfigError, RunConfig


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
