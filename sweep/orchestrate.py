"""The driver: plan a sweep, diff the plan against the ledger, and run what is missing as Ray tasks.

Idempotent by construction: runs already ``completed`` or ``diverged`` in the results store are skipped, so
running the same command again (after a crash, or with budgets or sizes added) trains only what is missing.
Embedded Ray is started on this machine unless the cluster file (``sweep.cluster``) names an existing cluster. Each run is one Ray task asking for the config's CPUs and GPUs; runs are submitted largest
first (longest processing time first), and Ray's resource accounting bounds how many run at once.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import ray

from sweep.cluster import ClusterConfig, connect
from sweep.config import ConfigError, SweepConfig
from sweep.data import epochs_for, load_corpus
from sweep.plan import Plan, RunSpec, plan_sweep
from sweep.storage import ResultsStore
from sweep.train import RunOutcome
from sweep.worker import execute_run, ledger_row


@dataclass
class SweepOutcome:
    planned: int
    skipped_finished: int
    statuses: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def failed(self) -> int:
        return self.statuses.get("failed", 0)


def log(message: str) -> None:
    print(f"[sweep {datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


def _describe(spec: RunSpec) -> str:
    return f"{spec.run_id} N={spec.n_params_nonembedding:,} D={spec.tokens:,} C={spec.flops:.3g}"


def run_sweep(config: SweepConfig, results_root: str, cluster: ClusterConfig | None = None) -> SweepOutcome:
    """Train every planned run of ``config`` that the results store does not already hold as finished."""
    started = time.perf_counter()
    plan = prepare_plan(config)
    store = ResultsStore(results_root)
    finished = store.finished_run_ids(config.name)
    todo = sorted((s for s in plan.runs if s.run_id not in finished), key=lambda s: s.flops, reverse=True)
    outcome = SweepOutcome(planned=len(plan.runs), skipped_finished=len(plan.runs) - len(todo))
    log(f"sweep {config.name}: {len(plan.runs)} runs planned, {outcome.skipped_finished} already finished, {len(todo)} to run; results in {results_root}")
    if not todo:
        return outcome
    connect(cluster or ClusterConfig())
    task = ray.remote(execute_run)
    pending = {}
    for spec in todo:
        ref = task.options(num_cpus=spec.cpus, num_gpus=spec.gpus, max_retries=config.resources.max_retries).remote(spec, store.root)
        pending[ref] = spec
    done_count = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(ready[0])
        try:
            summary = ray.get(ready[0])
        except (ray.exceptions.RayError, OSError) as error:  # the worker died past its retries, or could not write
            summary = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
            now = datetime.now(timezone.utc)
            store.write_run(config.name, ledger_row(spec, RunOutcome(status="failed", error=summary["error"]), now, now))
        done_count += 1
        outcome.statuses[summary["status"]] = outcome.statuses.get(summary["status"], 0) + 1
        loss = summary.get("final_eval_loss")
        detail = f"eval_loss={loss:.4f}" if loss is not None else (summary.get("error") or "").splitlines()[0]
        log(f"[{done_count}/{len(todo)}] {summary['status']} {_describe(spec)} {detail} ({summary.get('wall_seconds', 0):.1f} s)")
    outcome.wall_seconds = time.perf_counter() - started
    return outcome
