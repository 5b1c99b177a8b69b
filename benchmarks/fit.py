"""Fit benchmark on Chinchilla's data (Epoch AI's digitisation, 5 highest-loss runs left out, 240 runs).

In one process:
1. Baseline: the Chinchilla/Epoch recipe, scipy L-BFGS-B from each of the 4,500 grid initialisations (alpha, beta in
   {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}), keeping the best. It gets our analytic
   gradient too, so the comparison is of search strategies, not of finite differences.
2. Ours: ``sweep.fitting.parametric.fit_parametric`` (variable projection on a 40 x 40 exponent grid, then L-BFGS
   from the best 8 points).
3. 1,000 bootstrap refits (``bootstrap_parametric``).

Prints objective values, times and the speed-up. Targets: equal or lower objective, >= 100x faster, 1,000
bootstrap refits under 30 s on 2 cores. ``--starts K`` runs only a random K of the 4,500 starts and scales the
time up (labelled as such), for a quick look.

    python benchmarks/fit.py [--starts 4500] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.fitting.bootstrap import bootstrap_parametric  # noqa: E402
from sweep.fitting.inputs import drop_highest_loss, fit_inputs_from_file  # noqa: E402
from sweep.fitting.parametric import fit_parametric, objective_and_gradient  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "chinchilla_epoch_svg_extracted.csv"


def chinchilla_grid() -> list[np.ndarray]:
    """Epoch's grid in (a, b, e, alpha, beta): 6 x 6 x 5 x 5 x 5 = 4,500 starts."""
    values = itertools.product(np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5), np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))
    return [np.array(v, dtype=float) for v in values]


def grid_search(starts: list[np.ndarray], log_n, log_d, log_loss) -> tuple[float, np.ndarray]:
    best, best_theta = np.inf, None
    for start in starts:
        result = minimize(objective_and_gradient, start, args=(log_n, log_d, log_loss), jac=True, method="L-BFGS-B")
        if result.fun < best:
            best, best_theta = float(result.fun), result.x
    return best, best_theta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=4500, help="grid starts to run (time scaled to 4,500)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    runs = drop_highest_loss(fit_inputs_from_file(DATA), 5).runs
    n, d, loss = (runs[c].to_numpy() for c in ("n_params", "tokens", "loss"))
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)

    grid = chinchilla_grid()
    if args.starts < len(grid):
        grid = [grid[i] for i in np.random.default_rng(0).choice(len(grid), args.starts, replace=False)]
    began = time.perf_counter()
    baseline, theta = grid_search(grid, log_n, log_d, log_loss)
    baseline_seconds = (time.perf_counter() - began) * 4500 / len(grid)

    began = time.perf_counter()
    ours = fit_parametric(n, d, loss)
    ours_seconds = time.perf_counter() - began

    began = time.perf_counter()
    samples = bootstrap_parametric(runs, ours, n_boot=args.bootstrap, seed=0)
    bootstrap_seconds = time.perf_counter() - began

    scaled = " (scaled from %d starts)" % len(grid) if len(grid) < 4500 else ""
    print(f"Chinchilla data, {len(runs)} runs; machine: this one, numpy/scipy as installed")
    print(f"{'method':<58}{'objective':>14}{'alpha':>9}{'beta':>9}{'E':>9}{'seconds':>10}")
    print(f"{'4,500-start L-BFGS grid (analytic gradient)' + scaled:<58}{baseline:>14.10f}{theta[3]:>9.4f}{theta[4]:>9.4f}{np.exp(theta[2]):>9.4f}{baseline_seconds:>10.2f}")
    print(f"{'variable projection + 8 L-BFGS polishes':<58}{ours.objective:>14.10f}{ours.alpha:>9.4f}{ours.beta:>9.4f}{ours.E:>9.4f}{ours_seconds:>10.2f}")
    print(f"speed-up: {baseline_seconds / ours_seconds:.0f}x; objective difference (ours - grid): {ours.objective - baseline:+.2e}")
    print(f"{args.bootstrap} bootstrap refits: {bootstrap_seconds:.1f} s ({samples.failed} failed); "
          f"alpha {samples.interval('alpha')[0]:.3f}-{samples.interval('alpha')[1]:.3f}, "
          f"beta {samples.interval('beta')[0]:.3f}-{samples.interval('beta')[1]:.3f}, "
          f"E {samples.interval('E')[0]:.3f}-{samples.interval('E')[1]:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
