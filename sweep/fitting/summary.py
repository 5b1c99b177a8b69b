"""The fit summary: every approach's numbers with 95% intervals (``INTERVAL_METHODS``), as one JSON-ready dict.

Schema (``sweep fit --json PATH``; numbers are floats, intervals ``[lo, hi]``)::

    {
      "n_runs": int,                       # runs fitted
      "flops_convention": {"name", "coefficients", "powers", "max_relative_error"},   # C = f(N) D (fitting/compute.py)
      "excluded": [{"run_id", "status", "error"}],
      "bootstrap": {"samples": int, "seed": int, "level": 0.95},
      "approach1": {                                    # envelope of final losses (see fitting/envelope.py)
        "a": float | null, "b": float | null, "method": "crossings" | "budget minima", "note": str | null,
        "envelope": [{"flops", "n_params", "tokens", "loss", "from_n_params", "to_n_params"}]   # crossings: switch points
                  | [{"budget", "flops", "n_params", "tokens", "loss"}],   # budget minima: runs off the ladder's edge
        "ci": {"a", "b", "n_opt@C", "d_opt@C": [lo, hi]}, "failed_resamples": 0, "interval_method": str,
        "no_interval": str | null,          # fitted through 2 points: why there is no interval
        "unbounded": {"n_opt@C" | "d_opt@C": str}   # only where an interval is not bounded by the data (fitting/bounded.py)
      },
      "approach2": {
        "a": float | null, "b": float | null,          # N_opt ∝ C^a, D_opt ∝ C^b (null: < 2 usable budgets)
        "minimum": {"method": "akima" | "spline" | "parabola", "window": int | null, "include_edges": bool, "description"},
        "budgets": [{"flops", "n_runs", "interior", "n_opt", "d_opt", "loss_opt", "note",
                     "edge": "smallest" | "largest" | null, "sizes_fitted"}],
        "ci": {"a": [lo, hi], "b": [lo, hi], "n_opt@C": [...], "d_opt@C": [...]},
        "failed_resamples": int, "interval_method": str,
        "pseudo_budgets": {"count", "min_runs", "max_runs", "tolerance"}   # only for a table without budgets
      },
      "approach3": {                                    # null with fewer than 5 distinct (N, D) points
        "E", "A", "B", "alpha", "beta", "a", "b", "objective",   # objective: summed Huber (delta 1e-3)
        "ci": {"E", "A", "B", "alpha", "beta", "a", "b", "n_opt@C", "d_opt@C", "loss@C", "gain@C": [lo, hi]},
        "failed_resamples": int
      },
      "laws": {                     # law families scored by held-out error (fitting/selection.py); null without runs
        "chosen": str | null, "chosen_by": "held-out error" | "--law" | "default: why",
        "folds": [{"name": "largest budget" | "largest size", "held_out_runs", "training_runs"}],
        "families": [{"name", "formula", "reference", "parameters": {name: value} | null, "objective",
                      "held_out_error", "held_out_bias", "folds": {fold: error}, "skipped": str | null,
                      "smallest_budget_fitted", "fitted_runs", "ranges": {"smallest budget": error | null},
                      "ci": {parameter: [lo, hi]}, "failed_resamples"}],   # ci: fitted families, with a bootstrap
        "law": {"name", "formula", "parameters", "objective", "ci": {parameter | "n_opt@C" | "d_opt@C" | "loss@C" |
                "a@C": [lo, hi]}, "samples", "failed_resamples", "smallest_budget_fitted", "fitted_runs"} | null,
        "not_fitted": str                 # only when no law was chosen
      },
      "predictions": [{"flops", "approach1": {"n_opt", "d_opt"}, "approach2": {"n_opt", "d_opt"},
                       "approach3": {"n_opt", "d_opt", "loss", "gain"},   # gain: L(C) - L(2C), a doubling's worth
                       "law": {"name", "n_opt", "d_opt", "loss", "a"}}],   # the chosen law; a: d log N_opt / d log C
      "extrapolation": {          # null with fewer than 3 budgets, a largest budget of < 3 sizes, or pseudo-budgets
        "held_out_flops", "observed_best_loss", "observed_n_opt",   # the largest budget, fitted on its own
        "approach2": {"n_opt"}, "approach3": {"n_opt", "loss", "loss_error"}   # refitted without it
      },
      "replicates": {"points", "runs", "loss_sd_median", "loss_sd_max", "relative_sd_median"} | null,  # seeds' spread
      "not_fitted": {"approach1" | "approach2" | "approach3" | "extrapolation": str},   # what it needs
      "warnings": [str]     # a prediction far beyond the data, pseudo-budgets, an interval lopsided about its estimate,
                            # Approach 1's edge minima, an interval unbounded by the data (also in approach2: "unbounded")
    }

``@C`` keys hold predictions at each requested budget C (``--predict-flops``; default: the largest budget).
A prediction at more than ``EXTRAPOLATION_FACTOR`` (10) times the largest fitted budget gets a warning: the laws
are fitted over the sweep's range, and their exponents' uncertainty grows with every decade beyond it.
"""

from __future__ import annotations

import math

import numpy as np

from sweep.fitting.blas import one_blas_thread
from sweep.fitting.bootstrap import BootstrapSamples, bootstrap_isoflop, bootstrap_parametric
from sweep.fitting.bounded import unbounded_intervals, unbounded_warnings
from sweep.fitting.compute import FlopsPerToken
from sweep.fitting.envelope import Approach1Result, envelope_intervals, fit_approach1, why_no_interval
from sweep.fitting.inputs import FitInputs
from sweep.fitting.isoflop import MinimumRule, fit_approach2
from sweep.fitting.parametric import fit_parametric
from sweep.fitting.selection import law_summary

INTERVAL_METHODS = {
    "approach1 crossings": "Student-t intervals of the least-squares lines through the switch points (n - 2 degrees "
                           "of freedom; needs 3 points): a resample that drops one run cuts a size's curve",
    "approach1": "Student-t intervals of the least-squares lines through the envelope (n - 2 degrees of freedom, "
                 "widened by the size grid's resolution; needs 3 envelope points): a bootstrap of a minimum is degenerate",
    "approach2": "percentile bootstrap, runs resampled within each budget",
    "approach3": "percentile bootstrap, runs resampled over the whole table (Epoch AI), refits warm-started",
}
"""How each approach's 95% intervals are made (``fitting/envelope.py``, ``fitting/bootstrap.py``)."""
ZERO_WIDTH = 1e-6
"""An interval narrower than this (relative) has no width: every resample gave the same value."""
INTERVAL_ROOM = 0.05
"""An estimate closer than this share of its interval's width to an end is flagged (``interval_notes``)."""
HELD_OUT_SIZES = 3
"""Model sizes the extrapolation check's held-out (largest) budget needs: a real iso-FLOP curve, not a stray run."""
PSEUDO_CHECK = ("the extrapolation check needs a planned budget to hold out; the table's budgets are FLOP groups "
                "(no budget column)")
COMPUTE_TOLERANCE = 0.02
"""A FLOPs-per-token fit that misses a run by more than this is flagged (``sweep.fitting.compute``)."""
EXTRAPOLATION_FACTOR = 10.0
"""Predictions beyond this multiple of the largest fitted budget are flagged (module docstring)."""
NEEDS = {
    "approach1": "Approach 1 needs runs at 2 or more budgets",
    "approach2": "Approach 2 needs 2 or more budgets with a usable minimum (3 or more model sizes each, the best one "
                 "not at either end of its ladder)",
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


@one_blas_thread
def fit_summary(inputs: FitInputs, n_boot: int = 1000, seed: int = 0, predict_flops: list[float] | None = None,
                minimum: MinimumRule = MinimumRule(), law: str | None = None) -> dict:  # fmt: skip
    """Every approach fitted to ``inputs`` (module docstring); ``minimum``: how Approach 2 reads each budget's
    minimum (``sweep.fitting.isoflop.MinimumRule``); ``law``: the law family to predict with (None: the one that
    extrapolates best, ``sweep.fitting.selection``)."""
    runs, compute = inputs.runs, inputs.compute()
    predict_flops = list(predict_flops or [float(runs["budget"].max())])
    approach2 = fit_approach2(runs, minimum)
    summary = {
        "n_runs": len(runs),
        "flops_convention": compute.as_dict(),
        "excluded": inputs.excluded[["run_id", "status", "error"]].to_dict("records"),
        "bootstrap": {"samples": n_boot, "seed": seed, "level": 0.95},
        "approach2": {
            "a": approach2.a,
            "b": approach2.b,
            "minimum": minimum.as_dict(),
            "budgets": [
                {"flops": f.budget, "n_runs": f.n_runs, "interior": f.interior, "n_opt": f.n_opt, "d_opt": f.d_opt,
                 "loss_opt": f.loss_opt, "note": f.note, "edge": f.edge, "sizes_fitted": f.sizes_fitted}
                for f in approach2.budgets
            ],  # fmt: skip
        },
        "approach3": None,
        "predictions": [{"flops": c} for c in predict_flops],
    }
    approach1 = fit_approach1(runs, include_edges=minimum.include_edges)
    crossings = approach1.method == "crossings"
    summary["approach1"] = {"a": approach1.a, "b": approach1.b, "method": approach1.method, "note": approach1.note,
                            "envelope": approach1.envelope.to_dict("records"),
                            "interval_method": INTERVAL_METHODS["approach1 crossings" if crossings else "approach1"]}  # fmt: skip
    summary["approach2"]["interval_method"] = INTERVAL_METHODS["approach2"]
    if inputs.pseudo_budgets:
        summary["approach2"]["pseudo_budgets"] = inputs.pseudo_budgets
    for name, result in (("approach1", approach1), ("approach2", approach2)):
        if result.n_opt is None:
            continue
        if name == "approach1":
            summary[name] |= {"ci": envelope_intervals(approach1, predict_flops, runs=runs) if n_boot else {}, "failed_resamples": 0,
                              "no_interval": why_no_interval(approach1) if n_boot else None}  # fmt: skip
        else:
            summary[name] |= _uncertainty(bootstrap_isoflop(runs, n_boot, seed, predict_flops, minimum) if n_boot else None)
        for entry in summary["predictions"]:
            entry[name] = {"n_opt": float(result.n_opt(entry["flops"])), "d_opt": float(result.d_opt(entry["flops"]))}
    fit = parametric_or_none(runs, compute)
    if fit is not None:
        summary["approach3"] = {
            "E": fit.E, "A": fit.A, "B": fit.B, "alpha": fit.alpha, "beta": fit.beta, "a": fit.a, "b": fit.b,
            "objective": fit.objective, "interval_method": INTERVAL_METHODS["approach3"],
            **_uncertainty(bootstrap_parametric(runs, fit, n_boot, seed, predict_flops) if n_boot else None),
        }  # fmt: skip
        for entry in summary["predictions"]:
            n_opt, d_opt = fit.optimal_allocation(entry["flops"])
            loss, doubled = fit.optimal_loss(entry["flops"]), fit.optimal_loss(2.0 * entry["flops"])
            entry["approach3"] = {"n_opt": float(n_opt), "d_opt": float(d_opt), "loss": float(loss), "gain": float(loss - doubled)}
    why_no_law = _add_laws(summary, runs, compute, law, n_boot, seed, predict_flops)
    summary["extrapolation"] = None if inputs.pseudo_budgets else extrapolation_check(runs, compute, minimum)
    why_not = None
    if summary["extrapolation"] is None:
        why_not = PSEUDO_CHECK if inputs.pseudo_budgets else _why_no_check(runs)
    summary["replicates"] = replicate_spread(runs)
    summary["not_fitted"] = {name: NEEDS[name] for name in NEEDS if not _fitted(summary[name])}
    if approach1.not_fitted and "approach1" in summary["not_fitted"]:
        summary["not_fitted"]["approach1"] = approach1.not_fitted
    if why_not:
        summary["not_fitted"]["extrapolation"] = why_not
    if why_no_law:
        summary["not_fitted"]["law"] = why_no_law
    largest = float(runs["budget"].max()) if len(runs) else 0.0
    summary["warnings"] = list(inputs.warnings) + _pseudo_warning(inputs.pseudo_budgets) + [
        f"FLOPs per token f(N) misses a run's own by up to {compute.max_relative_error:.1%}: the runs were not sized "
        "by one convention of model size, so budgets split into N and D approximately"
    ] * (compute.max_relative_error > COMPUTE_TOLERANCE) + far_budget_warnings(predict_flops, largest)
    summary["warnings"] += _approach1_warnings(approach1, summary["approach1"])
    unbounded = unbounded_intervals(summary, runs)
    for name, keys in unbounded.items():
        summary[name]["unbounded"] = keys
    summary["warnings"] += unbounded_warnings(summary, unbounded, runs)
    summary["warnings"] += edge_warnings(approach2.budgets, minimum) + interval_notes(summary)
    return _deep_clean(summary)


def _add_laws(summary: dict, runs, compute: FlopsPerToken, law: str | None, n_boot: int, seed: int,
              predict_flops: list[float]) -> str | None:  # fmt: skip
    """The law families' entry (``sweep.fitting.selection.law_summary``) and the chosen law's answer at each predicted
    budget, added to ``summary``; why no law was chosen, or None."""
    if not len(runs):
        summary["laws"] = None
        return "no runs to fit"
    laws = law_summary(runs, compute, law, n_boot, seed, predict_flops)
    for entry in summary["predictions"]:
        if entry["flops"] in laws["predictions"]:
            entry["law"] = laws["predictions"][entry["flops"]]
    del laws["predictions"]
    summary["laws"] = laws
    return laws.get("not_fitted")


def _approach1_warnings(result: Approach1Result, part: dict) -> list[str]:
    """Approach 1's edge minima or frontier past the ladder (``Approach1Result.edges``), and why a fitted line has
    no interval."""
    notes = [f"Approach 1: {line}" for line in result.edges]
    if part.get("no_interval"):
        notes.append(f"Approach 1: a, b and its predictions have no interval: {part['no_interval']}; read them as "
                     "a point estimate with unmeasured uncertainty (more budgets or sizes near the optimum give more points)")
    return notes


def far_budget_warnings(predict_flops: list[float], largest: float) -> list[str]:
    """One line for the predicted budgets beyond ``EXTRAPOLATION_FACTOR`` times the largest fitted one (the first
    named, the others counted up to the farthest: a price's spend grid would otherwise repeat it five times)."""
    far = sorted(c for c in set(predict_flops) if largest > 0 and c > EXTRAPOLATION_FACTOR * largest)
    if not far:
        return []
    more = f", and {len(far) - 1} more budget(s) up to {far[-1]:.3g} ({far[-1] / largest:.3g}x)" if len(far) > 1 else ""
    return [f"C = {far[0]:.3g} FLOPs is {far[0] / largest:.3g}x the largest fitted budget ({largest:.3g}){more}: beyond "
            f"{EXTRAPOLATION_FACTOR:g}x the laws are extrapolated far past the data; read the predictions and their "
            "intervals as rough"]


def edge_warnings(budgets, minimum: MinimumRule) -> list[str]:
    """One line per Approach 2 budget whose best size is an end of its ladder (``IsoFlopFit.edge``)."""
    edges = [f for f in budgets if f.edge]
    if not edges:
        return []
    kept = "kept in the exponent fit (include_edges)" if minimum.include_edges else "left out of the exponent fit"
    where = ", ".join(f"{f.budget:.3g} ({f.edge})" for f in edges)
    return [f"approach2: {len(edges)} budget(s) have their lowest loss at an end of their ladder: {where}; their minimum "
            f"lies at or beyond the sizes trained, {kept}; add sizes past that end to measure it"]


def _pseudo_warning(pseudo: dict | None) -> list[str]:
    if not pseudo:
        return []
    return [f"the table has no budget column: its runs were grouped into {pseudo['count']} pseudo-budgets of FLOPs "
            f"within {pseudo['tolerance']:.0%} ({pseudo['min_runs']}-{pseudo['max_runs']} runs each); Approach 2's "
            "parabolas assume planned iso-FLOP budgets, so read it as approximate, and the extrapolation check is "
            "skipped; add a budget column to fit the budgets as planned"]


def _why_no_check(runs) -> str:
    budgets = runs["budget"].nunique()
    if budgets < 3:
        return f"the extrapolation check needs 3 or more budgets (has {budgets})"
    sizes = runs.loc[runs["budget"] == runs["budget"].max(), "n_params"].nunique()
    return f"the extrapolation check needs the largest budget to hold {HELD_OUT_SIZES} or more model sizes (it holds {sizes})"


def replicate_spread(runs) -> dict | None:
    """Seed-to-seed spread of final loss where several runs share a (budget, N): the noise floor against which
    differences between sizes are read. None without replicates."""
    groups = runs.groupby(["budget", "n_params"])["loss"]
    counts = groups.size()
    if not (counts >= 2).any():
        return None
    sd = groups.std(ddof=1)[counts >= 2]
    relative = (sd / groups.mean()[counts >= 2]).to_numpy()
    return {"points": int((counts >= 2).sum()), "runs": int(counts[counts >= 2].sum()),
            "loss_sd_median": float(sd.median()), "loss_sd_max": float(sd.max()),
            "relative_sd_median": float(np.median(relative))}  # fmt: skip


def _points(summary: dict, name: str) -> dict[str, float]:
    """Each ``ci`` key of an approach with its point estimate."""
    part = summary[name] or {}
    points = {key: part[key] for key in ("E", "A", "B", "alpha", "beta", "a", "b") if part.get(key) is not None}
    for entry in summary["predictions"]:
        for quantity, value in (entry.get(name) or {}).items():
            points[f"{quantity}@{entry['flops']:.3g}"] = value
    return points


def interval_notes(summary: dict) -> list[str]:
    """Each reported interval that does not hold its estimate with room to spare (at least ``INTERVAL_ROOM`` of its
    width from either end; in log space for positive quantities), said with the reason: a fit that does not sit inside its own interval is no estimate
    of its uncertainty."""
    notes = []
    for name in ("approach1", "approach2", "approach3"):
        ci = (summary[name] or {}).get("ci") or {}
        for key, point in _points(summary, name).items():
            if key not in ci:
                continue
            lo, hi = ci[key]
            if lo > 0 and point > 0:  # positive quantities are judged in log space, where their intervals live
                lo, hi, point = math.log(lo), math.log(hi), math.log(point)
            width = hi - lo
            if width <= ZERO_WIDTH * max(abs(lo), abs(hi), 1.0):
                notes.append(f"{name} {key}: its interval has no width: the data leave it no spread (an exact fit, or "
                             "an estimate on a bound such as E = 0), so it measures no uncertainty")
            elif not (lo + INTERVAL_ROOM * width <= point <= hi - INTERVAL_ROOM * width):
                shown, (lo, hi) = _points(summary, name)[key], ci[key]
                notes.append(f"{name} {key} = {shown:.4g} lies at or beyond the edge of its interval [{lo:.4g}, {hi:.4g}]: "
                             "the resamples are lopsided about the fit (too few runs or sizes near the minimum), so read "
                             "the interval as a range of plausible values, not one centred on the estimate")
    return notes


def _fitted(result: dict | None) -> bool:
    return result is not None and result.get("a") is not None


def extrapolation_check(runs, compute: FlopsPerToken = FlopsPerToken(), minimum: MinimumRule = MinimumRule()) -> dict | None:
    """Refit without the largest budget and compare what each approach predicts there with what was observed:
    the budget's best loss (its parabola's minimum when interior, else its lowest run) and its N_opt."""
    budgets = sorted(runs["budget"].unique())
    if len(budgets) < 3 or runs.loc[runs["budget"] == budgets[-1], "n_params"].nunique() < HELD_OUT_SIZES:
        return None
    held_out, rest = runs[runs["budget"] == budgets[-1]], runs[runs["budget"] != budgets[-1]]
    flops = float(budgets[-1])
    observed = fit_approach2(held_out, minimum).budgets[0]
    best_loss = observed.loss_opt if observed.interior else float(held_out["loss"].min())
    check = {"held_out_flops": flops, "observed_best_loss": best_loss, "observed_n_opt": observed.n_opt, "approach2": None, "approach3": None}
    approach2 = fit_approach2(rest, minimum)
    if approach2.n_opt is not None:
        check["approach2"] = {"n_opt": float(approach2.n_opt(flops))}
    fit = parametric_or_none(rest, compute)
    if fit is not None:
        loss = float(fit.optimal_loss(flops))
        check["approach3"] = {"n_opt": float(fit.optimal_allocation(flops)[0]), "loss": loss, "loss_error": loss - best_loss}
    return check


def parametric_or_none(runs, compute: FlopsPerToken):
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
