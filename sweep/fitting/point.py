"""Loss at any (N, D): what the chosen law (``sweep.fitting.selection``: the family that extrapolates best, or
``--law``) predicts for a model of N parameters trained on D tokens, compute-optimal or not, with two intervals.

- ``ci``: where the law's mean loss lies, from the percentile bootstrap of the fit (runs resampled over the whole
  table, ``sweep.fitting.bootstrap.bootstrap_law``; at most ``LAW_BOOTSTRAP`` resamples for a family other than
  Chinchilla's): the parameters' uncertainty only.
- ``prediction_interval``: where one new run's loss lies: each resample's log loss plus a draw of the residual
  scatter of the runs about the fitted law (the root mean square of their log-loss residuals, on n - k degrees of
  freedom for a law of k parameters), percentiles of the sum. A run is one draw, not the law's mean, so this is the interval to hold a new
  run against.

A point beyond the fitted runs (N or D larger than any run's, or C beyond ``EXTRAPOLATION_FACTOR`` times the
largest budget) is flagged in ``warnings``: the law is fitted over the sweep's range.

Pure: a table in, a dict out.
"""

from __future__ import annotations

import numpy as np

from sweep.fitting.blas import one_blas_thread
from sweep.fitting.bootstrap import bootstrap_law
from sweep.fitting.inputs import FitInputs
from sweep.fitting.selection import LAW_BOOTSTRAP, choose_law
from sweep.fitting.summary import EXTRAPOLATION_FACTOR


def loss_at(inputs: FitInputs, n_params: float, tokens: float, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
            law: str | None = None) -> dict:  # fmt: skip
    """The chosen law's loss at (``n_params``, ``tokens``) with ``ci`` and ``prediction_interval`` (module
    docstring); ``law`` names the family (None: the one that extrapolates best, ``sweep.fitting.selection``).
    ``{"loss": None, "not_fitted": why}`` when the table cannot identify any law."""
    return losses_at(inputs, [(n_params, tokens)], n_boot, seed, level, law)[0]


@one_blas_thread
def losses_at(inputs: FitInputs, points: list[tuple[float, float]], n_boot: int = 1000, seed: int = 0, level: float = 0.95,
              law: str | None = None) -> list[dict]:  # fmt: skip
    """``loss_at`` for each (N, D) of ``points``, from one choice of law and one bootstrap."""
    runs, compute = inputs.runs, inputs.compute()
    outs = [{"n_params": float(n), "tokens": float(d), "flops": float(compute(n) * d), "n_runs": len(runs)} for n, d in points]
    choice = choose_law(runs, compute, law) if len(runs) else None
    if choice is None or choice.chosen is None:
        reasons = "; ".join(f"{s.family.name}: {s.skipped}" for s in choice.scores if s.skipped) if choice else "no runs"
        return [out | {"loss": None, "ci": None, "prediction_interval": None, "law": None,
                       "not_fitted": f"no law family could be fitted ({reasons})", "warnings": []} for out in outs]  # fmt: skip
    fit, fitted = choice.chosen.fit, choice.chosen.fitted(runs)  # the runs of the law's fit range
    n, d, loss = (fitted[c].to_numpy(dtype=float) for c in ("n_params", "tokens", "loss"))
    residuals = np.log(loss) - np.log(fit.loss(n, d, fitted["unique_tokens"] if fit.family.needs_unique_tokens else None))
    scatter = float(np.sqrt(np.sum(residuals**2) / max(1, len(residuals) - fit.family.size)))
    samples_used = n_boot if fit.family.name == "chinchilla" else min(n_boot, LAW_BOOTSTRAP)
    samples = bootstrap_law(fitted, fit, samples_used, seed, points=points) if samples_used else None
    noise = np.random.default_rng(seed).standard_normal(samples_used) * scatter
    tail = 100.0 * (1.0 - level) / 2.0
    for out, (n_at, d_at) in zip(outs, points):
        out |= {"loss": float(fit.loss(n_at, d_at)), "law": {"name": fit.family.name, "formula": fit.family.formula,
                "parameters": fit.values, "chosen_by": choice.chosen_by, "smallest_budget_fitted": choice.chosen.smallest_budget,
                "fitted_runs": len(fitted)}, "residual_scatter": scatter, "ci": None,
                "prediction_interval": None, "bootstrap": samples_used}  # fmt: skip
        if samples is not None and len(samples.samples):
            column = point_column(n_at, d_at)
            out["ci"] = list(samples.interval(column, level))
            draws = np.log(samples.samples[column].to_numpy(dtype=float))
            out["prediction_interval"] = [float(np.exp(np.percentile(draws + noise[: len(draws)], q))) for q in (tail, 100.0 - tail)]
        out["warnings"] = beyond_the_data(runs, n_at, d_at, out["flops"])
    return outs


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
