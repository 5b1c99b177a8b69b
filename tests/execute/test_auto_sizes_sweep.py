"""``model.sizes: auto`` on embedded Ray: one ``sweep run`` trains the smallest budget, then plans and trains the
next around the optimum the first predicts; each choice is recorded in the results and every run says why; a
second invocation trains nothing."""

from sweep.config import parse_config
from sweep.execute.orchestrate import prepare_plan, run_sweep
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config


def test_one_invocation_trains_the_budgets_in_turn_and_records_why(ray_session, tmp_path):
    config = parse_config(tiny_config(name="auto", budgets=[2e9, 8e9], model={
        "sizes": "auto", "auto_sizes": {"first": [3e3, 3e4], "first_points": 3, "points": 3, "span": 4}}))  # fmt: skip
    store = ResultsStore(tmp_path)
    assert {s.flops_budget for s in prepare_plan(config, store).runs} == {2e9}  # nothing known: the first budget only
    outcome = run_sweep(config, str(tmp_path))
    ledger = store.read_runs("auto")
    assert outcome.planned == len(ledger) == 6 and outcome.statuses == {"completed": 6}
    assert ledger.groupby("flops_budget").size().to_dict() == {2e9: 3, 8e9: 3}
    reasons = ledger.groupby("flops_budget")["size_reason"].unique()
    assert reasons[2e9][0].startswith("the smallest budget") and "centred on" in reasons[8e9][0]
    assert len(reasons[2e9]) == len(reasons[8e9]) == 1
    recorded = store.size_choices("auto")
    assert sorted(recorded) == [2e9, 8e9] and recorded[8e9][1] == reasons[8e9][0]
    again = run_sweep(config, str(tmp_path))
    assert again.planned == 6 and again.skipped_finished == 6 and not again.statuses
    assert prepare_plan(config, store).pending == []
