"""A ``wsd`` (and ``wsds``) sweep on embedded Ray: trunks first, readouts as soon as their branch points exist, every readout a
ledger row the fits read, the trunks never fitted, branch points cleared once a trunk's readouts are done; and a
driver SIGKILLed mid-sweep leaves a sweep that the same command finishes, training only what is missing."""

import os
import subprocess
import sys

import pytest
import yaml

from sweep.config import parse_config
from sweep.execute.orchestrate import prepare_plan, run_sweep
from sweep.execute.status import sweep_status
from sweep.fitting.inputs import fit_inputs_from_results
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config
from tests.execute.processes import kill_tree
from tests.execute.test_crash import wait_for

pytestmark = pytest.mark.slow


def wsd_config(name: str, budgets=(2e9, 4e9, 8e9), schedule="wsd", **training) -> dict:
    return tiny_config(name=name, budgets=list(budgets), training={"schedule": schedule, "checkpoint_every_steps": 20,
                                                                    "log_every_steps": 10, **training})  # fmt: skip


@pytest.mark.parametrize("schedule", ["wsd", "wsds"])
def test_a_wsd_sweep_trains_trunks_and_readouts_and_fits_the_readouts(ray_session, tmp_path, schedule):
    config = parse_config(wsd_config("wsd", schedule=schedule))
    plan = prepare_plan(config)
    outcome = run_sweep(config, str(tmp_path))
    assert outcome.statuses == {"completed": len(plan.runs)} and len(plan.runs) == 8  # 2 trunks, 6 readouts
    store = ResultsStore(tmp_path)
    ledger = store.read_runs("wsd").set_index("run_id")
    readouts = [s for s in plan.runs if s.parent_run_id]
    assert all(ledger.loc[s.run_id, "resumed_from_step"] == s.branch_step for s in readouts)  # each from its trunk
    assert set(ledger["schedule"]) == {schedule, f"{schedule}-trunk"}
    assert list((tmp_path / "checkpoints").glob("sweep=wsd/*/*.pt")) == []  # branch points cleared at the end
    inputs = fit_inputs_from_results(store, "wsd")
    assert sorted(inputs.runs["run_id"]) == sorted(s.run_id for s in readouts)  # trunks are not fitted
    status = sweep_status(store, "wsd", planned={s.run_id: s.training_flops for s in plan.runs})["sweeps"][0]
    assert status["flops_done"] == pytest.approx(plan.total_training_flops, rel=1e-9)
    assert status["flops_done"] < 0.7 * plan.cosine_training_flops


def test_a_killed_wsd_driver_then_rerun_trains_only_what_is_missing(tmp_path):
    config_path, results = tmp_path / "sweep.yaml", tmp_path / "results"
    config_path.write_text(yaml.safe_dump({**wsd_config("wsd-kill", budgets=(6e9, 1.2e10, 2.4e10)), "model": {**tiny_config()["model"], "sizes": [8e3]}}))
    command = [sys.executable, "-m", "sweep", "run", str(config_path), "--results", str(results)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    store = ResultsStore(results)
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:  # the first readout recorded, the trunk still in flight
        wait_for(lambda: len(store.read_runs("wsd-kill")) >= 1, timeout=240, interval=0.2)
    finally:
        kill_tree(first.pid)
        first.wait()
    before = store.read_runs("wsd-kill").set_index("run_id")
    assert 1 <= len(before) < 4

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = store.read_runs("wsd-kill").set_index("run_id")
    assert len(after) == 4 and (after["status"] == "completed").all()
    for run_id in before.index:  # finished before the kill: never trained again
        assert after.loc[run_id, "finished_at"] == before.loc[run_id, "finished_at"]
    trunk = after[after["schedule"] == "wsd-trunk"]
    assert len(trunk) == 1 and (after[after["schedule"] == "wsd"]["parent_run_id"] == trunk.index[0]).all()
    assert trunk["resumed_from_step"].iloc[0] > 0 or trunk.index[0] in before.index  # the trunk resumed, not restarted
    metrics = store.read_metrics("wsd-kill")
    assert not metrics.duplicated(["run_id", "step"]).any()
    assert list((results / "checkpoints").glob("sweep=wsd-kill/*/*.pt")) == []
