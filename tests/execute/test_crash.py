"""Surviving a bad night: a worker or the driver SIGKILLed mid-sweep loses nothing and duplicates nothing.

- Worker: the Ray worker process of a run in flight (found through this test's own Ray session's state API) is
  killed after the run's first checkpoint; Ray retries the task, the retry resumes from the checkpoint, and the
  final metrics hold each logged step once, equal to the curve of a run never stopped.
- Driver: ``sweep run`` and its whole process tree (its embedded Ray: GCS, raylet, workers) are killed at once, as
  a crashed host would be, once some runs are finished and another has a checkpoint; the same command, run again,
  trains only what is missing (finished runs keep their ledger rows untouched) and resumes the interrupted run
  from its checkpoint. (Killing the driver alone is a different case: its workers outlive it for Ray's grace
  period and may finish the run themselves; ``sweep.training.claim`` keeps that from training a run twice at once.)

Every signal goes to processes this test started: its Ray session's workers, or its driver subprocess's tree.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sweep.config import parse_config
from sweep.training.data import load_corpus
from sweep.execute.orchestrate import run_sweep
from sweep.planning.plan import plan_sweep
from sweep.results.storage import ResultsStore
from sweep.training.train import train_run
from tests.conftest import tiny_config
from tests.execute.processes import kill_tree

pytestmark = pytest.mark.slow
CURVE = ["step", "tokens", "flops", "train_loss", "eval_loss", "lr", "grad_norm"]


def long_config(name: str, budgets=(2.4e10,)) -> dict:
    """Runs of a few seconds each with a checkpoint every 20 steps, so a kill lands mid-run after a checkpoint."""
    return tiny_config(
        name=name,
        budgets=list(budgets),
        model={"sizes": [8e3]},
        training={"checkpoint_every_steps": 20, "log_every_steps": 10, "eval_points": 2},
    )


def checkpoints_of(root: Path) -> list[Path]:
    return list(root.glob("checkpoints/sweep=*/*/step-*.pt"))


def wait_for(condition, timeout=120.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


def running_worker_pids(function: str) -> list[int]:
    """Pids of the workers running tasks of ``function`` in this test's own Ray session (its state API)."""
    import ray
    from ray.util.state import list_tasks

    # The address names this session's own cluster: without it Ray's state API guesses one machine-wide, and fails
    # ("Found multiple active Ray instances") while other Rays run on the machine.
    own_cluster = ray.get_runtime_context().gcs_address
    tasks = list_tasks(address=own_cluster, filters=[("name", "=", function), ("state", "=", "RUNNING")])
    return [task.worker_pid for task in tasks if task.worker_pid]


def test_worker_killed_mid_run_resumes_from_checkpoint(ray_session, tmp_path):
    config = parse_config(long_config("worker-kill"))
    corpus = load_corpus(config.data)
    spec = plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[0]
    result = {}
    driver = threading.Thread(target=lambda: result.update(outcome=run_sweep(config, str(tmp_path))))
    driver.start()
    wait_for(lambda: checkpoints_of(tmp_path) and running_worker_pids("execute_run"), interval=0.5)
    killed = running_worker_pids("execute_run")
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    driver.join(timeout=300)
    assert killed and result["outcome"].statuses == {"completed": 1}
    store = ResultsStore(tmp_path)
    row = store.read_runs("worker-kill").iloc[0]
    assert row["status"] == "completed" and row["resumed_from_step"] > 0
    metrics = store.read_metrics("worker-kill")
    assert metrics["step"].is_unique and metrics["step"].iloc[-1] == spec.steps
    reference = pd.DataFrame(train_run(spec).metrics)[CURVE]
    pd.testing.assert_frame_equal(metrics[CURVE].reset_index(drop=True), reference, check_dtype=False, rtol=0, atol=0)
    assert checkpoints_of(tmp_path) == []


def test_driver_killed_mid_sweep_then_rerun_finishes_only_what_is_missing(tmp_path):
    config_path, results = tmp_path / "sweep.yaml", tmp_path / "results"
    config_path.write_text(yaml.safe_dump(long_config("driver-kill", budgets=(6e9, 1.2e10, 2.4e10))))
    command = [sys.executable, "-m", "sweep", "run", str(config_path), "--results", str(results)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    store = ResultsStore(results)
    try:
        wait_for(lambda: len(store.read_runs("driver-kill")) >= 1 and checkpoints_of(results), timeout=240, interval=0.2)
    finally:
        killed = kill_tree(first.pid)  # the driver and its embedded Ray at once, as a crashed host
        first.wait()
    assert len(killed) > 3  # the driver, Ray's GCS and raylet, workers
    before = store.read_runs("driver-kill").set_index("run_id")
    interrupted = {p.parent.name for p in checkpoints_of(results)} - set(before.index)
    assert len(before) < 3 and interrupted

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = store.read_runs("driver-kill").set_index("run_id")
    assert len(after) == 3 and (after["status"] == "completed").all()
    for run_id in before.index:  # finished before the kill: never trained again
        assert after.loc[run_id, "finished_at"] == before.loc[run_id, "finished_at"]
    assert all(after.loc[run_id, "resumed_from_step"] > 0 for run_id in interrupted)
    metrics = store.read_metrics("driver-kill")
    assert not metrics.duplicated(["run_id", "step"]).any()
    assert metrics.groupby("run_id")["step"].max().to_dict() == after["steps"].to_dict()
