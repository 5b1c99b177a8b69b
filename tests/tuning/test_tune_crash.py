"""A SIGKILLed ``sweep tune`` resumes: no trial lost, none duplicated, finished trials not retrained.

The driver and its whole process tree (embedded Ray included) are killed at once, as a crashed host would be, once
some trials have finished and another has a checkpoint; the same command, run again, tells the studies what the
ledger holds, resumes the interrupted trial from its checkpoint and asks only for the trials still missing. Every
signal goes to processes this test started (its driver subprocess's tree).
"""

import os
import subprocess
import sys

import optuna
import pytest
import yaml

from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config
from tests.execute.processes import kill_tree
from tests.execute.test_crash import checkpoints_of, wait_for

pytestmark = pytest.mark.slow


def test_a_killed_tune_resumes_without_losing_or_repeating_a_trial(tmp_path):
    config = tiny_config(
        model={"sizes": [8e3]},
        training={"checkpoint_every_steps": 20, "log_every_steps": 10},
        tune={"horizon": {"budget_flops": 1.2e10}, "n_trials": 4, "sampler": "tpe", "pruner": "none", "eval_points": 2,
              "max_concurrent_trials": 1, "space": {"lr": {"low": 1e-3, "high": 3e-2}}},
    )  # fmt: skip
    config_path, results = tmp_path / "tune.yaml", tmp_path / "results"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "sweep", "tune", str(config_path), "--results", str(results), "--bootstrap", "0"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    store = ResultsStore(results / "tune")
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:  # two trials recorded, the third in flight past its first checkpoint
        wait_for(lambda: len(store.read_runs("tiny-tune")) >= 2 and checkpoints_of(results / "tune"), timeout=300, interval=0.2)
    finally:
        killed = kill_tree(first.pid)
        first.wait()
    assert len(killed) > 3
    before = store.read_runs("tiny-tune").set_index("run_id")
    interrupted = {p.parent.name for p in checkpoints_of(results / "tune")} - set(before.index)
    assert 2 <= len(before) < 4 and interrupted

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming 1 trial(s)" in rerun.stderr
    after = store.read_runs("tiny-tune").set_index("run_id")
    assert len(after) == 4 and (after["status"] == "completed").all()
    for run_id in before.index:  # finished before the kill: never trained again
        assert after.loc[run_id, "finished_at"] == before.loc[run_id, "finished_at"]
    assert all(after.loc[run_id, "resumed_from_step"] > 0 for run_id in interrupted)
    assert sorted(after["trial"]) == [0, 1, 2, 3]
    metrics = store.read_metrics("tiny-tune")
    assert not metrics.duplicated(["run_id", "step"]).any()

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(results / "tune/studies/tiny-tune.journal")))
    assert optuna.get_all_study_names(storage) == ["tiny-tune.N7216"]
    study = optuna.load_study(study_name="tiny-tune.N7216", storage=storage)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4  # none lost, none failed, none duplicated
    assert {t.user_attrs["run_id"] for t in trials} == set(after.index)
    assert {t.number: t.value for t in trials} == {int(r.trial): r.final_eval_loss for r in after.itertuples()}


def test_sigterm_stops_a_tune_cleanly_and_the_rerun_finishes_it(tmp_path):
    """SIGTERM to the driver alone (systemd's KillMode=mixed): exit 143 in seconds, the trial in flight recorded
    ``interrupted`` with its checkpoints, and the rerun resumes it: every trial completes once."""
    config = tiny_config(
        model={"sizes": [8e3]},
        training={"checkpoint_every_steps": 20, "log_every_steps": 10},
        tune={"horizon": {"budget_flops": 2.4e10}, "n_trials": 2, "sampler": "random", "pruner": "none", "eval_points": 2,
              "max_concurrent_trials": 1},
    )  # fmt: skip
    config_path, results = tmp_path / "tune.yaml", tmp_path / "results"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "sweep", "tune", str(config_path), "--results", str(results), "--bootstrap", "0"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: checkpoints_of(results / "tune"), timeout=300, interval=0.2)
        first.send_signal(15)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            kill_tree(first.pid)
    assert first.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM; 1 run interrupted" in err and "Traceback" not in err
    store = ResultsStore(results / "tune")
    assert list(store.read_runs("tiny-tune")["status"]) == ["interrupted"]

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = store.read_runs("tiny-tune")
    assert len(after) == 2 and (after["status"] == "completed").all() and after["resumed_from_step"].max() > 0, rerun.stderr + rerun.stdout
    assert "study tiny-tune: 2 trials (2 complete)" in rerun.stdout
