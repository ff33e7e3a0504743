"""The per-timestep quantities figures can show, keyed "probe" or "probe:name".

Probe and name values come from the probe classes' constants (`GradHiddenProbe.probe`, ...), so
this module is the one place where figures meet the store's vocabulary. Labels are Unicode with
HTML sub/superscripts (plotly renders them without MathJax); `text` is the plain-text form.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradlab.probes import (
    ContributionProbe,
    GatesProbe,
    GradCellProbe,
    GradHiddenProbe,
    HiddenProbe,
    JacobianProbe,
    StepJacobianProbe,
    SummaryProbe,
    TrainProbe,
)

__all__ = [
    "QUANTITIES",
    "Quantity",
    "get_quantity",
]

# Re-exported for the figure modules: probe column values.
TRAIN = TrainProbe.probe
SUMMARY = SummaryProbe.probe
JACOBIAN = JacobianProbe.probe
GATES = GatesProbe.probe


@dataclass(frozen=True)
class Quantity:
    """One per-timestep series: where it lives in the store and how to label it."""

    key: str  # "grad_hidden", "contribution:weight_hh", ...
    probe: str  # the store's probe column
    name: str  # the store's name column
    label: str  # axis label (HTML sub/superscripts)
    text: str  # plain-text label (legends, CSV, --list)
    missing: str  # why a run may have none of it
    log: bool = True  # spans decades: log axis / log colour by default


def _norm_missing(what: str) -> str:
    return f"this run has no {what} values (was the probe recorded?)"


def _build() -> dict[str, Quantity]:
    gh, gc = GradHiddenProbe, GradCellProbe
    out = [
        Quantity(
            "grad_hidden",
            gh.probe,
            "norm",
            "‖∂L/∂h<sub>k</sub>‖",
            "‖∂L/∂h_k‖",
            _norm_missing("hidden-state gradient"),
        ),
        Quantity(
            "grad_cell",
            gc.probe,
            "norm",
            "‖∂L/∂c<sub>k</sub>‖",
            "‖∂L/∂c_k‖",
            "this run has no cell-state gradient values (only LSTMs have a cell state c_k)",
        ),
    ]
    params = {
        "weight_hh": "W<sub>hh</sub>",
        "weight_ih": "W<sub>ih</sub>",
        "bias_hh": "b<sub>hh</sub>",
        "bias_ih": "b<sub>ih</sub>",
    }
    for name in ContributionProbe.names:
        sym = params.get(name, name)
        plain = sym.replace("<sub>", "_").replace("</sub>", "")
        out.append(
            Quantity(
                f"{ContributionProbe.probe}:{name}",
                ContributionProbe.probe,
                name,
                f"‖(∂L/∂{sym})<sub>k</sub>‖",
                f"‖(∂L/∂{plain})_k‖",
                _norm_missing(f"{plain} contribution"),
            )
        )
    sj = StepJacobianProbe
    for name, sub in (("spectral", "2"), ("fro", "F")):
        out.append(
            Quantity(
                f"{sj.probe}:{name}",
                sj.probe,
                name,
                f"‖∂s<sub>k</sub>/∂s<sub>k−1</sub>‖<sub>{sub}</sub>",
                f"‖∂s_k/∂s_(k−1)‖_{sub}",
                _norm_missing("step-Jacobian"),
            )
        )
    out.append(
        Quantity(
            f"{JacobianProbe.probe}:spectral",
            JacobianProbe.probe,
            "spectral",
            "‖∂s<sub>T</sub>/∂s<sub>k</sub>‖<sub>2</sub>",
            "‖∂s_T/∂s_k‖_2",
            _norm_missing("long-range Jacobian"),
        )
    )
    hp = HiddenProbe
    for name, label, text in (
        ("mean_abs", "mean |h<sub>k</sub>|", "mean |h_k|"),
        ("saturation", "saturated fraction of h<sub>k</sub>", "saturated fraction"),
        ("dead", "dead fraction of h<sub>k</sub>", "dead fraction"),
    ):
        out.append(
            Quantity(
                f"{hp.probe}:{name}",
                hp.probe,
                name,
                label,
                text,
                _norm_missing("hidden-state statistic"),
                log=name == "mean_abs",
            )
        )
    return {q.key: q for q in out}


#: key → Quantity. A bare probe name means its first name ("contribution" → weight_hh).
QUANTITIES: dict[str, Quantity] = _build()
_DEFAULT_NAME = {q.probe: q.key for q in reversed(list(QUANTITIES.values()))}


def get_quantity(key: str) -> Quantity:
    """The Quantity for "grad_hidden", "grad_cell", "contribution:weight_hh", "step_jacobian",
    ... (a bare probe takes its first name); ValueError listing the choices otherwise."""
    key = str(key).strip()
    if key in QUANTITIES:
        return QUANTITIES[key]
    if key in _DEFAULT_NAME:
        return QUANTITIES[_DEFAULT_NAME[key]]
    raise ValueError(f"unknown quantity {key!r}; choose one of: {', '.join(QUANTITIES)}")


def group_probes(*pairs: tuple[str, str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """((probe, name), ...) → ((probe, (names...)), ...), probes and names in first-seen order."""
    out: dict[str, list[str]] = {}
    for probe, name in pairs:
        names = out.setdefault(probe, [])
        if name not in names:
            names.append(name)
    return tuple((p, tuple(n)) for p, n in out.items())


def probes_of(keys: tuple[str, ...] | None = None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The (probe, names) of the given quantity keys (all quantities when None)."""
    qs = QUANTITIES.values() if keys is None else [get_quantity(k) for k in keys]
    return group_probes(*((q.probe, q.name) for q in qs))
