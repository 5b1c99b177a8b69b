"""Fit accuracy of Approach 2's per-budget minima, for each way of reading them (``sweep.fitting.isoflop.MinimumRule``):
on public iso-FLOP tables with published exponents, and on synthetic sweeps drawn from a known law.

Public: Porian et al. 2024's 15 tables (MIT; ``tests/data/public/``): ours against the published a and whether our
95% bootstrap interval holds it; and Approach 3 fitted without each table's largest budget, asked for the loss of
each held-out run (``sweep.fitting.point``): its relative error and whether the new-run interval holds it.

Each design draws iso-FLOP sweeps from a Chinchilla law (Epoch AI's refit: E 1.82, A 482, B 2085, alpha 0.348,
beta 0.366, a = beta / (alpha + beta) = 0.513; or Hoffmann et al.'s own), D = C / 6N, with multiplicative Gaussian loss noise; each budget's
sizes are a log grid of +-``span`` decades about a centre that misses the true optimum by ``offset`` decades (as a
guessed ladder does). Per rule and design: mean a - a_true (bias), RMSE, the share of draws whose 95% bootstrap
interval holds a_true (coverage), and budgets left out per draw (edge budgets, or no usable minimum).

    python benchmarks/fit_accuracy.py [--draws 60] [--boot 200]

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


def held_out_runs(n_boot: int, seed: int) -> None:
    """Approach 3 fitted without each public table's largest budget, then asked for the loss of every run of it
    (``sweep.fitting.point.loss_at``): relative error of the law's mean, and the share of held-out runs inside the
    95% new-run interval."""
    from sweep.fitting.inputs import FitInputs
    from sweep.fitting.point import loss_at

    runs = pd.read_csv(PUBLIC / "porian2024_isoflop.csv")
    excluded = pd.DataFrame(columns=["run_id", "status", "error"])
    print(f"held out: each public table's largest budget, predicted by Approach 3 fitted to the rest; {n_boot} resamples")
    print(f"{'table':<42}{'runs':>6}{'mean |rel err|':>16}{'inside 95%':>12}")
    errors, inside, total = [], 0, 0
    for config, group in runs.groupby("config"):
        top = group["budget"].max()
        rest, held = FitInputs(group[group["budget"] < top].drop(columns="config"), excluded), group[group["budget"] == top]
        rel, hits = [], 0
        for row in held.itertuples():
            result = loss_at(rest, row.n_params, row.tokens, n_boot=n_boot, seed=seed)
            if result["loss"] is None:
                continue
            rel.append(abs(result["loss"] / row.loss - 1))
            lo, hi = result["prediction_interval"]
            hits += lo <= row.loss <= hi
        errors += rel
        inside, total = inside + hits, total + len(rel)
        print(f"{config:<42}{len(rel):>6}{np.mean(rel):>16.2%}{hits / max(1, len(rel)):>12.0%}")
    print(f"  all: mean |relative error| {np.mean(errors):.2%}, held-out runs inside their 95% interval {inside}/{total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=60)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="only the designs whose name holds this")
    args = parser.parse_args()
    began = time.perf_counter()
    if not args.only:
        public_tables(args.boot, args.seed)
        held_out_runs(min(args.boot, 100), args.seed)
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
