"""``model.sizes: auto``: the smallest budget gets a wide ladder, each larger budget waits for the smaller ones and
is centred on the N_opt their results predict, a budget that has runs keeps its sizes, and every run says why."""

import numpy as np
import pandas as pd
import pytest

from sweep.config import ConfigError, parse_config
from sweep.planning.plan import plan_sweep
from tests.conftest import tiny_config

AUTO = {"sizes": "auto", "auto_sizes": {"first": [3e3, 1e5], "first_points": 5, "points": 3, "span": 4}}
BUDGETS = [2e9, 8e9, 3.2e10]


def config(**model):
    return parse_config(tiny_config(budgets=BUDGETS, model={**AUTO, **model}))


def ledger_of(specs, n_star: float, status="completed") -> pd.DataFrame:
    """Ledger rows of ``specs``, finished, with a loss parabola in log10 N whose minimum is at ``n_star``."""
    return pd.DataFrame([{"run_id": s.run_id, "status": status, "flops_budget": s.flops_budget, "n_layer": s.n_layer,
                          "d_model": s.d_model, "n_head": s.n_head, "n_params_nonembedding": s.n_params_nonembedding,
                          "tokens": s.tokens, "size_reason": s.size_reason,
                          "final_eval_loss": 2.0 + (np.log10(s.n_params_nonembedding) - np.log10(n_star)) ** 2}
                         for s in specs])  # fmt: skip


def sizes(plan, budget):
    return sorted({s.n_params_nonembedding for s in plan.runs if s.flops_budget == budget})


def test_with_no_results_only_the_smallest_budget_is_planned_on_a_wide_ladder():
    plan = plan_sweep(config(), 256, "f00d")
    assert {s.flops_budget for s in plan.runs} == {2e9} and len(sizes(plan, 2e9)) == 5
    assert sizes(plan, 2e9)[0] < 4e3 and sizes(plan, 2e9)[-1] > 7e4
    assert all(s.size_reason.startswith("the smallest budget: a wide ladder") for s in plan.runs)
    assert len(plan.pending) == 2 and "waits for budget 2e+09" in plan.pending[0]


def test_a_larger_budget_waits_until_every_run_of_the_smaller_ones_has_finished():
    first = plan_sweep(config(), 256, "f00d")
    half = ledger_of(first.runs[:3], 1.5e4)  # two runs still in flight: no rows yet
    assert {s.flops_budget for s in plan_sweep(config(), 256, "f00d", half).runs} == {2e9}
    failed = ledger_of(first.runs, 1.5e4).assign(status=["completed"] * 4 + ["failed"])
    assert {s.flops_budget for s in plan_sweep(config(), 256, "f00d", failed).runs} == {2e9}


def test_each_budget_centres_on_the_optimum_the_finished_ones_predict():
    first = plan_sweep(config(), 256, "f00d")
    ledger = ledger_of(first.runs, 1.5e4)
    second = plan_sweep(config(), 256, "f00d", ledger)
    chosen = sizes(second, 8e9)
    assert len(chosen) == 3 and "scaled by (C / 2e+09)^0.5" in second.size_choices[1].reason
    assert np.sqrt(chosen[0] * chosen[-1]) == pytest.approx(3e4, rel=0.25)  # 1.5e4 x (8e9 / 2e9)^0.5, snapped
    assert sizes(second, 2e9) == sizes(first, 2e9) and len(second.pending) == 1
    ledger = pd.concat([ledger, ledger_of([s for s in second.runs if s.flops_budget == 8e9], 4e4)])
    third = plan_sweep(config(), 256, "f00d", ledger)
    reason = third.size_choices[2].reason
    assert "power law through the interior minima of budgets 2e+09, 8e+09" in reason and not third.pending
    a = np.log(4e4 / 1.5e4) / np.log(4)
    centre = np.sqrt(sizes(third, 3.2e10)[0] * sizes(third, 3.2e10)[-1])
    assert centre == pytest.approx(4e4 * 4**a, rel=0.25)
    assert all(s.size_reason == reason for s in third.runs if s.flops_budget == 3.2e10)


def test_a_minimum_at_the_edge_centres_on_the_best_run_and_says_so():
    first = plan_sweep(config(), 256, "f00d")
    second = plan_sweep(config(), 256, "f00d", ledger_of(first.runs, 1e7))  # the best run is the largest
    assert "no budget has an interior minimum yet" in second.size_choices[1].reason
    assert min(sizes(second, 8e9)) > max(sizes(first, 2e9)) / 4


def test_a_recorded_choice_is_kept_whatever_the_smaller_budgets_say_now():
    first = plan_sweep(config(), 256, "f00d")
    ledger = ledger_of(first.runs, 1.5e4)
    second = plan_sweep(config(), 256, "f00d", ledger)
    recorded = {c.budget: (list(c.shapes), c.reason) for c in second.size_choices}
    assert not any(c.recorded for c in second.size_choices) and len(recorded[8e9][0]) == 3
    moved = ledger_of(first.runs, 6e3)  # the first budget now points elsewhere (a repaired run, say)
    again = plan_sweep(config(), 256, "f00d", moved, recorded)
    assert sizes(again, 8e9) == sizes(second, 8e9) and again.size_choices[1].reason == second.size_choices[1].reason
    assert all(c.recorded for c in again.size_choices)
    assert {s.run_id for s in again.runs} == {s.run_id for s in second.runs}


@pytest.mark.parametrize("model, training, key", [
    ({"sizes": "auto"}, {}, "model.auto_sizes"),
    ({"sizes": [3e3], "auto_sizes": {"first": [3e3, 1e4]}}, {}, "model.auto_sizes"),
    ({**AUTO, "auto_sizes": {"first": [1e4, 3e3]}}, {}, "model.auto_sizes.first"),
    (AUTO, {"schedule": "wsd"}, "training.schedule"),
    ({**AUTO, "auto_sizes": {"first": [3e3, 1e4], "points": 2}}, {}, "model.auto_sizes.points"),
])  # fmt: skip
def test_auto_size_mistakes_name_the_key(model, training, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(tiny_config(model={"sizes": [], **model}, training=training))
