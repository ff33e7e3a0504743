"""The engine against theory: random tanh RNNs decay at mean-field's ½ ln χ per step."""

import pytest

from gradlab.calibration import measured_decay_rate
from gradlab.theory import mean_field

# Finite N and T leave a small bias and seed-to-seed spread (measured: |diff| < 0.015 at
# N = 256 over σ_w = 0.5..3); 0.04 leaves room without hiding a wrong engine (the rate moves by
# ~0.1 per 0.2 of σ_w around criticality).
TOLERANCE = 0.04


@pytest.mark.parametrize(
    ("sigma_w", "sigma_b"),
    [(0.8, 0.0), (1.5, 0.3), (2.5, 0.0), (3.0, 0.3)],
    ids=["ordered-0.8", "ordered-1.5-bias", "chaotic-2.5", "chaotic-3.0-bias"],
)
def test_measured_rate_matches_mean_field(sigma_w: float, sigma_b: float) -> None:
    rates = [
        measured_decay_rate("tanh", sigma_w, sigma_b, hidden_size=256, seed=s)[0] for s in (0, 1)
    ]
    measured = sum(rates) / len(rates)
    predicted = mean_field("tanh", sigma_w, sigma_b, sigma_v=1.0).rate
    assert measured == pytest.approx(predicted, abs=TOLERANCE)


@pytest.mark.parametrize("gain", [0.5, 0.8], ids=["gain-0.5", "gain-0.8"])
def test_lyapunov_exponent_of_a_decaying_tanh_network_is_ln_of_the_top_eigenvalue(gain: float):
    """Autonomous h_t = tanh(W h_{t-1}) in the ordered phase decays to 0, where J_t -> W: the
    leading exponents of the recorded trajectory are ln|eig(W)| (largest moduli first)."""
    import torch

    from gradlab.cells import RNN, init_model
    from gradlab.record import record
    from gradlab.theory import lyapunov_at_fixed_point

    N, T = 64, 400
    model = RNN(1, N, bias=False, dtype=torch.float64)
    init_model(model, "gaussian", gain=gain, seed=3)
    with torch.no_grad():
        model.weight_ih_l0.zero_()  # autonomous: no input drive
    h0 = torch.randn(1, 4, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rec = record(model, torch.zeros(T, 4, 1, dtype=torch.float64), h0=h0)
    assert rec.hidden[-1].abs().max() < 1e-12  # the state has decayed to the fixed point 0

    W = model.weight_hh_l0.detach()
    moduli = torch.linalg.eigvals(W).abs().sort(descending=True).values
    exponents = rec.lyapunov(n=3, burn_in=T // 2)  # measured error ~1e-4 (finite averaging)
    torch.testing.assert_close(exponents, moduli[:3].log(), rtol=0, atol=1e-3)
    assert float(exponents[0]) == pytest.approx(
        lyapunov_at_fixed_point(W.numpy(), "tanh"), abs=1e-3
    )
