"""The fit summary: every approach's numbers with 95% bootstrap intervals, as one JSON-ready dict.

Schema (``sweep fit --json PATH``; numbers are floats, intervals ``[lo, hi]``)::

    {
      "n_runs": int,                       # runs fitted
      "flops_convention": {"name", "coefficients", "powers", "max_relative_error"},   # C = f(N) D (fitting/compute.py)
      "excluded": [{"run_id", "status", "error"}],
      "bootstrap": {"samples": int, "seed": int, "level": 0.95},
      "approach1": {                                    # envelope of final losses (see fitting/envelope.py)
        "a": float | null, "b": float | null,
        "envelope": [{"budget", "flops", "n_params", "tokens", "loss"}],
        "ci": {"a", "b", "n_opt@C", "d_opt@C": [lo, hi]}, "failed_resamples": int
      },
      "approach2": {
        "a": float | null, "b": float | null,          # N_opt ∝ C^a, D_opt ∝ C^b (null: < 2 usable budgets)
        "budgets": [{"flops", "n_runs", "interior", "n_opt", "d_opt", "loss_opt", "note"}],
        "ci": {"a": [lo, hi], "b": [lo, hi], "n_opt@C": [...], "d_opt@C": [...]},
        "failed_resamples": int
      },
      "approach3": {                                    # null with fewer than 5 distinct (N, D) points
        "E", "A", "B", "alpha", "beta", "a", "b", "objective",   # objective: summed Huber (delta 1e-3)
        "ci": {"E", "A", "B", "alpha", "beta", "a", "b", "n_opt@C", "d_opt@C", "loss@C": [lo, hi]},
        "failed_resamples": int
      },
      "predictions": [{"flops", "approach1": {"n_opt", "d_opt"}, "approach2": {"n_opt", "d_opt"},
                       "approach3": {"n_opt", "d_opt", "loss"}}],
      "extrapolation": {                                # null with fewer than 3 budgets
        "held_out_flops", "observed_best_loss", "observed_n_opt",   # the largest budget, fitted on its own
        "approach2": {"n_opt"}, "approach3": {"n_opt", "loss", "loss_error"}   # refitted without it
      },
      "not_fitted": {"approach1" | "approach2" | "approach3": str},   # what an approach that fitted nothing needs
      "warnings": [str]                                 # e.g. a prediction far beyond the largest fitted budget
    }

``@C`` keys hold predictions at each requested budget C (``--predict-flops``; default: the largest budget).
A prediction at more than ``EXTRAPOLATION_FACTOR`` (10) times the largest fitted budget gets a warning: the laws
are fitted over the sweep's range, and their exponents' uncertainty grows with every decade beyond it.
"""

from __future__ import annotations

import math

from sweep.fitting.bootstrap import BootstrapSamples, bootstrap_envelope, bootstrap_isoflop, bootstrap_parametric
from sweep.fitting.compute import FlopsPerToken
from sweep.fitting.envelope import fit_approach1
from sweep.fitting.inputs import FitInputs
from sweep.fitting.isoflop import fit_approach2
from sweep.fitting.parametric import fit_parametric

COMPUTE_TOLERANCE = 0.02
"""A FLOPs-per-token fit that misses a run by more than this is flagged (``sweep.fitting.compute``)."""
EXTRAPOLATION_FACTOR = 10.0
"""Predictions beyond this multiple of the largest fitted budget are flagged (module docstring)."""
NEEDS = {
    "approach1": "Approach 1 needs runs at 2 or more budgets",
    "approach2": "Approach 2 needs 2 or more budgets whose iso-FLOP parabola has an interior minimum (3 or more "
                 "model sizes each, the best one not at either end)",
    "approach3": "Approach 3 needs 5 or more distinct (N, D) points (replicates count once) spanning 2 or more model "
                 "sizes and 2 or more token counts, and a fit with positive E, A and B",
}
"""What each approach needs, said when it fitted nothing."""


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _uncertainty(samples: BootstrapSamples | None) -> dict:
    """The ``ci`` and ``failed_resamples`` entries of one approach (empty with no bootstrap)."""
    if samples is None:
        return {"ci": {}, "failed_resamples": 0}
    return {"ci": samples.intervals() if len(samples.samples) else {}, "failed_resamples": samples.failed}


def fit_summary(inputs: FitInputs, n_boot: int = 1000, seed: int = 0, predict_flops: list[float] | None = None) -> dict:
    runs, compute = inputs.runs, inputs.compute()
    predict_flops = list(predict_flops or [float(runs["budget"].max())])
    approach2 = fit_approach2(runs)
    summary = {
        "n_runs": len(runs),
        "flops_convention": compute.as_dict(),
        "excluded": inputs.excluded[["run_id", "status", "error"]].to_dict("records"),
        "bootstrap": {"samples": n_boot, "seed": seed, "level": 0.95},
        "approach2": {
            "a": approach2.a,
            "b": approach2.b,
            "budgets": [
                {"flops": f.budget, "n_runs": f.n_runs, "interior": f.interior, "n_opt": f.n_opt, "d_opt": f.d_opt,
                 "loss_opt": f.loss_opt, "note": f.note}
                for f in approach2.budgets
            ],  # fmt: skip
        },
        "approach3": None,
        "predictions": [{"flops": c} for c in predict_flops],
    }
    approach1 = fit_approach1(runs)
    summary["approach1"] = {"a": approach1.a, "b": approach1.b, "envelope": approach1.envelope.to_dict("records")}
    for name, result, bootstrap in (("approach1", approach1, bootstrap_envelope), ("approach2", approach2, bootstrap_isoflop)):
        if result.n_opt is None:
            continue
        summary[name] |= _uncertainty(bootstrap(runs, n_boot, seed, predict_flops) if n_boot else None)
        for entry in summary["predictions"]:
            entry[name] = {"n_opt": float(result.n_opt(entry["flops"])), "d_opt": float(result.d_opt(entry["flops"]))}
    fit = _try_parametric(runs, compute)
    if fit is not None:
        summary["approach3"] = {
            "E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta, "a": fit.a, "b": fit.b,
            "objective": fit.objective,
            **_uncertainty(bootstrap_parametric(runs, fit, n_boot, seed, predict_flops) if n_boot else None),
        }  # fmt: skip
        for entry in summary["predictions"]:
            n_opt, d_opt = fit.optimal_allocation(entry["flops"])
            entry["approach3"] = {"n_opt": float(n_opt), "d_opt": float(d_opt), "loss": float(fit.optimal_loss(entry["flops"]))}
    summary["extrapolation"] = extrapolation_check(runs, compute)
    summary["not_fitted"] = {name: NEEDS[name] for name in NEEDS if not _fitted(summary[name])}
    largest = float(runs["budget"].max()) if len(runs) else 0.0
    summary["warnings"] = list(inputs.warnings) + [
        f"FLOPs per token f(N) misses a run's own by up to {compute.max_relative_error:.1%}: the runs were not sized "
        "by one convention of model size, so budgets split into N and D approximately"
    ] * (compute.max_relative_error > COMPUTE_TOLERANCE) + [
        f"C = {c:.3g} FLOPs is {c / largest:.3g}x the largest fitted budget ({largest:.3g}): beyond "
        f"{EXTRAPOLATION_FACTOR:g}x the laws are extrapolated far past the data; read the predictions and their "
        "intervals as rough"
        for c in predict_flops
        if largest > 0 and c > EXTRAPOLATION_FACTOR * largest
    ]
    return _deep_clean(summary)


def _fitted(result: dict | None) -> bool:
    return result is not None and result.get("a") is not None


def extrapolation_check(runs, compute: FlopsPerToken = FlopsPerToken()) -> dict | None:
    """Refit without the largest budget and compare what each approach predicts there with what was observed:
    the budget's best loss (its parabola's minimum when interior, else its lowest run) and its N_opt."""
    budgets = sorted(runs["budget"].unique())
    if len(budgets) < 3:
        return None
    held_out, rest = runs[runs["budget"] == budgets[-1]], runs[runs["budget"] != budgets[-1]]
    flops = float(budgets[-1])
    observed = fit_approach2(held_out).budgets[0]
    best_loss = observed.loss_opt if observed.interior else float(held_out["loss"].min())
    check = {"held_out_flops": flops, "observed_best_loss": best_loss, "observed_n_opt": observed.n_opt, "approach2": None, "approach3": None}
    approach2 = fit_approach2(rest)
    if approach2.n_opt is not None:
        check["approach2"] = {"n_opt": float(approach2.n_opt(flops))}
    fit = _try_parametric(rest, compute)
    if fit is not None:
        loss = float(fit.optimal_loss(flops))
        check["approach3"] = {"n_opt": float(fit.optimal_allocation(flops)[0]), "loss": loss, "loss_error": loss - best_loss}
    return check


def _try_parametric(runs, compute: FlopsPerToken):
    """Approach 3's fit, or None when the runs cannot identify L(N, D)'s five parameters: fewer than 5 distinct
    (N, D) points, one size or one token count, or no start with positive E, A, B (degenerate data never stops the
    other approaches). Replicates (several seeds at one point) are fitted as they are: each is one residual."""
    points = runs[["n_params", "tokens"]].drop_duplicates()
    if len(points) < 5 or points["n_params"].nunique() < 2 or points["tokens"].nunique() < 2:
        return None
    try:
        return fit_parametric(runs["n_params"], runs["tokens"], runs["loss"], compute=compute)
    except ValueError:
        return None


def _deep_clean(value):
    if isinstance(value, dict):
        return {k: _deep_clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_clean(v) for v in value]
    return _clean(value)
