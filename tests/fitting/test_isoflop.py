"""Approach 2 against synthetic sweeps drawn from a known law L(N, D) = E + A/N^alpha + B/D^beta."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweep.fitting import fit_approach2, fit_power_law
from sweep.fitting.isoflop import MinimumRule

E, A, B = 1.7, 400.0, 410.0


def synthetic_sweep(alpha, beta, budgets, points=9, span=1.0, noise=0.0, offset=0.0, seed=0):
    """Per budget, N on a log grid of +-span decades around the true optimum (times 10^offset), D = C / 6N."""
    rng = np.random.default_rng(seed)
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    rows = []
    for budget in budgets:
        n_true = g * (budget / 6) ** (beta / (alpha + beta))
        for n in n_true * 10 ** (offset + np.linspace(-span, span, points)):
            d = budget / (6 * n)
            loss = (E + A / n**alpha + B / d**beta) * (1 + noise * rng.standard_normal())
            rows.append({"n_params": n, "tokens": d, "loss": loss, "budget": budget})
    return pd.DataFrame(rows), beta / (alpha + beta), alpha / (alpha + beta)


@pytest.mark.parametrize("alpha, beta", [(0.34, 0.34), (0.3, 0.4), (0.4, 0.28)])
def test_recovers_exponents_of_known_law(alpha, beta):
    runs, a_true, b_true = synthetic_sweep(alpha, beta, budgets=np.logspace(18, 22, 5), span=0.6)
    result = fit_approach2(runs)
    assert all(f.interior for f in result.budgets)
    assert result.a == pytest.approx(a_true, abs=0.02)
    assert result.b == pytest.approx(b_true, abs=0.02)
    assert result.a + result.b == pytest.approx(1.0, abs=1e-6)  # D = C / 6N exactly


def test_noisy_sweep_still_close():
    runs, a_true, _ = synthetic_sweep(0.34, 0.34, budgets=np.logspace(18, 22, 5), span=0.6, noise=0.005)
    assert fit_approach2(runs).a == pytest.approx(a_true, abs=0.03)


def test_budget_without_interior_minimum_is_excluded():
    runs, _, _ = synthetic_sweep(0.34, 0.34, budgets=[1e18, 1e19, 1e20], span=0.4)
    shifted, _, _ = synthetic_sweep(0.34, 0.34, budgets=[1e21], span=0.4, offset=1.0)  # all models too large
    result = fit_approach2(pd.concat([runs, shifted]))
    excluded = [f for f in result.budgets if not f.interior]
    assert [f.budget for f in excluded] == [1e21] and "smallest" in excluded[0].note
    assert result.a is not None


def test_too_few_budgets_gives_no_frontier():
    runs, _, _ = synthetic_sweep(0.34, 0.34, budgets=[1e18], span=0.5)
    result = fit_approach2(runs)
    assert result.n_opt is None and result.a is None and result.budgets[0].interior


def test_power_law_exact():
    flops = np.array([1e18, 1e19, 1e20])
    law = fit_power_law(flops, 3.0 * flops**0.5)
    assert law.exponent == pytest.approx(0.5) and law.coefficient == pytest.approx(3.0) and law.r_squared == pytest.approx(1.0)
    assert law(1e22) == pytest.approx(3e11)


# --- Robust per-budget minima (issue 21): Porian et al. 2024's published iso-FLOP tables, and edge budgets ----------

PUBLIC = Path(__file__).resolve().parents[1] / "data" / "public"


def _porian():
    runs = pd.read_csv(PUBLIC / "porian2024_isoflop.csv")
    published = pd.read_csv(PUBLIC / "porian2024_published_exponents.csv").set_index("config")
    return runs, published


def _deltas(rule):
    runs, published = _porian()
    return {config: fit_approach2(group, rule).a - published.loc[config, "a"] for config, group in runs.groupby("config")}


def test_akima_minima_reproduce_the_published_exponents_of_15_public_tables():
    """The default reads each budget's minimum off an Akima spline (the study's own method): every one of the 15
    published exponents within 0.02, on average within 0.005, and no budget with an interior best size dropped."""
    deltas = _deltas(MinimumRule())
    assert len(deltas) == 15 and max(abs(d) for d in deltas.values()) < 0.02
    assert np.mean([abs(d) for d in deltas.values()]) < 0.005


def test_a_window_about_the_best_size_removes_most_of_a_wide_parabolas_bias():
    """Measured in the issue: a parabola through every size misses the published a by 0.026 on average (0.073 at
    worst); through the 7 sizes nearest each budget's best by 0.012."""
    everything = [abs(d) for d in _deltas(MinimumRule("parabola", None)).values()]
    windowed = [abs(d) for d in _deltas(MinimumRule("parabola", 7)).values()]
    assert np.mean(everything) > 0.02 and max(everything) > 0.07
    assert np.mean(windowed) < 0.013 and max(windowed) < 0.05


def test_a_budget_whose_best_size_is_interior_is_never_dropped():
    runs, _ = _porian()
    table = runs[runs["config"] == "owt2/base/long/kaplan/kaplan/train"]
    whole = fit_approach2(table, MinimumRule("parabola", None))
    assert sum(not f.interior for f in whole.budgets) == 3  # the full parabola's vertex fell beyond a size
    for rule in (MinimumRule(), MinimumRule("parabola", 7)):
        assert all(f.interior for f in fit_approach2(table, rule).budgets)


def test_a_smoothing_spline_smooths_the_noise_that_akima_follows_and_keeps_the_published_exponents():
    """The smoothing spline (GCV penalty) on noisy synthetic sweeps: about half Akima's error in a over 12 draws; on
    the 15 public tables within 0.02 of every published a; a budget of 4 sizes is read by Akima's spline; its curve is
    drawn from the spline itself."""
    errors = {"akima": [], "spline": []}
    for seed in range(12):
        runs, a_true, _ = synthetic_sweep(0.3478, 0.3658, budgets=np.logspace(17, 20, 6), points=13, span=1.2, noise=0.005, seed=seed)
        for method in errors:
            errors[method].append(fit_approach2(runs, MinimumRule(method)).a - a_true)
    rmse = {method: float(np.sqrt(np.mean(np.square(e)))) for method, e in errors.items()}
    assert rmse["spline"] < 0.75 * rmse["akima"] and rmse["spline"] < 0.03
    deltas = _deltas(MinimumRule("spline"))
    assert max(abs(d) for d in deltas.values()) < 0.02 and np.mean([abs(d) for d in deltas.values()]) < 0.008
    runs, _, _ = synthetic_sweep(0.34, 0.28, budgets=[1e19], points=4, span=0.6)
    four = fit_approach2(runs, MinimumRule("spline")).budgets[0]
    assert four.smoothing is None and four.knots is not None and four.interior
    runs, _, _ = synthetic_sweep(0.34, 0.28, budgets=[1e19], points=9, span=0.6, noise=0.003)
    nine = fit_approach2(runs, MinimumRule("spline")).budgets[0]
    x = np.log10(runs["n_params"].to_numpy())
    curve = nine.curve(np.array([x.min() - 0.1, np.log10(nine.n_opt), x.max() + 0.1]))
    assert np.isnan(curve[0]) and np.isnan(curve[2]) and curve[1] == pytest.approx(nine.loss_opt, rel=1e-9)


@pytest.mark.parametrize("rule", [MinimumRule(), MinimumRule("spline"), MinimumRule("parabola", 7), MinimumRule("parabola", None)])
def test_a_budget_whose_sizes_all_lie_below_its_optimum_is_flagged_and_left_out(rule):
    """The issue's one-sided case: every size of the largest budget on one side of its optimum. Before, a parabola's
    vertex was taken as interior (N_opt 0.78x the truth, no warning); now the budget is an edge budget: flagged,
    left out of the exponent fit, and kept only when asked."""
    runs, a_true, _ = synthetic_sweep(0.34, 0.28, budgets=[1e18, 1e19, 1e20], span=0.6)
    beyond, _, _ = synthetic_sweep(0.34, 0.28, budgets=[1e21], span=0.6, offset=-0.9)  # all sizes too small
    result = fit_approach2(pd.concat([runs, beyond]), rule)
    edge = result.budgets[-1]
    assert edge.edge == "largest" and not edge.interior and "ladder's edge" in edge.note
    assert result.a == pytest.approx(a_true, abs=0.02)
    kept = fit_approach2(pd.concat([runs, beyond]), MinimumRule(rule.method, rule.window, include_edges=True)).budgets[-1]
    assert kept.edge == "largest" and "kept" in (kept.note or "")


def test_the_fit_summary_records_the_rule_and_warns_of_edge_budgets():
    from sweep.fitting.inputs import FitInputs
    from sweep.fitting.summary import fit_summary

    runs, _, _ = synthetic_sweep(0.34, 0.28, budgets=[1e18, 1e19, 1e20], span=0.6)
    beyond, _, _ = synthetic_sweep(0.34, 0.28, budgets=[1e21], span=0.6, offset=-0.9)
    summary = fit_summary(FitInputs(pd.concat([runs, beyond], ignore_index=True), pd.DataFrame(columns=["run_id", "status", "error"])), n_boot=20)
    assert summary["approach2"]["minimum"]["method"] == "akima"
    assert [b["edge"] for b in summary["approach2"]["budgets"]] == [None, None, None, "largest"]
    assert any(w.startswith("approach2: 1 budget(s) have their lowest loss at an end") for w in summary["warnings"])


def test_the_minimum_rule_refuses_a_window_too_small_for_a_parabola():
    with pytest.raises(ValueError, match="window of 3 or more"):
        MinimumRule("parabola", 2)
    with pytest.raises(ValueError, match="minimum method"):
        MinimumRule("cubic")
