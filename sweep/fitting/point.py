"""Loss at any (N, D): what Approach 3's law predicts for a model of N parameters trained on D tokens, compute-optimal
or not, with two intervals.

- ``ci``: where the law's mean loss lies, from the percentile bootstrap of the fit (runs resampled over the whole
  table, ``sweep.fitting.bootstrap.bootstrap_parametric``): the parameters' uncertainty only.
- ``prediction_interval``: where one new run's loss lies: each resample's log loss plus a draw of the residual
  scatter of the runs about the fitted law (the root mean square of their log-loss residuals, on n - 5 degrees of
  freedom), percentiles of the sum. A run is one draw, not the law's mean, so this is the interval to hold a new
  run against.

A point beyond the fitted runs (N or D larger than any run's, or C beyond ``EXTRAPOLATION_FACTOR`` times the
largest budget) is flagged in ``warnings``: the law is fitted over the sweep's range.

Pure: a table in, a dict out.
"""

from __future__ import annotations

import numpy as np

from sweep.fitting.bootstrap import bootstrap_parametric
from sweep.fitting.inputs import FitInputs
from sweep.fitting.summary import EXTRAPOLATION_FACTOR, NEEDS, parametric_or_none

PARAMETERS = 5
"""Parameters of L(N, D) = E + A/N^alpha + B/D^beta, for the residuals' degrees of freedom."""


def loss_at(inputs: FitInputs, n_params: float, tokens: float, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Approach 3's loss at (``n_params``, ``tokens``) with ``ci`` and ``prediction_interval`` (module docstring);
    ``{"loss": None, "not_fitted": why}`` when the table cannot identify the law."""
    runs, compute = inputs.runs, inputs.compute()
    flops = float(compute(n_params) * tokens)
    out = {"n_params": float(n_params), "tokens": float(tokens), "flops": flops, "approach": "approach3", "n_runs": len(runs)}
    fit = parametric_or_none(runs, compute)
    if fit is None:
        return out | {"loss": None, "ci": None, "prediction_interval": None, "not_fitted": NEEDS["approach3"], "warnings": []}
    n, d, loss = (runs[c].to_numpy(dtype=float) for c in ("n_params", "tokens", "loss"))
    residuals = np.log(loss) - np.log(fit.loss(n, d))
    scatter = float(np.sqrt(np.sum(residuals**2) / max(1, len(residuals) - PARAMETERS)))
    point = float(fit.loss(n_params, tokens))
    out |= {"loss": point, "law": {"E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta},
            "residual_scatter": scatter, "ci": None, "prediction_interval": None, "bootstrap": n_boot}  # fmt: skip
    if n_boot:
        samples = bootstrap_parametric(runs, fit, n_boot, seed, points=[(n_params, tokens)])
        column = point_column(n_params, tokens)
        if len(samples.samples):
            out["ci"] = list(samples.interval(column, level))
            draws = np.log(samples.samples[column].to_numpy(dtype=float))
            noise = np.random.default_rng(seed).standard_normal(len(draws)) * scatter
            tail = 100.0 * (1.0 - level) / 2.0
            out["prediction_interval"] = [float(np.exp(np.percentile(draws + noise, q))) for q in (tail, 100.0 - tail)]
    out["warnings"] = beyond_the_data(runs, n_params, tokens, flops)
    return out


def point_column(n_params: float, tokens: float) -> str:
    """The bootstrap samples' column of the loss at (N, D)."""
    return f"loss@N={n_params:.4g},D={tokens:.4g}"


def beyond_the_data(runs, n_params: float, tokens: float, flops: float) -> list[str]:
    """How far (N, D, C) lies beyond the fitted runs, one line each."""
    notes = []
    for name, value, column in (("N", n_params, "n_params"), ("D", tokens, "tokens")):
        largest = float(runs[column].max())
        if value > largest:
            notes.append(f"{name} = {value:.3g} is {value / largest:.3g}x the largest fitted ({largest:.3g}): the law is extrapolated")
    largest_budget = float(runs["budget"].max())
    if flops > EXTRAPOLATION_FACTOR * largest_budget:
        notes.append(f"C = {flops:.3g} FLOPs is {flops / largest_budget:.3g}x the largest fitted budget: read the loss and "
                     "its intervals as rough")  # fmt: skip
    return notes
