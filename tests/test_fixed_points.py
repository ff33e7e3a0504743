"""`gradlab.fixed_points` against closed forms and the float64 autograd twin.

Exact cases: a linear RNN's one fixed point (I − W_hh)⁻¹(W_ih x* + b) and spectrum eig W_hh; the
2-unit tanh RNN with W_hh = 2I, whose nine fixed points and spectra are known in closed form.
Every registered cell: the points found are fixed points of the cell's reference step and their
eigenvalues are those of the autograd Jacobian of that step over the full state (h, c).
"""

from __future__ import annotations

import math

import pytest
import torch

import gradlab
from gradlab import _reference as ref
from gradlab.cells import cells, get_cell
from gradlab.fixed_points import FixedPoints, fixed_points

F64 = torch.float64


def reference_map(model, layer: int, reverse: bool, x_star: torch.Tensor):
    """s ↦ F(s, x*) of one layer/direction from the cell's documented step, float64."""
    spec = ref.model_spec(model)
    p = ref.layer_params(model, layer, reverse)
    x = x_star.detach().to(F64)
    return lambda s: ref.cell_step(spec, p, x, s)[0]


def autograd_jacobian(step, s: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(step, s.detach().to(F64))


def assert_same_spectrum(found: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """Each eigenvalue of one list within atol of one of the other (both ways)."""
    distance = (found.unsqueeze(1) - expected.unsqueeze(0)).abs()
    assert float(distance.amin(1).max()) <= atol
    assert float(distance.amin(0).max()) <= atol


def build(cell: str, activation: str | None = None, **kwargs) -> torch.nn.Module:
    spec = get_cell(cell)
    return spec.build(3, 6, activation if spec.takes_activation else None, dtype=F64, **kwargs)


# ----- exact cases ----------------------------------------------------------------------------
LINEAR_CASES = {
    "contracting-zero-input": (0.5, False),
    "contracting-constant-input": (0.5, True),
    "expanding-constant-input": (1.7, True),
}


SOLVERS = ["dense", "matrix-free"]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(("radius", "with_input"), LINEAR_CASES.values(), ids=LINEAR_CASES)
def test_linear_rnn_fixed_point_is_the_closed_form(radius, with_input, solver):
    torch.manual_seed(1)
    model = gradlab.RNN(3, 5, "linear", dtype=F64)
    with torch.no_grad():
        W = torch.randn(5, 5, dtype=F64)
        model.weight_hh_l0.copy_(W * radius / torch.linalg.eigvals(W).abs().max())
    x_star = torch.randn(3, dtype=F64) if with_input else torch.zeros(3, dtype=F64)
    given = x_star if with_input else None
    fp = fixed_points(model, constant_input=given, n_inits=16, solver=solver)

    W_hh, W_ih = model.weight_hh_l0.detach(), model.weight_ih_l0.detach()
    b = (model.bias_ih_l0 + model.bias_hh_l0).detach()
    expected = torch.linalg.solve(torch.eye(5, dtype=F64) - W_hh, W_ih @ x_star + b)
    assert len(fp) == 1 and fp.counts.tolist() == [16]
    assert float((fp.states[0] - expected).abs().max()) <= 1e-10
    assert bool(fp.is_fixed[0])
    assert_same_spectrum(fp.eigenvalues[0], torch.linalg.eigvals(W_hh), 1e-10)
    moduli = fp.eigenvalues[0].abs()
    assert torch.equal(moduli, moduli.sort(descending=True).values)
    expected_class = "stable" if radius < 1 else ("unstable" if moduli.min() > 1 else "saddle")
    assert fp.stability == (expected_class,)


def root_of_tanh_2a() -> float:
    """a > 0 with a = tanh(2a), by Newton's method on g(a) = tanh(2a) − a."""
    a = 1.0
    for _ in range(60):
        t = math.tanh(2 * a)
        a -= (t - a) / (2 * (1 - t * t) - 1)
    return a


@pytest.mark.parametrize("solver", SOLVERS)
def test_two_unit_tanh_rnn_has_its_nine_fixed_points(solver):
    model = gradlab.RNN(1, 2, "tanh", bias=False, dtype=F64)
    with torch.no_grad():
        model.weight_hh_l0.copy_(2 * torch.eye(2, dtype=F64))
        model.weight_ih_l0.zero_()
    fp = fixed_points(model, n_inits=256, seed=3, solver=solver)
    a = root_of_tanh_2a()
    assert abs(a - 0.9575) < 1e-4

    assert len(fp) == 9 and bool(fp.is_fixed.all()) and int(fp.counts.sum()) == 256
    levels = torch.tensor([-a, 0.0, a], dtype=F64)
    snapped = levels[(fp.states.unsqueeze(-1) - levels).abs().argmin(-1)]
    assert float((fp.states - snapped).abs().max()) <= 1e-12
    assert {tuple(p) for p in snapped.tolist()} == {
        (u, v) for u in levels.tolist() for v in levels.tolist()
    }

    slope = 2 * (1 - a * a)
    for point, eigenvalues, stability in zip(snapped, fp.eigenvalues, fp.stability, strict=True):
        expected = (
            torch.tensor([2.0 if c == 0 else slope for c in point.tolist()], dtype=F64)
            .sort(descending=True)
            .values
        )
        assert float((eigenvalues - expected).abs().max()) <= 1e-8
        zeros = int((point == 0).sum())
        assert stability == {0: "stable", 1: "saddle", 2: "unstable"}[zeros]
    assert sorted(fp.stability) == ["saddle"] * 4 + ["stable"] * 4 + ["unstable"]
    table = fp.table()
    assert table["n_unstable"].tolist() == [int((p == 0).sum()) for p in snapped]
    stable = table[table["stability"] == "stable"]
    assert stable["tau_slowest"].tolist() == pytest.approx([-1 / math.log(slope)] * 4, rel=1e-9)


# ----- every cell against the autograd twin --------------------------------------------------
CELL_CASES = {
    f"{spec.name}-{act}" if act else spec.name: (spec.name, act)
    for spec in cells()
    for act in (("tanh", "relu", "sigmoid", "linear") if spec.takes_activation else (None,))
}


@pytest.mark.parametrize(("cell", "activation"), CELL_CASES.values(), ids=CELL_CASES)
def test_every_cell_spectra_match_the_autograd_jacobian(cell, activation):
    torch.manual_seed(0)
    model = build(cell, activation)
    bounded = getattr(getattr(model, "activation", None), "bounds", (-1, 1)) is not None
    with torch.no_grad():  # a strong bounded recurrence: several fixed points, not only one
        for name, p in model.named_parameters():
            if name.startswith("weight_hh"):
                p.mul_(3.0 if bounded else 1.0)
    x = torch.randn(30, 4, 3, dtype=F64)
    fp = fixed_points(model, x, constant_input="mean", n_inits=64, noise=0.1)
    assert isinstance(fp, FixedPoints) and len(fp) >= 1
    S = model.state_size
    assert fp.states.shape == (len(fp), S) and fp.eigenvalues.shape == (len(fp), S)
    assert fp.eigenvalues.dtype == torch.complex128
    assert torch.allclose(fp.constant_input, x.mean((0, 1)), atol=1e-14, rtol=0)

    step = reference_map(model, 0, False, fp.constant_input)
    for s, q, J, eigenvalues in zip(fp.states, fp.q, fp.jacobians, fp.eigenvalues, strict=True):
        residual = step(s) - s
        assert float(0.5 * residual.square().sum()) == pytest.approx(float(q), rel=1e-6, abs=1e-28)
        reference = autograd_jacobian(step, s)
        assert float((J - reference).abs().max()) <= 1e-12
        assert_same_spectrum(eigenvalues, torch.linalg.eigvals(reference), 1e-10)
    assert bool(fp.is_fixed.any())


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cell_fixed_points_are_roots_with_the_full_state_spectrum(cell, solver):
    torch.manual_seed(4)
    model = build(cell)
    with torch.no_grad():
        model.weight_hh_l0.mul_(4.0)
    fp = fixed_points(model, n_inits=128, seed=1, solver=solver)
    fixed = fp.is_fixed.nonzero().squeeze(1)
    assert fixed.numel() >= 1
    step = reference_map(model, 0, False, torch.zeros(3))
    for i in fixed.tolist():
        s = fp.states[i]
        assert float((step(s) - s).norm()) <= math.sqrt(2 * fp.tol)  # q <= tol
        assert_same_spectrum(
            fp.eigenvalues[i], torch.linalg.eigvals(autograd_jacobian(step, s)), 1e-10
        )
    assert fp.states.shape[1] == (12 if cell == "lstm" else 6)  # (h, c) for the LSTM


@pytest.mark.parametrize("solver", ["auto", "dense", "matrix-free"])
def test_a_wider_gru_gives_the_same_fixed_points_with_every_solver(solver):
    """N = 40: "auto" runs matrix-free steps, then dense ones from the points not yet fixed."""
    torch.manual_seed(12)
    model = gradlab.GRU(3, 40, dtype=F64)
    with torch.no_grad():
        model.weight_hh_l0.mul_(3.0)
    x = torch.randn(30, 4, 3, dtype=F64)
    fp = fixed_points(model, x, n_inits=64, seed=2, solver=solver)
    reference = fixed_points(model, x, n_inits=64, seed=2, solver="dense")
    fixed = fp.states[fp.is_fixed]
    assert fixed.shape[0] >= 1
    step = reference_map(model, 0, False, torch.zeros(3))
    for s, eigenvalues in zip(fixed, fp.eigenvalues[fp.is_fixed], strict=True):
        assert float((step(s) - s).norm()) <= math.sqrt(2 * fp.tol)
        expected = torch.linalg.eigvals(autograd_jacobian(step, s))
        assert_same_spectrum(eigenvalues, expected, 1e-10)
    # the same fixed points (up to the dedup tolerance) as the dense search found
    distance = torch.cdist(fixed, reference.states[reference.is_fixed], p=math.inf)
    assert float(distance.amin(1).max()) <= 1e-7


# ----- layers, directions, inputs ------------------------------------------------------------
LAYER_CASES = {
    "layer1-forward": (1, False),
    "layer1-reverse": (1, True),
    "layer0-reverse": (0, True),
}


@pytest.mark.parametrize(("layer", "reverse"), LAYER_CASES.values(), ids=LAYER_CASES)
def test_stacked_bidirectional_layer_selection(layer, reverse):
    torch.manual_seed(2)
    model = gradlab.GRU(3, 5, num_layers=2, bidirectional=True, dtype=F64)
    x = torch.randn(25, 3, 3, dtype=F64)
    fp = fixed_points(model, x, layer=layer, reverse=reverse, constant_input="mean", n_inits=32)
    below = model.layer_forward(x, torch.zeros(2, 3, 5, dtype=F64), 0)[0]
    expected_input = x.mean((0, 1)) if layer == 0 else below.mean((0, 1))
    assert torch.allclose(fp.constant_input, expected_input, atol=1e-14, rtol=0)
    assert (fp.layer, fp.direction) == (layer, "reverse" if reverse else "forward")
    step = reference_map(model, layer, reverse, fp.constant_input)
    for s, J in zip(fp.states[fp.is_fixed], fp.jacobians[fp.is_fixed], strict=True):
        assert float((step(s) - s).norm()) <= math.sqrt(2 * fp.tol)  # q <= tol
        assert float((J - autograd_jacobian(step, s)).abs().max()) <= 1e-12
    assert set(fp.table()["direction"]) <= {fp.direction}


STACKED_CELLS = {spec.name: spec.name for spec in cells()}


@pytest.mark.parametrize("cell", STACKED_CELLS.values(), ids=STACKED_CELLS)
def test_every_cell_upper_reverse_layer_matches_its_reference_step(cell):
    torch.manual_seed(3)
    model = build(cell, num_layers=2, bidirectional=True)
    x = torch.randn(20, 3, 3, dtype=F64)
    fp = fixed_points(model, x, layer=1, reverse=True, constant_input="mean", n_inits=32)
    assert fp.constant_input.shape == (2 * model.output_size,) and bool(fp.is_fixed.any())
    step = reference_map(model, 1, True, fp.constant_input)
    for s, J in zip(fp.states[fp.is_fixed], fp.jacobians[fp.is_fixed], strict=True):
        assert float((step(s) - s).norm()) <= math.sqrt(2 * fp.tol)
        assert float((J - autograd_jacobian(step, s)).abs().max()) <= 1e-12


def test_mean_input_counts_only_the_real_steps_of_packed_sequences():
    torch.manual_seed(10)
    model = build("lstm")
    padded = torch.randn(10, 3, 3, dtype=F64)
    lengths = torch.tensor([10, 6, 2])
    packed = torch.nn.utils.rnn.pack_padded_sequence(padded, lengths)
    fp = fixed_points(model, gradlab.record(model, packed), constant_input="mean", n_inits=8)
    real = torch.cat([padded[: int(n), b] for b, n in enumerate(lengths)])
    assert torch.allclose(fp.constant_input, real.mean(0), atol=1e-14, rtol=0)


def test_unsettled_lower_layers_are_said_with_a_warning():
    torch.manual_seed(11)
    model = gradlab.RNN(3, 20, "tanh", num_layers=2, dtype=F64)
    with torch.no_grad():  # a chaotic first layer: its output never settles
        model.weight_hh_l0.normal_(0.0, 3.0 / math.sqrt(20))
    with pytest.warns(RuntimeWarning, match="not settled") as caught:
        fixed_points(model, layer=1, n_inits=4)
    assert caught[0].filename == __file__


def test_upper_layer_input_is_the_lower_layers_fixed_point():
    """Under a constant model input, layer 1 reads layer 0's (here unique, stable) fixed point
    in both directions."""
    torch.manual_seed(5)
    model = gradlab.GRU(3, 4, num_layers=2, bidirectional=True, dtype=F64)
    x_star = torch.randn(3, dtype=F64)
    lower = [fixed_points(model, constant_input=x_star, reverse=r, n_inits=16) for r in (0, 1)]
    assert all(len(fp) == 1 and fp.stability == ("stable",) for fp in lower)
    upper = fixed_points(model, constant_input=x_star, layer=1, n_inits=16)
    expected = torch.cat([fp.states[0] for fp in lower])
    assert float((upper.constant_input - expected).abs().max()) <= 1e-9


def test_a_recording_gives_the_same_points_as_its_inputs():
    torch.manual_seed(6)
    model = build("lstm")
    x = torch.randn(20, 3, 3, dtype=F64)
    from_inputs = fixed_points(model, x, n_inits=32, seed=7)
    from_record = fixed_points(model, gradlab.record(model, x), n_inits=32, seed=7)
    assert torch.equal(from_inputs.states, from_record.states)
    assert from_inputs.table().equals(from_record.table())


def test_same_seed_same_points_and_float64_on_request():
    torch.manual_seed(8)
    model = gradlab.GRU(3, 6)  # float32
    x = torch.randn(20, 3, 3)
    first, again = (fixed_points(model, x, n_inits=32, seed=11) for _ in range(2))
    assert torch.equal(first.states, again.states) and first.dtype == torch.float32
    assert first.tol == 1e-10 and bool(first.is_fixed.any())
    wide = fixed_points(model, x, n_inits=32, seed=11, dtype=F64)
    assert (
        wide.states.dtype == F64 and wide.tol == 1e-20 and model.weight_hh_l0.dtype == torch.float32
    )
    assert float((wide.states[0] - first.states[0].double()).abs().max()) <= 1e-4
    table = wide.table()
    assert list(table.columns) == [
        "point", "q", "kind", "stability", "max_abs_eigenvalue", "tau_slowest",
        "n_unstable", "count", "cell", "layer", "direction", "dtype",
    ]  # fmt: skip
    assert set(table["dtype"]) == {"float64"} and set(table["cell"]) == {"gru"}


def test_initial_states_and_a_torch_module():
    torch.manual_seed(9)
    module = torch.nn.GRU(2, 3, dtype=F64)
    starts = torch.randn(5, 3, dtype=F64)
    fp = fixed_points(module, initial_states=starts)
    assert fp.n_inits == 5 and int(fp.counts.sum()) <= 5 and fp.cell == "gru"


def test_nearest_names_the_point_a_state_is_closest_to():
    model = gradlab.RNN(1, 2, "tanh", bias=False, dtype=F64)
    with torch.no_grad():
        model.weight_hh_l0.copy_(2 * torch.eye(2, dtype=F64))
        model.weight_ih_l0.zero_()
    fp = fixed_points(model, n_inits=256, seed=3)
    shifted = fp.states + torch.tensor([0.01, -0.02], dtype=F64)
    index, distance = fp.nearest(shifted)
    assert index.tolist() == list(range(len(fp)))
    assert torch.allclose(distance, torch.full((len(fp),), math.sqrt(5e-4), dtype=F64))
    with pytest.raises(ValueError, match="states"):
        fp.nearest(torch.zeros(3, 5))


# ----- errors ---------------------------------------------------------------------------------
def _errors() -> dict:
    x = torch.randn(10, 2, 3, dtype=F64)
    return {
        "n_inits-zero": (dict(n_inits=0), "n_inits"),
        "layer-out-of-range": (dict(layer=1), "layer"),
        "reverse-unidirectional": (dict(reverse=True), "reverse"),
        "constant_input-unknown": (dict(constant_input="median"), "constant_input"),
        "constant_input-shape": (dict(constant_input=torch.zeros(4)), "constant_input"),
        "constant_input-mean-no-inputs": (dict(constant_input="mean"), "constant_input"),
        "initial_states-shape": (dict(initial_states=torch.zeros(4, 5)), "initial_states"),
        "inputs-shape": (dict(inputs=x[..., :2]), "inputs"),
        "inputs-2d": (dict(inputs=x[0]), "inputs"),
        "tol-negative": (dict(tol=-1.0), "tol"),
        "dtype-int": (dict(dtype=torch.int64), "dtype"),
        "solver-unknown": (dict(solver="adam"), "solver"),
        "q_target-zero": (dict(q_target=0.0), "q_target"),
        "polish_radius-negative": (dict(polish_radius=-1.0), "polish_radius"),
        "outlier_scale-zero": (dict(outlier_scale=0), "outlier_scale"),
    }


ERRORS = _errors()


@pytest.mark.parametrize(("kwargs", "names"), ERRORS.values(), ids=ERRORS)
def test_bad_arguments_raise_a_value_error_naming_them(kwargs, names):
    model = build("gru")
    with pytest.raises(ValueError, match=names):
        fixed_points(model, **kwargs)


def test_not_a_recurrent_model_is_a_type_error():
    with pytest.raises(TypeError, match="model"):
        fixed_points(torch.nn.Linear(2, 2))


# ----- q_target and the Newton polish ---------------------------------------------------------
def two_unit_rnn(activation: str, diagonal: tuple[float, float]) -> torch.nn.Module:
    """A 2-unit RNN without input or bias, W_hh = diag(diagonal), float64."""
    model = gradlab.RNN(1, 2, activation, bias=False, dtype=F64)
    with torch.no_grad():
        model.weight_hh_l0.copy_(torch.diag(torch.tensor(diagonal, dtype=F64)))
        model.weight_ih_l0.zero_()
    return model


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_line_attractor_is_a_line_of_fixed_points(solver):
    model = two_unit_rnn("linear", (1.0, 0.5))  # every (u, 0) is fixed
    starts = torch.tensor([[-0.8, 0.3], [-0.2, -0.4], [0.4, 0.1], [0.9, -0.2]], dtype=F64)
    fp = fixed_points(model, initial_states=starts, q_target=1e-10, solver=solver)
    assert len(fp) == 4 and bool(fp.is_fixed.all())
    assert float(fp.states[:, 1].abs().max()) <= 1e-10  # on the line ...
    assert sorted(fp.states[:, 0].tolist()) == pytest.approx([-0.8, -0.2, 0.4, 0.9])  # ... below
    assert fp.stability == ("marginal",) * 4


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("activation", ["linear", "tanh"])
def test_near_line_attractor_slow_points_stay_and_the_isolated_root_is_exact(activation, solver):
    """W = diag(0.999, 0.5): the origin is the one fixed point; along the first axis the state
    creeps (0.1% per step, plus the tanh's cubic term). Starts on that slow line stop as slow
    points with q ≤ q_target near where they started (Newton would jump to the origin, outside
    the polish radius); starts near the origin are polished onto it exactly."""
    model = two_unit_rnn(activation, (0.999, 0.5))
    line = torch.tensor([[0.02, 1e-3], [-0.03, -2e-3], [0.025, 0.0]], dtype=F64)
    near = torch.tensor([[1e-4, 1e-3], [-2e-4, 5e-4]], dtype=F64)
    q_target = 1e-8
    fp = fixed_points(
        model,
        initial_states=torch.cat((line, near)),
        q_target=q_target,
        polish_radius=5e-3,
        solver=solver,
    )
    fixed = fp.states[fp.is_fixed]
    assert len(fixed) == 1 and float(fixed.abs().max()) <= 1e-12
    assert int(fp.counts[fp.is_fixed].sum()) == len(near)
    slow = fp.states[~fp.is_fixed]
    assert len(slow) == len(line) and bool((fp.q[~fp.is_fixed] <= q_target).all())
    nearest = torch.cdist(slow, line).amin(1)
    assert float(nearest.max()) <= 5e-3  # each slow point near its own start
    assert sorted(torch.sign(slow[:, 0]).tolist()) == [-1.0, 1.0, 1.0]
    # without q_target the search slides them to the origin
    plain = fixed_points(model, initial_states=line, solver=solver, max_iter=2000)
    assert float(plain.states.abs().max()) < float(slow.abs().max())


@pytest.mark.parametrize("solver", SOLVERS)
def test_q_target_still_finds_the_nine_isolated_fixed_points_exactly(solver):
    model = two_unit_rnn("tanh", (2.0, 2.0))
    fp = fixed_points(model, n_inits=256, seed=3, solver=solver, q_target=1e-10)
    a = root_of_tanh_2a()
    assert len(fp) == 9 and bool(fp.is_fixed.all())
    levels = torch.tensor([-a, 0.0, a], dtype=F64)
    snapped = levels[(fp.states.unsqueeze(-1) - levels).abs().argmin(-1)]
    assert float((fp.states - snapped).abs().max()) <= 1e-12
    assert len({tuple(p) for p in snapped.tolist()}) == 9


def test_outlier_scale_drops_points_far_from_the_initial_states():
    """W = 2I from starts near (a, a), the origin and (−a, a): outlier_scale keeps the points
    within outlier_scale × the starts' RMS spread of their centroid."""
    model = two_unit_rnn("tanh", (2.0, 2.0))
    starts = torch.tensor([[0.9, 0.9], [0.95, 1.0], [0.05, 0.02], [-0.9, 0.9]], dtype=F64)
    every = fixed_points(model, initial_states=starts)
    assert len(every) == 3
    centroid = starts.mean(0)
    spread = float((starts - centroid).square().sum(-1).mean().sqrt())
    distance = (every.states - centroid).norm(dim=-1)
    sizes = []
    for scale in (0.5, 1.0, 2.0):
        near = fixed_points(model, initial_states=starts, outlier_scale=scale)
        assert len(near) == int((distance <= scale * spread).sum())
        assert all(d <= scale * spread for d in (near.states - centroid).norm(dim=-1).tolist())
        sizes.append(len(near))
    assert sizes == [0, 2, 3]  # the rule drops points by their distance, none at scale 2
