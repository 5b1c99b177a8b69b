"""Approach 3 against published results (Epoch AI's replication on Chinchilla's data) and known ground truth."""

import json
from pathlib import Path

import numpy as np
import pytest

from sweep.cli import main
from sweep.fitting.bootstrap import bootstrap_parametric
from sweep.fitting.inputs import drop_highest_loss, fit_inputs_from_file
from sweep.fitting.parametric import fit_parametric, objective_and_gradient, theta_of

EPOCH_CSV = Path(__file__).resolve().parents[1] / "data" / "chinchilla_epoch_svg_extracted.csv"


@pytest.fixture(scope="module")
def chinchilla():
    """Chinchilla's runs as Epoch fitted them: D = C / 6N, the 5 highest-loss runs left out (240 runs)."""
    runs = drop_highest_loss(fit_inputs_from_file(EPOCH_CSV), 5).runs
    assert len(runs) == 240
    return runs


@pytest.fixture(scope="module")
def chinchilla_fit(chinchilla):
    return fit_parametric(chinchilla["n_params"], chinchilla["tokens"], chinchilla["loss"])


def test_reproduces_epoch_fit(chinchilla_fit):
    fit = chinchilla_fit
    assert fit.objective <= 0.0010183  # Epoch's plain Huber minimisation reached 0.00101827
    assert fit.alpha == pytest.approx(0.347, abs=0.003)
    assert fit.beta == pytest.approx(0.367, abs=0.005)
    assert fit.E == pytest.approx(1.817, abs=0.01)
    assert fit.a == pytest.approx(0.513, abs=0.02)  # Epoch: a = 0.513 (SE 0.020)


def test_bootstrap_intervals_close_to_epoch(chinchilla, chinchilla_fit):
    samples = bootstrap_parametric(chinchilla, chinchilla_fit, n_boot=200, seed=1)
    assert samples.failed == 0
    published = {"alpha": (0.317, 0.373), "beta": (0.331, 0.415), "E": (1.769, 1.871)}
    tolerance = {"alpha": 0.01, "beta": 0.015, "E": 0.025}  # 200 resamples: percentiles move by ~0.005
    for name, (lo, hi) in published.items():
        ours = samples.interval(name)
        assert ours[0] == pytest.approx(lo, abs=tolerance[name]) and ours[1] == pytest.approx(hi, abs=tolerance[name]), (name, ours)


def test_warm_started_refit_finds_the_grid_optimum(chinchilla, chinchilla_fit):
    rng = np.random.default_rng(7)
    n, d, loss = (chinchilla[c].to_numpy() for c in ("n_params", "tokens", "loss"))
    for _ in range(3):
        pick = rng.integers(0, len(n), len(n))
        grid = fit_parametric(n[pick], d[pick], loss[pick])
        warm = fit_parametric(n[pick], d[pick], loss[pick], starts=[theta_of(chinchilla_fit)])
        assert warm.objective == pytest.approx(grid.objective, rel=1e-6, abs=1e-12)


def test_gradient_matches_finite_differences(chinchilla):
    log_n, log_d, log_loss = (np.log(chinchilla[c].to_numpy()) for c in ("n_params", "tokens", "loss"))
    theta = np.array([6.0, 7.5, 0.6, 0.33, 0.38])
    value, gradient = objective_and_gradient(theta, log_n, log_d, log_loss)
    step = 1e-6
    numeric = [
        (objective_and_gradient(theta + step * e, log_n, log_d, log_loss)[0]
         - objective_and_gradient(theta - step * e, log_n, log_d, log_loss)[0]) / (2 * step)
        for e in np.eye(5)
    ]  # fmt: skip
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("alpha, beta", [(0.34, 0.28), (0.3, 0.45), (0.35, 0.35)])
def test_recovers_known_law_from_noisy_sweep(alpha, beta):
    E, A, B = 1.69, 406.4, 410.7
    rng = np.random.default_rng(0)
    rows = []
    for budget in np.logspace(18, 22, 9):
        for n in np.logspace(7.0, 11.0, 12):
            d = budget / (6 * n)
            if 1e8 < d < 1e13:
                rows.append((n, d, (E + A / n**alpha + B / d**beta) * (1 + 0.005 * rng.standard_normal())))
    n, d, loss = map(np.array, zip(*rows))
    fit = fit_parametric(n, d, loss)
    assert fit.alpha == pytest.approx(alpha, abs=0.03) and fit.beta == pytest.approx(beta, abs=0.03)
    assert fit.a == pytest.approx(beta / (alpha + beta), abs=0.02)


def test_compute_optimal_allocation_is_the_minimum_on_the_iso_flop_line(chinchilla_fit):
    flops = 5.76e23
    n_opt, d_opt = chinchilla_fit.optimal_allocation(flops)
    assert 6 * n_opt * d_opt == pytest.approx(flops)
    for factor in (0.9, 1.1):
        assert chinchilla_fit.loss(n_opt * factor, flops / (6 * n_opt * factor)) > chinchilla_fit.loss(n_opt, d_opt)


def test_cli_fit_input_json(capsys, tmp_path):
    status = main(["fit", "--input", str(EPOCH_CSV), "--drop-highest-loss", "5", "--bootstrap", "20", "--json", "-",
                   "--plot", str(tmp_path / "iso.png"), "--predict-flops", "5.76e23"])  # fmt: skip
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_runs"] == 240 and len(summary["excluded"]) == 5
    a3 = summary["approach3"]
    assert a3["objective"] <= 0.0010183 and a3["alpha"] == pytest.approx(0.347, abs=0.003)
    for key in ("E", "A", "B", "alpha", "beta", "a", "b"):
        lo, hi = a3["ci"][key]
        assert lo <= a3[key] <= hi
    assert {"a", "b", "budgets", "ci"} <= set(summary["approach2"])
    assert {"flops", "n_opt", "d_opt", "loss_opt"} <= set(summary["approach2"]["budgets"][0])
    assert (tmp_path / "iso.png").stat().st_size > 0
    prediction = summary["predictions"][0]
    assert prediction["flops"] == 5.76e23 and prediction["approach3"]["loss"] > a3["E"]


def test_cli_predict_from_gpu_hours(capsys, chinchilla_fit):
    args = ["predict", "--input", str(EPOCH_CSV), "--drop-highest-loss", "5", "--gpu-hours", "1e6", "--peak-flops", "989e12",
            "--mfu", "0.4", "--bootstrap", "10", "--json"]  # fmt: skip
    assert main(args) == 0
    prediction = json.loads(capsys.readouterr().out)
    flops = 1e6 * 3600 * 989e12 * 0.4
    assert prediction["flops"] == pytest.approx(flops)
    n_opt, d_opt = chinchilla_fit.optimal_allocation(flops)
    assert prediction["approach3"]["n_opt"] == pytest.approx(n_opt, rel=1e-4)
    assert prediction["approach3"]["loss"] == pytest.approx(float(chinchilla_fit.optimal_loss(flops)), rel=1e-5)
    assert main(["predict", "--input", str(EPOCH_CSV)]) == 2  # no budget given: a usage error


def test_extrapolation_check_on_a_known_law():
    from sweep.fitting.summary import extrapolation_check
    from tests.fitting.test_isoflop import synthetic_sweep

    runs, _, _ = synthetic_sweep(0.34, 0.30, budgets=np.logspace(18, 22, 5), span=0.6)
    check = extrapolation_check(runs)
    assert check["held_out_flops"] == 1e22
    assert check["approach3"]["loss_error"] == pytest.approx(0.0, abs=2e-3)  # noise-free: the law extrapolates
    assert check["approach2"]["n_opt"] == pytest.approx(check["observed_n_opt"], rel=0.1)
