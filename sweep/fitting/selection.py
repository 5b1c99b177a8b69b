"""Choosing a law family by how well it extrapolates, not by how well it fits.

A richer form always fits the runs it was fitted to at least as well, so in-sample objectives cannot choose
between families. Each family (``sweep.fitting.laws``) is instead refitted with the runs a team would want to
predict held out, and scored on them:

- ``largest budget``: every run of the largest budget, predicted from the smaller ones (needs 3 or more budgets);
- ``largest size``: every run of the largest model size, predicted from the smaller sizes (needs 4 or more sizes).

A family's held-out error is the mean |L_predicted / L_observed - 1| over the held-out runs of both folds; its
bias is the mean signed error. The family with the lowest error is chosen (the one with fewer parameters on a
tie), unless the user names one (``--law``). A family that cannot be identified from the runs (too few distinct
points for its parameters, no unique-token column, ...) or that fails to fit on a fold is skipped with the reason.
With no fold to hold out, Chinchilla's form is chosen, and the reason is said.

The fit range is chosen with the family, by the same held-out error. A sweep's smallest budgets often bend away
from the law its larger ones follow (tiny models, runs of a few hundred steps, hyperparameters tuned at another
scale), and a law is fitted to extrapolate upwards. So each family is also fitted without the smallest quarter and
without the smallest half of the budgets (``FIT_RANGE_DROPS``, where at least ``MIN_BUDGETS_FITTED`` budgets
remain), and keeps the range whose held-out error is lowest (the widest on a tie). Every range is scored on the
same runs: the largest budget's, and the largest size's at budgets the narrowest range still fits. On Porian et
al.'s 15 public tables, choosing the range this way took the chosen law's error on each table's held-out largest
budget from 1.90% to 0.31% (``benchmarks/fit_accuracy.py --part held-out``, ``docs/fit-accuracy.md``).

Pure: a table in, a frozen result out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from sweep.fitting.blas import one_blas_thread
from sweep.fitting.compute import FlopsPerToken
from sweep.fitting.laws import FAMILIES, RATIO_ROOM, FittedLaw, LawFamily, fit_law
from sweep.fitting.parametric import fit_parametric

DEFAULT_LAW = "chinchilla"
REPEATED = 1.05
"""A run repeats its data when D > 1.05 U (unique tokens)."""
FIT_RANGE_DROPS = (0.0, 0.25, 0.5)
"""Shares of the smallest budgets a family may be fitted without (module docstring)."""
MIN_BUDGETS_FITTED = 4
"""A narrower range must keep this many budgets: 3 once its largest is held out, as the budget fold needs."""


@dataclass(frozen=True)
class FamilyScore:
    family: LawFamily
    fit: FittedLaw | None
    skipped: str | None
    """Why the family was not fitted or not scored (None: scored)."""
    fold_errors: dict[str, float]
    """Mean |relative error| of each fold's held-out runs."""
    error: float | None
    """Mean |relative error| over every held-out run."""
    bias: float | None
    """Mean signed relative error over every held-out run (positive: predicted too high)."""
    smallest_budget: float | None = None
    """The smallest budget whose runs the family is fitted to (the fit range, module docstring)."""
    fitted_runs: int = 0
    ranges: dict[float, float | None] = field(default_factory=dict)
    """Each fit range tried (its smallest budget) and its held-out error (None: not scored there)."""

    def as_dict(self) -> dict:
        fit = self.fit
        return {"name": self.family.name, "formula": self.family.formula, "reference": self.family.reference,
                "parameters": fit.values if fit else None, "objective": fit.objective if fit else None,
                "held_out_error": self.error, "held_out_bias": self.bias, "folds": self.fold_errors, "skipped": self.skipped,
                "smallest_budget_fitted": self.smallest_budget, "fitted_runs": self.fitted_runs,
                "ranges": {f"{budget:.6g}": error for budget, error in self.ranges.items()}}  # fmt: skip

    def fitted(self, runs: pd.DataFrame) -> pd.DataFrame:
        """The runs of ``runs`` in the family's fit range."""
        return runs if self.smallest_budget is None else runs[runs["budget"] >= self.smallest_budget]


@dataclass(frozen=True)
class LawChoice:
    scores: tuple[FamilyScore, ...]
    chosen: FamilyScore | None
    chosen_by: str
    """``held-out error``, ``--law`` or why the default was taken."""
    folds: tuple[dict, ...]
    """Each fold: its name, held-out and training run counts."""

    def as_dict(self) -> dict:
        return {"chosen": self.chosen.family.name if self.chosen else None, "chosen_by": self.chosen_by,
                "folds": list(self.folds), "families": [s.as_dict() for s in self.scores]}  # fmt: skip


def unique_tokens(runs: pd.DataFrame) -> np.ndarray | None:
    """The runs' unique tokens where the table records them for every run."""
    if "unique_tokens" not in runs or runs["unique_tokens"].isna().any():
        return None
    return runs["unique_tokens"].to_numpy(dtype=float)


def why_not_identifiable(family: LawFamily, runs: pd.DataFrame) -> str | None:
    """Why ``runs`` cannot identify ``family``'s parameters, or None."""
    points = runs[["n_params", "tokens"]].drop_duplicates()
    needed = family.size
    if len(points) < needed or points["n_params"].nunique() < 2 or points["tokens"].nunique() < 2:
        return (f"needs {needed} or more distinct (N, D) points over 2 or more sizes and token counts for its "
                f"{family.size} parameters (has {len(points)})")  # fmt: skip
    if family.name == "farseer":
        curves = int((runs.groupby("budget")["n_params"].nunique() >= 3).sum())
        if curves < 3:
            return ("needs 3 or more budgets of 3 or more model sizes each: its data term's coefficient and exponent "
                    f"vary with N, which one or two iso-FLOP curves cannot tell apart (has {curves})")  # fmt: skip
    if family.needs_unique_tokens:
        unique = unique_tokens(runs)
        if unique is None:
            return "needs a unique_tokens column (the distinct tokens each run read) on every run"
        repeated = int((runs["tokens"].to_numpy(dtype=float) > REPEATED * unique).sum())
        if repeated < 3:
            return f"needs 3 or more runs that repeat their data (D > {REPEATED} U) to measure R* (has {repeated})"
    return None


def fit_family(family: LawFamily, runs: pd.DataFrame, compute: FlopsPerToken, log_n0: float | None = None,
               bases: dict | None = None) -> FittedLaw:  # fmt: skip
    """``family`` fitted to ``runs``; ``bases`` keeps Chinchilla's fit of each table seen (keyed by its N, D and loss),
    from which every family starts, so the families of one choice share one such fit per fold."""
    unique = unique_tokens(runs) if family.needs_unique_tokens else None
    base = None
    if bases is not None:
        key = runs[["n_params", "tokens", "loss"]].to_numpy(dtype=float).tobytes()
        if key not in bases:
            bases[key] = fit_parametric(runs["n_params"], runs["tokens"], runs["loss"], compute=compute)
        base = bases[key]
    return fit_law(family, runs["n_params"], runs["tokens"], runs["loss"], unique_tokens=unique, compute=compute,
                   log_n0=log_n0, base=base)  # fmt: skip


def folds(runs: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """(name, held-out mask) of each fold the runs allow (module docstring)."""
    out = []
    if runs["budget"].nunique() >= 3:
        out.append(("largest budget", runs["budget"] == runs["budget"].max()))
    if runs["n_params"].nunique() >= 4:
        out.append(("largest size", runs["n_params"] == runs["n_params"].max()))
    return out


def fit_ranges(runs: pd.DataFrame) -> list[float]:
    """The smallest budget of each fit range tried (module docstring), widest first."""
    budgets = sorted(float(b) for b in runs["budget"].unique())
    drops = {round(len(budgets) * share) for share in FIT_RANGE_DROPS}
    return [budgets[k] for k in sorted(drops) if k == 0 or len(budgets) - k >= MIN_BUDGETS_FITTED]


def score_family(family: LawFamily, runs: pd.DataFrame, compute: FlopsPerToken, bases: dict | None = None,
                 smallest_budget: float | None = None, scored_from: float | None = None) -> FamilyScore:  # fmt: skip
    """``family`` fitted to the runs of budgets from ``smallest_budget`` on and scored on the held-out folds
    (module docstring): every run of the largest budget, and the largest size's from budget ``scored_from`` on;
    ``bases``: ``fit_family``'s."""
    smallest = float(runs["budget"].min()) if smallest_budget is None else smallest_budget
    in_range = (runs["budget"] >= smallest).to_numpy()
    fitted = runs[in_range]
    skip = dict(smallest_budget=smallest, fitted_runs=len(fitted))
    reason = why_not_identifiable(family, fitted)
    if reason:
        return FamilyScore(family, None, reason, {}, None, None, **skip)
    try:
        fit = fit_family(family, fitted, compute, bases=bases)
    except ValueError as error:
        return FamilyScore(family, None, str(error), {}, None, None, **skip)
    largest = float(runs["budget"].max())
    if not fit.optimum_inside(largest):
        return FamilyScore(family, fit, f"its compute-optimal allocation at the largest budget ({largest:.3g}) runs to the "
                           f"edge of the D/N range searched (the runs' own x {RATIO_ROOM:g} either way): the form falls "
                           "without end along the iso-FLOP line there, so it predicts no optimum", {}, None, None, **skip)  # fmt: skip
    errors, fold_errors = [], {}
    for name, held in folds(runs):
        held = held.to_numpy()
        train = runs[in_range & ~held]
        test = runs[held & (runs["budget"] >= (smallest if scored_from is None else scored_from)).to_numpy()]
        if test.empty:
            continue
        reason = why_not_identifiable(family, train)
        if reason:
            return FamilyScore(family, fit, f"cannot be scored without the {name}: {reason}", fold_errors, None, None, **skip)
        try:
            fold_fit = fit_family(family, train, compute, log_n0=fit.log_n0, bases=bases)
        except ValueError as error:
            return FamilyScore(family, fit, f"cannot be scored without the {name}: {error}", fold_errors, None, None, **skip)
        unique = test["unique_tokens"] if family.needs_unique_tokens else None
        relative = np.asarray(fold_fit.loss(test["n_params"], test["tokens"], unique), dtype=float) / test["loss"].to_numpy(dtype=float) - 1.0
        fold_errors[name] = float(np.mean(np.abs(relative)))
        errors.append(relative)
    if not errors:
        return FamilyScore(family, fit, None, {}, None, None, **skip)
    pooled = np.concatenate(errors)
    return FamilyScore(family, fit, None, fold_errors, float(np.mean(np.abs(pooled))), float(np.mean(pooled)), **skip)


def best_range(family: LawFamily, runs: pd.DataFrame, compute: FlopsPerToken, bases: dict) -> FamilyScore:
    """``family`` scored on each fit range (``fit_ranges``), all on the same held-out runs; the range of the lowest
    held-out error (the widest on a tie), or the widest range's score when none could be scored."""
    ranges = fit_ranges(runs)
    tried = [score_family(family, runs, compute, bases, smallest, scored_from=ranges[-1]) for smallest in ranges]
    errors = {score.smallest_budget: score.error for score in tried}
    scored = [score for score in tried if score.error is not None]
    best = min(scored, key=lambda score: score.error) if scored else tried[0]
    return replace(best, ranges=errors)


@one_blas_thread
def choose_law(runs: pd.DataFrame, compute: FlopsPerToken, law: str | None = None, names=None) -> LawChoice:
    """Score every family (or ``names``) on each fit range and choose one (module docstring); ``law`` forces the
    family (its range is still chosen by held-out error)."""
    if law is not None and law not in FAMILIES:
        raise ValueError(f"unknown law family {law!r}: choose from {', '.join(FAMILIES)}")
    bases: dict = {}  # Chinchilla's fit of each table and fold seen, shared by the families
    scores = tuple(best_range(FAMILIES[name], runs, compute, bases) for name in (names or FAMILIES))
    fold_rows = tuple({"name": name, "held_out_runs": int(held.sum()), "training_runs": int((~held).sum())} for name, held in folds(runs))
    by_name = {s.family.name: s for s in scores}
    if law is not None:
        chosen = by_name.get(law)
        return LawChoice(scores, chosen if chosen and chosen.fit else None, "--law", fold_rows)
    ranked = sorted((s for s in scores if s.error is not None), key=lambda s: (s.error, s.family.size))
    if ranked:
        return LawChoice(scores, ranked[0], "held-out error", fold_rows)
    default = by_name.get(DEFAULT_LAW)
    why = ("no fold to hold out (needs 3 or more budgets or 4 or more sizes)" if not fold_rows
           else "no family could be scored on the held-out folds")  # fmt: skip
    return LawChoice(scores, default if default and default.fit else None, f"default: {why}", fold_rows)


LAW_BOOTSTRAP = 200
"""Resamples for the chosen law's intervals (at most; fewer with ``--bootstrap``): a refit of a 5-7 parameter form
with a numeric allocation takes ~20-50 ms, so 1,000 would add most of a minute to every fit."""


@one_blas_thread
def law_summary(runs: pd.DataFrame, compute: FlopsPerToken, law: str | None = None, n_boot: int = 1000, seed: int = 0,
                predict_flops: list[float] = ()) -> dict:  # fmt: skip
    """The ``laws`` entry of a fit summary: every family's held-out error and parameters with bootstrap intervals
    (``LAW_BOOTSTRAP`` resamples at most), the chosen law, and its compute-optimal answer with intervals at each of
    ``predict_flops`` (``predictions``, keyed by budget)."""
    from sweep.fitting.bootstrap import bootstrap_law

    choice = choose_law(runs, compute, law)
    out = choice.as_dict() | {"law": None, "predictions": {}}
    if choice.chosen is None:
        asked = by_name.skipped if law and (by_name := {s.family.name: s for s in choice.scores}.get(law)) else None
        out["not_fitted"] = f"--law {law}: {asked or 'not fitted'}" if law else "no law family could be fitted to the runs"
        return out
    fit, resamples = choice.chosen.fit, min(n_boot, LAW_BOOTSTRAP)
    for entry, score in zip(out["families"], choice.scores):  # every fitted family's parameters get intervals
        if score.fit is None or not resamples:
            continue
        samples = bootstrap_law(score.fitted(runs), score.fit, resamples, seed, predict_flops if score is choice.chosen else ())
        entry["ci"] = samples.intervals() if len(samples.samples) else {}
        entry["failed_resamples"] = samples.failed
    chosen = next(entry for entry in out["families"] if entry["name"] == fit.family.name)
    out["law"] = {"name": fit.family.name, "formula": fit.family.formula, "parameters": fit.values, "objective": fit.objective,
                  "smallest_budget_fitted": choice.chosen.smallest_budget, "fitted_runs": choice.chosen.fitted_runs,
                  "ci": chosen.get("ci", {}), "samples": resamples, "failed_resamples": chosen.get("failed_resamples", 0)}  # fmt: skip
    frontier = fit.frontier(list(predict_flops))
    for i, c in enumerate(predict_flops):
        out["predictions"][c] = {"name": fit.family.name} | {key: float(frontier[key][i]) for key in ("n_opt", "d_opt", "loss", "a")}
    return out
