"""The demo's story: what `experiments/vanishing-vs-lstm.toml` must show, measured from a store.

The demo (`gradlab demo`) trains vanilla, LSTM and GRU cells on one long-memory task and records
a Gaussian tanh RNN on either side of the edge of chaos. This module turns the stored runs into
the numbers the story quotes and checks its claims:

* `state_decay_rate(values)`: the *state decay rate* of one recording, the `gradlab.fits.decay_fit`
  slope of the `jacobian` / `spectral` series (mean over the probe's Jacobian samples of
  ‖∂s_T/∂s_k‖₂, full state, layer 0 forward) against the lag T−k, per step (negative: vanishing).
* `measure(spec, store)` → `DemoMeasures`: per run, that rate at step 0 and at the last
  recording, final / baseline loss and the run's stored theory rate; runs get story roles.
* `check(measures)` → one `ClaimResult` per claim (measured figure, threshold, PASS/FAIL);
  `wall_claim(wall_s)` the sweep's wall-time claim.
* `render_description(measures)` and `render_readme(measures)`: the spec's description and the
  README's demo passage, generated from the measurements; `quoted_mismatches(text, expected)`
  says where a text quotes other numbers than the measurements (to the quoted precision).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from numpy.typing import ArrayLike

from gradlab.cells import get_cell
from gradlab.fits import decay_fit
from gradlab.probes import JacobianProbe
from gradlab.store import Store
from gradlab.sweep import SweepSpec

__all__ = [
    "THRESHOLDS",
    "ClaimResult",
    "DemoMeasures",
    "RunMeasure",
    "check",
    "compare_path",
    "measure",
    "quoted_mismatches",
    "readme_block",
    "render_description",
    "render_readme",
    "replace_description",
    "replace_readme_block",
    "state_decay_rate",
    "wall_claim",
]

#: The story's thresholds (issue 12): rates in /step, loss ratios final / baseline, seconds.
THRESHOLDS: dict[str, float] = {
    "seq_len": 100,  # the rate claims are made at T >= 100
    "memory_seq_len": 50,  # the learning claim at T >= 50
    "rnn_rate_max": -0.2,  # the vanilla tanh RNN vanishes: rate <= -0.2
    "gated_rate_min": -0.05,  # the remedied gated cells keep their gradient: rate >= -0.05
    "gated_ratio_max": 0.5,  # the best gated cell learns: final / baseline <= 0.5
    "rnn_ratio_min": 0.8,  # the RNN does not: final / baseline >= 0.8
    "theory_gap_max": 0.05,  # |measured step-0 rate - theory| <= 0.05 for the Gaussian pair
    "wall_s_max": 180.0,  # the whole sweep
}


def state_decay_rate(values: ArrayLike) -> float:
    """The `decay_fit` slope of ‖∂s_T/∂s_k‖₂, `values` (T,) ordered k = 0..T−1, against the lag."""
    return decay_fit(values).rate


@dataclass(frozen=True)
class RunMeasure:
    """What the story reads from one run. Rates: state decay rate per step at step 0
    (`rate_init`) and at the last recording (`rate_final`, step `final_step`)."""

    run_id: str
    config: dict[str, Any]
    rate_init: float
    rate_final: float
    final_step: int
    loss_ratio: float  # summary final_loss / baseline_loss
    theory_rate: float  # the run summary's theory_rate (nan where no theory applies)

    @property
    def cell(self) -> str:
        return str(self.config["cell"])

    @property
    def seq_len(self) -> int:
        return int(self.config["seq_len"])


@dataclass(frozen=True)
class DemoMeasures:
    """The demo's runs by story role (see `roles`); `runs` in spec order."""

    runs: tuple[RunMeasure, ...]

    def role(self, name: str) -> RunMeasure:
        """The run playing `name`; KeyError naming what the spec lacks."""
        found = self.roles().get(name)
        if found is None:
            raise KeyError(f"the demo has no run for the role {name!r} ({ROLE_TEXT[name]})")
        return found

    def roles(self) -> dict[str, RunMeasure]:
        """rnn: the tanh RNN at torch's default init; lstm / gru: the gated cells at torch's
        default init; lstm_remedy / gru_remedy: the LSTM with the largest forget-gate bias,
        the GRU with the largest update-gate bias; lstm_bias1: an LSTM with forget-gate bias
        1 (Gers et al.), when it is not the remedy run; ordered / chaotic: the Gaussian tanh
        RNNs with the smallest / largest gain."""
        out: dict[str, RunMeasure] = {}

        def pick(name: str, runs: list[RunMeasure], key: Callable[[RunMeasure], Any]) -> None:
            if runs:
                out[name] = max(runs, key=key)

        rnn = [
            r
            for r in self.runs
            if r.cell == VANILLA_CELL and r.config["activation"] in (None, "tanh")
        ]
        pick(VANILLA_CELL, [r for r in rnn if r.config["init"] == "default"], lambda r: r.seq_len)
        for cell in GATED_CELLS:
            (bias,) = get_cell(cell).gate_biases  # the gate-bias knob, from the registry
            runs = [r for r in self.runs if r.cell == cell and r.config["init"] == "default"]
            pick(cell, [r for r in runs if r.config[bias] is None], lambda r: r.seq_len)

            def by_bias(r: RunMeasure, bias: str = bias) -> tuple[Any, int]:
                return r.config[bias], r.seq_len

            pick(f"{cell}_remedy", [r for r in runs if r.config[bias] is not None], by_bias)
        first = GATED_CELLS[0]  # the LSTM: Gers et al.'s bias of 1, beside the remedy
        (knob,) = get_cell(first).gate_biases
        bias_one = [
            r
            for r in self.runs
            if r.cell == first and r.config[knob] == 1.0 and r is not out.get(f"{first}_remedy")
        ]
        pick(f"{first}_bias1", bias_one, lambda r: r.seq_len)
        gaussian = [r for r in rnn if r.config["init"] == "gaussian"]
        pick("ordered", gaussian, lambda r: -r.config["gain"])
        pick("chaotic", gaussian, lambda r: r.config["gain"])
        return out


#: The demo's cast (data of this experiment, not a seam of the engine): the vanilla cell whose
#: gradient vanishes and the gated cells whose gate-bias knob (`CellSpec.gate_biases`) is the
#: remedy; the roles below are named after them.
VANILLA_CELL = "rnn"
GATED_CELLS = ("lstm", "gru")

ROLE_TEXT = {
    "rnn": "a tanh RNN at torch's default init",
    "lstm": "an LSTM at torch's default init",
    "gru": "a GRU at torch's default init",
    "lstm_remedy": "an LSTM with a forget-gate bias",
    "gru_remedy": "a GRU with an update-gate bias",
    "lstm_bias1": "an LSTM with forget-gate bias 1",
    "ordered": "a Gaussian tanh RNN",
    "chaotic": "a Gaussian tanh RNN",
}


def measure(spec: SweepSpec, store: Store) -> DemoMeasures:
    """Read every run of `spec` from `store` (all must be complete) into `DemoMeasures`."""
    runs = []
    for config in spec.configs:
        run_id = config.run_id
        try:
            info = store.run(run_id)
        except KeyError:
            raise KeyError(f"run {run_id} of sweep {spec.name!r} is not in the store") from None
        if info.status != "complete":
            raise ValueError(f"run {run_id} of sweep {spec.name!r} is {info.status}, not complete")
        series = info.metrics(probes=JacobianProbe.probe)
        series = series[
            (series["name"] == "spectral") & (series["layer"] == 0) & (series["direction"] == 0)
        ]
        if series.empty:
            raise ValueError(f"run {run_id} has no jacobian/spectral rows (jacobian_samples = 0?)")
        rates = {
            int(step): state_decay_rate(rows.sort_values("t")["value"].to_numpy())
            for step, rows in series.groupby("step")
        }
        first, last = min(rates), max(rates)
        summary = info.summary
        runs.append(
            RunMeasure(
                run_id=run_id,
                config=config.to_dict(),
                rate_init=rates[first] if first == 0 else math.nan,
                rate_final=rates[last],
                final_step=last,
                loss_ratio=float(summary["final_loss"]) / float(summary["baseline_loss"]),
                theory_rate=_float(summary.get("theory_rate")),
            )
        )
    return DemoMeasures(tuple(runs))


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


# ------------------------------------------------------------------------------------ claims
@dataclass(frozen=True)
class ClaimResult:
    """One claim about the run playing `role` (see `DemoMeasures.roles`; "" for the sweep):
    `measured` `op` `threshold` (op "<=" or ">="), and whether it holds."""

    claim: str
    measured: float
    op: str
    threshold: float
    passed: bool
    role: str = ""

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict}  {self.claim}: {self.measured:+.3f} (need {self.op} {self.threshold:+.3f})"
        )


_OPS = {"<=": operator.le, ">=": operator.ge}


def _claim(claim: str, measured: float, op: str, threshold: float, role: str = "") -> ClaimResult:
    ok = math.isfinite(measured) and _OPS[op](measured, threshold)
    return ClaimResult(claim, float(measured), op, float(threshold), bool(ok), role)


def check(measures: DemoMeasures) -> list[ClaimResult]:
    """Every claim of the story (thresholds in `THRESHOLDS`); a missing role is a FAIL."""
    t = THRESHOLDS
    results: list[ClaimResult] = []
    roles = measures.roles()

    def add(role: str, claim: str, measured: float, op: str, threshold: float) -> None:
        results.append(_claim(claim, measured, op, threshold, role))

    def present(role: str, minimum_length: float = 1) -> RunMeasure | None:
        """The run playing `role` if it exists and is long enough, else a failed claim."""
        run = roles.get(role)
        if run is None:
            add(role, f"the demo has {ROLE_TEXT[role]}", math.nan, ">=", 0.0)
        elif run.seq_len < minimum_length:
            add(role, f"{_label(run)}: sequence length", run.seq_len, ">=", minimum_length)
            run = None
        return run

    run = present("rnn", t["seq_len"])
    if run is not None:
        for when, rate in _rates(run):
            claim = f"{_label(run)} vanishes: state rate {when}, T = {run.seq_len}"
            add("rnn", claim, rate, "<=", t["rnn_rate_max"])
    learners = []
    for role in ("lstm_remedy", "gru_remedy"):
        run = present(role, t["seq_len"])
        if run is not None:
            learners.append((role, run))
            for when, rate in _rates(run):
                claim = f"{_label(run)} keeps its gradient: state rate {when}, T = {run.seq_len}"
                add(role, claim, rate, ">=", t["gated_rate_min"])
    if learners:
        role, best = min(learners, key=lambda pair: pair[1].loss_ratio)
        claim = f"{_label(best)} learns the recall: final / baseline loss, T = {best.seq_len}"
        add(role, claim, best.loss_ratio, "<=", t["gated_ratio_max"])
    if "rnn" in roles:
        run = roles["rnn"]
        claim = f"{_label(run)} does not: final / baseline loss, T = {run.seq_len}"
        add("rnn", claim, run.loss_ratio, ">=", t["rnn_ratio_min"])
    for role, op in (("ordered", "<="), ("chaotic", ">=")):
        run = present(role)
        if run is None:
            continue
        add(role, f"{_label(run)}: mean-field theory is {role}", run.theory_rate, op, 0.0)
        gap = abs(run.rate_init - run.theory_rate)
        claim = f"{_label(run)}: |state rate at step 0 - theory {_num(run.theory_rate, 3)}|"
        add(role, claim, gap, "<=", t["theory_gap_max"])
    return results


def wall_claim(wall_s: float) -> ClaimResult:
    """The whole demo sweep runs within `THRESHOLDS["wall_s_max"]` seconds."""
    return _claim("wall time of the demo sweep (s)", wall_s, "<=", THRESHOLDS["wall_s_max"])


def _rates(run: RunMeasure) -> list[tuple[str, float]]:
    return [("at step 0", run.rate_init), (f"at step {run.final_step}", run.rate_final)]


def _label(run: RunMeasure) -> str:
    """ "tanh RNN", "Gaussian tanh RNN (σ_w = 1.2, N = 256)", "LSTM (forget-gate bias 3)": the
    cell's registry name, its activation, a non-default init and any gate-bias knob set."""
    c = run.config
    spec = get_cell(c["cell"])
    name = spec.display_name.removeprefix("vanilla ")
    activation = spec.activation_name(c.get("activation"))
    if activation is not None:
        name = f"{activation} {name}"
    if c["init"] == "gaussian":
        return f"Gaussian {name} (σ_w = {_plain(c['gain'])}, N = {c['hidden_size']})"
    biases = [
        f"{knob.removesuffix('_bias')}-gate bias {_plain(c[knob])}"
        for knob in spec.gate_biases
        if c.get(knob) is not None
    ]
    return f"{name} ({', '.join(biases)})" if biases else name


# ------------------------------------------------------------------------------------ text
def _plain(value: float) -> str:
    """1.0 → "1", 0.8 → "0.8" (config values as a reader writes them)."""
    return f"{float(value):g}"


#: Decimals of every measured figure when a text is rendered `exact` (for `quoted_mismatches`).
_EXACT_DECIMALS = 12


def _num(value: float, decimals: int, exact: bool = False) -> str:
    """A signed figure with a real minus sign: −0.65, +0.02."""
    text = f"{value:+.{_EXACT_DECIMALS if exact else decimals}f}"
    return text.replace("-", "−")


def _ratio(value: float, exact: bool = False) -> str:
    """A loss ratio to two significant figures, at least two decimals: 0.28, 0.0049, 1.00."""
    decimals = 2 if value >= 0.1 else max(2, 1 - math.floor(math.log10(value)))
    return f"{value:.{_EXACT_DECIMALS if exact else decimals}f}"


def compare_path(measures: DemoMeasures) -> str:
    """The dashboard's compare view of the RNN, the remedied LSTM and the remedied GRU, at
    step 0 (``/compare?runs=...&step=0``)."""
    ids = [measures.role(r).run_id for r in ("rnn", "lstm_remedy", "gru_remedy")]
    return f"/compare?runs={','.join(ids)}&step=0"


def render_description(measures: DemoMeasures, exact: bool = False) -> str:
    """The spec's one-paragraph description, every number from `measures` (`exact`: measured
    figures unrounded, to compare a quoted text with)."""
    rnn, lstm, lstm_fix = (measures.role(r) for r in ("rnn", "lstm", "lstm_remedy"))
    gru, gru_fix = measures.role("gru"), measures.role("gru_remedy")
    ordered, chaotic = measures.role("ordered"), measures.role("chaotic")
    one = measures.roles().get("lstm_bias1")

    def rate(value: float) -> str:
        return _num(value, 2, exact)

    def ratio(value: float) -> str:
        return _ratio(value, exact)

    bias1 = f"a forget-gate bias of 1 only slows it to {rate(one.rate_init)}/step; " if one else ""
    return (
        f"Tanh RNN, LSTM and GRU recall x_0 after T = {rnn.seq_len} steps (identity task, "
        f"memoryless baseline loss 1). At initialisation the state Jacobian ‖∂s_T/∂s_k‖ of "
        f"the tanh RNN decays at {rate(rnn.rate_init)}/step and that of the default LSTM at "
        f"{rate(lstm.rate_init)}/step; {bias1}a forget-gate bias of "
        f"{_plain(lstm_fix.config['forget_bias'])} keeps it ({rate(lstm_fix.rate_init)}/step), "
        f"as an update-gate bias of {_plain(gru_fix.config['update_bias'])} does for the GRU "
        f"({rate(gru_fix.rate_init)}/step; {rate(gru.rate_init)} without). After "
        f"{gru_fix.config['steps']} training steps the GRU reaches {ratio(gru_fix.loss_ratio)} "
        f"of the baseline loss and the LSTM {ratio(lstm_fix.loss_ratio)}; the default-init "
        f"RNN stays at {ratio(rnn.loss_ratio)}. Gaussian tanh RNNs "
        f"(N = {ordered.config['hidden_size']}) driven by the {ordered.config['task']} task's "
        f"inputs at σ_w = {_plain(ordered.config['gain'])} and "
        f"{_plain(chaotic.config['gain'])} measure {rate(ordered.rate_init)} and "
        f"{rate(chaotic.rate_init)}/step at initialisation against mean-field "
        f"{rate(ordered.theory_rate)} and {rate(chaotic.theory_rate)}."
    )


README_START = "<!-- demo-story: generated by `python benchmarks/demo_story.py --write` -->"
README_END = "<!-- /demo-story -->"


def render_readme(measures: DemoMeasures, exact: bool = False) -> str:
    """The README's demo table and compare link (between `README_START` and `README_END`);
    `exact` as in `render_description`."""
    roles = measures.roles()
    order = ("rnn", "lstm", "lstm_bias1", "lstm_remedy", "gru", "gru_remedy", "ordered", "chaotic")
    lines = [
        "| run | state rate at step 0 | at the last step | final / baseline loss "
        "| mean-field theory |",
        "|---|---|---|---|---|",
    ]
    for role in order:
        if role not in roles:
            continue
        r = roles[role]
        theory = _num(r.theory_rate, 3, exact) if math.isfinite(r.theory_rate) else "—"
        lines.append(
            f"| {_label(r)} | {_num(r.rate_init, 3, exact)} | {_num(r.rate_final, 3, exact)} "
            f"(step {r.final_step}) | {_ratio(r.loss_ratio, exact)} | {theory} |"
        )
    lines += [
        "",
        f"The first view to open: http://127.0.0.1:8050{compare_path(measures)} (the tanh RNN, "
        "the LSTM and the GRU with their gate biases, at step 0).",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ quotes
_NUMBER = re.compile(r"[−+-]?\d+(?:\.\d+)?(?:e[−+-]?\d+)?")


def _numbers(text: str) -> list[tuple[float, float]]:
    """(value, half a unit of the last quoted digit) of every number in `text`."""
    out = []
    for match in _NUMBER.finditer(text):
        token = match.group().replace("−", "-")
        mantissa, _, exponent = token.partition("e")
        decimals = len(mantissa.partition(".")[2])
        scale = 10.0 ** int(exponent) if exponent else 1.0
        out.append((float(token), 0.5 * 10.0**-decimals * scale))
    return out


def quoted_mismatches(text: str, expected: str) -> list[str]:
    """Where `text` quotes something other than `expected` (a rendering with `exact=True`): the
    words must be the same, and each number of `text` must equal `expected`'s to the precision
    `text` quotes it with (half a unit of its last digit). Empty when they agree."""
    words, want_words = _NUMBER.sub("#", text), _NUMBER.sub("#", expected)
    if words != want_words:
        return [f"the text differs from the rendering:\n  got:  {words}\n  want: {want_words}"]
    problems = []
    for (got, tol), (want, _) in zip(_numbers(text), _numbers(expected), strict=True):
        if abs(got - want) > tol * (1 + 1e-9):
            problems.append(f"quotes {got:g}, measured {want:.6g} (to ±{tol:g})")
    return problems


def readme_block(readme: str) -> str:
    """The text between `README_START` and `README_END` in `readme`; ValueError if absent."""
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no demo block ({README_START} ... {README_END})")
    return readme[start + len(README_START) : end].strip("\n")


def replace_readme_block(readme: str, block: str) -> str:
    """`readme` with its demo block replaced by `block`."""
    readme_block(readme)  # raises if absent
    start = readme.find(README_START) + len(README_START)
    end = readme.find(README_END)
    return readme[:start] + "\n" + block + "\n" + readme[end:]


def replace_description(spec_text: str, description: str) -> str:
    """A spec file's text with its top-level ``description = "..."`` line set to `description`."""
    pattern = re.compile(r'^description = ".*"$', re.MULTILINE)
    if len(pattern.findall(spec_text)) != 1:
        raise ValueError('the spec must have exactly one line `description = "..."`')
    escaped = description.replace("\\", "\\\\").replace('"', '\\"')
    return pattern.sub(lambda _: f'description = "{escaped}"', spec_text)
