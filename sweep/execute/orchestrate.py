"""The driver: plan a sweep, diff the plan against the ledger, and run what is missing on Ray.

Idempotent by construction: runs already ``completed`` or ``diverged`` in the results store are skipped, so
running the same command again (after a crash, or with budgets or sizes added) trains only what is missing, and
a run interrupted mid-way resumes from its checkpoint. One driver at a time holds the results directory's lock
(``sweep.execute.lock``). Embedded Ray is started on this machine unless the cluster file (``sweep.execute.cluster``) names an
existing cluster.

Scheduling: the driver starts runs itself, longest first among those that fit the cluster's free CPUs and GPUs
(``sweep.execute.schedule``), up to ``resources.max_concurrent_runs``, so Ray never holds a queue whose order it could
reshuffle. A single-worker run is one Ray task; a multi-worker run is a ``TorchTrainer`` (``sweep.training.distributed``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import ray

from sweep.execute.cluster import ClusterConfig, connect
from sweep.config import ConfigError, SweepConfig
from sweep.training.data import epochs_for, load_corpus
from sweep.execute.lock import results_lock
from sweep.planning.plan import Plan, RunSpec, estimated_seconds, plan_sweep
from sweep.execute.progress import Progress, log
from sweep.execute.schedule import LptQueue, Resources
from sweep.results.storage import ResultsStore
from sweep.training.train import RunOutcome
from sweep.training.worker import execute_run, ledger_row


@dataclass
class SweepOutcome:
    planned: int
    skipped_finished: int
    statuses: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def failed(self) -> int:
        return self.statuses.get("failed", 0)


def prepare_plan(config: SweepConfig) -> Plan:
    """Open the corpus (building the default one if needed) and plan the sweep against its fingerprint."""
    try:
        corpus = load_corpus(config.data)
    except FileNotFoundError as error:
        raise ConfigError(f"data.path: {error}") from None
    plan = plan_sweep(config, corpus.vocab_size, corpus.fingerprint)
    for spec in plan.runs:
        epochs = epochs_for(corpus, spec.tokens)
        if epochs > 1.0:
            log(f"warning: run {spec.run_id} (N={spec.n_params_nonembedding:,}) repeats data: {epochs:.2f} epochs of {corpus.description}")
    return plan


def demand(spec: RunSpec) -> Resources:
    return Resources(cpus=spec.workers * spec.cpus, gpus=spec.workers * spec.gpus)


class _Capacity:
    """The cluster's total CPUs and GPUs, re-read from Ray at most every few seconds (it changes when nodes join
    or leave, rarely compared with how often the scheduling loop asks)."""

    def __init__(self, max_age_seconds: float = 5.0) -> None:
        self.max_age, self.read_at, self.value = max_age_seconds, -math.inf, Resources()

    def __call__(self) -> Resources:
        if time.monotonic() - self.read_at > self.max_age:
            total = ray.cluster_resources()
            self.value, self.read_at = Resources(cpus=total.get("CPU", 0.0), gpus=total.get("GPU", 0.0)), time.monotonic()
        return self.value


def submit(spec: RunSpec, results_root: str, max_retries: int) -> ray.ObjectRef:
    """Start one run on Ray: a plain task for one worker, a Ray Train ``TorchTrainer`` for several."""
    if spec.workers == 1:
        task = ray.remote(execute_run).options(num_cpus=spec.cpus, num_gpus=spec.gpus, max_retries=max_retries)
        return task.remote(spec, results_root)
    from sweep.training.distributed import execute_ddp_run

    # The launcher only waits on the trainer; the workers' resources are reserved by Ray Train's placement group.
    return ray.remote(execute_ddp_run).options(num_cpus=0, max_retries=max_retries).remote(spec, results_root)


def run_sweep(config: SweepConfig, results_root: str, cluster: ClusterConfig | None = None) -> SweepOutcome:
    """Train every planned run of ``config`` that the results store does not already hold as finished.

    Raises ``sweep.execute.lock.SweepLocked`` if another sweep holds the results directory.
    """
    started = time.perf_counter()
    plan = prepare_plan(config)
    store = ResultsStore(results_root)
    with results_lock(store, sweep=config.name) as holder:
        finished = store.finished_run_ids(config.name)
        todo = [s for s in plan.runs if s.run_id not in finished]
        outcome = SweepOutcome(planned=len(plan.runs), skipped_finished=len(plan.runs) - len(todo))
        log(f"sweep {config.name}: {len(plan.runs)} runs planned, {outcome.skipped_finished} already finished, {len(todo)} to run; results in {store.shown}")
        if todo:
            connect(cluster or ClusterConfig())
            run_planned(config, store, plan, todo, holder, outcome)
    outcome.wall_seconds = time.perf_counter() - started
    return outcome


def run_planned(
    config: SweepConfig, store: ResultsStore, plan: Plan, todo: list[RunSpec], holder: dict, outcome: SweepOutcome,
    start: Callable[[RunSpec, str, int], ray.ObjectRef] = submit,
) -> None:  # fmt: skip
    """The scheduling loop: start runs (by ``start``, normally ``submit``) as resources free up, collect results."""
    r = config.resources
    durations = {s.run_id: estimated_seconds(s, r.assumed_flops_per_second, r.assumed_seconds_per_step) for s in plan.runs}
    queue = LptQueue(todo, duration=lambda s: durations[s.run_id], demand=demand)
    progress = Progress(store, config.name, plan.runs, todo, durations, holder)
    in_flight: dict[ray.ObjectRef, RunSpec] = {}
    limit = r.max_concurrent_runs or len(todo)
    capacity = _Capacity()
    try:
        while queue or in_flight:
            free = capacity() - sum((demand(s) for s in in_flight.values()), Resources())
            while queue and len(in_flight) < limit:
                spec = queue.pop_fitting(free) or (queue.pop_longest() if not in_flight else None)
                if spec is None:
                    break
                if not demand(spec).fits_in(capacity()):
                    log(f"warning: run {spec.run_id} needs {demand(spec)}, more than the cluster has now; waiting for Ray to place it")
                in_flight[start(spec, store.root, r.max_retries)] = spec
                free = free - demand(spec)
                progress.run_started(spec)
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in ready:
                spec = in_flight.pop(ref)
                summary = _result(ref, spec, store)
                outcome.statuses[summary["status"]] = outcome.statuses.get(summary["status"], 0) + 1
                progress.run_finished(spec, summary)
            progress.refresh()
    finally:
        progress.close()


def _result(ref: ray.ObjectRef, spec: RunSpec, store: ResultsStore) -> dict:
    """The run's summary; a run whose worker or node died past its retries is recorded as failed here."""
    try:
        return ray.get(ref)
    except (ray.exceptions.RayError, OSError) as error:
        message = f"{type(error).__name__}: {error}"
        now = datetime.now(timezone.utc)
        # Written by the driver, which does not know where the worker ran: the node stays null.
        store.write_run(spec.sweep, ledger_row(spec, RunOutcome(status="failed", error=message), now, now, node=None))
        return {"status": "failed", "error": message, "run_id": spec.run_id}
