"""Loss at any (N, D) (``sweep.fitting.point``): the law's mean with its bootstrap interval, and a new run's
interval, checked against a synthetic law whose truth is known, and through ``sweep predict --n-params --tokens``."""

import json

import numpy as np
import pandas as pd
import pytest

from sweep.cli import main
from sweep.fitting.inputs import FitInputs
from sweep.fitting.point import loss_at

E, A, B, ALPHA, BETA = 1.8172, 482.01, 2085.43, 0.3478, 0.3658


def law(n, d):
    return E + A / n**ALPHA + B / d**BETA


def table(noise: float, seed: int) -> pd.DataFrame:
    rng, rows = np.random.default_rng(seed), []
    for budget in np.logspace(17, 19, 5):
        for n in np.logspace(7, 9, 7):
            d = budget / (6 * n)
            rows.append({"n_params": n, "tokens": d, "budget": budget, "loss": law(n, d) * np.exp(noise * rng.standard_normal())})
    return pd.DataFrame(rows)


def inputs(runs: pd.DataFrame) -> FitInputs:
    return FitInputs(runs, pd.DataFrame(columns=["run_id", "status", "error"]))


def test_the_loss_at_a_point_inside_the_sweep_holds_the_truth_and_a_new_run():
    """Over 12 noisy draws: the mean-loss interval holds the law's value in most draws, the new-run interval holds a
    fresh noisy run in most, and is the wider of the two."""
    n, d, held, new = 3e8, 4e9, 0, 0
    for seed in range(12):
        result = loss_at(inputs(table(0.01, seed)), n, d, n_boot=100, seed=seed)
        lo, hi = result["ci"]
        run_lo, run_hi = result["prediction_interval"]
        assert run_lo < lo < result["loss"] < hi < run_hi and result["residual_scatter"] == pytest.approx(0.01, rel=0.3)
        held += lo <= law(n, d) <= hi
        new += run_lo <= law(n, d) * np.exp(0.01 * np.random.default_rng(100 + seed).standard_normal()) <= run_hi
    assert held >= 9 and new >= 10


def test_a_point_beyond_the_runs_is_flagged_and_a_table_without_a_law_says_why():
    result = loss_at(inputs(table(0.0, 0)), 3e10, 1e12, n_boot=0)
    assert result["loss"] == pytest.approx(law(3e10, 1e12), rel=1e-3) and result["ci"] is None
    assert any("N = 3e+10 is 30x the largest fitted" in w for w in result["warnings"])
    thin = table(0.0, 0).iloc[:3]
    assert loss_at(inputs(thin), 1e8, 1e9, n_boot=0)["not_fitted"].startswith("no law family could be fitted (chinchilla: needs 5")


def test_sweep_predict_gives_the_loss_at_n_and_d(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    table(0.005, 0).to_csv(path, index=False)
    assert main(["predict", "--input", str(path), "--n-params", "3e8", "--tokens", "4e9", "--bootstrap", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["loss"] == pytest.approx(law(3e8, 4e9), rel=0.01) and len(result["ci"]) == 2
    assert main(["predict", "--input", str(path), "--n-params", "3e8", "--tokens", "4e9", "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "law, " in out and "the law's mean): " in out and "a new run's loss: [" in out
    assert main(["predict", "--input", str(path), "--n-params", "3e8"]) == 2
    assert "--tokens: give a positive number" in capsys.readouterr().err
