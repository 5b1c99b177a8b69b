"""Run claims: a second trainer of a run waits for the first (an orphan of a killed driver), then trains nothing if
the first committed the run, or resumes it if the first died. No Ray: the "orphan" is a child process of the test."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sweep.config import parse_config
from sweep.planning.plan import RunSpec, plan_sweep
from sweep.results.storage import ResultsStore
from sweep.training import worker
from sweep.training.checkpoint import CheckpointStore
from sweep.training.claim import ClaimTimeout, FlockClaims, LeaseClaims, NoClaims, claims_for
from sweep.training.data import load_corpus
from sweep.training.train import train_run
from tests.conftest import s3_root, tiny_config

# The orphan: holds the run's claim, says so, then on "commit" trains and records the run as a worker would; on
# anything else (or when killed) it leaves without writing.
ORPHAN = """
import pickle, sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from sweep.results.storage import ResultsStore
from sweep.training.checkpoint import CheckpointStore
from sweep.training.claim import FlockClaims
from sweep.training.train import train_run
from sweep.training.worker import record

spec, root = pickle.loads(Path(sys.argv[1]).read_bytes()), sys.argv[2]
store = ResultsStore(root)
with FlockClaims(Path(root) / "claims").hold(spec.sweep, spec.run_id):
    print("held", flush=True)
    if sys.stdin.readline().strip() == "commit":
        record(store, spec, train_run(spec, CheckpointStore(store)), datetime.now(timezone.utc))
"""


@pytest.fixture(scope="module")
def spec() -> RunSpec:
    config = parse_config(tiny_config(name="claim", budgets=[2e9], model={"sizes": [3e3]}, training={"checkpoint_every_steps": 50}))
    corpus = load_corpus(config.data)
    return plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[0]


def start_orphan(spec: RunSpec, root: Path, tmp_path: Path) -> subprocess.Popen:
    spec_file = tmp_path / "spec.pkl"
    spec_file.write_bytes(pickle.dumps(spec))
    orphan = subprocess.Popen([sys.executable, "-c", ORPHAN, str(spec_file), str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert orphan.stdout.readline().strip() == "held"
    return orphan


def start_second_worker(spec: RunSpec, root: Path) -> tuple[threading.Thread, dict, list[str]]:
    """``execute_run`` of the same run in a thread; returns it, where its summary lands, and its claim's log lines."""
    result: dict = {}
    lines: list[str] = []
    claims = FlockClaims(root / "claims", log=lines.append, poll_seconds=0.05)
    thread = threading.Thread(target=lambda: result.update(worker.execute_run(spec, str(root), claims)))
    thread.start()
    deadline = time.monotonic() + 60
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert thread.is_alive() and lines and "waiting for an earlier worker" in lines[0], lines
    return thread, result, lines


def run_files(root: Path, spec: RunSpec) -> tuple[list[Path], list[Path]]:
    return list(root.glob(f"runs/sweep={spec.sweep}/*.parquet")), list(root.glob(f"metrics/sweep={spec.sweep}/*.parquet"))


def test_a_run_committed_by_an_orphan_is_not_trained_again(spec, tmp_path, monkeypatch):
    root = tmp_path / "results"
    trained = []
    monkeypatch.setattr(worker, "train_run", lambda *args, **kwargs: trained.append(args))
    orphan = start_orphan(spec, root, tmp_path)
    try:
        thread, result, _ = start_second_worker(spec, root)
        time.sleep(0.5)
        assert thread.is_alive()  # still waiting: the orphan holds the claim
        orphan.communicate("commit\n", timeout=120)
        thread.join(timeout=60)
    finally:
        orphan.kill()
        orphan.wait()
    assert orphan.returncode == 0 and not thread.is_alive()
    row = ResultsStore(root).read_runs(spec.sweep).iloc[0]
    assert result["status"] == "completed" == row["status"] and result["final_eval_loss"] == row["final_eval_loss"]
    assert trained == []
    runs, metrics = run_files(root, spec)
    assert len(runs) == 1 and len(metrics) == 1
    assert len(ResultsStore(root).read_metrics(spec.sweep)) == len(set(ResultsStore(root).read_metrics(spec.sweep)["step"]))


def test_a_run_whose_orphan_died_is_trained_from_its_checkpoint(spec, tmp_path):
    root = tmp_path / "results"
    store = ResultsStore(root)
    train_run(spec, CheckpointStore(store))  # an earlier attempt that checkpointed, then died before recording
    checkpoint_step = CheckpointStore(store).latest(spec.sweep, spec.run_id)["step"]
    orphan = start_orphan(spec, root, tmp_path)
    thread, result, _ = start_second_worker(spec, root)
    orphan.kill()  # dies holding the claim, without writing anything: the kernel drops its flock
    orphan.wait()
    thread.join(timeout=120)
    assert not thread.is_alive() and result["status"] == "completed"
    row = store.read_runs(spec.sweep).iloc[0]
    assert row["status"] == "completed" and row["resumed_from_step"] == checkpoint_step > 0
    runs, metrics = run_files(root, spec)
    assert len(runs) == 1 and len(metrics) == 1
    assert store.read_metrics(spec.sweep)["step"].is_unique


def test_flock_claim_is_exclusive_times_out_and_is_free_again_after_release(tmp_path):
    claims = FlockClaims(tmp_path / "claims", log=lambda line: None, poll_seconds=0.01)
    with claims.hold("s", "run"):
        holder = subprocess.run(
            [sys.executable, "-c", "from pathlib import Path; from sweep.training.claim import FlockClaims, ClaimTimeout\n"
             f"try:\n  FlockClaims(Path({str(tmp_path / 'claims')!r})).hold('s', 'run', timeout=0.2).__enter__()\n"
             "except ClaimTimeout as e: print(e)"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert f"still claimed by pid {os.getpid()}" in holder.stdout
    with claims.hold("s", "run", timeout=1.0):  # released: free at once
        pass
    with pytest.raises(ClaimTimeout):  # flock is per open file: a second hold in one process waits too
        with claims.hold("s", "other"), claims.hold("s", "other", timeout=0.1):
            pass


def test_a_symlink_at_a_claim_path_is_refused(tmp_path):
    claims = FlockClaims(tmp_path / "claims")
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    claims.path("s", "run").parent.mkdir(parents=True)
    claims.path("s", "run").symlink_to(target)
    with pytest.raises(OSError):
        with claims.hold("s", "run", timeout=0.1):
            pass
    assert target.read_text() == "keep me"


def test_claims_for_picks_flock_on_posix_roots_leases_on_s3_and_nothing_elsewhere(tmp_path):
    assert isinstance(claims_for(ResultsStore(tmp_path)), FlockClaims)
    s3 = SimpleNamespace(fs=SimpleNamespace(type_name="s3"), base="bucket/results", root="s3://bucket/results")
    assert isinstance(claims_for(s3), LeaseClaims)
    gcs = SimpleNamespace(fs=SimpleNamespace(type_name="gcs"), base="bucket/results")
    assert isinstance(claims_for(gcs), NoClaims)


def test_s3_claims_are_exclusive_leases_released_on_exit(s3_endpoint, s3_bucket):
    store = ResultsStore(s3_root(s3_endpoint, s3_bucket[0]))
    first, second = LeaseClaims(store, poll_seconds=0.1), LeaseClaims(store, poll_seconds=0.1)
    with first.hold("s", "run"):
        with pytest.raises(ClaimTimeout, match="run run is still claimed by pid"):
            with second.hold("s", "run", timeout=0.5):
                pass
        with second.hold("s", "other", timeout=0.5):  # another run's claim is independent
            pass
    with second.hold("s", "run", timeout=0.5):  # released on exit: free at once
        pass
