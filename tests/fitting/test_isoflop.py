"""Approach 2 against synthetic sweeps drawn from a known law L(N, D) = E + A/N^alpha + B/D^beta."""

import numpy as np
import pandas as pd
import pytest

from sweep.fitting import fit_approach2, fit_power_law

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
