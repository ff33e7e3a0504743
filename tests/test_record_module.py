"""`gradlab.record(model, inputs, loss_fn, module=...)` on a user's nn.Module, against autograd.

The reference is the whole model's own `loss.backward()` (torch's fused kernels, torch's dropout)
under the same seed: Σ_k of every contribution must equal `param.grad` of the recorded
submodule's parameters. Ids read ``lstm-L2-bi-packed-drop`` and so on.
"""

from __future__ import annotations

import pytest
import torch
from cell_cases import CELL_ACTS  # every registered cell x built-in activation
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import gradlab
from gradlab.record import Recording

VOCAB, EMB, N, CLASSES = 13, 5, 6, 3
TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# relative to the gradient's norm: float64 exact to rounding, float32 to its precision
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture(scope="module", autouse=True)
def _one_thread(single_thread):
    """See conftest.single_thread: tiny tensors, loaded machine."""


class Tagger(nn.Module):
    """Embedding + recurrent module + Linear head; reads the outputs and the final state(s)."""

    def __init__(self, cell: str, dtype: torch.dtype, head_on_state: bool = True, **kw) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMB, dtype=dtype)
        self.rnn = TORCH[cell](EMB, N, dtype=dtype, **kw)
        directions = 2 if kw.get("bidirectional") else 1
        size = kw.get("proj_size") or N
        self.head = nn.Linear(directions * size, CLASSES, dtype=dtype)
        self.head_on_state = head_on_state
        self.batch_first = kw.get("batch_first", False)

    def forward(self, tokens, lengths=None, h0=None):
        x = self.emb(tokens)  # (T, B, E), (B, T, E) batch_first, or (T, E) unbatched
        if lengths is not None:
            x = pack_padded_sequence(x, lengths, batch_first=self.batch_first, enforce_sorted=False)
        out, state = self.rnn(x, h0)
        if lengths is not None:
            out = pad_packed_sequence(out, batch_first=self.batch_first)[0]
        logits = self.head(out)
        if not self.head_on_state:
            return logits, None
        parts = state if isinstance(state, tuple) else (state,)
        return logits, sum(p.tanh().sum() for p in parts)  # the head reads h_n (and c_n)


def loss_fn(result):
    logits, from_state = result
    loss = logits.square().mean() + logits.sum(-1).sin().mean()
    return loss if from_state is None else loss + 0.1 * from_state


def _tokens(T: int, B: int, batch_first: bool, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (T, B), generator=gen)
    return tokens.T.contiguous() if batch_first else tokens


def _autograd(model, inputs, seed):
    """Every parameter's .grad from the whole model's own backward (same seed: same masks)."""
    model.zero_grad()
    torch.manual_seed(seed)
    loss_fn(model(*inputs)).backward()
    return {name: p.grad.clone() for name, p in model.rnn.named_parameters()}


def _check_sums(rec: Recording, grads: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
    for name, grad in grads.items():
        total = rec.contributions(name).sum(0)
        error = float((total - grad).abs().max()) / max(float(grad.norm()), 1e-30)
        assert error <= TOLERANCE[dtype], f"{name}: relative error {error:.2e}"


LENGTHS = [*range(3, 41, 3), 40]  # 3…40, B = 14, T = 40


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("proj", [0, 4], ids=["noproj", "proj4"])
def test_packed_dropout_lstm_sums_to_autograd(dtype, proj):
    """The issue's test: Embedding + 2-layer LSTM (dropout 0.2, train mode) + Linear on a
    PackedSequence of lengths 3…40."""
    torch.manual_seed(0)
    model = Tagger("lstm", dtype, num_layers=2, dropout=0.2, proj_size=proj).train()
    lengths = torch.tensor(LENGTHS)
    inputs = (_tokens(max(LENGTHS), len(LENGTHS), False), lengths)
    grads = _autograd(model, inputs, seed=7)
    model.zero_grad()
    torch.manual_seed(7)
    rec = gradlab.record(model, inputs, loss_fn, module="rnn")
    _check_sums(rec, grads, dtype)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters()), ".grad touched"
    assert rec.lengths.tolist() == LENGTHS
    mask = rec.step_mask  # (T, B)
    assert mask.shape == (max(LENGTHS), len(LENGTHS)) and int(mask.sum()) == sum(LENGTHS)
    for (layer, reverse), lr in rec.layers.items():
        # padded steps: exactly zero adjoint, so exactly zero contribution from them
        assert not lr.grad_hidden[1:][~mask].any(), (layer, reverse)
        assert not lr.grad_cell[1:][~mask].any(), (layer, reverse)


KINDS = (
    "plain", "bi", "bf", "h0", "packed-bi", "packed-bf-h0", "drop", "bf-drop", "packed-bi-drop",
    "unbatched", "unbatched-h0",
)  # fmt: skip


def _cases():
    for cell in ("rnn", "gru", "lstm"):
        for kind in KINDS:
            yield pytest.param(cell, kind, id=f"{cell}-{kind}")


@pytest.mark.parametrize(("cell", "kind"), list(_cases()))
def test_module_sums_to_autograd(cell, kind):
    dtype, T, B, L = torch.float64, 7, 4, 2
    kw = dict(num_layers=L, bidirectional="bi" in kind, batch_first="bf" in kind)
    if "drop" in kind:
        kw["dropout"] = 0.3
    torch.manual_seed(3)
    model = Tagger(cell, dtype, **kw).train()
    D = 2 if kw["bidirectional"] else 1
    tokens = _tokens(T, B, kw["batch_first"])
    lengths, h0 = None, None
    batch = (L * D, B, N)
    if "unbatched" in kind:
        tokens, batch = tokens[:, 0], (L * D, N)  # (T,): the embedding gives (T, E)
    if "packed" in kind:
        lengths = torch.tensor([7, 2, 5, 3])
    if "h0" in kind:
        h = 0.5 * torch.randn(batch, dtype=dtype)
        h0 = (h, 0.3 * torch.randn(batch, dtype=dtype)) if cell == "lstm" else h
    inputs = (tokens, lengths, h0)
    grads = _autograd(model, inputs, seed=5)
    torch.manual_seed(5)
    rec = gradlab.record(model, inputs, loss_fn, module="rnn")
    _check_sums(rec, grads, dtype)
    assert sorted(rec.layers) == [(layer, d) for layer in range(L) for d in (False, True)[:D]]
    assert rec.T == T and rec.hidden.shape[1] == (1 if "unbatched" in kind else B)


def test_module_by_identity_default_and_several():
    """module= the submodule itself; default: every recurrent submodule (a dict when several)."""
    torch.manual_seed(0)
    model = Tagger("gru", torch.float64, num_layers=1)
    inputs = (_tokens(5, 3, False),)
    by_name = gradlab.record(model, inputs, loss_fn, module="rnn")
    by_module = gradlab.record(model, inputs, loss_fn, module=model.rnn)
    default = gradlab.record(model, inputs, loss_fn)
    for rec in (by_module, default):
        assert isinstance(rec, Recording)
        torch.testing.assert_close(
            rec.contributions("weight_hh"), by_name.contributions("weight_hh")
        )

    class Stacked(nn.Module):  # two recurrent modules in a row: ∂L/∂(first's output) flows
        def __init__(self):  # through the second's autograd graph
            super().__init__()
            self.low = nn.LSTM(3, 4, dtype=torch.float64)
            self.mix = nn.Linear(4, 4, dtype=torch.float64)
            self.high = nn.GRU(4, 5, dtype=torch.float64)

        def forward(self, x):
            return self.high(self.mix(self.low(x)[0]).tanh())[0]

    stacked = Stacked()
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    recs = gradlab.record(stacked, x, lambda y: y.square().sum())
    assert isinstance(recs, dict) and list(recs) == ["low", "high"]
    stacked.zero_grad()
    stacked(x).square().sum().backward()
    for name, rec in recs.items():
        grads = {n: p.grad for n, p in getattr(stacked, name).named_parameters()}
        _check_sums(rec, grads, torch.float64)


@pytest.mark.parametrize(
    ("cell", "act"), CELL_ACTS, ids=[f"{c}-{a}" if a else c for c, a in CELL_ACTS]
)
def test_gradlab_model_inside_a_module(helpers, cell, act):
    """Every registered cell's gradlab model (also those without a torch kernel) inside a
    user's model, bidirectional, batch_first, its final state read by the loss."""
    inner = helpers.build("gradlab", cell, act, num_layers=2, bidirectional=True,
                          batch_first=True, seed=3)  # fmt: skip
    model = nn.Sequential(inner)
    x = helpers.make_input(5, 2, 3, batch_first=True)

    def loss(result):
        parts = result[1] if isinstance(result[1], tuple) else (result[1],)
        return result[0].sin().sum() + sum(p.square().sum() for p in parts)

    rec = gradlab.record(model, x, loss)
    model.zero_grad()
    loss(model(x)).backward()
    _check_sums(rec, {n: p.grad for n, p in inner.named_parameters()}, torch.float64)


def test_old_api_unchanged_for_gradlab_models():
    """record(gradlab_model, x, loss_fn, h0): loss_fn still maps the output alone."""
    torch.manual_seed(0)
    model = gradlab.LSTM(3, 4, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    rec = gradlab.record(model, x, lambda out: out.square().sum())
    model.zero_grad()
    model(x)[0].square().sum().backward()
    _check_sums(rec, {n: p.grad for n, p in model.named_parameters()}, torch.float64)


@pytest.mark.parametrize(
    ("tokens", "lengths", "match"),
    [
        (torch.zeros(7, 0, dtype=torch.long), None, r"inputs.*size 0"),
        (torch.zeros(0, 3, dtype=torch.long), None, r"inputs.*size 0"),
    ],
    ids=["B0", "T0"],
)
def test_empty_inputs_are_value_errors(tokens, lengths, match):
    model = Tagger("lstm", torch.float64)
    with pytest.raises(ValueError, match=match):
        gradlab.record(model, (tokens, lengths), loss_fn, module="rnn")


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.zeros(5, 2, 4), r"input.*input_size = 3.*\(5, 2, 4\)"),
        (torch.zeros(5, 2, 3, 1), r"input.*input_size = 3"),
        (torch.zeros(5, 0, 3), r"input.*B = 0"),
        (torch.zeros(0, 2, 3), r"input.*T = 0"),
    ],
    ids=["features", "4d", "B0", "T0"],
)
def test_bad_submodule_input_is_a_value_error(x, match):
    """The recurrent submodule's input is checked where it arrives (B = 0 made by the model)."""
    model = nn.Sequential(nn.Identity(), nn.LSTM(3, 4))
    with pytest.raises(ValueError, match=match):
        gradlab.record(model, x.unsqueeze(0)[0], lambda r: r[0].sum(), module="1")
    assert "forward" not in vars(model[1]), "the replaced forward must be restored"


def test_bad_h0_and_module_names():
    model = Tagger("lstm", torch.float64)
    tokens = _tokens(5, 3, False)
    with pytest.raises(ValueError, match=r"hx.*\(1, 3, 6\)"):
        gradlab.record(model, (tokens, None, (torch.zeros(1, 2, N), torch.zeros(1, 2, N))), loss_fn)
    with pytest.raises(ValueError, match=r"not a submodule.*\['rnn'\]"):
        gradlab.record(model, (tokens,), loss_fn, module="lstm")
    with pytest.raises(TypeError, match=r"'head' is a Linear"):
        gradlab.record(model, (tokens,), loss_fn, module="head")
    with pytest.raises(ValueError, match=r"no nn\.RNN"):
        gradlab.record(nn.Linear(2, 2), torch.zeros(1, 2), lambda y: y.sum())


def _projected_step(p, x, h, c):
    """torch's projected LSTM step written out: (h', c'), h' = W_hr (o ⊙ tanh c')."""
    i, f, g, o = (x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]).chunk(
        4, -1
    )
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return (o.sigmoid() * c.tanh()) @ p["weight_hr"].T, c


def test_projected_lstm_jacobians_and_contributions():
    """A projected gradlab LSTM alone (the record(model, x, loss_fn, h0) API): step Jacobians
    of s = (h, c), size P + N, equal autograd's of the written-out step; Σ_k = autograd."""
    torch.manual_seed(0)
    P, T, B = 3, 5, 2
    model = gradlab.LSTM(4, N, proj_size=P, dtype=torch.float64)
    x = torch.randn(T, B, 4, dtype=torch.float64)
    rec = gradlab.record(model, x, lambda out: out.sin().sum())
    model.zero_grad()
    model(x)[0].sin().sum().backward()
    _check_sums(rec, {n: p.grad for n, p in model.named_parameters()}, torch.float64)
    assert rec.state_size == P + N and rec.hidden.shape == (T + 1, B, P)
    assert rec.cell.shape == (T + 1, B, N)
    params = {n[:-3]: p.detach() for n, p in model.named_parameters()}
    for t in range(1, T + 1):
        for b in range(B):

            def step(s, t=t, b=b):
                h, c = _projected_step(params, x[t - 1, b], s[:P], s[P:])
                return torch.cat((h, c))

            s = torch.cat((rec.hidden[t - 1, b], rec.cell[t - 1, b]))
            want = torch.autograd.functional.jacobian(step, s)
            torch.testing.assert_close(rec.step_jacobian(t)[b], want, rtol=1e-10, atol=1e-12)
    fro = torch.stack([torch.linalg.matrix_norm(rec.step_jacobian(t)) for t in range(1, T + 1)])
    torch.testing.assert_close(rec.step_jacobian_norms("fro"), fro)
    product = rec.step_jacobian(3) @ rec.step_jacobian(2)
    torch.testing.assert_close(rec.jacobian(3, 1), product)
    torch.testing.assert_close(rec.jacobian_norms(3)[1], torch.linalg.matrix_norm(product, ord=2))
    norms = rec.contribution_norms("weight_hr")
    torch.testing.assert_close(norms, rec.contributions("weight_hr").flatten(1).norm(dim=1))


@pytest.mark.parametrize("kind", ["packed", "unbatched"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradlab_model_takes_packed_and_unbatched(cell, kind):
    """gradlab models take what torch's take; record(model, x, loss_fn) still maps the output."""
    torch.manual_seed(0)
    model = {"rnn": gradlab.RNN, "lstm": gradlab.LSTM, "gru": gradlab.GRU}[cell](
        3, 4, num_layers=2, bidirectional=True, dtype=torch.float64
    )
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    if kind == "packed":
        x = pack_padded_sequence(x, torch.tensor([2, 6, 4]), enforce_sorted=False)

        def loss(out):
            return pad_packed_sequence(out)[0].sin().sum()
    else:
        x = x[:, 0]

        def loss(out):
            return out.sin().sum()

    reference = TORCH[cell](3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    reference.load_state_dict(model.state_dict())
    leaves = torch.utils._pytree.tree_leaves  # a PackedSequence's and the state's tensors
    for got, want in zip(leaves(model(x)), leaves(reference(x)), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    rec = gradlab.record(model, x, loss)
    model.zero_grad()
    loss(model(x)[0]).backward()
    _check_sums(rec, {n: p.grad for n, p in model.named_parameters()}, torch.float64)


def test_gradlab_model_errors():
    model = gradlab.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"x has batch size B = 0"):
        gradlab.record(model, torch.zeros(5, 0, 3), lambda out: out.sum())
    with pytest.raises(ValueError, match=r"x \(a PackedSequence\).*input_size = 3"):
        model(pack_padded_sequence(torch.zeros(5, 2, 2), torch.tensor([5, 3])))
    looped = gradlab.RNN(3, 4, activation="sigmoid")
    with pytest.raises(TypeError, match=r"PackedSequence needs a cell with a torch kernel"):
        looped(pack_padded_sequence(torch.zeros(5, 2, 3), torch.tensor([5, 3])))
    assert looped(torch.zeros(5, 3))[0].shape == (5, 4)  # unbatched through the plain loop


def test_entry_points_are_exported():
    import gradlab.record_module as submodule  # the package keeps the function (PEP 562)

    assert callable(gradlab.record_module) and callable(submodule)
    assert gradlab.record_module.__module__ == "gradlab.record_module"
    assert gradlab.recurrent_submodules(Tagger("gru", torch.float64)).keys() == {"rnn"}


@pytest.mark.parametrize("adjoint_dtype", [None, torch.float64], ids=["adj-model", "adj-f64"])
def test_projected_bidirectional_packed_with_h0(adjoint_dtype):
    """proj_size with both directions, variable lengths, a given (h0, c0) of sizes P and N."""
    torch.manual_seed(4)
    P, L, D, B, T = 2, 2, 2, 3, 6
    model = Tagger("lstm", torch.float64, num_layers=L, bidirectional=True, proj_size=P)
    h0 = (
        torch.randn(L * D, B, P, dtype=torch.float64),
        torch.randn(L * D, B, N, dtype=torch.float64),
    )
    inputs = (_tokens(T, B, False), torch.tensor([6, 1, 4]), h0)
    grads = _autograd(model, inputs, seed=0)
    rec = gradlab.record(model, inputs, loss_fn, module="rnn", adjoint_dtype=adjoint_dtype)
    _check_sums(rec, grads, torch.float64)
    assert rec.layer(1, reverse=True).hidden.shape == (T + 1, B, P)
    assert not rec.layer(1, reverse=True).grad_hidden[1:][~rec.step_mask].any()


def test_readme_example_runs(capsys):
    """README's "Your own model" snippet runs as it stands."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("### Your own model\n", 1)[1].split("\n#", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_snippet"})
    assert "tensor([40,  3, 17, 25])" in capsys.readouterr().out


def test_packed_sorted_and_dropout_of_one():
    """enforce_sorted=True (no permutation indices) and dropout p = 1 (torch zeroes the input)."""
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2, dropout=1.0, bidirectional=True, dtype=torch.float64)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([6, 4, 1]))  # sorted: no indices
    assert packed.sorted_indices is None

    def loss(result):
        out, (_, c) = result
        return out.data.sin().sum() + c.square().sum()

    lstm.zero_grad()
    loss(lstm(packed)).backward()
    grads = {n: p.grad.clone() for n, p in lstm.named_parameters()}
    rec = gradlab.record(nn.Sequential(lstm), packed, loss)
    _check_sums(rec, grads, torch.float64)
    assert not rec.layer(1).inputs.any()  # everything between the layers was dropped


@pytest.mark.parametrize("several", [False, True], ids=["one", "two-recorded"])
def test_in_place_ops_on_the_output(several):
    """A head that works in place on what the recurrent module returned (relu_, mul_) is
    recorded as autograd sees it."""

    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4, dtype=torch.float64)
            self.other = nn.RNN(3, 2, dtype=torch.float64)

        def forward(self, x):
            out, h = self.rnn(x)
            out.relu_()
            h.mul_(2.0)
            extra = self.other(x)[0].sum() if several else 0.0
            return out.square().sum() + h.sin().sum() + extra

    torch.manual_seed(0)
    model = InPlace()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    model.zero_grad()
    model(x).backward()
    rec = gradlab.record(model, x, lambda loss: loss, module=None if several else "rnn")
    rec = rec["rnn"] if several else rec
    _check_sums(rec, {n: p.grad for n, p in model.rnn.named_parameters()}, torch.float64)


def test_contribution_probe_has_weight_hr_of_a_projected_lstm():
    from gradlab.probes import ContributionProbe, ProbeContext, run_probes

    torch.manual_seed(0)
    model = Tagger("lstm", torch.float64, proj_size=2)
    rec = gradlab.record(model, (_tokens(5, 3, False),), loss_fn)
    ((_, rows),) = run_probes(rec, ProbeContext(), [ContributionProbe()])
    values = [v for n, v in zip(rows["name"], rows["value"], strict=True) if n == "weight_hr"]
    torch.testing.assert_close(
        torch.tensor(values, dtype=torch.float64), rec.contribution_norms("weight_hr")
    )


def test_projected_lstm_alone_two_layers_bidirectional_with_h0():
    """The gradlab-model API with proj_size: (h0, c0) of sizes P and N, every layer/direction."""
    torch.manual_seed(1)
    P, L, D, B = 2, 2, 2, 3
    model = gradlab.LSTM(3, N, num_layers=L, bidirectional=True, proj_size=P, dtype=torch.float64)
    x = torch.randn(6, B, 3, dtype=torch.float64)
    h0 = (
        torch.randn(L * D, B, P, dtype=torch.float64),
        torch.randn(L * D, B, N, dtype=torch.float64),
    )
    rec = gradlab.record(model, x, lambda out: out.sin().sum(), h0)
    model.zero_grad()
    model(x, h0)[0].sin().sum().backward()
    _check_sums(rec, {n: p.grad for n, p in model.named_parameters()}, torch.float64)
    with pytest.raises(ValueError, match=r"h0 must have shape .*\(4, 3, 2\)"):
        gradlab.record(model, x, None, (h0[1], h0[1]))


def test_keyword_inputs_no_loss_and_calls_other_than_one():
    torch.manual_seed(0)
    model = Tagger("gru", torch.float64)
    tokens = _tokens(5, 3, False)
    by_keywords = gradlab.record(model, {"tokens": tokens}, loss_fn)
    by_position = gradlab.record(model, (tokens,), loss_fn)
    torch.testing.assert_close(by_keywords.grad_hidden, by_position.grad_hidden, rtol=0, atol=0)
    forward_only = gradlab.record(model, (tokens,))
    assert forward_only.loss is None
    torch.testing.assert_close(forward_only.hidden, by_position.hidden, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="needs a loss"):
        forward_only.contributions("weight_hh")

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(3, 4)

        def forward(self, x, calls):
            return [self.rnn(x)[0] for _ in range(calls)]

    x = torch.randn(4, 2, 3)
    with pytest.raises(RuntimeError, match=r"'rnn' was called more than once"):
        gradlab.record(Twice(), (x, 2), lambda outs: sum(o.sum() for o in outs))
    with pytest.raises(RuntimeError, match=r"did not call recurrent submodule\(s\) \['rnn'\]"):
        gradlab.record(Twice(), (x, 0), lambda outs: torch.zeros(()))


def test_statistics_count_only_running_sequences():
    """hidden_stats / gate_means of a packed batch: each step averages the sequences whose length
    reaches it, so they equal the stats of the sequences recorded one by one where all run."""
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([5, 2]), enforce_sorted=False)
    rec = gradlab.record(nn.Sequential(lstm), packed)
    alone = gradlab.record(nn.Sequential(lstm), x[:, :1])  # the long sequence alone
    both = gradlab.record(nn.Sequential(lstm), x[:2, :])  # the two sequences' common steps
    stats, long_only, common = rec.hidden_stats(), alone.hidden_stats(), both.hidden_stats()
    for name in ("mean_abs", "saturation"):
        torch.testing.assert_close(stats[name][:3], common[name])
        torch.testing.assert_close(stats[name][3:], long_only[name][3:])
    gates, gates_alone = rec.gate_means(), alone.gate_means()
    for name in gates:
        torch.testing.assert_close(gates[name][:2], both.gate_means()[name])
        torch.testing.assert_close(gates[name][2:], gates_alone[name][2:])


def test_a_finished_sequence_holds_its_state():
    """Past its length a sequence's step Jacobian is the identity, so ∂s_T/∂s_k = ∂s_l/∂s_k:
    the same as the sequence recorded alone, cut at its length."""
    torch.manual_seed(0)
    gru = nn.GRU(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([6, 4]), enforce_sorted=False)
    rec = gradlab.record(nn.Sequential(gru), packed)
    short = gradlab.record(nn.Sequential(gru), x[:4, 1:])  # sequence 1 alone, its 4 steps
    eye = torch.eye(4, dtype=torch.float64)
    for key, lr in rec.layers.items():
        alone = short.layer(*key)
        torch.testing.assert_close(lr.step_jacobian(6)[1], eye)
        torch.testing.assert_close(lr.jacobian(6, 1)[1], alone.jacobian(4, 1)[0])
        torch.testing.assert_close(lr.jacobian_norms(6)[:4, 1], alone.jacobian_norms(4)[:, 0])
        fro = lr.step_jacobian_norms("fro")[:, 1]
        torch.testing.assert_close(fro[:4], alone.step_jacobian_norms("fro")[:, 0])
        torch.testing.assert_close(fro[4:], torch.full((2,), 2.0, dtype=torch.float64))
        torch.testing.assert_close(
            lr.step_jacobian_norms(2)[4:, 1], torch.ones(2, dtype=torch.float64)
        )
        jacobians = lr.step_jacobians()  # (T, B, S, S), every step at once
        torch.testing.assert_close(jacobians[4:, 1], eye.expand(2, 4, 4))
        torch.testing.assert_close(jacobians[:4, 1], alone.step_jacobians()[:, 0])
        sv = lr.step_singular_values(samples=[1])[:, 0]
        torch.testing.assert_close(sv[4:], torch.ones(2, 4, dtype=torch.float64))
        torch.testing.assert_close(sv[:4], alone.step_singular_values()[:, 0])


def test_init_model_refuses_a_projected_lstm():
    with pytest.raises(ValueError, match=r"proj_size=2.*torch's initialisation"):
        gradlab.init_model(gradlab.LSTM(3, 4, proj_size=2), "orthogonal")
