"""Tests for gradlab.tasks: shapes, determinism, baselines, perfect predictors and errors."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from gradlab import tasks
from gradlab.tasks import TASKS, Task, make

BIG = 1e4  # logit margin that makes softmax exactly one-hot in float32

# Small but non-default parameters for every task, plus the defaults.
CASES: dict[str, tuple[str, dict]] = {
    "adding-default": ("adding", {}),
    "adding-T7-odd": ("adding", {"seq_len": 7}),
    "copy-default": ("copy", {}),
    "copy-delay3": ("copy", {"delay": 3}),
    "copy-seq_len25": ("copy", {"seq_len": 25}),
    "temporal_order-default": ("temporal_order", {}),
    "temporal_order-T10": ("temporal_order", {"seq_len": 10}),
    "sine-default": ("sine", {}),
    "sine-noise0.3": ("sine", {"seq_len": 12, "noise": 0.3}),
    "generate-default": ("generate", {}),
    "generate-K3": ("generate", {"seq_len": 9, "num_classes": 3, "freq": 0.5}),
    "identity-default": ("identity", {}),
    "identity-T5-seeded": ("identity", {"seq_len": 5, "input_size": 3, "seed": 7}),
    "seq_digits-default": ("seq_digits", {}),
    "seq_digits-test": ("seq_digits", {"seq_len": 64, "split": "test"}),
    "perm_digits-default": ("perm_digits", {}),
    "perm_digits-seed5": ("perm_digits", {"perm_seed": 5}),
    "zen_chars-default": ("zen_chars", {}),
    "zen_chars-T7": ("zen_chars", {"seq_len": 7}),
}
case = pytest.mark.parametrize("name,params", list(CASES.values()), ids=list(CASES))

KIND = {
    "adding": "many-to-one",
    "copy": "many-to-many",
    "temporal_order": "many-to-one",
    "sine": "many-to-many",
    "generate": "one-to-many",
    "identity": "one-to-one",
    "seq_digits": "many-to-one",
    "perm_digits": "many-to-one",
    "zen_chars": "many-to-many",
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def perfect(task: Task, x: Tensor, y: Tensor) -> Tensor:
    """A readout output `(T, B, O)` built from the targets that scores the minimum loss."""
    t, b = x.shape[:2]
    if task.name in ("copy", "zen_chars"):
        return BIG * F.one_hot(y, task.output_size).float()
    if task.name in ("temporal_order", "seq_digits", "perm_digits"):
        pred = torch.zeros(t, b, task.output_size)
        pred[-1] = BIG * F.one_hot(y, task.output_size).float()
        return pred
    if task.kind in ("many-to-one", "one-to-one"):
        return y.unsqueeze(0).expand(t, b, task.output_size).clone()
    return y.clone()


def memoryless(task: Task, t: int, b: int) -> Tensor:
    """The baseline predictor stated in each docstring: uses only the step index, never x or y."""
    if task.name == "adding":
        return torch.ones(t, b, 1)
    if task.name == "copy":
        pred = torch.full((t, b, 9), -BIG)
        pred[: t - 10, :, 8] = 0.0  # certain blank until the delimiter
        pred[t - 10 :, :, :8] = 0.0  # then uniform over the 8 symbols
        return pred
    if task.name == "temporal_order":
        return torch.zeros(t, b, 4)
    if task.name in ("seq_digits", "perm_digits"):  # the split's class frequencies
        assert isinstance(task, tasks.SeqDigitsTask)
        _, labels = task.split_data()
        prior = torch.bincount(labels, minlength=10).float() / len(labels)
        return prior.log().expand(t, b, 10).clone()
    if task.name == "zen_chars":  # the next character's distribution at each step
        text, vocab = tasks.zen_text(), task.vocabulary
        starts = len(text) - t
        counts = torch.zeros(t, len(vocab))
        for step in range(t):
            for ch in text[step + 1 : step + 1 + starts]:
                counts[step, vocab.index(ch)] += 1
        return (counts / starts).log().unsqueeze(1).expand(t, b, len(vocab)).clone()
    if task.name == "generate":
        assert isinstance(task, tasks.GenerateTask)
        steps = torch.arange(1, t + 1, dtype=torch.float64)
        classes = torch.arange(1, task.num_classes + 1, dtype=torch.float64)
        mean = torch.sin(steps[:, None] * task.freq * classes).mean(1)  # from the docstring
        return mean.float()[:, None, None].expand(t, b, 1).clone()
    # sine, identity: the marginal mean is 0
    return torch.zeros(t, b, task.output_size)


# --- shapes, dtypes, metadata ------------------------------------------------------------------
@case
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_shapes_dtypes_kind(name: str, params: dict, dtype: torch.dtype) -> None:
    task = make(name, **params)
    x, y = task.sample(5, gen(), dtype=dtype)
    t = task.seq_len
    assert task.name == name and task.kind == KIND[name] and task.kind in tasks.KINDS
    assert x.shape == (t, 5, task.input_size) and x.dtype == dtype
    expected_y = {
        "adding": ((5, 1), dtype),
        "copy": ((t, 5), torch.int64),
        "temporal_order": ((5,), torch.int64),
        "sine": ((t, 5, 1), dtype),
        "generate": ((t, 5, 1), dtype),
        "identity": ((5, task.input_size), dtype),
        "seq_digits": ((5,), torch.int64),
        "perm_digits": ((5,), torch.int64),
        "zen_chars": ((t, 5), torch.int64),
    }[name]
    assert (tuple(y.shape), y.dtype) == expected_y
    pred = torch.zeros(t, 5, task.output_size, dtype=dtype, requires_grad=True)
    loss = task.loss(pred, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert isinstance(task.baseline_loss, float) and task.baseline_loss > 0


@case
def test_default_dtype_and_params_roundtrip(name: str, params: dict) -> None:
    task = make(name, **params)
    assert task.sample(2, gen())[0].dtype == torch.float32
    assert make(name, **task.params) == task
    for key, value in params.items():
        assert task.params[key] == value
    assert TASKS[name] is type(task)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.seq_len = 3  # type: ignore[misc]


def test_registry_names() -> None:
    assert set(TASKS) == set(KIND)


# --- determinism --------------------------------------------------------------------------------
@case
def test_same_seed_same_batch(name: str, params: dict) -> None:
    task = make(name, **params)
    x1, y1 = task.sample(16, gen(3))
    x2, y2 = task.sample(16, gen(3))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, y3 = task.sample(16, gen(4))
    assert not (torch.equal(x3, x1) and torch.equal(y3, y1))


@case
def test_values_do_not_depend_on_dtype(name: str, params: dict) -> None:
    task = make(name, **params)
    x32, y32 = task.sample(8, gen(1), dtype=torch.float32)
    x64, y64 = task.sample(8, gen(1), dtype=torch.float64)
    torch.testing.assert_close(x64.float(), x32)
    torch.testing.assert_close(y64.to(y32.dtype), y32)


# --- baselines and perfect predictors ----------------------------------------------------------
@case
def test_baseline_matches_sampling(name: str, params: dict) -> None:
    """The memoryless predictor's loss, averaged over independent batches, equals baseline_loss
    within 5 standard errors."""
    task = make(name, **params)
    g = gen(11)
    # The classification baselines cost the same on every sequence (zero variance): small batches.
    size = 50 if name in ("copy", "temporal_order", "seq_digits", "perm_digits") else 250
    losses = []
    for _ in range(20):
        x, y = task.sample(size, g)
        losses.append(float(task.loss(memoryless(task, *x.shape[:2]), y)))
    mean = sum(losses) / len(losses)
    sd = math.sqrt(sum((v - mean) ** 2 for v in losses) / (len(losses) - 1))
    se = sd / math.sqrt(len(losses))
    assert abs(mean - task.baseline_loss) <= 5 * se + 1e-5, (mean, se, task.baseline_loss)


# --- input statistics (the theory's drive) -----------------------------------------------------
@case
def test_input_second_moment_matches_sampling(name: str, params: dict) -> None:
    """Σ_j E[x_{t,j}²] per step, (T,), against a large sample: within 5 standard errors at
    every t (exact where the input is deterministic in power: one-hot, zero)."""
    task = make(name, **params)
    x, _ = task.sample(20_000, gen(13), dtype=torch.float64)
    power = x.square().sum(-1)  # (T, B)
    expected = torch.as_tensor(task.input_second_moment(), dtype=torch.float64)
    assert expected.shape == (x.shape[0],)
    mean, se = power.mean(1), power.std(1) / math.sqrt(power.shape[1])
    assert torch.all((mean - expected).abs() <= 5 * se + 1e-12), (mean, expected)


def test_input_second_moment_states_sparsity() -> None:
    """Adding's marker channel is on at two steps of T; identity's input is zero after t = 0."""
    adding = make("adding", seq_len=100).input_second_moment()
    assert adding.mean() == pytest.approx(1 / 3 + 2 / 100)
    identity = make("identity", seq_len=5, input_size=3).input_second_moment()
    assert identity.tolist() == [3.0, 0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("delay", [1, 10, 50], ids=lambda d: f"delay{d}")
def test_copy_baseline_exact(delay: int) -> None:
    task = make("copy", delay=delay)
    assert task.baseline_loss == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-12)
    x, y = task.sample(64, gen())
    loss = task.loss(memoryless(task, *x.shape[:2]), y)
    assert float(loss) == pytest.approx(task.baseline_loss, rel=1e-5)


def test_stated_baselines() -> None:
    assert make("adding").baseline_loss == pytest.approx(1 / 6)
    assert make("temporal_order").baseline_loss == pytest.approx(math.log(4))
    assert make("sine", noise=0.2).baseline_loss == pytest.approx(0.5 + 0.04)
    assert make("identity").baseline_loss == 1.0
    seeded = make("identity", input_size=3, seed=5)
    w = seeded.weight()
    assert w is not None and seeded.baseline_loss == pytest.approx(float(w.square().sum()) / 3)


def test_generate_baseline_from_definition() -> None:
    task = make("generate", seq_len=6, num_classes=3, freq=0.4)
    rows = [[math.sin(0.4 * (c + 1) * (t + 1)) for c in range(3)] for t in range(6)]
    per_step = [sum((v - sum(r) / 3) ** 2 for v in r) / 3 for r in rows]
    assert task.baseline_loss == pytest.approx(sum(per_step) / 6, rel=1e-12)


@case
def test_perfect_predictor_scores_zero(name: str, params: dict) -> None:
    task = make(name, **params)
    x, y = task.sample(32, gen(2))
    assert float(task.loss(perfect(task, x, y), y)) == pytest.approx(0.0, abs=1e-6)


def test_many_to_one_scores_only_last_step() -> None:
    task = make("adding", seq_len=6)
    x, y = task.sample(4, gen())
    pred = perfect(task, x, y)
    pred[:-1] = 100.0  # earlier steps are not scored
    assert float(task.loss(pred, y)) == 0.0


# --- task-specific structure --------------------------------------------------------------------
@pytest.mark.parametrize("seq_len", [2, 3, 50, 101], ids=lambda t: f"T{t}")
def test_adding_two_marks(seq_len: int) -> None:
    task = make("adding", seq_len=seq_len)
    x, y = task.sample(256, gen(5))
    values, marks = x[..., 0], x[..., 1]
    assert set(marks.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(marks.sum(0), torch.full((256,), 2.0))
    half = seq_len // 2
    assert torch.equal(marks[:half].sum(0), torch.ones(256))
    assert torch.equal(marks[half:].sum(0), torch.ones(256))
    assert ((values >= 0) & (values <= 1)).all()
    torch.testing.assert_close((values * marks).sum(0, keepdim=True).T, y)


@pytest.mark.parametrize("delay", [1, 4], ids=lambda d: f"delay{d}")
def test_copy_layout(delay: int) -> None:
    task = make("copy", delay=delay)
    x, y = task.sample(32, gen(6))
    t = delay + 20
    assert task.seq_len == t and x.shape == (t, 32, 10)
    assert torch.equal(x.sum(-1), torch.ones(t, 32))  # one-hot
    tokens = x.argmax(-1)
    assert (tokens[:10] < 8).all()
    assert (tokens[10 : 9 + delay] == 8).all()
    assert (tokens[9 + delay] == 9).all()
    assert (tokens[10 + delay :] == 8).all()
    assert (y[: 10 + delay] == 8).all()
    assert torch.equal(y[-10:], tokens[:10])


def test_copy_seq_len_alias() -> None:
    assert make("copy").delay == 10 and make("copy").seq_len == 30
    assert make("copy", seq_len=25).delay == 5
    assert make("copy", delay=7).seq_len == 27
    assert make("copy", delay=7, seq_len=27) == make("copy", delay=7)
    with pytest.raises(ValueError, match=r"'delay'.*'seq_len'.*disagree"):
        make("copy", delay=7, seq_len=30)
    with pytest.raises(ValueError, match="'seq_len' must be >= 21"):
        make("copy", seq_len=20)
    with pytest.raises(ValueError, match="'delay' must be >= 1"):
        make("copy", delay=0)


@pytest.mark.parametrize("seq_len", [10, 37, 100], ids=lambda t: f"T{t}")
def test_temporal_order_layout(seq_len: int) -> None:
    task = make("temporal_order", seq_len=seq_len)
    x, y = task.sample(200, gen(8))
    tokens = x.argmax(-1)
    assert (tokens[0] == 6).all() and (tokens[-1] == 7).all()
    relevant = (tokens == 4) | (tokens == 5)
    assert torch.equal(relevant.sum(0), torch.full((200,), 2))
    (lo1, hi1), (lo2, hi2) = task.windows()
    assert (lo1, hi1) == (seq_len // 10, 2 * seq_len // 10)
    assert (lo2, hi2) == (5 * seq_len // 10, 6 * seq_len // 10)
    pos = relevant.T.nonzero()[:, 1].view(200, 2).T  # (2, B), time-ordered
    assert ((pos[0] >= lo1) & (pos[0] < hi1)).all()
    assert ((pos[1] >= lo2) & (pos[1] < hi2)).all()
    cols = torch.arange(200)
    first, second = tokens[pos[0], cols] - 4, tokens[pos[1], cols] - 4
    assert torch.equal(y, 2 * first + second)
    assert set(y.tolist()) == {0, 1, 2, 3}


def test_sine_target_is_next_input() -> None:
    task = make("sine", seq_len=15, noise=0.0)
    x, y = task.sample(8, gen(9))
    assert torch.equal(x[1:], y[:-1])
    assert (x.abs() <= 1).all()


def test_generate_targets_follow_class() -> None:
    task = make("generate", seq_len=8, num_classes=4, freq=0.25)
    x, y = task.sample(64, gen(10))
    assert torch.equal(x[1:], torch.zeros_like(x[1:]))
    assert torch.equal(x[0].sum(-1), torch.ones(64))
    cls = x[0].argmax(-1)
    t = torch.arange(1, 9, dtype=torch.float64)[:, None]
    expected = torch.sin(0.25 * (cls + 1).double() * t).float()
    torch.testing.assert_close(y[..., 0], expected)


@pytest.mark.parametrize("seed", [None, 3], ids=["x", "Wx"])
def test_identity_targets(seed: int | None) -> None:
    task = make("identity", seq_len=4, input_size=3, seed=seed)
    x, y = task.sample(16, gen(12))
    assert torch.equal(x[1:], torch.zeros_like(x[1:]))
    w = task.weight()
    expected = x[0] if w is None else x[0] @ w.float().T
    torch.testing.assert_close(y, expected)


def test_digits_split_is_fixed_and_disjoint() -> None:
    """scikit-learn's 1,797 digits split 80/20 into a partition (each image in exactly one
    split, with its label, pixels row-major / 16), the same every time."""
    from collections import Counter

    from sklearn.datasets import load_digits

    digits = load_digits()
    everything = Counter(
        (tuple(float(v) / 16 for v in r), int(c))
        for r, c in zip(digits.data, digits.target, strict=True)
    )
    splits = [
        make("seq_digits", split=s).split_data(dtype=torch.float64) for s in tasks.DIGITS_SPLITS
    ]
    assert splits[1][0].shape == (64, round(0.2 * len(digits.target)), 1)
    seen: Counter = Counter()
    for x, y in splits:
        seen.update((tuple(r), int(c)) for r, c in zip(x[:, :, 0].T.tolist(), y, strict=True))
    assert seen == everything
    again_x, _ = make("seq_digits", split="test").split_data(dtype=torch.float64)
    assert torch.equal(again_x, splits[1][0])


def test_perm_digits_shows_the_same_pixels_in_a_fixed_order() -> None:
    plain, permuted = make("seq_digits"), make("perm_digits", perm_seed=3)
    order = permuted.order()
    assert sorted(order.tolist()) == list(range(64)) and order.tolist() != list(range(64))
    x, y = plain.sample(16, gen(5))
    xp, yp = permuted.sample(16, gen(5))
    assert torch.equal(y, yp) and torch.equal(xp, x[torch.as_tensor(order)])
    assert make("perm_digits", perm_seed=4).order().tolist() != order.tolist()


def test_digits_baseline_is_the_class_prior_entropy() -> None:
    """Nearly balanced classes: just under ln 10."""
    for split in ("train", "test"):
        baseline = make("seq_digits", split=split).baseline_loss
        assert math.log(10) - 0.01 < baseline <= math.log(10)


def test_digits_accuracy() -> None:
    task = make("seq_digits")
    x, y = task.sample(32, gen(1))
    assert task.accuracy(perfect(task, x, y), y) == 1.0
    wrong = perfect(task, x, (y + 1) % 10)
    assert task.accuracy(wrong, y) == 0.0


def test_zen_text_and_its_baseline() -> None:
    text = tasks.zen_text()
    assert text.startswith("The Zen of Python, by Tim Peters") and "Namespaces" in text
    task = make("zen_chars", seq_len=20)
    assert task.vocabulary == "".join(sorted(set(text)))
    counts = torch.tensor([text.count(ch) for ch in task.vocabulary], dtype=torch.float64)
    p = counts / counts.sum()
    unigram = float(-(p * p.log()).sum())
    assert task.baseline_loss == pytest.approx(unigram, abs=0.02)
    x, y = task.sample(4, gen())
    decoded = ["".join(task.vocabulary[c] for c in x[:, b].argmax(-1).tolist()) for b in range(4)]
    following = ["".join(task.vocabulary[c] for c in y[:, b].tolist()) for b in range(4)]
    for inp, nxt in zip(decoded, following, strict=True):
        assert (inp + nxt[-1]) in text and inp[1:] == nxt[:-1]


# --- errors ------------------------------------------------------------------------------------
def test_unknown_task_names_allowed() -> None:
    with pytest.raises(ValueError, match="unknown task 'nope'") as info:
        make("nope")
    for name in TASKS:
        assert name in str(info.value)


BAD_PARAMS: dict[str, tuple[str, dict, str]] = {
    "adding-seq_len1": ("adding", {"seq_len": 1}, "'seq_len' must be >= 2"),
    "adding-seq_len-float": ("adding", {"seq_len": 2.5}, "'seq_len' must be an integer"),
    "adding-seq_len-bool": ("adding", {"seq_len": True}, "'seq_len' must be an integer"),
    "adding-unknown-kw": ("adding", {"length": 5}, "unknown parameter 'length'.*seq_len"),
    "copy-unknown-kw": ("copy", {"symbols": 5}, "unknown parameter 'symbols'.*delay"),
    "temporal_order-seq_len9": ("temporal_order", {"seq_len": 9}, "'seq_len' must be >= 10"),
    "sine-seq_len0": ("sine", {"seq_len": 0}, "'seq_len' must be >= 1"),
    "sine-noise-neg": ("sine", {"noise": -0.1}, "'noise'"),
    "sine-noise-nan": ("sine", {"noise": float("nan")}, "'noise'"),
    "sine-freq-order": ("sine", {"min_freq": 0.5, "max_freq": 0.2}, "'min_freq'.*'max_freq'"),
    "sine-freq-nyquist": ("sine", {"max_freq": 4.0}, "'max_freq'"),
    "generate-classes1": ("generate", {"num_classes": 1}, "'num_classes' must be >= 2"),
    "generate-aliasing": ("generate", {"freq": 1.0}, "'freq'"),
    "identity-seq_len0": ("identity", {"seq_len": 0}, "'seq_len' must be >= 1"),
    "identity-input0": ("identity", {"input_size": 0}, "'input_size' must be >= 1"),
    "identity-seed-neg": ("identity", {"seed": -1}, "'seed' must be >= 0"),
    "seq_digits-seq_len50": ("seq_digits", {"seq_len": 50}, "'seq_len' must be 64"),
    "seq_digits-split": ("seq_digits", {"split": "val"}, "'split' must be one of"),
    "perm_digits-seed-neg": ("perm_digits", {"perm_seed": -1}, "'perm_seed' must be >= 0"),
    "zen_chars-too-long": ("zen_chars", {"seq_len": 10_000}, "'seq_len' must be <= "),
}


@pytest.mark.parametrize("name,params,message", list(BAD_PARAMS.values()), ids=list(BAD_PARAMS))
def test_bad_params_name_the_parameter(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(name, **params)


def test_bad_sample_arguments() -> None:
    task = make("adding", seq_len=5)
    with pytest.raises(ValueError, match="'batch_size'"):
        task.sample(0, gen())
    with pytest.raises(ValueError, match="dtype"):
        task.sample(2, gen(), dtype=torch.int64)
    with pytest.raises(TypeError, match="generator"):
        task.sample(2, 0)  # type: ignore[arg-type]


LOSS_CASES: dict[str, Callable[[], tuple[Task, Tensor, Tensor]]] = {
    "adding-2d-pred": lambda: (make("adding", seq_len=4), torch.zeros(3, 1), torch.zeros(3, 1)),
    "adding-wrong-O": lambda: (make("adding", seq_len=4), torch.zeros(4, 3, 2), torch.zeros(3, 1)),
    "copy-wrong-T": lambda: (
        make("copy", delay=1),
        torch.zeros(20, 3, 9),
        torch.zeros(21, 3, dtype=torch.int64),
    ),
    "sine-wrong-B": lambda: (make("sine", seq_len=4), torch.zeros(4, 2, 1), torch.zeros(4, 3, 1)),
}


@pytest.mark.parametrize("build", list(LOSS_CASES.values()), ids=list(LOSS_CASES))
def test_loss_rejects_bad_pred_shape(build: Callable[[], tuple[Task, Tensor, Tensor]]) -> None:
    task, pred, y = build()
    with pytest.raises(ValueError, match=r"pred must"):
        task.loss(pred, y)
