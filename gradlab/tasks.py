"""Benchmark tasks of the vanishing-gradient literature.

`make(name, **params)` builds a task; `task.sample(batch_size, generator)` draws `(x, y)` with
`x` time-major `(T, B, input_size)`; `task.loss(pred, y)` scores the readout's output for the
whole sequence, `pred` of shape `(T, B, output_size)` (each task picks the steps it scores).

Every task states `baseline_loss`: the expected loss of the best predictor that knows the time
step t and the task's layout but nothing about the sampled sequence, i.e. a model that remembers
nothing. A model must get below it to show memory. Each class docstring derives its value.

Target shapes (`y`):

=================  =====================  ==========================================
task               y                      scored steps of `pred`
=================  =====================  ==========================================
adding             (B, 1) float           pred[-1], MSE
copy               (T, B) int64 classes   all T steps, cross-entropy
temporal_order     (B,) int64 classes     pred[-1], cross-entropy
sine               (T, B, 1) float        all T steps, MSE
generate           (T, B, 1) float        all T steps, MSE
identity           (B, input_size) float  pred[-1], MSE
seq_digits         (B,) int64 classes     pred[-1], cross-entropy
perm_digits        (B,) int64 classes     pred[-1], cross-entropy
zen_chars          (T, B) int64 classes   all T steps, cross-entropy
=================  =====================  ==========================================

The real-data tasks (`seq_digits`, `perm_digits`, `zen_chars`) read data that ships with an
installed package (scikit-learn's 8×8 digits, Python's own Zen text): nothing is downloaded.

Every task also states its input statistics, `input_second_moment()`: Σ_j E[x_{t,j}²] per step,
shape (T,), derived in its class docstring (theory's input drive: `gradlab.theory.predict_rate`).

All randomness goes through the `torch.Generator` passed to `sample`, on its device. Continuous
values are drawn in float64 and then cast to `dtype`, so the data do not depend on `dtype`.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import io
import math
import operator
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "KINDS",
    "TASKS",
    "AddingTask",
    "CopyTask",
    "GenerateTask",
    "IdentityTask",
    "PermDigitsTask",
    "SeqDigitsTask",
    "SineTask",
    "Task",
    "TemporalOrderTask",
    "ZenCharsTask",
    "make",
]

KINDS = ("many-to-one", "many-to-many", "one-to-many", "one-to-one")


def _int_param(task: str, name: str, value: Any, minimum: int) -> int:
    """Validate an integer parameter >= minimum; return it as a plain int."""
    try:
        if isinstance(value, bool):
            raise TypeError
        result = operator.index(value)
    except TypeError:
        raise ValueError(
            f"{task}: parameter {name!r} must be an integer >= {minimum}, got {value!r}"
        ) from None
    if result < minimum:
        raise ValueError(f"{task}: parameter {name!r} must be >= {minimum}, got {result}")
    return result


def _float_param(
    task: str, name: str, value: Any, *, low: float, high: float = math.inf, open_low: bool = False
) -> float:
    """Validate a finite real parameter in [low, high] (or (low, high]); return it as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)  # numpy / torch scalars
        except (TypeError, ValueError):
            raise ValueError(
                f"{task}: parameter {name!r} must be a real number, got {value!r}"
            ) from None
    result = float(value)
    bad_low = result <= low if open_low else result < low
    if not math.isfinite(result) or bad_low or result > high:
        lo = f"({low}" if open_low else f"[{low}"
        raise ValueError(f"{task}: parameter {name!r} must lie in {lo}, {high}], got {value!r}")
    return result


def _one_hot(tokens: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """One-hot encode int64 `tokens` `(...)` into `(..., n)` of `dtype`."""
    return torch.eye(n, dtype=dtype, device=tokens.device)[tokens]


@dataclass(frozen=True)
class Task:
    """Base class: a frozen dataclass of parameters; subclasses implement sampling and loss.

    The constructor only stores and validates its arguments (`_validate`).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        """Check (and normalise with object.__setattr__) the parameters."""

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    # -- interface ---------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The parameters this task was made with (defaults filled in); `make(name, **params)`
        rebuilds an equal task."""
        return asdict(self)

    @property
    def input_size(self) -> int:
        """Size I of the last axis of x."""
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        """Size O of the last axis of the readout output `pred`."""
        raise NotImplementedError

    @property
    def baseline_loss(self) -> float:
        """Expected loss of the best predictor that remembers nothing (see the class docstring)."""
        raise NotImplementedError

    def input_second_moment(self) -> np.ndarray:
        """Σ_j E[x_{t,j}²] for t = 0..T-1, (T,) float64: the input power a random W_ih turns into
        the theory's drive σ_v²(t) (derived in each class docstring)."""
        raise NotImplementedError

    def sample(
        self, batch_size: int, generator: torch.Generator, *, dtype: torch.dtype = torch.float32
    ) -> tuple[Tensor, Tensor]:
        """Draw a batch: x `(T, B, I)` of `dtype`, y as documented by the task; on the
        generator's device."""
        batch_size = _int_param(self.name, "batch_size", batch_size, 1)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"{self.name}: generator must be a torch.Generator, got {generator!r}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"{self.name}: dtype must be a floating torch.dtype, got {dtype!r}")
        return self._sample(batch_size, generator, generator.device, dtype)

    def _sample(
        self, batch: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Scalar loss of the readout output `pred` `(T, B, O)` against the targets `y`."""
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------
    def _check_pred(self, pred: Tensor, batch: int, steps: int | None = None) -> None:
        """Raise a ValueError unless pred is `(T, B, O)` (with T == steps when given)."""
        if not isinstance(pred, Tensor) or pred.dim() != 3:
            shape = tuple(pred.shape) if isinstance(pred, Tensor) else type(pred).__name__
            raise ValueError(
                f"{self.name}: pred must be time-major (T, B, {self.output_size}), got {shape}"
            )
        t, b, o = pred.shape
        if b != batch or o != self.output_size or (steps is not None and t != steps):
            want_t = "T" if steps is None else str(steps)
            raise ValueError(
                f"{self.name}: pred must have shape ({want_t}, {batch}, {self.output_size}), "
                f"got {tuple(pred.shape)}"
            )

    def _mse_last(self, pred: Tensor, y: Tensor) -> Tensor:
        """MSE between pred[-1] `(B, O)` and y `(B, O)`."""
        self._check_pred(pred, y.shape[0])
        return F.mse_loss(pred[-1], y.to(pred.dtype))

    def _mse_all(self, pred: Tensor, y: Tensor) -> Tensor:
        """MSE over all steps between pred `(T, B, O)` and y `(T, B, O)`."""
        self._check_pred(pred, y.shape[1], y.shape[0])
        return F.mse_loss(pred, y.to(pred.dtype))


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AddingTask(Task):
    """The adding problem (Hochreiter & Schmidhuber 1997; layout of Le, Jaitly & Hinton 2015).

    x `(T, B, 2)`: channel 0 holds values U(0, 1); channel 1 is 1 at exactly two positions, one
    uniform in the first half `[0, T//2)` and one uniform in the second half `[T//2, T)`, else 0.
    y `(B, 1)`: the sum of the two marked values. Loss: MSE of pred[-1] `(B, 1)`.

    Baseline 1/6: without memory of the marked values the best prediction is E[sum] = 1, whose
    MSE is Var(u1 + u2) = 2 · 1/12 = 1/6.

    Input second moment: E[u²] = 1/3 for the values, plus the marker's P(mark at t) (the marker
    is 0 or 1, so E[m_t²] = P(m_t = 1)): 1/⌊T/2⌋ for t < ⌊T/2⌋, 1/(T − ⌊T/2⌋) after. A sparse
    channel: the drive is about 1/3 + 2/T, not 1/3 + 1.
    """

    name: ClassVar[str] = "adding"
    kind: ClassVar[str] = "many-to-one"

    seq_len: int = 50

    def _validate(self) -> None:
        self._set("seq_len", _int_param(self.name, "seq_len", self.seq_len, 2))

    @property
    def input_size(self) -> int:
        return 2

    @property
    def output_size(self) -> int:
        return 1

    @property
    def baseline_loss(self) -> float:
        return 1.0 / 6.0

    def input_second_moment(self) -> np.ndarray:
        t, half = self.seq_len, self.seq_len // 2
        marks = np.where(np.arange(t) < half, 1.0 / half, 1.0 / (t - half))
        return 1.0 / 3.0 + marks

    def _sample(
        self, batch: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        t, half = self.seq_len, self.seq_len // 2
        values = torch.rand(t, batch, generator=gen, device=device, dtype=torch.float64)
        first = torch.randint(0, half, (batch,), generator=gen, device=device)
        second = torch.randint(half, t, (batch,), generator=gen, device=device)
        cols = torch.arange(batch, device=device)
        marks = torch.zeros(t, batch, device=device, dtype=torch.float64)
        marks[first, cols] = 1.0
        marks[second, cols] = 1.0
        x = torch.stack([values, marks], dim=-1).to(dtype)
        y = (values[first, cols] + values[second, cols]).unsqueeze(-1).to(dtype)
        return x, y

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """MSE of pred[-1] `(B, 1)` against y `(B, 1)`."""
        return self._mse_last(pred, y)


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CopyTask(Task):
    """The copy-memory problem (Arjovsky, Shah & Bengio 2016, "Unitary evolution RNNs").

    Length T = delay + 20. Input classes (one-hot over 10 channels): symbols 0..7, blank 8,
    delimiter 9. Steps 0..9 hold 10 symbols drawn uniformly from 0..7; steps 10..delay+8 are
    blanks (delay - 1 of them); step delay + 9 is the delimiter; the last 10 steps are blanks.
    y `(T, B)` int64 over 9 classes (symbols 0..7, blank 8): blank for the first delay + 10 steps,
    then the 10 symbols. Loss: cross-entropy of pred `(T, B, 9)` averaged over all T steps and B.

    Requires delay >= 1. Give either `delay` or `seq_len` (= delay + 20, so seq_len >= 21), or
    both if consistent; default delay = 10.

    Baseline 10 · ln 8 / (delay + 20): predicting blank with certainty for the first delay + 10
    steps costs 0, and without memory of the symbols the best prediction for each of the last 10
    steps is uniform over the 8 symbols, costing ln 8 each.

    Input second moment: every step is one-hot, so Σ_j x_{t,j}² = 1 exactly at every t.
    """

    name: ClassVar[str] = "copy"
    kind: ClassVar[str] = "many-to-many"

    N_SYMBOLS: ClassVar[int] = 8
    N_COPY: ClassVar[int] = 10
    BLANK: ClassVar[int] = 8
    DELIMITER: ClassVar[int] = 9

    delay: int | None = None
    seq_len: int | None = None

    def _validate(self) -> None:
        extra = 2 * self.N_COPY
        delay, seq_len = self.delay, self.seq_len
        if delay is not None:
            delay = _int_param(self.name, "delay", delay, 1)
        if seq_len is not None:
            seq_len = _int_param(self.name, "seq_len", seq_len, extra + 1)
        if delay is None:
            delay = 10 if seq_len is None else seq_len - extra
        if seq_len is None:
            seq_len = delay + extra
        if seq_len != delay + extra:
            raise ValueError(
                f"{self.name}: parameters 'delay' ({delay}) and 'seq_len' ({seq_len}) disagree: "
                f"seq_len must equal delay + {extra}"
            )
        self._set("delay", delay)
        self._set("seq_len", seq_len)

    @property
    def input_size(self) -> int:
        return self.N_SYMBOLS + 2

    @property
    def output_size(self) -> int:
        return self.N_SYMBOLS + 1

    @property
    def baseline_loss(self) -> float:
        assert self.seq_len is not None
        return self.N_COPY * math.log(self.N_SYMBOLS) / self.seq_len

    def input_second_moment(self) -> np.ndarray:
        assert self.seq_len is not None
        return np.ones(self.seq_len)

    def _sample(
        self, batch: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        assert self.seq_len is not None and self.delay is not None
        t, n = self.seq_len, self.N_COPY
        symbols = torch.randint(
            0, self.N_SYMBOLS, (n, batch), generator=gen, device=device, dtype=torch.int64
        )
        tokens = torch.full((t, batch), self.BLANK, device=device, dtype=torch.int64)
        tokens[:n] = symbols
        tokens[n + self.delay - 1] = self.DELIMITER
        x = _one_hot(tokens, self.input_size, dtype)
        y = torch.full((t, batch), self.BLANK, device=device, dtype=torch.int64)
        y[-n:] = symbols
        return x, y

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of pred `(T, B, 9)` (logits) against y `(T, B)`, mean over T and B."""
        self._check_pred(pred, y.shape[1], y.shape[0])
        return F.cross_entropy(pred.reshape(-1, self.output_size), y.reshape(-1))


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TemporalOrderTask(Task):
    """The temporal-order problem (Hochreiter & Schmidhuber 1997, task 6a; the length-scaled
    version of Pascanu, Mikolov & Bengio 2013).

    Input classes (one-hot over 8 channels): distractors a, b, c, d (0..3), X (4), Y (5), start
    marker B (6), end marker E (7). Step 0 is B, step T-1 is E, every other step a uniform
    distractor, except two relevant steps: t1 uniform in [⌊T/10⌋, ⌊2T/10⌋) and t2 uniform in
    [⌊5T/10⌋, ⌊6T/10⌋) (half-open windows, so 10%–20% and 50%–60% of the sequence), each
    independently X or Y with probability 1/2. y `(B,)` int64: the order, XX = 0, XY = 1,
    YX = 2, YY = 3. Loss: cross-entropy of pred[-1] `(B, 4)` (logits).

    Baseline ln 4: the four classes are equally likely, so without memory the best prediction is
    uniform, costing ln 4.

    Input second moment: every step is one-hot, so Σ_j x_{t,j}² = 1 exactly at every t.
    """

    name: ClassVar[str] = "temporal_order"
    kind: ClassVar[str] = "many-to-one"

    X: ClassVar[int] = 4
    START: ClassVar[int] = 6
    END: ClassVar[int] = 7

    seq_len: int = 50

    def _validate(self) -> None:
        self._set("seq_len", _int_param(self.name, "seq_len", self.seq_len, 10))

    @property
    def input_size(self) -> int:
        return 8

    @property
    def output_size(self) -> int:
        return 4

    @property
    def baseline_loss(self) -> float:
        return math.log(4.0)

    def input_second_moment(self) -> np.ndarray:
        return np.ones(self.seq_len)

    def windows(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The half-open windows `[lo, hi)` of the two relevant positions."""
        t = self.seq_len
        return (t // 10, 2 * t // 10), (5 * t // 10, 6 * t // 10)

    def _sample(
        self, batch: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        t = self.seq_len
        (lo1, hi1), (lo2, hi2) = self.windows()
        tokens = torch.randint(0, 4, (t, batch), generator=gen, device=device, dtype=torch.int64)
        tokens[0] = self.START
        tokens[-1] = self.END
        pos1 = torch.randint(lo1, hi1, (batch,), generator=gen, device=device)
        pos2 = torch.randint(lo2, hi2, (batch,), generator=gen, device=device)
        sym1 = torch.randint(0, 2, (batch,), generator=gen, device=device, dtype=torch.int64)
        sym2 = torch.randint(0, 2, (batch,), generator=gen, device=device, dtype=torch.int64)
        cols = torch.arange(batch, device=device)
        tokens[pos1, cols] = self.X + sym1
        tokens[pos2, cols] = self.X + sym2
        x = _one_hot(tokens, self.input_size, dtype)
        return x, 2 * sym1 + sym2

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of pred[-1] `(B, 4)` (logits) against y `(B,)`."""
        self._check_pred(pred, y.shape[0])
        return F.cross_entropy(pred[-1], y)


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SineTask(Task):
    """Next-value prediction of noisy sine waves (a standard many-to-many sequence-prediction
    benchmark, e.g. the sine-wave experiments of Pascanu, Mikolov & Bengio 2013 §5).

    Per sequence: angular frequency ω ~ U(min_freq, max_freq) (radians per step), phase
    φ ~ U(0, 2π); v_t = sin(ω t + φ) + noise · ε_t with ε_t ~ N(0, 1) i.i.d., t = 0..T.
    x `(T, B, 1)` = v_0..v_{T-1}; y `(T, B, 1)` = v_1..v_T. Loss: MSE over all T steps.

    Baseline 1/2 + noise²: the best predictor that uses no information about the sequence
    predicts the marginal mean E[v_t] = 0 (the phase is uniform), and its MSE is the marginal
    variance Var(sin(ω t + φ)) + noise² = 1/2 + noise² at every t, whatever ω. (A model that only
    sees the current x_t, without memory, can do better than this line.)

    Input second moment: E[v_t²] = E[sin²(ω t + φ)] + noise² = 1/2 + noise² at every t (φ is
    uniform on [0, 2π), so sin² averages to 1/2 whatever ω; ε is independent with unit variance).
    """

    name: ClassVar[str] = "sine"
    kind: ClassVar[str] = "many-to-many"

    seq_len: int = 50
    noise: float = 0.1
    min_freq: float = 0.1
    max_freq: float = 0.5

    def _validate(self) -> None:
        self._set("seq_len", _int_param(self.name, "seq_len", self.seq_len, 1))
        self._set("noise", _float_param(self.name, "noise", self.noise, low=0.0))
        band: dict[str, Any] = {"low": 0.0, "high": math.pi, "open_low": True}  # (0, π]
        lo = _float_param(self.name, "min_freq", self.min_freq, **band)
        hi = _float_param(self.name, "max_freq", self.max_freq, **band)
        if lo > hi:
            raise ValueError(
                f"{self.name}: parameter 'min_freq' ({lo}) must be <= 'max_freq' ({hi})"
            )
        self._set("min_freq", lo)
        self._set("max_freq", hi)

    @property
    def input_size(self) -> int:
        return 1

    @property
    def output_size(self) -> int:
        return 1

    @property
    def baseline_loss(self) -> float:
        return 0.5 + self.noise**2

    def input_second_moment(self) -> np.ndarray:
        return np.full(self.seq_len, 0.5 + self.noise**2)

    def _sample(
        self, batch: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        f64 = torch.float64
        u = torch.rand(batch, generator=gen, device=device, dtype=f64)
        omega = self.min_freq + (self.max_freq - self.min_freq) * u
        phase = 2 * math.pi * torch.rand(batch, generator=gen, device=device, dtype=f64)
        steps = torch.arange(self.seq_len + 1, device=device, dtype=f64).unsqueeze(1)
        eps = torch.randn(self.seq_len + 1, batch, generator=gen, device=device, dtype=f64)
        v = torch.sin(omega * steps + phase) + self.noise * eps
        v = v.unsqueeze(-1).to(dtype)
        return v[:-1], v[1:]

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """MSE of pred `(T, B, 1)` against y `(T, B, 1)` over all steps."""
        return self._mse_all(pred, y)


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenerateTask(Task):
    """Class-conditional sequence generation (one-to-many; the "one input, long output" setting
    in which gradients must reach t = 0 from every later step).

    A class c uniform in 0..num_classes-1 is shown once: x `(T, B, num_classes)` is one-hot(c) at
    t = 0 and zero at t >= 1. y `(T, B, 1)`: y_t = sin(freq · (c + 1) · (t + 1)), t = 0..T-1.
    Loss: MSE over all T steps. Requires num_classes · freq <= π (no aliasing).

    Baseline: without the class the best prediction at step t is the mean over classes
    m_t = mean_c y_t(c); its MSE is the variance over classes, averaged over steps,
    (1/T) Σ_t (1/K) Σ_c (y_t(c) - m_t)², computed exactly from this definition in float64.

    Input second moment: 1 at t = 0 (one-hot), 0 at t >= 1 (no input after the class).
    """

    name: ClassVar[str] = "generate"
    kind: ClassVar[str] = "one-to-many"

    seq_len: int = 20
    num_classes: int = 4
    freq: float = 0.3

    def _validate(self) -> None:
        self._set("seq_len", _int_param(self.name, "seq_len", self.seq_len, 1))
        k = _int_param(self.name, "num_classes", self.num_classes, 2)
        self._set("num_classes", k)
        freq = _float_param(self.name, "freq", self.freq, low=0.0, high=math.pi / k, open_low=True)
        self._set("freq", freq)

    @property
    def input_size(self) -> int:
        return self.num_classes

    @property
    def output_size(self) -> int:
        return 1

    def templates(self, device: torch.device | str | None = None) -> Tensor:
        """The target of every class, `(T, num_classes)` float64: y_t(c)."""
        steps = torch.arange(1, self.seq_len + 1, device=device, dtype=torch.float64)
        classes = torch.arange(1, self.num_classes + 1, device=device, dtype=torch.float64)
        return torch.sin(steps.unsqueeze(1) * (self.freq * classes))

    @property
    def baseline_loss(self) -> float:
        return float(self.templates().var(dim=1, correction=0).mean())

    def input_second_moment(self) -> np.ndarray:
        power = np.zeros(self.seq_len)
        power[0] = 1.0
        return power

    def _sample(
        self, batch: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        k = self.num_classes
        cls = torch.randint(0, k, (batch,), generator=gen, device=device, dtype=torch.int64)
        x = torch.zeros(self.seq_len, batch, k, device=device, dtype=dtype)
        x[0] = _one_hot(cls, k, dtype)
        y = self.templates(device)[:, cls].unsqueeze(-1).to(dtype)
        return x, y

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """MSE of pred `(T, B, 1)` against y `(T, B, 1)` over all steps."""
        return self._mse_all(pred, y)


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IdentityTask(Task):
    """Recall a Gaussian vector (one-to-one regression; with seq_len > 1, recall across a delay,
    the setting of the identity-initialisation analyses, e.g. Le, Jaitly & Hinton 2015).

    x `(T, B, input_size)`: x_0 ~ N(0, I) at t = 0, zeros at t >= 1 (seq_len = 1: plain
    one-to-one regression). y `(B, input_size)`: x_0 itself when `seed` is None, else W x_0 for a
    fixed W `(input_size, input_size)` with entries N(0, 1/input_size) drawn from
    `torch.Generator().manual_seed(seed)` (see `weight()`). Loss: MSE of pred[-1].

    Baseline: the best predictor without information about x_0 predicts the mean 0, so the loss
    is the target variance averaged over outputs: 1 for y = x_0, ‖W‖²_F / input_size for
    y = W x_0 (exact, from W). With seq_len = 1 there is nothing to remember and this is simply
    the "no information" line.

    Input second moment: E‖x_0‖² = input_size (I standard normals) at t = 0, 0 at t >= 1.
    """

    name: ClassVar[str] = "identity"
    kind: ClassVar[str] = "one-to-one"

    seq_len: int = 1
    input_size: int = 4  # type: ignore[assignment]
    seed: int | None = None

    def _validate(self) -> None:
        self._set("seq_len", _int_param(self.name, "seq_len", self.seq_len, 1))
        self._set("input_size", _int_param(self.name, "input_size", self.input_size, 1))
        if self.seed is not None:
            self._set("seed", _int_param(self.name, "seed", self.seed, 0))

    @property
    def output_size(self) -> int:
        return self.input_size

    def weight(self) -> Tensor | None:
        """The fixed map W `(input_size, input_size)` float64 on CPU (None when seed is None)."""
        if self.seed is None:
            return None
        gen = torch.Generator().manual_seed(self.seed)
        n = self.input_size
        return torch.randn(n, n, generator=gen, dtype=torch.float64) / math.sqrt(n)

    @property
    def baseline_loss(self) -> float:
        w = self.weight()
        return 1.0 if w is None else float(w.square().sum() / self.input_size)

    def input_second_moment(self) -> np.ndarray:
        power = np.zeros(self.seq_len)
        power[0] = float(self.input_size)
        return power

    def _sample(
        self, batch: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        x0 = torch.randn(batch, self.input_size, generator=gen, device=device, dtype=torch.float64)
        x = torch.zeros(self.seq_len, batch, self.input_size, device=device, dtype=dtype)
        x[0] = x0.to(dtype)
        w = self.weight()
        y = x0 if w is None else x0 @ w.to(device).T
        return x, y.to(dtype)

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """MSE of pred[-1] `(B, input_size)` against y `(B, input_size)`."""
        return self._mse_last(pred, y)


# ---------------------------------------------------------------------------------------------
#: Fraction of the 1,797 digits held out as the test split, and the seed of the fixed shuffle
#: that chooses them (the split never changes).
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
DIGITS_SPLITS = ("train", "test")


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: (pixels (n, 64) float64 in [0, 1], labels (n,) int64,
    test mask (n,) bool of the fixed split)."""
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError as exc:  # pragma: no cover - a runtime dependency
        raise ModuleNotFoundError(
            "the digits tasks need scikit-learn: pip install 'scikit-learn>=1.5,<2'"
        ) from exc
    digits = load_digits()
    pixels = np.asarray(digits.data, dtype=np.float64) / 16.0  # intensities 0..16
    labels = np.asarray(digits.target, dtype=np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    test = np.zeros(len(labels), dtype=bool)
    test[order[: round(DIGITS_TEST_FRACTION * len(labels))]] = True
    return pixels, labels, test


@dataclass(frozen=True)
class SeqDigitsTask(Task):
    """Sequential digits: classify an 8×8 handwritten digit read one pixel per step (the
    pixel-by-pixel protocol of Le, Jaitly & Hinton 2015, "A simple way to initialize recurrent
    networks of rectified linear units", on scikit-learn's bundled `load_digits`, UCI's 1,797
    8×8 digits; no download).

    x `(64, B, 1)`: the pixels in row-major order, intensity / 16 in [0, 1]. y `(B,)` int64 in
    0..9. Loss: cross-entropy of pred[-1] `(B, 10)`. Each sample is drawn uniformly (with
    replacement) from the `split`: a fixed 80/20 train/test split (`DIGITS_SPLIT_SEED`);
    `split_data()` gives a whole split for evaluation and `accuracy` scores predictions.
    `seq_len` is 64 (given for the common interface; any other value raises).

    Baseline: without memory of the pixels the best prediction is the split's class
    frequencies p_c, whose expected cross-entropy is their entropy −Σ p_c ln p_c (≈ ln 10: the
    classes are nearly balanced).

    Input second moment: one channel, E[x_t²] = the split's mean squared intensity of pixel t
    (exact for uniform sampling from the split).
    """

    name: ClassVar[str] = "seq_digits"
    kind: ClassVar[str] = "many-to-one"

    PIXELS: ClassVar[int] = 64
    N_CLASSES: ClassVar[int] = 10

    seq_len: int | None = None
    split: str = "train"

    def _validate(self) -> None:
        if self.seq_len is not None:
            seq_len = _int_param(self.name, "seq_len", self.seq_len, 1)
            if seq_len != self.PIXELS:
                raise ValueError(
                    f"{self.name}: parameter 'seq_len' must be {self.PIXELS} (8×8 pixels, one "
                    f"per step), got {seq_len}"
                )
        self._set("seq_len", self.PIXELS)
        if self.split not in DIGITS_SPLITS:
            raise ValueError(
                f"{self.name}: parameter 'split' must be one of {DIGITS_SPLITS}, got {self.split!r}"
            )

    @property
    def input_size(self) -> int:
        return 1

    @property
    def output_size(self) -> int:
        return self.N_CLASSES

    def order(self) -> np.ndarray:
        """The pixel shown at each step, (64,) int64: 0..63 in row-major order."""
        return np.arange(self.PIXELS)

    def _split_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(pixels in step order (n, 64) float64, labels (n,) int64) of the split."""
        pixels, labels, test = _digits()
        rows = test if self.split == "test" else ~test
        return pixels[rows][:, self.order()], labels[rows]

    def split_data(
        self, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> tuple[Tensor, Tensor]:
        """The whole split in order: x `(64, n, 1)` of `dtype`, y `(n,)` int64."""
        pixels, labels = self._split_arrays()
        x = torch.from_numpy(pixels.T.copy()).unsqueeze(-1).to(device=device, dtype=dtype)
        return x, torch.from_numpy(labels).to(device)

    @property
    def baseline_loss(self) -> float:
        _, labels = self._split_arrays()
        p = np.bincount(labels, minlength=self.N_CLASSES) / len(labels)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    def input_second_moment(self) -> np.ndarray:
        pixels, _ = self._split_arrays()
        return (pixels**2).mean(axis=0)

    def _sample(
        self, batch: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        pixels, labels = self._split_arrays()
        rows = torch.randint(0, len(labels), (batch,), generator=gen, device=device).cpu().numpy()
        x = torch.from_numpy(pixels[rows].T.copy()).unsqueeze(-1).to(device=device, dtype=dtype)
        return x, torch.from_numpy(labels[rows]).to(device)

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of pred[-1] `(B, 10)` against y `(B,)`."""
        self._check_pred(pred, y.shape[0])
        return F.cross_entropy(pred[-1], y)

    def accuracy(self, pred: Tensor, y: Tensor) -> float:
        """Fraction of rows whose arg-max of pred[-1] `(B, 10)` is y `(B,)`."""
        self._check_pred(pred, y.shape[0])
        return float((pred[-1].argmax(-1) == y).double().mean())


@dataclass(frozen=True)
class PermDigitsTask(SeqDigitsTask):
    """Permuted sequential digits (Le, Jaitly & Hinton 2015's permuted protocol): as
    `seq_digits`, but the pixels are shown in a fixed random order, the permutation
    `np.random.default_rng(perm_seed).permutation(64)`, so neighbouring pixels are far apart in
    time and the dependencies are long. Baseline and input second moment as `seq_digits` (the
    second moment permuted with the pixels).
    """

    name: ClassVar[str] = "perm_digits"

    perm_seed: int = 0

    def _validate(self) -> None:
        super()._validate()
        self._set("perm_seed", _int_param(self.name, "perm_seed", self.perm_seed, 0))

    def order(self) -> np.ndarray:
        """The pixel shown at each step, (64,) int64: the fixed permutation of `perm_seed`."""
        return np.random.default_rng(self.perm_seed).permutation(self.PIXELS)


# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def zen_text() -> str:
    """The Zen of Python (PEP 20) as the standard library's `this` module holds it (ROT13),
    decoded; importing `this` prints it, so that print is swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return codecs.decode(this.s, "rot13")


@dataclass(frozen=True)
class ZenCharsTask(Task):
    """Character-level language model on the Zen of Python (PEP 20), the text the standard
    library's `this` module ships (so every Python has it; no download): predict each next
    character (the char-rnn setting of Karpathy 2015 / Graves 2013 "Generating sequences with
    recurrent neural networks", on a tiny text).

    The vocabulary is the text's distinct characters, sorted (V of them). A sample is a window
    of seq_len + 1 characters c_s..c_{s+T} starting at s uniform in 0..L−T−1 (L: the text's
    length). x `(T, B, V)`: one-hot c_s..c_{s+T−1}. y `(T, B)` int64: c_{s+1}..c_{s+T}, the next
    character at every step. Loss: cross-entropy of pred `(T, B, V)` averaged over all T steps
    and B.

    Baseline: without memory the best prediction at step t is the distribution of the character
    at position s + t + 1 over the window starts s, whose expected cross-entropy is its entropy
    H_t; the baseline is the mean of H_t over t, the text's unigram entropy up to edge effects
    (exact: computed from the text).

    Input second moment: one-hot, so Σ_j x_{t,j}² = 1 at every t.
    """

    name: ClassVar[str] = "zen_chars"
    kind: ClassVar[str] = "many-to-many"

    seq_len: int = 50

    def _validate(self) -> None:
        longest = len(zen_text()) - 1
        self._set("seq_len", _int_param(self.name, "seq_len", self.seq_len, 1))
        if self.seq_len > longest:
            raise ValueError(
                f"{self.name}: parameter 'seq_len' must be <= {longest} (the text has "
                f"{longest + 1} characters), got {self.seq_len}"
            )

    @property
    def vocabulary(self) -> str:
        """The text's distinct characters, sorted: class c is vocabulary[c]."""
        return "".join(sorted(set(zen_text())))

    def codes(self) -> np.ndarray:
        """The text as class indices, (L,) int64."""
        index = {ch: i for i, ch in enumerate(self.vocabulary)}
        return np.array([index[ch] for ch in zen_text()], dtype=np.int64)

    @property
    def input_size(self) -> int:
        return len(self.vocabulary)

    @property
    def output_size(self) -> int:
        return len(self.vocabulary)

    @property
    def baseline_loss(self) -> float:
        codes, t = self.codes(), self.seq_len
        starts = len(codes) - t  # s = 0..L-T-1
        total = 0.0
        for step in range(t):
            targets = codes[step + 1 : step + 1 + starts]
            p = np.bincount(targets, minlength=self.output_size) / starts
            p = p[p > 0]
            total += float(-(p * np.log(p)).sum())
        return total / t

    def input_second_moment(self) -> np.ndarray:
        return np.ones(self.seq_len)

    def _sample(
        self, batch: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        codes = torch.from_numpy(self.codes()).to(device)
        t = self.seq_len
        starts = torch.randint(0, len(codes) - t, (batch,), generator=gen, device=device)
        window = codes[starts[None, :] + torch.arange(t + 1, device=device)[:, None]]  # (T+1, B)
        return _one_hot(window[:-1], self.input_size, dtype), window[1:]

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of pred `(T, B, V)` against y `(T, B)`, averaged over steps and B."""
        self._check_pred(pred, y.shape[1], y.shape[0])
        return F.cross_entropy(pred.reshape(-1, self.output_size), y.reshape(-1))


# ---------------------------------------------------------------------------------------------
TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        AddingTask,
        CopyTask,
        TemporalOrderTask,
        SineTask,
        GenerateTask,
        IdentityTask,
        SeqDigitsTask,
        PermDigitsTask,
        ZenCharsTask,
    )
}


def make(name: str, **params: Any) -> Task:
    """Build the task registered as `name` with `params` (e.g. `make("adding", seq_len=100)`).

    Raises ValueError naming the allowed tasks for an unknown name, and naming the parameter for
    an unknown keyword or a bad value.
    """
    cls = TASKS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown task {name!r}; expected one of: {', '.join(TASKS)}")
    allowed = [f.name for f in fields(cls)]
    for key in params:
        if key not in allowed:
            raise ValueError(
                f"{name}: unknown parameter {key!r}; allowed parameters: {', '.join(allowed)}"
            )
    return cls(**params)
