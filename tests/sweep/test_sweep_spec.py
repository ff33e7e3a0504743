"""Sweep specs: loading, [include], [full], de-duplication, and every kind of invalid spec.

An invalid spec raises SpecError naming the file, the key and what is allowed, and a sweep of
it writes nothing (the store folder is not even created).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gradlab.config import ConfigError, RunConfig
from gradlab.sweep import SpecError, load_spec, run_sweep

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

VALID = """
name = "tiny"
description = "A tiny sweep."
[base]
hidden_size = 4
steps = 3
[grid]
cell = ["rnn", "lstm", "gru"]
seq_len = [5, 8]
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_grid_is_the_cartesian_product_in_spec_order(tmp_path):
    spec = load_spec(write(tmp_path, VALID))
    assert spec.name == "tiny" and spec.description == "A tiny sweep."
    assert [(c.cell, c.seq_len) for c in spec.configs] == [
        ("rnn", 5), ("rnn", 8), ("lstm", 5), ("lstm", 8), ("gru", 5), ("gru", 8),
    ]  # fmt: skip
    assert all(isinstance(c, RunConfig) for c in spec.configs)
    assert {c.sweep for c in spec.configs} == {"tiny"}
    assert {(c.hidden_size, c.steps) for c in spec.configs} == {(4, 3)}
    assert spec.varying_keys == ["cell", "seq_len"]
    assert spec.label(spec.configs[3]) == "cell=lstm seq_len=8"
    # The sweep name is part of each run's identity.
    assert spec.configs[0].run_id == RunConfig(cell="rnn", seq_len=5, hidden_size=4, steps=3,
                                               sweep="tiny").run_id  # fmt: skip
    assert spec.configs[0].run_id != spec.configs[0].replace(sweep="other").run_id


def test_include_merges_over_base_and_duplicates_are_dropped(tmp_path):
    path = write(
        tmp_path,
        """
        name = "inc"
        [base]
        hidden_size = 4
        seq_len = 5
        [grid]
        seed = [0, 1, 0]            # a repeated value
        [[include]]
        cell = "lstm"
        forget_bias = 1.0
        [[include]]
        seed = 1                    # the same run as a grid point
        [[include]]
        clip = "none"               # "none" is TOML's stand-in for null
        truncate = 2
        """,
    )
    spec = load_spec(path)
    assert len(spec.configs) == 4
    lstm = spec.configs[2]
    assert (lstm.cell, lstm.forget_bias, lstm.hidden_size, lstm.seq_len) == ("lstm", 1.0, 4, 5)
    assert (spec.configs[3].truncate, spec.configs[3].clip) == (2, None)
    assert len({c.run_id for c in spec.configs}) == 4


def test_full_scale_replaces_axes_and_values(tmp_path):
    path = write(
        tmp_path,
        """
        name = "scaled"
        [base]
        hidden_size = 8
        steps = 3
        [grid]
        gain = [0.5, 1.0]
        seq_len = [5, 10]
        [[include]]
        cell = "gru"
        [full]
        hidden_size = [256, 1000]   # a base value becomes an axis
        seq_len = 100               # an axis becomes a single value
        gain = [0.5, 1.0, 2.0]      # an axis is replaced
        steps = 50
        """,
    )
    demo = load_spec(path)
    assert len(demo.configs) == 2 * 2 + 1 and demo.scale == "demo"
    assert {c.hidden_size for c in demo.configs} == {8}
    full = load_spec(path, scale="full")
    grid = [c for c in full.configs if c.cell == "rnn"]
    assert len(grid) == 3 * 2
    assert {(c.hidden_size, c.seq_len, c.steps) for c in grid} == {(256, 100, 50), (1000, 100, 50)}
    assert sorted({c.gain for c in grid}) == [0.5, 1.0, 2.0]
    # An include run takes [full]'s values and is expanded over the [full] lists it does not set.
    gru = [c for c in full.configs if c.cell == "gru"]
    assert sorted((c.hidden_size, c.gain) for c in gru) == [
        (256, 0.5), (256, 1.0), (256, 2.0), (1000, 0.5), (1000, 1.0), (1000, 2.0),
    ]  # fmt: skip
    with pytest.raises(SpecError, match=r"scale must be one of \['demo', 'full'\]"):
        load_spec(path, scale="huge")


# (spec text, substrings the message must contain besides the file name)
INVALID = {
    "unknown top-level key": (
        'name = "x"\n[grid]\nseed = [0]\n[grdi]\nseed = 1\n',
        [
            "unknown top-level key 'grdi' (did you mean 'grid'?)",
            "allowed keys: name, description, plugins, base, grid",
        ],
    ),
    "unknown key in base": (
        'name = "x"\n[base]\nhidden = 4\n',
        ["[base]", "unknown key 'hidden' (did you mean 'hidden_size'?)"],
    ),
    "unknown key in grid": (
        'name = "x"\n[grid]\nlearning_rate = [0.1]\n',
        ["[grid]", "unknown key 'learning_rate'", "allowed keys:", "lr"],
    ),
    "unknown key in include": (
        'name = "x"\n[[include]]\ncel = "lstm"\n',
        ["[[include]] #1", "unknown key 'cel' (did you mean 'cell'?)"],
    ),
    "every unknown key at once": (
        'name = "x"\n[base]\nstpes = 4\nhiden_size = 9\n',
        ["unknown key 'stpes' (did you mean 'steps'?)", "unknown key 'hiden_size' (did you"],
    ),
    "unknown key in full": (
        'name = "x"\n[grid]\nseed = [0]\n[full]\nhiden_size = 9\n',
        ["[full]", "unknown key 'hiden_size'", "hidden_size"],
    ),
    "wrong type": (
        'name = "x"\n[base]\nhidden_size = "32"\n',
        ["[base]", "'hidden_size' must be int", "'32'"],
    ),
    "wrong type in a grid list": (
        'name = "x"\n[grid]\nsteps = [10, 2.5]\n',
        ["[grid] steps = 2.5", "'steps' must be int"],
    ),
    "grid value not a list": (
        'name = "x"\n[grid]\nseq_len = 10\n',
        ["[grid]", "'seq_len' must be a list", "[base]"],
    ),
    "empty grid list": (
        'name = "x"\n[grid]\ncell = []\n',
        ["[grid]", "'cell' is an empty list"],
    ),
    "negative length": (
        'name = "x"\n[grid]\nseq_len = [10, -5]\n',
        ["[grid] seq_len = -5", "'seq_len' must be a number >= 1", "-5"],
    ),
    "activation on an lstm": (
        'name = "x"\n[base]\nactivation = "relu"\n[grid]\ncell = ["rnn", "lstm"]\n',
        ["[grid] cell = 'lstm'", "'activation' applies to cell 'rnn', 'indrnn' only"],
    ),
    "value not among the choices": (
        'name = "x"\n[grid]\ncell = ["rnn", "transformer"]\n',
        ["[grid] cell = 'transformer'", "'cell' must be one of ['rnn', 'lstm', 'gru', 'indrnn']"],
    ),
    "bad value in base": (
        'name = "x"\n[base]\ninit = "xavier"\n[grid]\ncell = ["rnn", "gru"]\n',
        ["[base]", "'init' must be one of", "orthogonal"],
    ),
    "copy task too short at one grid point": (
        'name = "x"\n[grid]\ntask = ["adding", "copy"]\nseq_len = [10, 30]\n',
        ["[grid] point task='copy', seq_len=10", "'seq_len' must be >= 21 for the copy task"],
    ),
    "key in base and grid": (
        'name = "x"\n[base]\nseed = 1\n[grid]\nseed = [0, 1]\n',
        ["'seed' is in both [base] and [grid]"],
    ),
    "sweep key set by hand": (
        'name = "x"\n[base]\nsweep = "y"\n',
        ["[base]", "'sweep' is set from the spec's 'name'"],
    ),
    "missing name": (
        "[grid]\nseed = [0]\n",
        ["key 'name' must be a string", "missing"],
    ),
    "name with a slash": (
        'name = "a/b"\n',
        ["key 'name' must be a string of 1-64 letters", "'a/b'"],
    ),
    "include not an array of tables": (
        'name = "x"\ninclude = {cell = "lstm"}\n',
        ["'include' must be an array of tables"],
    ),
    "base not a table": (
        'name = "x"\nbase = 3\n',
        ["[base] must be a table", "3 (int)"],
    ),
    "not toml": (
        'name = "x"\n[grid\n',
        ["not valid TOML", "line 2"],
    ),
    "bad value in full (checked at demo scale too)": (
        'name = "x"\n[grid]\nseed = [0]\n[full]\nhidden_size = [256, -1]\n',
        ["(scale full) [grid] hidden_size = -1", "'hidden_size' must be a number >= 1"],
    ),
    "bad list in full": (
        'name = "x"\n[grid]\nseed = [0]\n[full]\nseed = []\n',
        ["[full]", "'seed' is an empty list"],
    ),
}


@pytest.mark.parametrize("case", list(INVALID), ids=lambda c: c.replace(" ", "-"))
def test_invalid_spec_names_file_and_key_and_writes_nothing(tmp_path, case):
    text, expected = INVALID[case]
    path = write(tmp_path, text, name="bad-spec.toml")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert message.startswith(str(path)), message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    # A sweep of it raises the same error before touching the store.
    store = tmp_path / "store"
    with pytest.raises(SpecError):
        run_sweep(path, store, progress=False)
    assert not store.exists()


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "nope.toml")


SHIPPED = ["vanishing-vs-lstm", "activations", "edge-of-chaos", "remedies"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_specs_load_at_both_scales(name):
    path = EXPERIMENTS / f"{name}.toml"
    demo = load_spec(path)
    full = load_spec(path, scale="full")
    assert demo.name == full.name == name
    assert 4 <= len(demo.configs) <= 24
    assert len(full.configs) >= len(demo.configs)
    if name == "vanishing-vs-lstm":
        # The demo's description quotes its measurements (checked in tests/test_story.py) and
        # its size is set by benchmarks/demo_story.py (the whole sweep within 180 s on 2 cores).
        return
    # One sentence.
    assert demo.description.endswith(".") and demo.description.count(". ") == 0
    # Demo sized for a laptop: small models, modest training.
    assert all(c.hidden_size <= 64 and c.steps <= 300 for c in demo.configs)


def test_shipped_specs_cover_what_they_promise():
    vanishing = load_spec(EXPERIMENTS / "vanishing-vs-lstm.toml").configs
    assert {c.cell for c in vanishing} == {"rnn", "lstm", "gru"}
    cells = [c for c in vanishing if c.init == "default"]
    assert {c.task for c in cells} == {"identity"}  # recall x_0 after T = seq_len steps
    assert {c.forget_bias for c in vanishing if c.cell == "lstm"} >= {None, 1.0}
    assert {c.update_bias for c in vanishing if c.cell == "gru"} > {None}
    assert {c.init for c in vanishing if c.cell == "rnn"} == {"default", "gaussian"}
    acts = load_spec(EXPERIMENTS / "activations.toml").configs
    assert {c.activation_name for c in acts} == {"tanh", "relu", "sigmoid", "linear"}
    chaos = load_spec(EXPERIMENTS / "edge-of-chaos.toml")
    assert {(c.cell, c.activation_name, c.init) for c in chaos.configs} == {
        ("rnn", "tanh", "gaussian")
    }
    assert min(c.gain for c in chaos.configs) == 0.5 and max(c.gain for c in chaos.configs) == 3
    assert len({c.bias_scale for c in chaos.configs}) >= 2
    sizes = {c.hidden_size for c in load_spec(EXPERIMENTS / "edge-of-chaos.toml", "full").configs}
    assert min(sizes) == 256 and max(sizes) == 1000
    remedies = load_spec(EXPERIMENTS / "remedies.toml").configs
    kinds = {(c.cell, c.activation_name, c.init, c.clip is not None, c.truncate) for c in remedies}
    assert ("rnn", "tanh", "orthogonal", False, None) in kinds
    assert ("rnn", "relu", "identity", True, None) in kinds  # IRNN
    assert ("rnn", "tanh", "default", True, None) in kinds  # clipping
    assert any(k[4] is not None for k in kinds)  # truncated BPTT
    assert {"lstm", "gru"} <= {c.cell for c in remedies}
