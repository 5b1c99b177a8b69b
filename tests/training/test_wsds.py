"""``training.schedule: wsds``: one continuous trunk decays before each readout and returns to the peak; a readout
is the trunk's state at the bottom of its decay, recorded as its own ledger row without training a step, and is
bitwise the same schedule trained from step 0."""

from dataclasses import replace

import pytest

from sweep.config import parse_config
from sweep.planning.plan import plan_sweep
from sweep.results.storage import ResultsStore
from sweep.training.checkpoint import CheckpointStore
from sweep.training.data import load_corpus
from sweep.training.train import train_run, wsds_factor
from sweep.training.worker import execute_run
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def plan():
    config = parse_config(tiny_config(budgets=[2e9, 4e9], model={"sizes": [3e3]},
                                      training={"schedule": "wsds", "cooldown_fraction": 0.25, "checkpoint_every_steps": 50}))  # fmt: skip
    corpus = load_corpus(config.data)
    return plan_sweep(config, corpus.vocab_size, corpus.fingerprint)


def test_the_schedule_decays_before_each_readout_and_returns_to_the_peak():
    factors = [wsds_factor(s, 10, (40, 85), (50, 100), 0.1, "linear") for s in range(100)]
    assert factors[9] == 1.0 and set(factors[10:40]) == {1.0}
    assert factors[49] == pytest.approx(0.1) and all(b < a for a, b in zip(factors[40:50], factors[41:50]))
    assert set(factors[50:85]) == {1.0}  # back at the peak after the first readout
    assert factors[99] == pytest.approx(0.1)


def test_a_readout_is_the_trunks_state_at_its_step_and_trains_nothing(tmp_path, plan):
    trunk, *readouts = plan.runs
    assert trunk.schedule == "wsds-trunk" and [r.parent_run_id for r in readouts] == [trunk.run_id] * 2
    store = ResultsStore(tmp_path)
    assert execute_run(trunk, str(tmp_path))["status"] == "completed"
    assert CheckpointStore(store).branch_steps(trunk.sweep, trunk.run_id) == [r.steps for r in readouts]
    trunk_curve = store.read_run_metrics(trunk.sweep, trunk.run_id).set_index("step")
    for readout in readouts:
        summary = execute_run(readout, str(tmp_path))
        row = store.read_run(readout.sweep, readout.run_id)
        assert summary["status"] == row["status"] == "completed" and row["resumed_from_step"] == readout.steps
        assert row["flops_spent"] == 0 and row["flops"] == readout.flops and row["schedule"] == "wsds"
        assert row["final_eval_loss"] == trunk_curve.loc[readout.steps, "eval_loss"]
        curve = store.read_run_metrics(readout.sweep, readout.run_id)
        assert curve["step"].iloc[-1] == readout.steps and curve["step"].iloc[0] == trunk_curve.index[0]
    # The first readout trained from step 0 on its own schedule reaches the same state: the trunk is that run.
    first = readouts[0]
    standalone = train_run(replace(first, parent_run_id=None, eval_steps=first.eval_steps))
    assert standalone.final_eval_loss == store.read_run(first.sweep, first.run_id)["final_eval_loss"]
    after = trunk_curve.index[trunk_curve.index > first.steps][1]  # a row past the one that averages the decay's end
    assert trunk_curve.loc[first.steps, "lr"] < trunk_curve.loc[after, "lr"] == trunk_curve["lr"].max()
