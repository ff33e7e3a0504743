"""The record path wherever the model lives: CUDA against a float64 CPU reference, and no host
sync per step.

On a GPU (these tests skip cleanly without one) a float32 record of every registered cell, one
layer and two bidirectional layers, matches the same model's float64 record on the CPU: states,
adjoints, contributions and their norms, step Jacobians and their norms, the dashboard's probes;
what it returns stays on the device; and the host syncs it makes (torch's CUDA sync debug mode)
do not grow with T. On the CPU the per-step property is checked by counting every call that
reads a tensor's value on the host (on a GPU, each is a sync): `item`, `tolist`, `cpu`,
`numpy`, `.to("cpu")`, and bool / float / int / index of a tensor.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter

import pytest
import torch
from cell_cases import CELL_ACTS, cell_id, make_input
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.overrides import TorchFunctionMode

import gradlab
from gradlab.probes import PROBES, ProbeContext, run_probes

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

T, B, N, IN = 12, 3, 5, 4
LAYOUTS = [pytest.param((1, False), id="L1"), pytest.param((2, True), id="L2-bi")]
CASES = [pytest.param((cell, act), id=cell_id(cell, act)) for cell, act in CELL_ACTS]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(single_thread):
    """See conftest.single_thread: tiny tensors, loaded machine."""


def loss_fn(out: torch.Tensor) -> torch.Tensor:
    """Many-to-many: every step's output against a fixed pattern, made on out's device."""
    steps = torch.arange(out.shape[0], dtype=out.dtype, device=out.device)
    pattern = torch.sin(steps[:, None, None] + torch.arange(out.shape[-1], device=out.device))
    return 0.5 * (out - pattern).square().sum() / out.shape[0]


def build(gradlab_model, case, layout) -> nn.Module:
    (cell, act), (layers, bidirectional) = case, layout
    return gradlab_model(
        cell, act, input_size=IN, hidden_size=N, num_layers=layers, bidirectional=bidirectional
    )


# ----- the CPU: no host read per step -----------------------------------------------------
#: Tensor methods that read a value on the host (a device-to-host sync on a GPU).
HOST_READS = frozenset(
    {"item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"}
)


class HostReads(TorchFunctionMode):
    """Counts, by name, the calls inside the block that read a tensor's value on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        to_cpu = name == "to" and any(
            (isinstance(a, torch.device) and a.type == "cpu") or (isinstance(a, str) and a == "cpu")
            for a in (*args[1:], kwargs.get("device"))
        )
        if name in HOST_READS or to_cpu:
            self.calls["to(cpu)" if to_cpu else name] += 1
        return func(*args, **kwargs)


def hot_path(model: nn.Module, x, loss=loss_fn, module: nn.Module | None = None):
    """What `benchmarks/record.py` calls "full": record (of `module` inside `model` when
    given), every parameter's contribution norms, every layer's step-Jacobian Frobenius norms."""
    rec = gradlab.record(model, x, loss, module=module)
    for name, _ in (model if module is None else module).named_parameters():
        rec.contribution_norms(name)
    for view in rec.layers.values():
        view.step_jacobian_norms("fro")
    return rec


def host_reads(run) -> Counter[str]:
    with HostReads() as reads:
        run()
    return reads.calls


def test_the_counter_sees_a_host_read():
    """The check below is real: a read added to a loop is counted once per pass."""
    x = torch.randn(4, 3)

    def reads() -> None:
        x.tolist()
        x.cpu()
        bool(x.any())

    assert host_reads(lambda: [float(row.sum()) for row in x]) == Counter({"__float__": 4})
    assert host_reads(reads) == Counter({"tolist": 1, "cpu": 1, "__bool__": 1})


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES)
def test_record_reads_nothing_on_the_host_per_step(gradlab_model, case, layout):
    """record + contribution norms + step-Jacobian norms make the same host reads at T = 6 and
    T = 30 (the loss's value and a few checks per call), and never copy a tensor to the host."""
    model = build(gradlab_model, case, layout)
    reads = {
        steps: host_reads(lambda steps=steps: hot_path(model, make_input(steps, B, IN)))
        for steps in (6, 30)
    }
    assert reads[6] == reads[30], reads
    assert reads[6]["__float__"] == 1, reads  # the loss's value, once
    assert not {"item", "tolist", "cpu", "numpy", "to(cpu)"} & set(reads[6]), reads


class Tagger(nn.Module):
    """A user's model: an nn.LSTM over a PackedSequence, then a linear head on the padded
    output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(IN, N, dtype=torch.float64)
        self.head = nn.Linear(N, 2, dtype=torch.float64)

    def forward(self, packed) -> torch.Tensor:
        out, _ = self.lstm(packed)
        padded, _ = nn.utils.rnn.pad_packed_sequence(out)
        return self.head(padded)


def test_a_torch_module_with_packed_input_reads_nothing_on_the_host_per_step():
    model = Tagger()

    def run(steps: int) -> Counter[str]:
        x = make_input(steps, B, IN)
        packed = pack_padded_sequence(x, torch.tensor([steps, steps - 2, 3]), enforce_sorted=False)
        loss = lambda out: out.square().mean()  # noqa: E731
        return host_reads(lambda: hot_path(model, packed, loss, model.lstm))

    assert run(6) == run(30)


# ----- CUDA against the float64 CPU reference --------------------------------------------
@pytest.fixture
def exact_cuda():
    """No TF32 in the matmuls and cuDNN RNN kernels: float32 is compared at float32 accuracy."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def close(actual: torch.Tensor, expected: torch.Tensor, what: str, rtol: float = 1e-4) -> None:
    """float32 on the device against float64 on the CPU, relative to the expected's size."""
    assert actual.device.type == "cuda", what
    scale = expected.abs().max().clamp_min(1e-30)
    error = (actual.to("cpu", torch.float64) - expected).abs().max()
    assert error <= rtol * scale, f"{what}: {error:.3g} > {rtol} x {scale:.3g}"


def recorded(rec: gradlab.Recording, model: nn.Module) -> dict[str, torch.Tensor]:
    """Every quantity the record path computes, by name."""
    values = {"loss": torch.tensor(rec.loss)}
    for (layer, reverse), view in rec.layers.items():
        at = f"layer {layer}{' reverse' if reverse else ''}"
        values[f"hidden, {at}"] = view.hidden
        values[f"grad_hidden, {at}"] = view.grad_hidden
        values[f"step_jacobian_norms fro, {at}"] = view.step_jacobian_norms("fro")
        values[f"step_jacobian_norms 2, {at}"] = view.step_jacobian_norms(2, samples=[0, 2])
        values[f"step_jacobians, {at}"] = view.step_jacobians(samples=[1])
        values[f"step_singular_values, {at}"] = view.step_singular_values(samples=[0])
        values[f"jacobian_norms, {at}"] = view.jacobian_norms(ord=2, samples=[0])
    for name, _ in model.named_parameters():
        values[f"contributions {name}"] = rec.contributions(name)
        values[f"contribution_norms {name}"] = rec.contribution_norms(name)
    return values


@cuda
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES)
def test_record_on_cuda_matches_the_float64_cpu_reference(gradlab_model, case, layout, exact_cuda):
    reference = build(gradlab_model, case, layout)  # float64, CPU
    model = copy.deepcopy(reference).to("cuda", torch.float32)
    x = make_input(T, B, IN)
    expected = recorded(gradlab.record(reference, x, loss_fn), reference)
    rec = gradlab.record(model, x.to("cuda", torch.float32), loss_fn)
    assert rec.output.device.type == "cuda"
    actual = recorded(rec, model)
    assert actual.keys() == expected.keys()
    for what, value in expected.items():
        if what == "loss":
            assert float(actual[what]) == pytest.approx(float(value), rel=1e-4)
        else:
            close(actual[what], value, what)


@cuda
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_dashboard_probes_on_cuda_match_the_cpu(gradlab_model, cell, exact_cuda):
    """Every probe the dashboard shows, on a CUDA record, against the float64 CPU record."""
    act = "tanh" if cell == "rnn" else None
    reference = build(gradlab_model, (cell, act), (1, False))
    model = copy.deepcopy(reference).to("cuda", torch.float32)
    x = make_input(T, B, IN)
    context = ProbeContext(jacobian_samples=(0, 1))
    probes = [cls() for cls in PROBES.values() if cls.probe != "summary"]  # fits: not values
    expected = run_probes(gradlab.record(reference, x, loss_fn), context, probes)
    actual = run_probes(
        gradlab.record(model, x.to("cuda", torch.float32), loss_fn), context, probes
    )
    for (probe, want), (_, got) in zip(expected, actual, strict=True):
        assert got["name"] == want["name"] and got["t"] == want["t"], probe.probe
        got_v, want_v = torch.as_tensor(got["value"]), torch.as_tensor(want["value"])
        if want_v.numel() == 0:  # e.g. the gate probes of a vanilla RNN
            assert got_v.numel() == 0, probe.probe
            continue
        scale = want_v.abs().max().clamp_min(1e-30)
        assert (got_v - want_v).abs().max() <= 1e-4 * scale, probe.probe


@cuda
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cuda_host_syncs_do_not_grow_with_t(gradlab_model, cell):
    """torch's sync debug mode warns at every host sync: as many at T = 8 as at T = 64."""
    act = "tanh" if cell == "rnn" else None
    model = build(gradlab_model, (cell, act), (2, True)).to("cuda", torch.float32)

    def syncs(steps: int) -> int:
        x = make_input(steps, B, IN).to("cuda", torch.float32)
        hot_path(model, x)  # warm-up: the first call's one-off work is not counted
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                hot_path(model, x)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    assert syncs(8) == syncs(64)
