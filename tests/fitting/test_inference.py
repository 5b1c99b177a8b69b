"""Inference-aware allocation (``sweep.fitting.inference``): reduces to Chinchilla's optimum without inference,
matches a brute-force search with it, and moves to smaller models trained longer as inference grows."""

import numpy as np
import pytest

from sweep.fitting.inference import allocation, inference_optimal, inference_plan, tokens_for_loss
from sweep.fitting.parametric import ParametricFit

LAW = ParametricFit(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658, objective=0.0, n_runs=0)


def test_without_inference_it_is_the_compute_optimal_model():
    plan = inference_plan(LAW, 1e22, inference_tokens=0.0)
    best, optimal = plan["inference_optimal"], plan["compute_optimal"]
    assert best["n_params"] == pytest.approx(optimal["n_params"], rel=1e-3)
    assert best["training_flops"] == pytest.approx(1e22, rel=1e-6) and plan["total_saved"] == pytest.approx(0.0, abs=1e-6)


def test_with_inference_it_matches_a_brute_force_search_and_trains_a_smaller_model_longer():
    target, tokens = float(LAW.optimal_loss(1e22)), 1e13
    best = inference_optimal(LAW, target, tokens)
    grid = np.logspace(8, 12, 40001)
    totals = [allocation(LAW, n, tokens_for_loss(LAW, n, target), tokens)["total_flops"] for n in grid]
    assert best["total_flops"] <= min(totals) * (1 + 1e-6)
    assert LAW.loss(best["n_params"], best["tokens"]) == pytest.approx(target, rel=1e-9)
    plan = inference_plan(LAW, 1e22, tokens)
    assert plan["inference_optimal"]["n_params"] < plan["compute_optimal"]["n_params"]
    assert plan["inference_optimal"]["tokens_per_param"] > 2 * plan["compute_optimal"]["tokens_per_param"]
    assert 0 < plan["total_saved"] < 1


def test_a_target_below_the_irreducible_loss_is_refused():
    with pytest.raises(ValueError, match="irreducible loss"):
        inference_optimal(LAW, 1.5, 1e12)


def test_sweep_predict_adds_the_inference_optimal_model(tmp_path, capsys):
    import json

    from sweep.cli import main
    from tests.fitting.test_point import table

    path = tmp_path / "runs.csv"
    table(0.002, 0).to_csv(path, index=False)
    args = ["predict", "--input", str(path), "--flops", "1e21", "--inference-tokens", "1e13", "--bootstrap", "0"]
    assert main([*args, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["inference"]
    assert plan["inference_optimal"]["n_params"] < plan["compute_optimal"]["n_params"] and plan["total_saved"] > 0
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "inference-optimal" in out and "saves" in out and "without intervals yet" in out
