"""What a Ray worker does for one run: train it, then record its metrics and ledger row in the results store.

The worker writes its own results (not the driver), so a multi-node sweep needs only a results root every node
can reach. A Python exception inside training is recorded as a ``failed`` row with the error; a non-finite loss
as ``diverged`` (by ``sweep.training.train``). Every row records what the run actually trained (``steps_done``,
``flops_spent``): all its steps when completed, up to the step the divergence was noticed when diverged, and for
a run that stopped otherwise the step of its newest checkpoint (``failed_outcome``). A worker that dies outright leaves no ledger row: Ray retries the task, which
resumes from the run's last checkpoint, and the driver records the run as failed only past its retries.

A worker trains only while it holds the run's claim (``sweep.training.claim``): a worker of a killed driver that
is still training the same run is waited for, and if it commits the run meanwhile, its recorded outcome is
returned instead of training the run again.
"""

from __future__ import annotations

import json
import math
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone

from sweep.config import TrackingConfig
from sweep.planning.plan import RunSpec
from sweep.results.storage import FINISHED_STATUSES, ResultsStore
from sweep.training.checkpoint import CheckpointStore
from sweep.training.claim import RunClaims, claims_for
from sweep.training.hardware import mean_tokens_per_second, mfu, peak_flops
from sweep.training.live import LiveMetrics, each
from sweep.training.tracking import start_tracking
from sweep.training.train import RunOutcome, train_run
from sweep.versions import PACKAGE, package_version

_SPEC_COLUMNS = (
    "n_layer", "d_model", "n_head", "seq_len", "vocab_size", "n_params", "n_params_nonembedding", "tokens",
    "flops", "flops_budget", "flops_convention", "flops_per_token", "flops_per_token_6n",
    "flops_per_token_6n_attention", "flops_per_token_chinchilla", "steps", "lr", "batch_tokens", "seed",
    "data_fingerprint", "compile", "lr_rule", "batch_rule", "warmup_steps", "warmup_tokens", "beta1", "beta2",
    "weight_decay", "memory_estimate_bytes", "data_order", "workers", "lr_study", "study", "trial", "schedule",
    "branch_step", "cooldown_shape", "parent_run_id", "size_reason", "code_commit", "tokenizer_sha256",
)  # fmt: skip


VERSIONED = (("torch", "torch"), ("ray", "ray"), ("sweep", PACKAGE))
"""The ledger's ``NAME_version`` columns: the installed versions, in the process that trained the run."""


def node_name() -> str:
    """The Ray node this process runs on (its id), or the host name outside Ray."""
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return socket.gethostname()


def throughput_columns(spec: RunSpec, outcome: RunOutcome) -> dict:
    """How fast the run trained: mean tokens/s and model FLOP/s (the outcome's, else from its metrics rows), one
    device's peak (``spec.peak_flops``, else ``sweep.training.hardware``'s table by the outcome's device and
    precision) and MFU; plus the precision and micro-batch as the run resolved them (else the spec's)."""
    tokens_per_second = outcome.tokens_per_second or mean_tokens_per_second(outcome.metrics)
    model_flops = outcome.model_flops_per_second
    if model_flops is None and tokens_per_second is not None:
        model_flops = tokens_per_second * spec.flops_per_token
    precision = outcome.precision or spec.precision
    peak = spec.peak_flops or peak_flops(outcome.device, precision)
    return {
        "precision": precision,
        "micro_batch_tokens": outcome.micro_batch_tokens or spec.micro_batch_tokens,
        "tokens_per_second": tokens_per_second,
        "model_flops_per_second": model_flops,
        "peak_flops": peak,
        "mfu": mfu(model_flops, spec.workers, peak),
    }


def ledger_row(spec: RunSpec, outcome: RunOutcome, started_at: datetime, finished_at: datetime, node: str | None) -> dict:
    """The run's row in ``runs/`` (``sweep.results.storage.RUNS_SCHEMA``); ``node`` is where it trained, if known."""
    return {
        "run_id": spec.run_id,
        "status": outcome.status,
        **{column: getattr(spec, column) for column in _SPEC_COLUMNS},
        **throughput_columns(spec, outcome),
        "final_train_loss": outcome.final_train_loss,
        "final_eval_loss": outcome.final_eval_loss,
        "wall_seconds": outcome.wall_seconds,
        "device": outcome.device,
        "node": node,
        "resumed_from_step": outcome.resumed_from_step,
        "started_at": started_at,
        "finished_at": finished_at,
        "first_step_at": outcome.first_step_at,
        "steps_done": outcome.steps_done,
        "flops_spent": spent_flops(spec, outcome),
        "error": outcome.error,
        "spec_json": json.dumps(asdict(spec), sort_keys=True, default=list),
        **{f"{name}_version": package_version(package) for name, package in VERSIONED},
    }


def execute_run(spec: RunSpec, results_root: str, claims: RunClaims | None = None, tracking: TrackingConfig | None = None) -> dict:
    """Train ``spec`` and record it, holding the run's claim (default: ``claims_for`` the results root) throughout;
    a run found finished once the claim is held is not trained again. ``tracking``: the experiment trackers to
    mirror the run to (``sweep.training.tracking``; they finish after the run is recorded). Returns a small summary
    for the driver's log."""
    store = ResultsStore(results_root)
    with (claims or claims_for(store)).hold(spec.sweep, spec.run_id):
        recorded = recorded_outcome(store, spec)
        if recorded is not None:
            return summarize(spec, recorded)
        started_at = datetime.now(timezone.utc)
        tracker = start_tracking(tracking, spec)
        on_row = each(LiveMetrics(store, spec).log_row, tracker.log_row if tracker else None)
        try:
            outcome = train_run(spec, CheckpointStore(store), on_row=on_row, stop=stop_signal(store, spec))
        except Exception as error:  # recorded, not raised: a bad run must not take the sweep down
            outcome = failed_outcome(store, spec, f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=5)}")
        record(store, spec, outcome, started_at)
        if tracker:
            tracker.finish(outcome.status)
    return summarize(spec, outcome)


STOP_CHECK_SECONDS = 2.0
"""A trial reads its stop request at every evaluation, and between evaluations at most this often (one small read
of the store: a local stat and read, or one object-store GET)."""


def stop_signal(store: ResultsStore, spec: RunSpec, clock: Callable[[], float] = time.monotonic):
    """``train_run``'s ``stop`` for a tuning trial: the reason the driver asked it to stop (Optuna's pruner, through
    ``ResultsStore.request_stop``), read at each evaluation and every ``STOP_CHECK_SECONDS`` between them; None
    (never asked) for a sweep's own runs."""
    if spec.study is None:
        return None
    read_at = [-math.inf]

    def requested(row: dict | None) -> str | None:
        if row is not None and row.get("eval_loss") is None and clock() - read_at[0] < STOP_CHECK_SECONDS:
            return None
        read_at[0] = clock()
        try:
            return store.stop_requested(spec.sweep, spec.run_id)
        except OSError:  # a store hiccup: no stop this time, asked again later
            return None

    return requested


def failed_outcome(store: ResultsStore, spec: RunSpec, error: str, status: str = "failed") -> RunOutcome:
    """The outcome of a run that stopped without finishing (an exception, a dead worker, a signal): what it spent
    is known as far as its newest checkpoint (the steps a rerun resumes from); steps after it are not counted."""
    newest = CheckpointStore(store).newest_step(spec.sweep, spec.run_id)
    # A readout's checkpoints past its branch step: trained from its trunk's state there, as it does when it can.
    inherited = spec.branch_step if spec.parent_run_id is not None and newest > spec.branch_step else 0
    return RunOutcome(status=status, error=error, steps_done=newest, inherited_steps=inherited)


def recorded_outcome(store: ResultsStore, spec: RunSpec) -> RunOutcome | None:
    """The run's outcome as its ledger row records it, if the run is finished (completed or diverged); else None."""
    row = store.read_run(spec.sweep, spec.run_id)
    if row is None or row["status"] not in FINISHED_STATUSES:
        return None
    return RunOutcome(
        status=row["status"], final_train_loss=row["final_train_loss"], final_eval_loss=row["final_eval_loss"],
        wall_seconds=row["wall_seconds"] or 0.0, error=row["error"], resumed_from_step=row["resumed_from_step"] or 0,
        steps_done=row["steps_done"] if row["steps_done"] is not None else (spec.steps if row["status"] == "completed" else 0),
        inherited_steps=_inherited(spec, row),
    )  # fmt: skip


def _inherited(spec: RunSpec, row: dict) -> int:
    """The steps a recorded run took over from its trunk, from its row (steps done less what it spent)."""
    if row["steps_done"] is None or row["flops_spent"] is None:
        return 0
    return max(0, round(row["steps_done"] - row["flops_spent"] / (spec.batch_tokens * spec.flops_per_token)))


def record(store: ResultsStore, spec: RunSpec, outcome: RunOutcome, started_at: datetime) -> None:
    """Write the run's metrics, then its ledger row (the commit), then drop its live metrics (``sweep.training.live``)
    and, if it finished, its checkpoints.

    A run that did not finish (failed) keeps its checkpoints: the next ``sweep run`` retries it from there.
    """
    if outcome.metrics:
        store.write_metrics(spec.sweep, spec.run_id, outcome.metrics)
    store.write_run(spec.sweep, ledger_row(spec, outcome, started_at, datetime.now(timezone.utc), node_name()))
    store.clear_live_metrics(spec.sweep, spec.run_id)
    if outcome.status in FINISHED_STATUSES:
        CheckpointStore(store).clear(spec.sweep, spec.run_id)
        if spec.study is not None:
            store.clear_stop_request(spec.sweep, spec.run_id)


def summarize(spec: RunSpec, outcome: RunOutcome) -> dict:
    """The small summary a worker returns to the driver's log."""
    return {
        "run_id": spec.run_id,
        "status": outcome.status,
        "final_eval_loss": outcome.final_eval_loss,
        "wall_seconds": outcome.wall_seconds,
        "error": outcome.error,
        "flops_spent": spent_flops(spec, outcome),
    }


def spent_flops(spec: RunSpec, outcome: RunOutcome) -> float:
    """The FLOPs the run itself trained: its steps done, less those a ``wsd`` readout took over from its trunk."""
    return max(0, outcome.steps_done - outcome.inherited_steps) * spec.batch_tokens * spec.flops_per_token
