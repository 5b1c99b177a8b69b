"""The driver: plan a sweep, diff the plan against the ledger, and run what is missing on Ray.

Idempotent by construction: runs already ``completed`` or ``diverged`` in the results store are skipped, so
running the same command again (after a crash, or with budgets or sizes added) trains only what is missing, and
a run interrupted mid-way resumes from its checkpoint. One driver at a time holds the results directory's lock
(``sweep.execute.lock``). Embedded Ray is started on this machine unless the cluster file (``sweep.execute.cluster``) names an
existing cluster.

Scheduling: the driver starts runs itself, longest first among those that fit the cluster's free CPUs and GPUs
(``sweep.execute.schedule``), up to ``resources.max_concurrent_runs``, so Ray never holds a queue whose order it could
reshuffle. Ray's autoscaler still sees the whole queue: the driver asks it (``request_resources``) for the bundles of
the runs in flight and waiting, up to that limit, and uses new nodes within seconds of their joining. A run no node
can ever hold is refused before anything starts; one that waits for the autoscaler waits at most
``resources.placement_timeout_seconds`` (``sweep.execute.placement``). A single-worker run is one Ray task; a
multi-worker run is a ``TorchTrainer`` (``sweep.training.distributed``).
SIGINT and SIGTERM stop the loop cleanly (``sweep.execute.stop``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Callable, Hashable

import ray

from sweep.execute.cluster import ClusterConfig, connect
from sweep.config import SweepConfig, TrackingConfig
from sweep.training.data import check_corpus_holds, epochs_for, load_corpus
from sweep.execute.lock import results_lock
from sweep.planning.plan import Plan, RunSpec, plan_sweep, planned_once
from sweep.planning.summary import grouped, repeats_data_warning
from sweep.planning.throughput import planned_durations
from sweep.execute.backend import SYSTEM_CLOCK, Clock, RayBackend, RunBackend, RunLost, submit
from sweep.execute.branches import Branches
from sweep.execute.placement import (
    CapacityRequest, PlacementWaits, RunDemand, TrunkWaits, holds, refuse_unplaceable, unplaced_error,
)  # fmt: skip
from sweep.execute.progress import Progress, log
from sweep.execute.recovery import REBUILT_NOTE, rebuild_ledger_rows
from sweep.execute.schedule import LptQueue, Resources
from sweep.execute.status import flops_spent
from sweep.execute.stop import stopping_on_signals
from sweep.results.integrity import prepare_repair, runs_lacking_metrics, set_aside_damaged
from sweep.results.storage import FINISHED_STATUSES, ResultsStore
from sweep.results.uri import redact_uri
from sweep.training.tracking import for_workers
from sweep.training.worker import failed_outcome, ledger_row, summarize
from sweep.versions import git_commit


@dataclass
class SweepOutcome:
    planned: int = 0
    skipped_finished: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    seen: set[str] = field(default_factory=set, repr=False)
    """Run ids counted into ``planned`` (a staged sweep plans its runs over several stages)."""

    @property
    def failed(self) -> int:
        return self.statuses.get("failed", 0)


def prepare_plan(config: SweepConfig, store: ResultsStore | None = None) -> Plan:
    """Open the corpus (building the default one if needed), check it holds the sweep's batches, and plan the
    sweep against its fingerprint; under ``model.sizes: auto``, against what ``store`` holds of the sweep (without
    a store, as if it held nothing)."""
    corpus = load_corpus(config.data)  # a bad token file: ConfigError naming the key
    auto = store is not None and config.model.sizes == "auto"
    ledger, recorded = (store.read_runs(config.name), store.size_choices(config.name)) if auto else (None, None)
    plan = plan_sweep(config, corpus.vocab_size, corpus.fingerprint, ledger, recorded)
    commit = git_commit()  # the launching checkout's, recorded in each run's ledger row (as is the tokenizer's hash)
    provenance = {"code_commit": commit, "tokenizer_sha256": corpus.tokenizer_sha256}
    plan = replace(plan, runs=[replace(spec, **provenance) for spec in plan.runs])
    if plan.runs:
        largest = max(plan.runs, key=lambda spec: spec.batch_size)
        check_corpus_holds(corpus, config.data, largest.batch_size, largest.seq_len)
    for line in grouped("warning", plan.duplicates):
        log(line)
    repeats = repeats_data_warning(plan.runs, lambda spec: epochs_for(corpus, spec.tokens, spec.seq_len), corpus.description)
    if repeats:
        log(f"warning: {repeats}")
    return plan


def demand(spec: RunSpec) -> Resources:
    return Resources(cpus=spec.workers * spec.cpus, gpus=spec.workers * spec.gpus)


class Capacity:
    """The cluster's nodes (total CPUs and GPUs of each), re-read from Ray at most every ``max_age_seconds``:
    they change when nodes join or leave, rarely compared with how often the scheduling loop asks, and a node the
    autoscaler adds is used within that time (reading costs well under a millisecond)."""

    def __init__(self, read: Callable[[], list[Resources]], max_age_seconds: float = 2.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.read, self.max_age, self.clock, self.read_at, self.value = read, max_age_seconds, clock, -math.inf, []

    def nodes(self) -> list[Resources]:
        if self.clock.monotonic() - self.read_at > self.max_age:
            self.value, self.read_at = self.read(), self.clock.monotonic()
        return self.value

    def total(self) -> Resources:
        return sum(self.nodes(), Resources())


def run_sweep(config: SweepConfig, results_root: str, cluster: ClusterConfig | None = None, repair: bool = False,
              backend: RunBackend | None = None, clock: Clock = SYSTEM_CLOCK) -> SweepOutcome:  # fmt: skip
    """Train every planned run of ``config`` that the results store does not already hold as finished: on Ray
    (``cluster``: which one; embedded by default), or on ``backend`` under ``clock`` (``sweep.execute.backend``:
    a simulated cluster in tests).

    First, under the lock, damaged ledger and metrics files of the sweep are set aside (``sweep.results.quarantine``)
    and finished runs lacking their metrics are named; with ``repair`` those runs are trained again
    (``sweep.results.integrity``).

    Raises ``sweep.execute.lock.SweepLocked`` if another sweep holds the results directory, and
    ``sweep.execute.stop.SweepStopped`` after a clean stop on SIGINT or SIGTERM (runs in flight recorded as
    ``interrupted``, Ray shut down or disconnected, the lock released).
    """
    started = clock.monotonic()
    store = ResultsStore(results_root)
    plan = prepare_plan(config, store)
    store.require_root(bucket_only=True)
    outcome = SweepOutcome()
    connected_here = backend is None and not ray.is_initialized()
    runner = Runner(backend, clock, cluster, connected_here)
    with results_lock(store, sweep=config.name) as holder:
        while True:  # once, or under model.sizes auto once per stage: budgets wait for the smaller ones' results
            trained = run_stage(config, store, plan, holder, outcome, runner, repair)
            if not (trained and plan.pending):
                break
            grown = prepare_plan(config, store)
            if len(grown.runs) == len(plan.runs):
                break
            plan = grown
    for line in plan.pending:
        log(f"not planned yet: {line}")
    outcome.wall_seconds = clock.monotonic() - started
    return outcome


@dataclass
class Runner:
    """Where a sweep's stages train: ``backend`` under ``clock``, or Ray (connected at the first stage with work)."""

    backend: RunBackend | None
    clock: Clock
    cluster: ClusterConfig | None
    disconnect: bool
    """This driver connects Ray, so it shuts it down on a stop."""

    def open(self, tracking: TrackingConfig) -> RunBackend:
        if self.backend is not None:
            return self.backend
        connect(self.cluster or ClusterConfig())
        return RayBackend(functools.partial(submit, tracking=for_workers(tracking)))


def run_stage(config: SweepConfig, store: ResultsStore, plan: Plan, holder: dict, outcome: SweepOutcome,
              runner: Runner, repair: bool) -> bool:  # fmt: skip
    """Train the runs of ``plan`` that ``store`` lacks (counted into ``outcome``); whether any were trained."""
    for choice in plan.size_choices:
        if not choice.recorded:
            store.write_size_choice(config.name, choice.budget, list(choice.shapes), choice.reason)
            log(f"sizes of budget {choice.budget:.3g}: {choice.reason}")
    finished = check_results(store, plan.runs, repair) if plan.runs else {}
    todo = [s for s in plan.runs if s.run_id not in finished]
    new = [s for s in plan.runs if s.run_id not in outcome.seen]
    outcome.seen.update(s.run_id for s in new)
    outcome.planned += len(new)
    outcome.skipped_finished += sum(s.run_id in finished for s in new)
    log(f"sweep {config.name}: {len(plan.runs)} runs planned, {len(plan.runs) - len(todo)} already finished, {len(todo)} to run; results in {store.shown}")
    if todo and config.tracking.mlflow:
        log(f"runs tracked in MLflow at {redact_uri(config.tracking.mlflow.tracking_uri)}, experiment "
            f"{config.tracking.mlflow.experiment or config.name}")
    if todo:
        backend = runner.open(config.tracking)
        with stopping_on_signals(config.name, store, backend, runner.disconnect, runner.clock) as runs:
            run_planned(config, store, plan, todo, holder, outcome, runs, spent=finished, clock=runner.clock)
    return bool(todo)


def check_results(store: ResultsStore, specs: list[RunSpec], repair: bool) -> dict[str, float]:
    """Before scheduling, each in one line: set the sweep's damaged files aside, rebuild the ledger rows that
    complete metrics prove (``sweep.execute.recovery``), and deal with finished runs that lack their metrics.
    Returns the runs of the sweep that are finished (completed or diverged) afterwards, each with the FLOPs it
    actually trained (``sweep.execute.status.flops_spent``; the driver's progress starts from them): one read of
    the ledger and metrics serves all of it."""
    sweep, planned = specs[0].sweep, {s.run_id for s in specs}
    store.warn = lambda message: None  # each damaged file gets one of the lines below instead
    ledger, metrics = store.read_runs(sweep), store.read_metrics(sweep)
    for damaged, target in set_aside_damaged(store, sweep):
        log(f"set aside damaged file {store.shown_path(damaged.path)} ({damaged.reason}) as {store.shown_path(target)}")
    for damaged in store.damaged.values():
        if damaged.kind == "unreadable":
            log(f"warning: cannot read {store.shown_path(damaged.path)} ({damaged.reason}): skipped, left in place")
    store.warn = log
    rebuilt = rebuild_ledger_rows(store, specs, ledger, metrics)
    for row in rebuilt:
        log(f"run {row['run_id']}: {REBUILT_NOTE}; not trained again")
    done = ledger[ledger["status"].isin(FINISHED_STATUSES)]
    finished = dict(zip(done["run_id"], flops_spent(done).tolist())) | {row["run_id"]: row["flops_spent"] for row in rebuilt}
    for run_id in set(store.live_run_ids(sweep)) & set(finished):  # a worker killed between its commit and the drop
        store.clear_live_metrics(sweep, run_id)
    lacking = {run_id: why for run_id, why in runs_lacking_metrics(ledger, metrics).items() if run_id in planned}
    if repair:
        for run_id in prepare_repair(store, sweep, lacking):
            log(f"repair: run {run_id} lacks its metrics ({lacking[run_id]}): its ledger row is set aside and it trains again")
        finished = {run_id: flops for run_id, flops in finished.items() if run_id not in lacking}
    elif lacking:
        log(f"warning: {len(lacking)} finished run(s) lack their metrics ({', '.join(lacking)}); they are not trained "
            "again unless you rerun with --repair (fits use their ledger rows; the report leaves out their curves)")
    return finished


def run_planned(
    config: SweepConfig, store: ResultsStore, plan: Plan, todo: list[RunSpec], holder: dict, outcome: SweepOutcome,
    backend: RunBackend, spent: Mapping[str, float] | None = None, clock: Clock = SYSTEM_CLOCK,
) -> None:  # fmt: skip
    """The scheduling loop: start runs on ``backend`` as resources free up, collect results, and at least every
    ``backend.poll_seconds`` (by ``clock``) look again at what waits. ``spent``: the FLOPs the plan's finished runs
    actually trained (``check_results``), for the progress line.

    A run waits for one of two things. A readout whose trunk has not reached its branch point waits on the trunk
    (``sweep.execute.branches``), for as long as the trunk is queued or training; a run no node alive now can hold
    waits for the autoscaler, at most ``resources.placement_timeout_seconds``, then is recorded failed.

    Raises ``sweep.execute.placement.Unplaceable`` before starting anything if a run can never be placed.
    """
    r = config.resources
    todo, _ = planned_once(todo)  # one entry per run id, whoever the caller: a run is never in flight twice
    durations = planned_durations(r, plan.runs)
    cluster = backend.cluster
    capacity = Capacity(cluster.nodes, clock=clock)
    if not all(holds(capacity.nodes(), RunDemand.of(s)) for s in todo):
        refuse_unplaceable(todo, capacity.nodes(), cluster.autoscaler_or_unknown())
    queue = LptQueue(todo, duration=lambda s: durations[s.run_id], demand=demand)
    progress = Progress(store, config.name, plan.runs, todo, durations, holder, spent=spent, clock=clock,
                        earlier=earlier_speed(store, config.name, todo, durations))  # fmt: skip
    in_flight: dict[Hashable, RunSpec] = {}
    limit = r.max_concurrent_runs or len(todo)
    waits = PlacementWaits(r.placement_timeout_seconds, clock=clock.monotonic)
    trunk_waits = TrunkWaits(clock=clock.monotonic)
    wanted = CapacityRequest(cluster.request)
    branches = Branches(store, plan.runs, finished=set(spent or ()))
    try:
        while queue or in_flight:
            nodes = capacity.nodes()
            running = {s.run_id for s in in_flight.values()}
            branches.refresh(pending={s.run_id for s in queue} | running)
            for spec in list(queue):
                if (why := branches.orphaned(spec)) is not None:
                    queue.remove(spec)
                    _record_failed(spec, store, outcome, progress, why, clock)
            blocked = {s.run_id: s for s in queue if not branches.ready(s)}
            progress.waiting = trunk_waits.update(list(blocked.values()), lambda s: branches.waiting_on(s, running))
            unheld = [s for s in queue if s.run_id not in blocked and not holds(nodes, RunDemand.of(s))]
            for spec in waits.update(unheld, nodes):
                queue.remove(spec)
                _record_failed(spec, store, outcome, progress, unplaced_error(spec, r.placement_timeout_seconds, nodes), clock)
            startable = {s.run_id for s in queue if s.run_id not in blocked} - {s.run_id for s in unheld}
            free = capacity.total() - sum((demand(s) for s in in_flight.values()), Resources())
            while queue and len(in_flight) < limit:
                spec = queue.pop_fitting(free, eligible=lambda s: s.run_id in startable)
                if spec is None:
                    break
                in_flight[backend.start(spec, store.root, r.max_retries)] = spec
                free = free - demand(spec)
                progress.run_started(spec, branches.checkpoints.newest_step(spec.sweep, spec.run_id))
            wanted.update([*in_flight.values(), *(s for s in queue if s.run_id not in blocked)][:limit])
            for handle in backend.wait(list(in_flight), backend.poll_seconds):
                spec = in_flight.pop(handle)
                summary = collect_result(handle, spec, store, backend, clock)
                outcome.statuses[summary["status"]] = outcome.statuses.get(summary["status"], 0) + 1
                progress.run_finished(spec, summary)
                branches.run_finished(spec, summary["status"], summary.get("error"))
            progress.refresh()
    finally:
        wanted.clear()
        progress.close()


def earlier_speed(store: ResultsStore, sweep: str, todo: list[RunSpec], durations: Mapping[str, float]) -> tuple[float, float]:
    """(measured, planned) seconds of the plan's runs completed before this invocation (their ledger's
    ``wall_seconds`` against their planned duration): a driver restarted in the middle of a long sweep starts its
    time left from the speed measured so far, not from the assumed one."""
    waiting = {s.run_id for s in todo}
    ledger = store.read_runs(sweep)
    done = ledger[(ledger["status"] == "completed") & ~ledger["run_id"].isin(waiting) & ledger["run_id"].isin(set(durations))]
    done = done[done["wall_seconds"].fillna(0) > 0]
    if done.empty:
        return 0.0, 0.0
    return float(done["wall_seconds"].sum()), float(sum(durations[r] for r in done["run_id"]))


def _record_failed(spec: RunSpec, store: ResultsStore, outcome: SweepOutcome, progress: Progress, error: str,
                   clock: Clock) -> None:  # fmt: skip
    """A run that will not start in this invocation (it waited out ``resources.placement_timeout_seconds`` for a
    node, or its trunk ended before its branch point): recorded failed, never started."""
    now, failed = clock.now(), failed_outcome(store, spec, error)
    store.write_run(spec.sweep, ledger_row(spec, failed, now, now, node=None))
    outcome.statuses["failed"] = outcome.statuses.get("failed", 0) + 1
    progress.run_finished(spec, summarize(spec, failed))


def collect_result(handle: Hashable, spec: RunSpec, store: ResultsStore, backend: RunBackend,
                   clock: Clock = SYSTEM_CLOCK) -> dict:  # fmt: skip
    """The run's summary; a run whose worker or node died past its retries is recorded as failed here."""
    try:
        return backend.result(handle)
    except RunLost as error:
        now, failed = clock.now(), failed_outcome(store, spec, str(error))
        # Written by the driver, which does not know where the worker ran: the node stays null.
        store.write_run(spec.sweep, ledger_row(spec, failed, now, now, node=None))
        return summarize(spec, failed)
