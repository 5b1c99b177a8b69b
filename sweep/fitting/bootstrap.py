"""Bootstrap uncertainty for the fits: refit on resampled runs (seeded), report percentile intervals.

- Approach 3: runs are resampled with replacement over the whole table, as Epoch AI did. Each refit starts from
  the full fit's parameters (L-BFGS, analytic gradients): on the Chinchilla data this reached the same optimum
  as a full grid search in every resample checked (``tests/fitting/test_parametric.py``), at ~20 ms a refit.
- Approach 2: runs are resampled within each budget (a plain resample can leave a budget with too few sizes for a
  parabola); resamples whose frontier cannot be fitted are dropped and counted.
- The chosen law family (``sweep.fitting.selection``): as Approach 3, each refit warm-started from the full fit.
- Approach 1 is not bootstrapped: a bootstrap of a minimum is degenerate (``sweep.fitting.envelope``).

Every fitted number and the predictions at requested budgets (N_opt, D_opt, loss) get samples; ``interval``
turns samples into a two-sided percentile interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweep.fitting.blas import one_blas_thread
from sweep.fitting.isoflop import MinimumRule, budget_arrays, fit_budget, frontier
from sweep.fitting.parametric import ParametricFit, fit_parametric, theta_of


@dataclass(frozen=True)
class BootstrapSamples:
    samples: pd.DataFrame
    """One row per successful refit, one column per fitted number or prediction."""
    failed: int
    """Resamples that could not be fitted (left out of the intervals)."""

    def interval(self, column: str, level: float = 0.95) -> tuple[float, float]:
        values = self.samples[column].dropna().to_numpy()
        tail = 100.0 * (1.0 - level) / 2.0
        return float(np.percentile(values, tail)), float(np.percentile(values, 100.0 - tail))

    def intervals(self, level: float = 0.95) -> dict[str, list[float]]:
        return {column: list(self.interval(column, level)) for column in self.samples.columns}


def _predictions(row: dict, n_opt, d_opt, loss_opt, predict_flops: list[float]) -> dict:
    for flops in predict_flops:
        row[f"n_opt@{flops:.3g}"], row[f"d_opt@{flops:.3g}"] = float(n_opt(flops)), float(d_opt(flops))
        if loss_opt is not None:
            row[f"loss@{flops:.3g}"] = float(loss_opt(flops))
            row[f"gain@{flops:.3g}"] = float(loss_opt(flops) - loss_opt(2.0 * flops))  # loss gained by doubling C
    return row


def _parametric_predictions(row: dict, fit: ParametricFit, predict_flops: list[float]) -> dict:
    """``_predictions`` for Approach 3 with one allocation over every budget and its double: a bisection per call,
    so a call per number (five per budget) made a report's grid of 13 budgets take minutes for 1,000 resamples."""
    if not predict_flops:
        return row
    flops = np.asarray(predict_flops, dtype=float)
    n, d = fit.optimal_allocation(np.concatenate([flops, 2.0 * flops]))
    loss = fit.loss(n, d)
    half = len(flops)
    for i, c in enumerate(predict_flops):
        row[f"n_opt@{c:.3g}"], row[f"d_opt@{c:.3g}"] = float(n[i]), float(d[i])
        row[f"loss@{c:.3g}"], row[f"gain@{c:.3g}"] = float(loss[i]), float(loss[i] - loss[half + i])
    return row


@one_blas_thread
def bootstrap_parametric(runs: pd.DataFrame, base: ParametricFit, n_boot: int = 1000, seed: int = 0,
                         predict_flops: list[float] = (), points: list[tuple[float, float]] = ()) -> BootstrapSamples:  # fmt: skip
    """Approach 3 refits on ``n_boot`` resamples of ``runs`` (columns n_params, tokens, loss); ``points``: (N, D)
    pairs whose loss each refit predicts too (``sweep.fitting.point``)."""
    from sweep.fitting.point import point_column

    rng = np.random.default_rng(seed)
    n, d, loss = (runs[c].to_numpy(dtype=float) for c in ("n_params", "tokens", "loss"))
    start, rows, failed = theta_of(base), [], 0
    for _ in range(n_boot):
        pick = rng.integers(0, len(n), len(n))
        try:
            fit = fit_parametric(n[pick], d[pick], loss[pick], starts=[start], compute=base.compute)
        except ValueError:
            failed += 1
            continue
        row = {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta, "a": fit.a, "b": fit.b}
        row |= {point_column(n_at, d_at): float(fit.loss(n_at, d_at)) for n_at, d_at in points}
        rows.append(_parametric_predictions(row, fit, list(predict_flops)))
    return BootstrapSamples(pd.DataFrame(rows), failed)


@one_blas_thread
def bootstrap_isoflop(runs: pd.DataFrame, n_boot: int = 1000, seed: int = 0, predict_flops: list[float] = (),
                      rule: MinimumRule = MinimumRule()) -> BootstrapSamples:  # fmt: skip
    """Approach 2 refits on ``n_boot`` resamples of ``runs``, resampled within each budget, minima read by ``rule``."""
    rng = np.random.default_rng(seed)
    groups = budget_arrays(runs)
    rows, failed = [], 0
    for _ in range(n_boot):
        fits = []
        for budget, n, d, loss in groups:
            pick = rng.integers(0, len(n), len(n))
            fits.append(fit_budget(budget, n[pick], d[pick], loss[pick], rule))
        result = frontier(tuple(fits))
        if result.n_opt is None:
            failed += 1
            continue
        rows.append(_predictions({"a": result.a, "b": result.b}, result.n_opt, result.d_opt, None, list(predict_flops)))
    return BootstrapSamples(pd.DataFrame(rows), failed)


@one_blas_thread
def bootstrap_law(runs: pd.DataFrame, base, n_boot: int = 200, seed: int = 0, predict_flops: list[float] = (),
                  points: list[tuple[float, float]] = ()) -> BootstrapSamples:  # fmt: skip
    """A ``sweep.fitting.laws.FittedLaw`` refitted on ``n_boot`` resamples of ``runs`` over the whole table (warm
    start: the full fit): its parameters, N_opt, D_opt, loss and local exponent a at each of ``predict_flops``, and
    the loss at each (N, D) of ``points``. A refit whose loss falls without end along the iso-FLOP line of the
    largest predicted budget (``FittedLaw.optimum_inside``) predicts no optimum: it is counted failed, not read at
    the search's edge."""
    from sweep.fitting.laws import fit_law
    from sweep.fitting.point import point_column
    from sweep.fitting.selection import unique_tokens

    rng = np.random.default_rng(seed)
    n, d, loss = (runs[c].to_numpy(dtype=float) for c in ("n_params", "tokens", "loss"))
    unique = unique_tokens(runs) if base.family.needs_unique_tokens else None
    flops = np.asarray(list(predict_flops), dtype=float)
    rows, failed = [], 0
    for _ in range(n_boot):
        pick = rng.integers(0, len(n), len(n))
        try:
            fit = fit_law(base.family, n[pick], d[pick], loss[pick], unique_tokens=None if unique is None else unique[pick],
                          compute=base.compute, starts=[np.asarray(base.theta)], log_n0=base.log_n0)  # fmt: skip
        except ValueError:
            failed += 1
            continue
        if len(flops) and not fit.optimum_inside(float(flops.max())):  # no optimum to predict (laws.optimum_inside)
            failed += 1
            continue
        row = dict(fit.values)
        row |= {point_column(n_at, d_at): float(fit.loss(n_at, d_at)) for n_at, d_at in points}
        if len(flops):
            frontier = fit.frontier(flops)
            for i, c in enumerate(flops):
                row |= {f"{key}@{c:.3g}": float(frontier[key][i]) for key in ("n_opt", "d_opt", "loss", "a")}
        rows.append(row)
    return BootstrapSamples(pd.DataFrame(rows), failed)
