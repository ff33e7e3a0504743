"""gradlab.story, the demo spec's description and the README's demo passage and quick start.

The slow tests run the demo once (``gradlab demo --no-dash`` into a temporary store) and check
that every claim holds and that the spec's description, the README's demo table and link, and
the first compare view quote what it measures, to the quoted precision.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gradlab import story
from gradlab.cli import DEMO_SPEC, _experiments_dir, main
from gradlab.config import RunConfig
from gradlab.store import open_store
from gradlab.sweep import load_spec, parse_spec, run_sweep

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SPEC_PATH = _experiments_dir() / DEMO_SPEC


# ----------------------------------------------------------------------------- state rate
@pytest.mark.parametrize("rate", [-0.5, -0.03, 0.0, 0.2], ids=lambda r: f"rate={r}")
def test_state_decay_rate_of_an_exact_exponential(rate):
    k = np.arange(100)  # k = 0..T-1, lag T - k
    values = 3.0 * np.exp(rate * (100 - k))
    assert story.state_decay_rate(values) == pytest.approx(rate, abs=1e-12)


# ----------------------------------------------------------------------------- claims
def _run(cell="rnn", rate_init=-0.6, rate_final=-0.6, ratio=1.0, theory=math.nan, **config):
    values = RunConfig(cell=cell, seq_len=100, **config).to_dict()
    return story.RunMeasure(
        run_id=f"{cell}{len(config)}{sorted(config.items())}",
        config=values,
        rate_init=rate_init,
        rate_final=rate_final,
        final_step=99,
        loss_ratio=ratio,
        theory_rate=theory,
    )


def _story_runs(**changes):
    """A DemoMeasures whose every claim holds; `changes` replace fields of one role's run."""
    runs = {
        "rnn": _run("rnn"),
        "lstm": _run("lstm", -0.4, -0.5),
        "lstm_bias1": _run("lstm", -0.15, -0.2, forget_bias=1.0),
        "lstm_remedy": _run("lstm", 0.02, 0.03, 0.3, forget_bias=3.0),
        "gru": _run("gru", -0.45, -0.46),
        "gru_remedy": _run("gru", -0.03, 0.02, 0.01, update_bias=3.0),
        "ordered": _run("rnn", -0.23, -0.1, 0.99, -0.22, init="gaussian", gain=0.8),
        "chaotic": _run("rnn", 0.08, 0.01, 0.5, 0.065, init="gaussian", gain=1.5),
    }
    for key, fields in changes.items():
        runs[key] = replace(runs[key], **fields)
    return story.DemoMeasures(tuple(runs.values())), runs


def test_roles_pick_the_runs_the_story_is_about():
    measures, runs = _story_runs()
    assert measures.roles() == runs


def test_every_claim_holds_for_a_true_story():
    measures, _ = _story_runs()
    results = story.check(measures)
    assert all(r.passed for r in results), [r.line() for r in results if not r.passed]
    assert len(results) == 12
    assert all(r.line().startswith("PASS") for r in results)


@pytest.mark.parametrize(
    "role, fields, failing",
    [
        ("rnn", {"rate_init": -0.1}, "tanh RNN vanishes: state rate at step 0"),
        ("rnn", {"rate_final": -0.19}, "tanh RNN vanishes: state rate at step 99"),
        ("rnn", {"loss_ratio": 0.7}, "tanh RNN does not"),
        ("lstm_remedy", {"rate_init": -0.06}, "LSTM (forget-gate bias 3) keeps its gradient"),
        ("gru_remedy", {"rate_final": math.nan}, "GRU (update-gate bias 3) keeps its gradient"),
        ("gru_remedy", {"loss_ratio": 0.6}, "LSTM (forget-gate bias 3) learns"),
        ("ordered", {"rate_init": -0.3}, "σ_w = 0.8, N = 64): |state rate"),
        (
            "chaotic",
            {"theory_rate": -0.01, "rate_init": -0.02},
            "σ_w = 1.5, N = 64): mean-field theory is chaotic",
        ),
    ],
    ids=[
        "rnn-keeps-its-gradient",
        "rnn-recovers-by-the-end",
        "rnn-learns",
        "lstm-vanishes",
        "gru-rate-missing",
        "no-gated-cell-learns",
        "ordered-off-theory",
        "chaotic-pair-is-ordered",
    ],
)
def test_a_false_claim_fails(role, fields, failing):
    if role == "gru_remedy" and "loss_ratio" in fields:  # both gated cells must miss
        measures, _ = _story_runs(gru_remedy=fields, lstm_remedy={"loss_ratio": 0.55})
    else:
        measures, _ = _story_runs(**{role: fields})
    failed = [r for r in story.check(measures) if not r.passed]
    assert len(failed) == 1, [r.line() for r in failed]
    assert failing in failed[0].claim and failed[0].line().startswith("FAIL")


def test_a_missing_role_or_a_short_sequence_fails():
    measures, runs = _story_runs()
    without_gru = story.DemoMeasures(tuple(r for r in measures.runs if r.cell != "gru"))
    failed = [r.claim for r in story.check(without_gru) if not r.passed]
    assert failed == ["the demo has a GRU with an update-gate bias"]
    with pytest.raises(KeyError, match="no run for the role 'gru_remedy'"):
        without_gru.role("gru_remedy")
    short = replace(runs["rnn"], config={**runs["rnn"].config, "seq_len": 60})
    measures = story.DemoMeasures((short, *measures.runs[1:]))
    failed = [r.claim for r in story.check(measures) if not r.passed]
    assert failed == ["tanh RNN: sequence length"]


@pytest.mark.parametrize(
    "wall, passed", [(179.9, True), (180.0, True), (180.1, False)], ids=["179.9s", "180s", "180.1s"]
)
def test_wall_claim(wall, passed):
    assert story.wall_claim(wall).passed is passed


# ----------------------------------------------------------------------------- quotes
@pytest.mark.parametrize(
    "text, expected, problems",
    [
        ("rate −0.65/step", "rate −0.646/step", 0),
        ("rate −0.64/step", "rate −0.646/step", 1),
        ("rate -0.65/step", "rate −0.6549/step", 0),
        ("loss 2.4e-08 at k = 0", "loss 2.4093e-08 at k = 0", 0),
        ("loss 2.5e-08 at k = 0", "loss 2.4093e-08 at k = 0", 1),
        ("the RNN keeps it", "the RNN loses it", 1),
        ("ids e0f9f4d5ef74", "ids e0f9f4d5ef75", 1),
    ],
    ids=[
        "rounded",
        "off-by-one-digit",
        "ascii-minus",
        "scientific",
        "scientific-off",
        "words-differ",
        "run-id-differs",
    ],
)
def test_quoted_mismatches(text, expected, problems):
    assert len(story.quoted_mismatches(text, expected)) == problems


def test_readme_block_and_description_replacement(tmp_path):
    text = f"intro\n{story.README_START}\nold\n{story.README_END}\ntail\n"
    new = story.replace_readme_block(text, "| a | b |")
    assert story.readme_block(new) == "| a | b |" and new.endswith(f"{story.README_END}\ntail\n")
    with pytest.raises(ValueError, match="no demo block"):
        story.readme_block("no markers here")
    spec = SPEC_PATH.read_text(encoding="utf-8")
    said = 'It says "‖∂s_T/∂s_k‖" and a back\\slash.'
    rewritten = story.replace_description(spec, said)
    assert tomllib.loads(rewritten)["description"] == said
    path = tmp_path / "spec.toml"
    path.write_text(rewritten, encoding="utf-8")
    assert load_spec(path).description == said
    with pytest.raises(ValueError, match="exactly one line"):
        story.replace_description("name = 'x'\n", said)


# ----------------------------------------------------------------------------- measure
def test_measure_reads_a_store_and_names_what_is_missing(tmp_path):
    data = {
        "name": "tiny-story",
        "base": {"task": "identity", "seq_len": 8, "hidden_size": 4, "steps": 3, "record_every": 2},
        "grid": {"cell": ["rnn", "gru"]},
    }
    spec = parse_spec(data)
    store_path = tmp_path / "store"
    assert run_sweep(spec, store_path, workers=1, progress=False).complete == 2
    store = open_store(store_path)
    measures = story.measure(spec, store)
    assert [r.cell for r in measures.runs] == ["rnn", "gru"]
    for run in measures.runs:
        series = store.run(run.run_id).metrics(probes="jacobian")
        last = series[series["step"] == 2].sort_values("t")["value"].to_numpy()
        assert run.rate_final == story.state_decay_rate(last) and run.final_step == 2
        assert math.isfinite(run.rate_init) and math.isfinite(run.loss_ratio)
    assert set(measures.roles()) == {"rnn", "gru"}
    bigger = parse_spec({**data, "grid": {"cell": ["rnn", "lstm"]}})
    with pytest.raises(KeyError, match="is not in the store"):
        story.measure(bigger, store)


# ----------------------------------------------------------------------------- quick start
def _readme() -> str:
    return README.read_text(encoding="utf-8")


def test_the_quick_start_runs_and_its_comment_quotes_what_it_prints():
    readme = _readme()
    section = readme.split("## Quick start", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README quick start", "exec"), {"__name__": "quick_start"})
    lines = out.getvalue().splitlines()
    assert lines.count("True") == 2  # the decomposition sums to autograd's gradient
    norms = {}
    for line in lines:
        cell, _, rest = line.partition(" ")
        if cell in ("rnn", "lstm") and cell not in norms:  # ‖∂L/∂h_k‖ at k = 30, 20, 10, 0
            norms[cell] = [float(v) for v in re.findall(r"\d\.\d+e[-+]\d+", rest)]
    assert [len(v) for v in norms.values()] == [4, 4]
    rnn, lstm = norms["rnn"], norms["lstm"]
    expected = (
        f"At torch's default initialisation ‖∂L/∂h_k‖ falls from {rnn[0]:.4e} at k = 30 to "
        f"{rnn[3]:.4e} at k = 0 for the RNN ({math.log10(rnn[0] / rnn[3]):.4f} orders of "
        f"magnitude over 30 steps) and from {lstm[0]:.4e} to {lstm[3]:.4e} for the LSTM "
        f"({math.log10(lstm[0] / lstm[3]):.4f} orders): at this init the LSTM vanishes too."
    )
    start = section.index("At torch's default initialisation")
    quoted = " ".join(section[start:].split(" too.", 1)[0].split()) + " too."
    assert story.quoted_mismatches(quoted, expected) == []


# ----------------------------------------------------------------------------- the demo
def test_the_demo_spec_is_valid_at_both_scales():
    demo, full = load_spec(SPEC_PATH), load_spec(SPEC_PATH, scale="full")
    assert demo.name == "vanishing-vs-lstm" and len(demo) <= len(full)
    assert demo.description.strip() and "to be generated" not in demo.description


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo, run once as ``gradlab demo --no-dash`` does: (measures, stdout, store path)."""
    store_path = tmp_path_factory.mktemp("demo") / "runs"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["demo", "--no-dash", "--no-progress", "--store", str(store_path)])
    assert code == 0, out.getvalue()
    spec = load_spec(SPEC_PATH)
    return story.measure(spec, open_store(store_path)), out.getvalue(), store_path


@pytest.mark.slow
def test_every_claim_of_the_demo_holds(demo_run):
    measures, _, _ = demo_run
    results = story.check(measures)
    assert all(r.passed for r in results), "\n".join(r.line() for r in results)
    roles = {r.role for r in results}
    assert roles == {"rnn", "lstm_remedy", "gru_remedy", "ordered", "chaotic"}


@pytest.mark.slow
def test_the_spec_description_quotes_what_the_demo_measures(demo_run):
    measures, _, _ = demo_run
    said = load_spec(SPEC_PATH).description
    assert story.quoted_mismatches(said, story.render_description(measures, exact=True)) == []


@pytest.mark.slow
def test_the_readme_quotes_what_the_demo_measures(demo_run):
    measures, stdout, _ = demo_run
    readme = _readme()
    block = story.readme_block(readme)
    assert story.quoted_mismatches(block, story.render_readme(measures, exact=True)) == []
    path = story.compare_path(measures)
    assert f"first view: http://127.0.0.1:8050{path}" in stdout  # what `gradlab demo` prints
    demo = readme.split("## The demo", 1)[1].split("\n## ", 1)[0]
    assert f"T = {measures.role('rnn').seq_len} steps" in demo
    timing = re.search(r"<!-- demo-timing -->(.*?)<!-- /demo-timing -->", demo, re.DOTALL)
    wall = re.search(r"the sweep took (\d+) s wall", timing.group(1))
    assert wall and story.wall_claim(float(wall.group(1))).passed
    thresholds = demo.split("<!-- /demo-timing -->", 1)[1].strip().split("\n\n", 1)[0]
    quoted = {abs(float(v.replace("−", "-"))) for v in re.findall(r"−?\d+(?:\.\d+)?", thresholds)}
    t = story.THRESHOLDS
    keys = ("rnn_rate_max", "gated_rate_min", "gated_ratio_max", "rnn_ratio_min")
    assert quoted == {abs(t[k]) for k in (*keys, "seq_len", "theory_gap_max", "wall_s_max")}


@pytest.mark.slow
def test_the_first_compare_view_shows_the_quoted_rates(demo_run):
    from gradlab.export.data import load_figure_data
    from gradlab.figures import FIGURES
    from gradlab.figures._common import fmt_rate

    measures, _, store_path = demo_run
    ids = story.compare_path(measures).split("runs=", 1)[1].split("&", 1)[0].split(",")
    data = load_figure_data(store_path, "jacobian_lag", ids, step=0)
    fig = FIGURES["jacobian_lag"].builder(data, run_ids=ids, step=0)
    fits = [t.name for t in fig.data if str(t.name).startswith("fit: ")]
    by_id = {r.run_id: r for r in measures.runs}
    for run_id, name in zip(ids, fits, strict=True):
        assert name.startswith(f"fit: {fmt_rate(by_id[run_id].rate_init)}"), name
