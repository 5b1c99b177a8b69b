"""Fit accuracy of Approach 2's per-budget minima, for each way of reading them (``sweep.fitting.isoflop.MinimumRule``),
and of the law families' predictions (``sweep.fitting.laws``, ``selection``): on public iso-FLOP tables with
published exponents, and on synthetic sweeps drawn from a known law.

Public: Porian et al. 2024's 15 tables (MIT; ``tests/data/public/``): ours against the published a and whether our
95% bootstrap interval holds it (``--part public``); each law family's held-out error (``--part laws``); and the
law chosen without each table's largest budget, asked for the loss of each held-out run (``sweep.fitting.point``):
its relative error and whether the new-run interval holds it (``--part held-out``). Coverage (``--part coverage``):
synthetic sweeps from a Chinchilla-form and a Farseer-form law, the share of draws whose intervals of a hold the
truth, and of held-out runs inside their new-run interval.

Each design draws iso-FLOP sweeps from a Chinchilla law (Epoch AI's refit: E 1.82, A 482, B 2085, alpha 0.348,
beta 0.366, a = beta / (alpha + beta) = 0.513; or Hoffmann et al.'s own), D = C / 6N, with multiplicative Gaussian loss noise; each budget's
sizes are a log grid of +-``span`` decades about a centre that misses the true optimum by ``offset`` decades (as a
guessed ladder does). Per rule and design: mean a - a_true (bias), RMSE, the share of draws whose 95% bootstrap
interval holds a_true (coverage), and budgets left out per draw (edge budgets, or no usable minimum).

    python benchmarks/fit_accuracy.py [--draws 60] [--boot 200] [--part all|public|laws|held-out|coverage|designs]

Prints one table; ``docs/fit-accuracy.md`` records a run with its machine and command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.fitting.bootstrap import bootstrap_isoflop  # noqa: E402
from sweep.fitting.isoflop import MinimumRule, fit_approach2  # noqa: E402

EPOCH = (1.8172, 482.01, 2085.43, 0.3478, 0.3658)
"""Epoch AI's refit of Chinchilla's data: E, A, B, alpha, beta."""
HOFFMANN = (1.69, 406.4, 410.7, 0.34, 0.28)
"""Hoffmann et al.'s own fit: less symmetric in log N (alpha and beta further apart)."""
BUDGETS = np.logspace(17, 20, 6)
DESIGNS = {  # name: (law, budgets, sizes per budget, span in decades each side, offset of the grid's centre, noise)
    "narrow 7x1.0": (EPOCH, BUDGETS, 7, 0.5, 0.0, 0.005),
    "wide, 0.2% noise": (EPOCH, BUDGETS, 13, 1.2, 0.2, 0.002),
    "wide 13x2.4": (EPOCH, BUDGETS, 13, 1.2, 0.0, 0.005),
    "wide off-centre": (EPOCH, BUDGETS, 13, 1.2, 0.4, 0.005),
    "wide, 1% noise": (EPOCH, BUDGETS, 13, 1.2, 0.2, 0.01),
    "Hoffmann 15x3.0": (HOFFMANN, BUDGETS, 15, 1.5, 0.5, 0.005),
}
RULES = {
    "akima (default)": MinimumRule("akima"),
    "smoothing spline": MinimumRule("spline"),
    "parabola, window 7": MinimumRule("parabola", 7),
    "parabola, window 5": MinimumRule("parabola", 5),
    "parabola, all sizes": MinimumRule("parabola", None),
}


def a_true(law: tuple) -> float:
    _, _, _, alpha, beta = law
    return beta / (alpha + beta)


def optimum(law: tuple, budget: float) -> float:
    _, a, b, alpha, beta = law
    g = (alpha * a / (beta * b)) ** (1 / (alpha + beta))
    return g * (budget / 6) ** a_true(law)


def draw(law: tuple, budgets, sizes: int, span: float, offset: float, noise: float, rng: np.random.Generator) -> pd.DataFrame:
    e, a, b, alpha, beta = law
    rows = []
    for budget in budgets:
        for n in optimum(law, budget) * 10 ** (offset + np.linspace(-span, span, sizes)):
            d = budget / (6 * n)
            loss = (e + a / n**alpha + b / d**beta) * (1 + noise * rng.standard_normal())
            rows.append({"n_params": n, "tokens": d, "loss": loss, "budget": budget})
    return pd.DataFrame(rows)


def measure(design: tuple, rule: MinimumRule, draws: int, n_boot: int, seed: int) -> dict:
    rng, truth = np.random.default_rng(seed), a_true(design[0])
    estimates, covered, dropped = [], 0, []
    for k in range(draws):
        runs = draw(*design, rng=rng)
        fit = fit_approach2(runs, rule)
        dropped.append(sum(not f.interior for f in fit.budgets))
        if fit.a is None:
            continue
        estimates.append(fit.a)
        samples = bootstrap_isoflop(runs, n_boot, seed=k, rule=rule)
        if len(samples.samples):
            lo, hi = samples.interval("a")
            covered += lo <= truth <= hi
    errors = np.array(estimates) - truth
    return {"fitted": len(estimates), "bias": errors.mean(), "rmse": np.sqrt((errors**2).mean()),
            "coverage": covered / max(1, len(estimates)), "left_out": float(np.mean(dropped))}  # fmt: skip


PUBLIC = Path(__file__).resolve().parents[1] / "tests" / "data" / "public"


def public_tables(n_boot: int, seed: int) -> None:
    """Porian et al. 2024's 15 iso-FLOP tables (``tests/data/public/README.md``): per table, the published a and
    interval against each rule's a and 95% bootstrap interval; then per rule the mean and largest |delta| and how
    many published values its intervals hold."""
    runs = pd.read_csv(PUBLIC / "porian2024_isoflop.csv")
    published = pd.read_csv(PUBLIC / "porian2024_published_exponents.csv").set_index("config")
    totals = {label: [] for label in RULES}
    print(f"public: Porian et al. 2024, {runs['config'].nunique()} tables; {n_boot} resamples")
    print(f"{'table':<42}{'published':>22}" + "".join(f"{label:>26}" for label in RULES))
    for config, group in runs.groupby("config"):
        p = published.loc[config]
        line = f"{config:<42}{p['a']:>8.3f} [{p['a_ci_lo']:.3f}, {p['a_ci_hi']:.3f}]"
        for label, rule in RULES.items():
            a = fit_approach2(group, rule).a
            lo, hi = bootstrap_isoflop(group, n_boot, seed, rule=rule).interval("a")
            totals[label].append((a - p["a"], lo <= p["a"] <= hi))
            line += f"{a:>8.3f} [{lo:.3f}, {hi:.3f}]{'' if lo <= p['a'] <= hi else '*'}".rjust(26)
        print(line)
    for label, rows in totals.items():
        deltas = np.abs([d for d, _ in rows])
        print(f"  {label:<22} mean |a - published| {deltas.mean():.4f}, largest {deltas.max():.4f}, "
              f"published inside the interval {sum(h for _, h in rows)}/{len(rows)}")
    print("(* the published value lies outside our interval)")


def law_families() -> None:
    """Each law family's held-out error on each public table (``sweep.fitting.selection``: refitted without the
    largest budget and without the largest size, scored on them), and the family chosen."""
    from sweep.fitting.compute import six_nd
    from sweep.fitting.laws import FAMILIES
    from sweep.fitting.selection import choose_law

    runs = pd.read_csv(PUBLIC / "porian2024_isoflop.csv")
    names = [name for name in FAMILIES if not FAMILIES[name].needs_unique_tokens]
    print("law families: mean |relative error| of the held-out runs (largest budget and largest size), per public table")
    print(f"{'table':<42}" + "".join(f"{name:>12}" for name in names) + f"{'chosen':>12}")
    errors, chosen = {name: [] for name in names}, []
    for config, group in runs.groupby("config"):
        choice = choose_law(group.drop(columns="config").reset_index(drop=True), six_nd(), names=names)
        line = f"{config:<42}"
        for score in choice.scores:
            errors[score.family.name].append(score.error)
            line += f"{score.error:>12.2%}" if score.error is not None else f"{'-':>12}"
        chosen.append(choice.chosen.error)
        print(line + f"{choice.chosen.family.name:>12}")
    print("  mean: " + ", ".join(f"{name} {np.mean([e for e in v if e is not None]):.2%}" for name, v in errors.items())
          + f"; the chosen family {np.mean(chosen):.2%}")


def held_out_runs(n_boot: int, seed: int) -> None:
    """The chosen law (``sweep.fitting.selection``), fitted and chosen without each public table's largest budget,
    then asked for the loss of every run of it (``sweep.fitting.point.losses_at``): relative error of the law's mean,
    and the share of held-out runs inside the 95% new-run interval."""
    from sweep.fitting.inputs import FitInputs
    from sweep.fitting.point import losses_at

    runs = pd.read_csv(PUBLIC / "porian2024_isoflop.csv")
    excluded = pd.DataFrame(columns=["run_id", "status", "error"])
    print(f"held out: each public table's largest budget, predicted by the law chosen on the rest; {n_boot} resamples")
    print(f"{'table':<42}{'law':>12}{'runs':>6}{'mean |rel err|':>16}{'at its best run':>16}{'inside 95%':>12}")
    errors, best_errors, inside, total = [], [], 0, 0
    for config, group in runs.groupby("config"):
        top = group["budget"].max()
        rest, held = FitInputs(group[group["budget"] < top].drop(columns="config"), excluded), group[group["budget"] == top]
        results = losses_at(rest, list(zip(held["n_params"], held["tokens"])), n_boot=n_boot, seed=seed)
        observed = held["loss"].to_numpy()
        predicted = np.array([r["loss"] for r in results])
        rel = np.abs(predicted / observed - 1)
        best = int(np.argmin(observed))
        hits = sum(r["prediction_interval"][0] <= o <= r["prediction_interval"][1] for r, o in zip(results, observed))
        errors += list(rel)
        best_errors.append(rel[best])
        inside, total = inside + hits, total + len(rel)
        print(f"{config:<42}{results[0]['law']['name']:>12}{len(rel):>6}{np.mean(rel):>16.2%}{rel[best]:>16.2%}{hits / len(rel):>12.0%}")
    print(f"  all: mean |relative error| {np.mean(errors):.2%} ({np.mean(best_errors):.2%} at each held-out budget's best "
          f"run), held-out runs inside their 95% interval {inside}/{total} ({inside / total:.0%})")


FARSEER_TRUTH = (np.log(482.01), np.log(2085.43), np.log(1.8172), 0.3478, 0.3658, 0.10, -0.03)
"""A law whose data term depends on N (``farseer`` family, N0 = 1e8): Epoch's refit with gamma 0.10, delta -0.03."""


def coverage(draws: int, n_boot: int, seed: int) -> None:
    """Synthetic sweeps whose law is known: coverage of a by Approach 2 (Akima) and Approach 3's bootstrap intervals,
    and of held-out runs (the largest budget, predicted by the law chosen without it) by their 95% new-run interval,
    with the mean |relative error| of those predictions."""
    from sweep.fitting.bootstrap import bootstrap_parametric
    from sweep.fitting.inputs import FitInputs
    from sweep.fitting.laws import FAMILIES, FittedLaw
    from sweep.fitting.parametric import fit_parametric
    from sweep.fitting.point import losses_at

    excluded = pd.DataFrame(columns=["run_id", "status", "error"])
    print(f"coverage on synthetic sweeps: {draws} draws each, {n_boot} resamples; design 'wide 13x2.4' (6 budgets x 13 "
          "sizes, 0.5% noise); held out: the largest budget")
    print(f"{'truth':<22}{'a (A2)':>8}{'cover':>7}{'a (A3)':>8}{'cover':>7}{'held-out err':>14}{'inside 95%':>12}{'laws chosen':>34}")
    farseer = FittedLaw(FAMILIES["farseer"], FARSEER_TRUTH, 0.0, 0, float(np.log(1e8)))
    for label, truth_a, make in (
        ("chinchilla (Epoch)", a_true(EPOCH), lambda rng: draw(EPOCH, BUDGETS, 13, 1.2, 0.0, 0.005, rng)),
        ("farseer form", farseer.exponent_a(float(BUDGETS[-1])), lambda rng: _farseer_draw(farseer, rng)),
    ):
        rng = np.random.default_rng(seed)
        a2_hits = a3_hits = inside = total = 0
        a2, a3, errors, chosen = [], [], [], {}
        for k in range(draws):
            runs = make(rng)
            fit2 = fit_approach2(runs, MinimumRule())
            if fit2.a is not None:
                lo, hi = bootstrap_isoflop(runs, n_boot, seed=k).interval("a")
                a2.append(fit2.a)
                a2_hits += lo <= truth_a <= hi
            fit3 = fit_parametric(runs["n_params"], runs["tokens"], runs["loss"])
            lo, hi = bootstrap_parametric(runs, fit3, n_boot, seed=k).interval("a")
            a3.append(fit3.a)
            a3_hits += lo <= truth_a <= hi
            top = runs["budget"].max()
            held = runs[runs["budget"] == top]
            results = losses_at(FitInputs(runs[runs["budget"] < top], excluded), list(zip(held["n_params"], held["tokens"])), n_boot=n_boot, seed=k)
            for r, observed in zip(results, held["loss"]):
                errors.append(abs(r["loss"] / observed - 1))
                inside += r["prediction_interval"][0] <= observed <= r["prediction_interval"][1]
                total += 1
            chosen[results[0]["law"]["name"]] = chosen.get(results[0]["law"]["name"], 0) + 1
        laws = ", ".join(f"{name} {count}" for name, count in sorted(chosen.items()))
        print(f"{label:<22}{np.mean(a2) - truth_a:>+8.4f}{a2_hits / max(1, len(a2)):>7.0%}{np.mean(a3) - truth_a:>+8.4f}"
              f"{a3_hits / draws:>7.0%}{np.mean(errors):>14.2%}{inside / total:>12.0%}{laws:>34}")
    print("  (a columns: mean a - true a over the draws; the farseer form's true a is its local exponent at the largest budget)")


def edges(draws: int, seed: int) -> None:
    """Edge budgets flagged: synthetic sweeps (design 'wide 13x2.4' from Epoch's law) whose largest budget's sizes
    all lie below its optimum, the largest 0.3, 0.6 or 1.0 decades short (the issue's case: 0.6), and the same sweeps
    with that budget centred; per case, the draws in which ``sweep fit``'s warnings flag the largest budget for
    Approach 1 and for Approach 2, flags on centred budgets (false alarms), and Approach 2's a with edges left out."""
    from sweep.fitting.inputs import FitInputs
    from sweep.fitting.summary import fit_summary

    excluded = pd.DataFrame(columns=["run_id", "status", "error"])
    print(f"edge budgets: {draws} draws per case, design 'wide 13x2.4' (0.5% noise); the largest budget's sizes shifted")
    print(f"{'largest budget':<28}{'A1 flagged':>11}{'A2 flagged':>11}{'false flags':>12}{'a (A2) - true':>15}")
    top = float(BUDGETS[-1])
    for label, short in (("centred", None), ("0.3 decades short", 0.3), ("0.6 decades short", 0.6), ("1.0 decades short", 1.0)):
        rng = np.random.default_rng(seed)
        a1 = a2 = false = 0
        errors = []
        for _ in range(draws):
            runs = draw(EPOCH, BUDGETS, 13, 1.2, 0.0, 0.005, rng)
            if short is not None:
                runs = pd.concat([runs[runs["budget"] < top], draw(EPOCH, [top], 13, 1.2, -(1.2 + short), 0.005, rng)], ignore_index=True)
            summary = fit_summary(FitInputs(runs, excluded), n_boot=0)
            edge_budgets = {b["flops"] for b in summary["approach2"]["budgets"] if b.get("edge")} if summary["approach2"] else set()
            a2 += top in edge_budgets
            false += len(edge_budgets - {top})
            a1 += any(w.lower().startswith("approach 1") and ("edge" in w or "largest size" in w) for w in summary["warnings"])
            if summary["approach2"] and summary["approach2"].get("a") is not None:
                errors.append(summary["approach2"]["a"] - a_true(EPOCH))
        print(f"{label:<28}{a1:>8}/{draws}{a2:>8}/{draws}{false:>12}{np.mean(errors):>+15.4f}")


def _farseer_draw(law, rng: np.random.Generator) -> pd.DataFrame:
    """An iso-FLOP sweep like design 'wide 13x2.4' with losses from a farseer-form ``law``."""
    rows = []
    for budget in BUDGETS:
        centre, _ = law.optimal_allocation(budget)
        for n in centre * 10 ** np.linspace(-1.2, 1.2, 13):
            rows.append({"n_params": n, "tokens": budget / (6 * n), "budget": budget})
    runs = pd.DataFrame(rows)
    runs["loss"] = law.loss(runs["n_params"], runs["tokens"]) * (1 + 0.005 * rng.standard_normal(len(runs)))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=60)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="only the designs whose name holds this")
    parser.add_argument("--part", choices=("all", "public", "laws", "held-out", "coverage", "edges", "designs"), default="all",
                        help="run one part only")
    parser.add_argument("--coverage-draws", type=int, default=40)
    args = parser.parse_args()
    began = time.perf_counter()
    part = "designs" if args.only else args.part
    if part in ("all", "public"):
        public_tables(args.boot, args.seed)
    if part in ("all", "laws"):
        law_families()
    if part in ("all", "held-out"):
        held_out_runs(min(args.boot, 100), args.seed)
    if part in ("all", "coverage"):
        coverage(args.coverage_draws, min(args.boot, 100), args.seed)
    if part in ("all", "edges"):
        edges(args.coverage_draws, args.seed)
    if part not in ("all", "designs"):
        print(f"({time.perf_counter() - began:.0f} s)")
        return
    print(f"synthetic laws: Epoch's refit (a = {a_true(EPOCH):.4f}), Hoffmann's (a = {a_true(HOFFMANN):.4f}); "
          f"{args.draws} draws per cell, {args.boot} resamples")
    print(f"{'design':<18}{'rule':<22}{'fitted':>7}{'bias':>9}{'rmse':>8}{'cover':>7}{'left out':>10}")
    for name, design in DESIGNS.items():
        if args.only and args.only not in name:
            continue
        for label, rule in RULES.items():
            m = measure(design, rule, args.draws, args.boot, args.seed)
            print(f"{name:<18}{label:<22}{m['fitted']:>7}{m['bias']:>+9.4f}{m['rmse']:>8.4f}{m['coverage']:>7.0%}{m['left_out']:>10.2f}")
    print(f"({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
