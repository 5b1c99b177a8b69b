"""Thin or replicated data: each approach that cannot fit says what it needs; replicates (several seeds per budget
and size) fit without error; a prediction far beyond the fitted budgets is flagged."""

import numpy as np
import pandas as pd
import pytest

from sweep.cli import main
from sweep.fitting.inputs import FitInputs
from sweep.fitting.summary import EXTRAPOLATION_FACTOR, NEEDS, fit_summary


def runs(budgets=(1e9, 3e9, 1e10), sizes=(2e3, 5e3, 1.2e4, 3e4, 8e4), seeds=1, noise=0.0):
    rng, rows = np.random.default_rng(0), []
    for budget in budgets:
        for n in sizes:
            for _ in range(seeds):
                d = budget / (6 * n)
                loss = (1.7 + 400 / n**0.34 + 410 / d**0.3) * (1 + noise * rng.standard_normal())
                rows.append({"n_params": n, "tokens": d, "loss": loss, "flops": budget, "budget": budget})
    return FitInputs(runs=pd.DataFrame(rows), excluded=pd.DataFrame(columns=["run_id", "status", "error"]))


def test_one_budget_says_what_approaches_1_and_2_need():
    summary = fit_summary(runs(budgets=(1e9,)), n_boot=0)
    assert summary["not_fitted"] == {"approach1": NEEDS["approach1"], "approach2": NEEDS["approach2"],
                                     "extrapolation": "the extrapolation check needs 3 or more budgets (has 1)"}
    assert summary["approach3"] is not None  # 5 sizes, 5 token counts: L(N, D) is identifiable


def test_one_budget_two_sizes_three_seeds_fits_nothing_it_cannot_and_never_raises():
    summary = fit_summary(runs(budgets=(1e9,), sizes=(2e3, 8e4), seeds=3, noise=0.01), n_boot=20)
    assert set(summary["not_fitted"]) == {"approach1", "approach2", "approach3", "extrapolation", "law"} and summary["n_runs"] == 6
    assert summary["replicates"]["points"] == 2 and summary["replicates"]["runs"] == 6


def test_replicates_fit_as_replicates():
    summary = fit_summary(runs(seeds=3, noise=0.005), n_boot=0)
    assert summary["not_fitted"] == {} and summary["n_runs"] == 45
    assert summary["approach3"]["alpha"] == pytest.approx(0.34, abs=0.05)
    spread = summary["replicates"]  # the seed-to-seed spread is reported: 15 points of 3 seeds, noise 0.5%
    assert spread["points"] == 15 and spread["runs"] == 45
    assert 0.002 < spread["relative_sd_median"] < 0.008


def test_a_far_prediction_is_flagged():
    inputs = runs()
    near = fit_summary(inputs, n_boot=0, predict_flops=[1e10 * EXTRAPOLATION_FACTOR])
    far = fit_summary(inputs, n_boot=0, predict_flops=[1e10 * EXTRAPOLATION_FACTOR * 1.01, 1e21])
    assert near["warnings"] == [] and len(far["warnings"]) == 1  # two far budgets, one line naming both
    assert "10.1x the largest fitted budget" in far["warnings"][0] and "1 more budget(s) up to 1e+21 (1e+11x)" in far["warnings"][0]


def test_the_cli_prints_what_is_missing_and_the_warning(tmp_path, capsys):
    path = tmp_path / "one.csv"
    runs(budgets=(1e9,)).runs.to_csv(path, index=False)
    assert main(["predict", "--input", str(path), "--flops", "1e15", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert NEEDS["approach2"] in out and "warning: C = 1e+15 FLOPs is 1e+06x the largest fitted budget" in out


def test_far_budgets_are_warned_of_in_one_line():
    from sweep.fitting.summary import far_budget_warnings

    assert far_budget_warnings([1e10, 5e10], 1e10) == []
    (one,) = far_budget_warnings([1e12], 1e10)
    assert one.startswith("C = 1e+12 FLOPs is 100x the largest fitted budget (1e+10): beyond 10x")
    (line,) = far_budget_warnings([2.5e11, 1e12, 5e11, 1e12, 4e12], 1e10)
    assert line.startswith("C = 2.5e+11 FLOPs is 25x the largest fitted budget (1e+10), and 3 more budget(s) up to 4e+12 (400x)")
