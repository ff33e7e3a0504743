"""`comparable_groups`: a sweep's runs split into the groups ``export --all`` overlays — runs
that share every config key but the compared one (seed aside) — on the grouping store (rnn and
gru × adding and identity × seq_len 6 and 10, and a second seed of one rnn)."""

from __future__ import annotations

import pytest
from export_cases import GROUP_SWEEP

from gradlab.export.data import comparable_groups, file_safe, resolve_run_ids, value_text


def configs(store, ids):
    return {rid: store.run(rid).config for rid in ids}


def differing(configs_: list[dict]) -> set[str]:
    keys = {k for c in configs_ for k in c}
    return {k for k in keys if len({repr(c.get(k)) for c in configs_}) > 1}


def test_groups_share_everything_but_the_cell(group_store):
    ids = resolve_run_ids(group_store, sweep=GROUP_SWEEP)
    groups = comparable_groups(group_store, ids)
    stems = [g.stem for g in groups]
    assert stems == [
        "task=adding-seq_len=6",
        "task=adding-seq_len=10",
        "task=identity-seq_len=6",
        "task=identity-seq_len=10",
    ]
    every = set()
    for g in groups:
        assert list(g.runs) == ["rnn", "gru"]  # the cell registry's order
        members = [r for rs in g.runs.values() for r in rs]
        every |= set(members)
        assert differing(list(configs(group_store, members).values())) <= {"cell", "seed"}
        reps = configs(group_store, g.representatives.values())
        assert differing(list(reps.values())) == {"cell"}  # one seed for every cell
        assert g.name == {"task": g.shared["task"], "seq_len": g.shared["seq_len"]}
    assert every == set(ids)


def test_the_lowest_seed_represents_its_replicates(group_store):
    ids = resolve_run_ids(group_store, sweep=GROUP_SWEEP)
    (g,) = [g for g in comparable_groups(group_store, ids) if g.stem == "task=adding-seq_len=6"]
    assert g.seeds == {"rnn": [0, 1], "gru": [0]}
    assert group_store.run(g.representatives["rnn"]).config["seed"] == 0
    assert g.seed_note() == "seed 0 shown (seeds 0, 1)"
    assert g.seed_note("rnn") == "seed 0 shown (seeds 0, 1)" and g.seed_note("gru") == ""
    (other,) = [
        g for g in comparable_groups(group_store, ids) if g.stem == "task=identity-seq_len=6"
    ]
    assert other.seed_note() == ""


def test_another_compared_key_regroups_the_runs(group_store):
    ids = resolve_run_ids(group_store, sweep=GROUP_SWEEP)
    groups = comparable_groups(group_store, ids, compare="task")
    # named in config order (seq_len before cell), sorted by value
    assert [g.stem for g in groups] == [
        "seq_len=6-cell=gru", "seq_len=6-cell=rnn", "seq_len=10-cell=gru", "seq_len=10-cell=rnn",
    ]  # fmt: skip
    for g in groups:
        assert list(g.runs) == ["adding", "identity"]
        assert [g.label(v) for v in g.runs] == ["task=adding", "task=identity"]
        reps = configs(group_store, g.representatives.values())
        assert differing(list(reps.values())) == {"task"}


def test_one_group_has_no_name(group_store):
    ids = resolve_run_ids(group_store, sweep=GROUP_SWEEP)
    ids = [r for r in ids if group_store.run(r).config["seq_len"] == 10]
    ids = [r for r in ids if group_store.run(r).config["task"] == "identity"]
    (g,) = comparable_groups(group_store, ids)
    assert g.stem == "" and g.name == {} and g.describe() == "every run"


def test_an_unknown_compared_key_is_refused(group_store):
    ids = resolve_run_ids(group_store, sweep=GROUP_SWEEP)
    with pytest.raises(ValueError, match="no run has the config key 'colour'"):
        comparable_groups(group_store, ids, compare="colour")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(1.0, "1", id="whole-float"),
        pytest.param(0.0015, "0.0015", id="float"),
        pytest.param(None, "none", id="none"),
        pytest.param(True, "true", id="bool"),
        pytest.param([1, 2], "[1,2]", id="list"),
    ],
)
def test_value_text(value, text):
    assert value_text(value) == text


def test_file_names_are_safe():
    assert file_safe("init=a/b c-[1,2]") == "init=a_b_c-_1_2_"
