"""A tuning trial the pruner stops: its trainer reads the stop request and ends as ``pruned`` with its curve so
far, recorded like any run (metrics, then a ledger row with its study and trial); a sweep's own run never reads one."""

from dataclasses import replace

import pytest

from sweep.config import parse_config
from sweep.results.storage import ResultsStore
from sweep.training.checkpoint import CheckpointStore
from sweep.training.data import load_corpus
from sweep.training.train import train_run
from sweep.training.worker import execute_run, stop_signal
from sweep.tuning.study import trial_spec
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def trial():
    config = parse_config(tiny_config(budgets=[4e9], tune={"horizon": {"budget_flops": 4e9}, "eval_points": 4},
                                      training={"checkpoint_every_steps": 10}))  # fmt: skip
    corpus = load_corpus(config.data)
    return trial_spec(config, 3e3, {"lr": 3e-3}, corpus.vocab_size, corpus.fingerprint, trial=5)


def test_a_stop_request_ends_the_trial_as_pruned_with_its_partial_curve(tmp_path, trial):
    store = ResultsStore(tmp_path)
    asked = []

    def stop_after_first_evaluation(row):
        asked.append(row)
        evaluated = row is not None and row["eval_loss"] is not None
        if evaluated:
            store.request_stop(trial.sweep, trial.run_id, "pruned by the median pruner at evaluation 1 of 4")
        return stop_signal(store, trial)(row)

    outcome = train_run(trial, CheckpointStore(store), stop=stop_after_first_evaluation)
    first_eval = trial.eval_steps[0]
    assert outcome.status == "pruned" and outcome.error.startswith("pruned by the median pruner")
    assert outcome.steps_done == first_eval and outcome.metrics[-1]["step"] == first_eval
    assert outcome.final_eval_loss is None and outcome.metrics[-1]["eval_loss"] is not None


def test_the_worker_records_a_pruned_trial_and_drops_its_request(tmp_path, trial):
    store = ResultsStore(tmp_path)
    store.request_stop(trial.sweep, trial.run_id, "pruned by the median pruner at evaluation 2 of 4")
    summary = execute_run(trial, str(tmp_path))  # asked at its first row: stops there
    row = store.read_run(trial.sweep, trial.run_id)
    assert summary["status"] == row["status"] == "pruned"
    assert (row["study"], row["trial"]) == (trial.study, 5) and row["steps_done"] < trial.steps
    assert list(store.read_run_metrics(trial.sweep, trial.run_id)["step"]) == [trial.log_every_steps]
    assert store.stop_requested(trial.sweep, trial.run_id) is None
    assert CheckpointStore(store).newest_step(trial.sweep, trial.run_id) == 0  # a finished trial keeps none
    assert execute_run(trial, str(tmp_path))["status"] == "pruned"  # never trained again


def test_a_sweeps_own_run_never_reads_a_stop_request(tmp_path, trial):
    run = replace(trial, study=None, trial=None)
    assert stop_signal(ResultsStore(tmp_path), run) is None


def _ddp_rank(rank: int, spec, init_file: str, out: str) -> None:
    import json

    import torch

    from sweep.training.train import Distributed

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:  # only rank 0 is asked to stop (as if only it had read the request yet): both must leave at the same row
        stop = (lambda row: "pruned at evaluation 1" if row and row["eval_loss"] is not None else None) if rank == 0 else (lambda row: None)
        outcome = train_run(replace(spec, checkpoint_every_steps=0, workers=2), dist=Distributed(rank, 2, torch.device("cpu")), stop=stop)
        with open(f"{out}.{rank}", "w") as handle:
            json.dump({"status": outcome.status, "steps": outcome.steps_done, "error": outcome.error}, handle)
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_ranks_agree_on_a_stop_and_leave_together(tmp_path, trial):
    import json

    import torch

    context = torch.multiprocessing.spawn(_ddp_rank, args=(trial, str(tmp_path / "init"), str(tmp_path / "out")), nprocs=2, join=False)
    import time

    deadline, finished = time.monotonic() + 120, False
    while not finished and time.monotonic() < deadline:  # join() returns once any one rank ends: ask until all have
        finished = context.join(timeout=5)
    for process in context.processes:  # ours: spawned above (a hang would leave them waiting in an all-reduce)
        if process.is_alive():
            process.kill()
    assert finished, "the ranks did not leave together"
    results = [json.loads((tmp_path / f"out.{rank}").read_text()) for rank in (0, 1)]
    assert [r["status"] for r in results] == ["pruned", "pruned"]
    assert results[0]["steps"] == results[1]["steps"] == trial.eval_steps[0]
    assert results[1]["error"] == "stopped on another rank's request"
