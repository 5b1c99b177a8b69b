"""The rules fitted to a study (``sweep.tuning.rule``): a parabola's vertex, a power law across sizes, intervals.

The synthetic objective has a known optimum per size, LR*(N) = 0.02 (N / 1e4)^-0.35, and a loss bowl in log LR
around it; Optuna's TPE (as ``sweep tune`` builds it) draws the trials through ask and tell, and no model trains.
"""

import math

import numpy as np
import optuna
import pytest

from sweep.config import ConfigError, parse_config
from sweep.tuning.rule import best_lr, fit_rules, power_law
from sweep.tuning.study import make_sampler
from tests.conftest import tiny_config

TRUE_EXPONENT, TRUE_COEFFICIENT, REFERENCE = -0.35, 0.02, 1e4


def synthetic_loss(n_params: float, lr: float, rng) -> float:
    """A bowl in log10 LR around LR*(N), deeper for larger models, with 0.3% noise."""
    optimum = TRUE_COEFFICIENT * (n_params / REFERENCE) ** TRUE_EXPONENT
    floor = 1.8 + 50 / n_params**0.3
    return floor * (1 + 0.08 * (math.log10(lr) - math.log10(optimum)) ** 2) * (1 + 0.003 * rng.standard_normal())


def test_the_parabola_vertex_refines_the_best_trial():
    lrs = 10 ** np.array([-3.0, -2.6, -2.2, -1.8, -1.4])
    losses = 2 + (np.log10(lrs) + 2.05) ** 2
    lr, refined, note = best_lr(lrs, losses)
    assert refined and note is None and lr == pytest.approx(10**-2.05, rel=1e-9)


def test_a_best_trial_at_the_edge_is_flagged_and_not_refined_past_the_trials():
    lrs = 10 ** np.array([-3.0, -2.5, -2.0, -1.5])
    losses = 3 - np.log10(lrs)  # still falling at the largest rate tried
    lr, refined, note = best_lr(lrs, losses)
    assert lr == pytest.approx(10**-1.5) and not refined and "edge" in note


def test_power_law_is_exact_on_exact_data():
    n = np.array([1e3, 1e4, 1e5])
    law = power_law(n, 0.01 * (n / 1e4) ** -0.5)
    assert law.exponent == pytest.approx(-0.5) and law.at(1e4) == pytest.approx(0.01)
    assert law.reference_params == pytest.approx(1e4)  # the geometric mean of the sizes


def test_diverged_trials_are_left_out_and_counted():
    trials = [{"n_params": 1e4, "lr": lr, "loss": 2 + (math.log10(lr) + 2) ** 2} for lr in (1e-3, 3e-3, 1e-2, 3e-2)]
    trials.append({"n_params": 1e4, "lr": 1.0, "loss": None})
    fit = fit_rules(trials, n_boot=0)
    assert fit.sizes[0].trials == 4 and fit.sizes[0].diverged == 1
    assert fit.lr_rule is None and any("needs 2 or more" in w for w in fit.warnings)


def test_a_synthetic_objective_through_tpe_recovers_the_exponent():
    """Four sizes, 30 TPE trials each (the sampler ``sweep tune`` builds, 10 random first): the fitted exponent is
    within 0.05 of the truth and its 95% bootstrap interval holds it."""
    config = parse_config(tiny_config(tune={"horizon": {"budget_flops": 2e9}, "n_trials": 30, "space": {"lr": {"low": 1e-4, "high": 1.0}}}))
    rng, trials = np.random.default_rng(0), []
    for index, n in enumerate((1e3, 1e4, 1e5, 1e6)):
        study = optuna.create_study(sampler=make_sampler(config.tune, index), direction="minimize")
        for _ in range(config.tune.n_trials):
            trial = study.ask()
            lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
            loss = synthetic_loss(n, lr, rng)
            study.tell(trial, loss)
            trials.append({"n_params": n, "lr": lr, "loss": loss})
    fit = fit_rules(trials, n_boot=300, seed=0)
    law = fit.lr_rule
    print(f"exponent {law.exponent:.4f} {law.exponent_interval}, coefficient at 1e4 {law.at(1e4):.4g} (true {TRUE_COEFFICIENT})")
    assert abs(law.exponent - TRUE_EXPONENT) < 0.05
    assert law.exponent_interval[0] < TRUE_EXPONENT < law.exponent_interval[1]
    assert law.at(1e4) == pytest.approx(TRUE_COEFFICIENT, rel=0.15)
    assert all(size.refined for size in fit.sizes)
    for size in fit.sizes:  # every size's interval holds its estimate, which is near the truth
        truth = TRUE_COEFFICIENT * (size.n_params / REFERENCE) ** TRUE_EXPONENT
        assert size.lr_interval[0] <= size.lr <= size.lr_interval[1]
        assert size.lr == pytest.approx(truth, rel=0.25)
    assert not fit.warnings


@pytest.mark.parametrize("name, sampler", [("tpe", optuna.samplers.TPESampler), ("gp", optuna.samplers.GPSampler),
                                           ("random", optuna.samplers.RandomSampler)])  # fmt: skip
def test_each_sampler_drives_a_study_by_ask_and_tell(name, sampler):
    config = parse_config(tiny_config(tune={"horizon": {"budget_flops": 2e9}, "sampler": name, "n_trials": 6}))
    study = optuna.create_study(sampler=make_sampler(config.tune, 0), direction="minimize")
    assert isinstance(study.sampler, sampler)
    rng = np.random.default_rng(1)
    for _ in range(config.tune.n_trials):
        trial = study.ask()
        study.tell(trial, synthetic_loss(1e4, trial.suggest_float("lr", 1e-4, 1.0, log=True), rng))
    assert len(study.trials) == 6 and study.best_value < 5.5  # the bowl's floor at N=1e4 is 4.96


def test_cmaes_without_its_package_is_a_config_error(monkeypatch):
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "cmaes" else real_import(name, *a, **k))
    config = parse_config(tiny_config(tune={"horizon": {"budget_flops": 2e9}, "sampler": "cmaes"}))
    with pytest.raises(ConfigError, match=r"tune\.sampler: cmaes needs the cmaes package"):
        make_sampler(config.tune, 0)
