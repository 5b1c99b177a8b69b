"""Clean stops: SIGINT and SIGTERM end ``sweep run`` in seconds with one line and exit 130 / 143, runs in flight
recorded as ``interrupted`` with their checkpoints kept, nothing of the driver's process tree left, the lock free,
``sweep status`` listing them, and a rerun resuming them from their checkpoints.

SIGINT goes to the driver's whole process group, as a terminal's Ctrl-C does (embedded Ray's GCS and raylet share
it); SIGTERM to the driver alone, as systemd's ``KillMode=mixed`` does. Every signal goes to processes this test
started (its driver subprocess, in a session of its own, and that driver's descendants).
"""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import yaml

from sweep.cli import main
from sweep.config import parse_config
from sweep.execute.lock import lock_holder
from sweep.execute.status import interrupted_runs
from sweep.execute.stop import SweepStopped, record_interrupted
from sweep.planning.plan import plan_sweep
from sweep.results.storage import ResultsStore
from sweep.training.checkpoint import CheckpointStore
from sweep.training.claim import FlockClaims
from sweep.training.data import load_corpus
from sweep.training.train import RunOutcome
from sweep.training.worker import ledger_row
from tests.conftest import tiny_config
from tests.execute.processes import kill_tree, tree, wait_gone


def runs_in_flight_config() -> dict:
    """Two runs of some tens of seconds on this 2-CPU machine, both in flight at once, a checkpoint every 20 steps."""
    return tiny_config(
        name="stops",
        budgets=[4.0e10, 5.0e10],
        model={"sizes": [8e3]},
        training={"checkpoint_every_steps": 20, "log_every_steps": 10, "eval_points": 2},
        resources={"cpus_per_worker": 1},
    )


def checkpointed_runs(results) -> set[str]:
    return {path.parent.name for path in results.glob("checkpoints/sweep=stops/*/step-*.pt")}


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_the_sweep_cleanly_and_the_rerun_resumes(signum, exit_code, tmp_path):
    config_path, results = tmp_path / "sweep.yaml", tmp_path / "results"
    config_path.write_text(yaml.safe_dump(runs_in_flight_config()))
    command = [sys.executable, "-m", "sweep", "run", str(config_path), "--results", str(results)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    processes = []
    try:
        wait_for(lambda: len(checkpointed_runs(results)) == 2, 240, "both runs to checkpoint")
        processes = tree(driver.pid)  # the driver, its embedded Ray, the two runs' workers
        sent = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(driver.pid, signum)  # Ctrl-C: the terminal signals the foreground process group
        else:
            os.kill(driver.pid, signum)  # systemd KillMode=mixed: the main process first
        driver.wait(timeout=120)
        seconds = time.monotonic() - sent
        survivors = wait_gone(processes, timeout=30)
    finally:
        if driver.poll() is None:
            kill_tree(driver.pid)
            driver.wait()
        for process in wait_gone(processes, timeout=0):  # whatever of this test's tree is left after a failure
            kill_tree(process.pid)
    stderr = stderr_path.read_text()
    print(f"{signal.Signals(signum).name}: exit {driver.returncode} {seconds:.1f} s after the signal; {len(processes)} processes in the tree")
    assert driver.returncode == exit_code, stderr[-3000:]
    assert seconds < 30  # 10 s is the goal (measured: see the printed figure); loose for a loaded machine
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert last == f"sweep stops: stopped by {name}; 2 runs interrupted, checkpoints kept; rerun the same command to resume", stderr[-3000:]
    assert survivors == [], [(p.pid, p.name()) for p in survivors]
    store = ResultsStore(results)
    assert lock_holder(store) is None
    ledger = store.read_runs("stops").set_index("run_id")
    assert (ledger["status"] == "interrupted").all() and len(ledger) == 2
    assert set(ledger.index) == checkpointed_runs(results)  # checkpoints kept

    status_command = [sys.executable, "-m", "sweep", "status", "--results", str(results), "--json"]
    status = subprocess.run(status_command, env=env, capture_output=True, text=True, timeout=120)
    (entry,) = json.loads(status.stdout)["sweeps"]
    assert sorted(entry["interrupted"]) == sorted(ledger.index) and entry["counts"]["interrupted"] == 2

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = store.read_runs("stops").set_index("run_id")
    assert (after["status"] == "completed").all() and (after["resumed_from_step"] > 0).all()
    assert checkpointed_runs(results) == set()
    metrics = store.read_metrics("stops")
    assert not metrics.duplicated(["run_id", "step"]).any()


RESUME = "checkpoints kept; rerun the same command to resume"


def test_stopped_names_the_signal_and_exits_128_plus_its_number(tmp_path, monkeypatch, capsys):
    assert str(SweepStopped("s", signal.SIGINT, 1)) == f"sweep s: stopped by SIGINT; 1 run interrupted, {RESUME}"
    assert str(SweepStopped("s", signal.SIGTERM, 0)) == "sweep s: stopped by SIGTERM; no run was in flight"
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        def stopped(*args, signum=signum, **kwargs):
            raise SweepStopped("tiny", signum, 2)

        monkeypatch.setattr("sweep.execute.orchestrate.run_sweep", stopped)
        assert main(["run", str(config), "--results", str(tmp_path / "r")]) == code
        assert capsys.readouterr().err.strip() == f"sweep tiny: stopped by {signal.Signals(signum).name}; 2 runs interrupted, {RESUME}"


def test_interrupted_row_is_written_only_for_a_run_that_did_not_end_by_itself(tmp_path, monkeypatch):
    config = parse_config(tiny_config(name="marks"))
    corpus = load_corpus(config.data)
    first, second, third = plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[:3]
    store, claims = ResultsStore(tmp_path), FlockClaims(tmp_path / "claims", log=lambda line: None, poll_seconds=0.01)
    started = datetime.now(timezone.utc)
    earlier = ledger_row(first, RunOutcome(status="failed"), started - timedelta(hours=1), started - timedelta(hours=1), None)
    store.write_run("marks", earlier)  # a row from an earlier sweep: the run did not end since this driver started it
    store.write_run("marks", ledger_row(second, RunOutcome(status="completed", final_eval_loss=2.0), started, started + timedelta(seconds=1), None))
    CheckpointStore(store).save("marks", first.run_id, 6, {"step": 6})  # the interrupted run's newest checkpoint
    assert record_interrupted(store, claims, first, started, signal.SIGTERM)
    row = store.read_run("marks", first.run_id)  # what it spent: as far as the checkpoint it resumes from
    assert row["steps_done"] == 6 and row["flops_spent"] == 6 * first.batch_tokens * first.flops_per_token
    assert not record_interrupted(store, claims, second, started, signal.SIGTERM)  # it finished by itself
    monkeypatch.setattr("sweep.execute.stop.CLAIM_WAIT_SECONDS", 0.1)
    with claims.hold("marks", third.run_id):  # its trainer still holds the claim: give up, write nothing
        assert not record_interrupted(store, claims, third, started, signal.SIGTERM)
    ledger = store.read_runs("marks").set_index("run_id")["status"].to_dict()
    assert ledger == {first.run_id: "interrupted", second.run_id: "completed"}


def test_status_lists_interrupted_rows_and_a_dead_drivers_runs_but_not_what_the_live_driver_trains_again():
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "status": ["interrupted", "interrupted", "completed"]})
    assert interrupted_runs(runs, in_flight=["d"], pending=["a", "b", "d"], live=False) == ["a", "b", "d"]
    assert interrupted_runs(runs, in_flight=["a"], pending=["a", "b", "d"], live=True) == ["b"]
