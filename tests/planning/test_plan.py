"""Planning: one place computes each run's horizon; run ids are stable and change with what defines the result."""

import pytest

from models import flops_per_token, param_counts
from sweep.config import parse_config
from sweep.planning.plan import eval_steps, learning_rate, plan_sweep
from tests.conftest import tiny_config


def plan(**overrides):
    return plan_sweep(parse_config(tiny_config(**overrides)), vocab_size=256, data_fingerprint="f00d")


def test_horizon_matches_budget():
    result = plan()
    assert len(result.runs) == 4
    for run in result.runs:
        assert run.tokens == run.steps * run.batch_tokens
        assert run.flops == pytest.approx(run.tokens * flops_per_token(run.shape, "6N+attention"))
        # rounding to whole steps moves C by at most half a step's FLOPs
        assert abs(run.flops - run.flops_budget) <= 0.5 * run.batch_tokens * run.flops_per_token
        assert run.n_params == param_counts(run.shape).total
        assert run.eval_steps[-1] == run.steps


def test_convention_changes_horizon():
    six_n = plan(flops_convention="6N").runs[0]
    chinchilla = plan(flops_convention="chinchilla").runs[0]
    assert six_n.steps > chinchilla.steps


def test_too_few_steps_left_out_with_reason():
    result = plan(training={"min_steps": 10_000})
    assert result.runs == [] and len(result.skipped) == 4 and "min_steps" in result.skipped[0]


def test_run_id_stable_and_sensitive():
    ids = [r.run_id for r in plan().runs]
    assert ids == [r.run_id for r in plan().runs] and len(set(ids)) == 4
    assert plan(name="other").runs[0].run_id == ids[0]  # the sweep's name does not define a result
    assert plan(training={"seeds": [1]}).runs[0].run_id != ids[0]
    assert plan(training={"weight_decay": 0.0}).runs[0].run_id != ids[0]
    assert plan_sweep(parse_config(tiny_config()), 256, "beef").runs[0].run_id != ids[0]


def test_seeds_multiply_runs_and_lr_rule():
    result = plan(training={"seeds": [0, 1, 2]})
    assert len(result.runs) == 12
    assert learning_rate(10**5) == pytest.approx(0.003239 - 0.0001395 * 11.5129, rel=1e-4)
    assert plan(training={"lr": 0.01}).runs[0].lr == 0.01
    assert plan(training={"lr_scale": 2.0}).runs[0].lr == pytest.approx(2 * plan().runs[0].lr)


def test_eval_steps():
    assert eval_steps(100, 4) == (25, 50, 75, 100)
    assert eval_steps(2, 4) == (1, 2)


def test_repeated_seeds_and_budgets_are_planned_once_and_named():
    result = plan(training={"seeds": [0, 0, 1]}, budgets=[2e9, 4e9, 2e9])
    assert len(result.runs) == 8 and len({r.run_id for r in result.runs}) == 8
    assert len(result.duplicates) == 3 * 3 * 2 - 8  # a grid of 3 budgets x 3 seeds x 2 sizes holds 8 distinct runs
    assert all("planned once" in line and "same run as" in line for line in result.duplicates)


def test_budgets_that_round_to_the_same_steps_are_one_run():
    result = plan(budgets=[2e9, 2.0001e9])
    assert len(result.runs) == 2 and {r.flops_budget for r in result.runs} == {2e9}  # the first (smallest) kept
    assert len(result.duplicates) == 2 and "budget 2e+09" in result.duplicates[0]


def test_sweep_plan_names_each_repeat_in_text_and_json(tmp_path, capsys):
    import json

    import yaml

    from sweep.cli import main

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_config(training={"seeds": [0, 0]})))
    assert main(["plan", str(path)]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("planned once: ")]
    assert len(shown) == 4 and all("seed 0" in line and "same run as" in line for line in shown)  # 4 runs, each repeated
    assert main(["plan", str(path), "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert len(planned["runs"]) == len({r["run_id"] for r in planned["runs"]}) == 4 and len(planned["duplicates"]) == 4
