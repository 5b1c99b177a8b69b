"""``training.schedule: wsd``: a readout trained from its trunk's branch point is the standalone run it stands for.

The trunk trains at the constant rate and keeps its state at every readout's branch step; a readout restores that
state and trains only its decay. On CPU its curve is bitwise that of the same warmup-stable-decay schedule trained
from step 0 (the data position is the step, the constant part is shared), and its ledger row counts only the FLOPs
of its decay.
"""

from dataclasses import replace

import pandas as pd
import pytest

from sweep.config import parse_config
from sweep.results.storage import ResultsStore
from sweep.training.checkpoint import CheckpointStore
from sweep.training.data import load_corpus
from sweep.training.train import train_run, wsd_factor
from sweep.training.worker import execute_run
from sweep.planning.plan import plan_sweep
from tests.conftest import tiny_config

CURVE = ["step", "tokens", "flops", "train_loss", "eval_loss", "lr", "grad_norm"]


@pytest.fixture(scope="module")
def plan():
    config = parse_config(tiny_config(budgets=[2e9, 4e9], model={"sizes": [3e3]},
                                      training={"schedule": "wsd", "cooldown_fraction": 0.25, "checkpoint_every_steps": 50}))  # fmt: skip
    corpus = load_corpus(config.data)
    return plan_sweep(config, corpus.vocab_size, corpus.fingerprint)


def test_the_schedule_is_constant_until_the_branch_then_decays_to_the_floor():
    factors = [wsd_factor(s, 100, 10, 80, 0.1, "linear") for s in range(100)]
    assert factors[9] == 1.0 and set(factors[10:80]) == {1.0}
    assert factors[80] < 1.0 and factors[-1] == pytest.approx(0.1)
    assert all(b < a for a, b in zip(factors[80:], factors[81:]))
    sqrt = [wsd_factor(s, 100, 10, 80, 0.0, "1-sqrt") for s in range(80, 100)]
    assert sqrt[-1] == pytest.approx(0.0) and sqrt[9] < 1 - (10 / 20)  # 1 - sqrt falls faster early than linear


def test_a_readout_from_its_trunk_is_bitwise_the_standalone_run(tmp_path, plan):
    trunk, *readouts = plan.runs
    assert trunk.schedule == "wsd-trunk" and [r.parent_run_id for r in readouts] == [trunk.run_id] * 2
    store = ResultsStore(tmp_path)
    assert execute_run(trunk, str(tmp_path))["status"] == "completed"
    checkpoints = CheckpointStore(store)
    assert checkpoints.branch_steps(trunk.sweep, trunk.run_id) == [r.branch_step for r in readouts]
    assert checkpoints.newest_step(trunk.sweep, trunk.run_id) == 0  # the rolling checkpoints are gone, not the branch points

    readout = readouts[0]
    summary = execute_run(readout, str(tmp_path))
    row = store.read_run(readout.sweep, readout.run_id)
    assert summary["status"] == row["status"] == "completed" and row["resumed_from_step"] == readout.branch_step
    assert row["flops_spent"] == pytest.approx(readout.training_flops) and row["flops"] == readout.flops
    assert (row["schedule"], row["branch_step"], row["parent_run_id"]) == ("wsd", readout.branch_step, trunk.run_id)

    standalone = train_run(replace(readout, parent_run_id=None))  # the same schedule from step 0, no trunk
    curve = store.read_run_metrics(readout.sweep, readout.run_id)[CURVE]
    expected = pd.DataFrame(standalone.metrics)[CURVE]
    expected = expected[expected["step"].isin(curve["step"])].reset_index(drop=True)  # its rows at the trunk's row steps
    # The rows after the first past the branch step (that one averages the steps since the trunk's row at the
    # branch step, which the standalone run does not log).
    after = curve["step"] > readout.branch_step
    first = curve.loc[after, "step"].iloc[0]
    pd.testing.assert_frame_equal(curve[curve["step"] > first].reset_index(drop=True),
                                  expected[expected["step"] > first].reset_index(drop=True),
                                  check_dtype=False, rtol=0, atol=0)  # fmt: skip
    assert curve.loc[curve["step"] == first, "lr"].item() == expected.loc[expected["step"] == first, "lr"].item()
    assert row["final_eval_loss"] == standalone.final_eval_loss
    assert curve["step"].iloc[0] < readout.branch_step  # the trunk's rows come first: one curve from step 1


def test_a_readout_without_its_branch_point_trains_from_step_0(tmp_path, plan):
    readout = plan.runs[2]
    summary = execute_run(readout, str(tmp_path))  # no trunk has run here
    row = ResultsStore(tmp_path).read_run(readout.sweep, readout.run_id)
    assert summary["status"] == "completed" and row["resumed_from_step"] == 0
    assert row["flops_spent"] == pytest.approx(readout.flops)  # it trained the whole run
