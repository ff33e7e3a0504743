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
