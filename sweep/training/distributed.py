"""Multi-worker runs: PyTorch DDP through Ray Train's ``TorchTrainer`` (gloo on CPU, NCCL on GPU).

``execute_ddp_run`` runs inside a zero-CPU Ray task started by the driver; it builds a ``TorchTrainer`` whose
``workers`` processes each reserve the run's CPUs and GPUs, placed with the ``PACK`` strategy (on one node where
they fit). Ray Train sets up the process group; each worker calls ``sweep.training.train.train_run`` with its rank, and
rank 0 records the run exactly as a single-worker run does (``sweep.training.worker.record``) and alone writes its
live metrics (``sweep.training.live``) and mirrors it to the experiment trackers (``sweep.training.tracking``). A worker that dies makes
Ray Train restart the group (``FailureConfig.max_failures``), and the restarted workers resume from the run's
checkpoint. Single-worker runs never come here: they skip Ray Train's start-up cost.

The launcher holds the run's claim (``sweep.training.claim``) from before the trainer starts until the run is
recorded, exactly as a single worker does, so a launcher of a killed driver still training the run is waited for
and a run it committed meanwhile is not trained again. The claim is the launcher's: if the launcher itself is
killed, Ray kills the trainer's workers with it (they are actors it owns), within Ray's usual grace period.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sweep.config import TrackingConfig
from sweep.planning.plan import RunSpec
from sweep.results.storage import ResultsStore
from sweep.training.checkpoint import CheckpointStore
from sweep.training.claim import RunClaims, claims_for
from sweep.results.uri import SecretRoot
from sweep.training.live import LiveMetrics, each
from sweep.training.tracking import start_tracking
from sweep.training.train import Distributed, RunOutcome, train_run
from sweep.training.worker import record, recorded_outcome, stop_signal, summarize


def _train_worker(config: dict) -> None:
    """Ray Train's per-worker loop: train this rank's share; rank 0 writes the results."""
    import ray.train
    import ray.train.torch

    spec: RunSpec = config["spec"]
    context = ray.train.get_context()
    dist = Distributed(context.get_world_rank(), context.get_world_size(), ray.train.torch.get_device())
    store = ResultsStore(config["results_root"].root)
    tracker = start_tracking(config["tracking"], spec) if dist.rank == 0 else None
    live = LiveMetrics(store, spec).log_row if dist.rank == 0 else None
    try:
        on_row = each(live, tracker.log_row if tracker else None)
        outcome = train_run(spec, CheckpointStore(store), dist, on_row=on_row, stop=stop_signal(store, spec))
    except BaseException:
        if tracker:
            tracker.finish("failed")  # Ray Train restarts the group or gives up; a restart resumes this MLflow run
        raise
    if dist.rank == 0:
        record(store, spec, outcome, config["started_at"])
        if tracker:
            tracker.finish(outcome.status)


def execute_ddp_run(spec: RunSpec, results_root: str, claims: RunClaims | None = None, tracking: TrackingConfig | None = None) -> dict:
    """Train ``spec`` with ``spec.workers`` DDP workers and record it, holding the run's claim throughout (see the
    module docstring); rank 0 mirrors the run to ``tracking``'s trackers. Returns the driver's summary."""
    store = ResultsStore(results_root)
    with (claims or claims_for(store)).hold(spec.sweep, spec.run_id):
        outcome = recorded_outcome(store, spec) or _fit(spec, store, tracking)
    return summarize(spec, outcome)


def _fit(spec: RunSpec, store: ResultsStore, tracking: TrackingConfig | None = None) -> RunOutcome:
    """Run the ``TorchTrainer``; rank 0 records the run. Returns the recorded outcome (or the failure, recorded here)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    started_at = datetime.now(timezone.utc)
    trainer = TorchTrainer(
        _train_worker,
        # Ray Train records str() of this config in its run state: the root travels whole but shows redacted. A
        # local root travels absolute: Ray Train's workers do not run in the driver's directory.
        train_loop_config={"spec": spec, "results_root": SecretRoot(store.root if "://" in store.root else store.base),
                           "started_at": started_at, "tracking": tracking},  # fmt: skip
        scaling_config=ScalingConfig(
            num_workers=spec.workers,
            use_gpu=spec.gpus > 0,
            resources_per_worker={"CPU": spec.cpus, "GPU": spec.gpus} if spec.gpus > 0 else {"CPU": spec.cpus},
            placement_strategy="PACK",
        ),
        run_config=RunConfig(
            name=f"{spec.sweep}-{spec.run_id}",
            storage_path=f"{store.base}/ray_train" if "://" not in store.root else None,
            failure_config=FailureConfig(max_failures=2),
        ),
    )
    try:
        trainer.fit()
    except Exception as error:  # Ray Train gave up on the run: record it as failed, keep its checkpoints
        outcome = RunOutcome(status="failed", error=f"{type(error).__name__}: {error}")
        record(store, spec, outcome, started_at)
        return outcome
    return recorded_outcome(store, spec) or RunOutcome(status="failed", error="rank 0 recorded no finished row")
