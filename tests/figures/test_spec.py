"""FigureSpec is the one source of figure metadata: scope, group, the probe a figure needs,
default options; its validation and `has_data`, and the registry's use of them."""

from __future__ import annotations

import re

import pytest

from gradlab.figures import FIGURES, FLOW, GROUPS, FigureData, FigureSpec
from gradlab.probes import GatesProbe, GradCellProbe, GradHiddenProbe


def _spec(**kw) -> FigureSpec:
    base = dict(
        name="x",
        title="X",
        description="an x",
        scope="run",
        probes=((GradHiddenProbe.probe, ("norm",)), (GatesProbe.probe, GatesProbe.names)),
        builder=lambda data: None,
    )
    return FigureSpec(**{**base, **kw})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        pytest.param("scope", "all", "scope must be one of", id="scope"),
        pytest.param("group", "flows", "group must be one of", id="group"),
        pytest.param("needs_probe", GradCellProbe.probe, "not among the probes", id="needs-probe"),
    ],
)
def test_bad_metadata_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        _spec(**{field: value})


HIDDEN = {(GradHiddenProbe.probe, "norm")}
GATES = {(GatesProbe.probe, "f")}
NEEDS_GATES = {"needs_probe": GatesProbe.probe}


@pytest.mark.parametrize(
    ("kw", "series", "arrays", "expected"),
    [
        pytest.param({}, HIDDEN, [], True, id="any-listed-series"),
        pytest.param({}, {("train", "loss")}, [], False, id="no-listed-series"),
        pytest.param(NEEDS_GATES, HIDDEN, [], False, id="needed-missing"),
        pytest.param(NEEDS_GATES, HIDDEN | GATES, [], True, id="needed-there"),
        pytest.param({"arrays": ("a",)}, HIDDEN, ["b"], False, id="array-missing"),
        pytest.param({"arrays": ("a",)}, set(), ["a"], True, id="array-there"),
    ],
)
def test_has_data(kw, series, arrays, expected):
    assert _spec(**kw).has_data(series, arrays) is expected


def test_default_options():
    assert _spec().default_options(FigureData()) == {}
    spec = _spec(defaults=lambda data: {"x": len(data.metrics)})
    assert spec.default_options(FigureData()) == {"x": 0}


def test_registry_groups_and_needs():
    flow = [s.name for s in FIGURES.values() if s.group == FLOW]
    assert flow and all("quantity" in s.options for s in FIGURES.values() if s.group == FLOW)
    assert {s.group for s in FIGURES.values()} <= {None, *GROUPS}
    # a figure that needs a probe draws nothing for a run without it
    for spec in FIGURES.values():
        if spec.needs_probe is not None:
            without = {(p, n) for p, names in spec.probes for n in names if p != spec.needs_probe}
            assert not spec.has_data(without, [])


def _builder(data, *, run_id=None, step=None, layer=0):
    return None


def test_option_names_are_the_documented_ones_then_the_builders_other_keywords():
    spec = _spec(builder=_builder, options={"step": "training step", "run_id": "which run"})
    assert spec.option_names() == ["step", "run_id", "layer"]
    spec.check_options({"step": 3, "layer": 1})  # known: no error


@pytest.mark.parametrize(
    ("option", "message"),
    [
        pytest.param("stpe", "has no option 'stpe' (did you mean step?); its options: step, ",
                     id="typo"),
        pytest.param("colour", "has no option 'colour'; its options: step, run_id, layer",
                     id="nothing-close"),
    ],
)  # fmt: skip
def test_an_unknown_option_is_refused_with_the_valid_ones(option, message):
    spec = _spec(builder=_builder, options={"step": "training step", "run_id": "which run"})
    with pytest.raises(ValueError, match=re.escape(message)):
        spec.check_options({option: 1})


def test_every_registered_figure_takes_its_documented_options():
    for spec in FIGURES.values():
        spec.check_options(dict.fromkeys(spec.options))
        assert list(spec.options) == spec.option_names()[: len(spec.options)]
