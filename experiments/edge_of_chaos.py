"""Print the order-to-chaos table: measured gradient decay rate of random tanh RNNs against
mean-field theory's ½ ln χ, for N = 256..1000 and σ_w = 0.5..3 (input drive σ_v = 1).

Run: `.venv/bin/python experiments/edge_of_chaos.py [--sigma-b 0.3] [--quick]`.
"""

from __future__ import annotations

import argparse

from gradlab.calibration import edge_of_chaos_table
from gradlab.theory import critical_sigma_w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma-b", type=float, default=0.0, help="bias standard deviation σ_b")
    parser.add_argument("--quick", action="store_true", help="N = 256 only, two seeds")
    args = parser.parse_args()
    sizes = (256,) if args.quick else (256, 512, 1000)
    seeds = (0, 1) if args.quick else (0, 1, 2)
    rows = edge_of_chaos_table(hidden_sizes=sizes, sigma_b=args.sigma_b, seeds=seeds)
    critical = critical_sigma_w("tanh", sigma_b=args.sigma_b, sigma_v=1.0)
    print(f"tanh RNN, σ_b = {args.sigma_b}, σ_v = 1; χ = 1 at σ_w = {critical:.3f}")
    print(f"{'N':>5} {'σ_w':>5} {'χ':>7} {'½ ln χ':>9} {'measured':>9} {'± se':>7} {'diff':>8}")
    for r in rows:
        print(
            f"{r.hidden_size:>5} {r.sigma_w:>5.2f} {r.chi:>7.3f} {r.theory:>+9.4f} "
            f"{r.measured:>+9.4f} {r.stderr:>7.4f} {r.measured - r.theory:>+8.4f}"
        )


if __name__ == "__main__":
    main()
