"""``sweep tune``: per-size Optuna studies whose trials are runs trained by the orchestrator, crash-proof.

Each trial is a ``RunSpec`` (``sweep.tuning.study.trial_spec``) trained the way ``sweep run`` trains a run: a Ray
task (or a Ray Train DDP group) with the run's resources, checkpoints, claims, live metrics, a ledger row and a
metrics file, under the tuning root ``RESULTS/tune`` (``runs/sweep=STUDY/``: apart from the sweep's own runs, so
no fit of the sweep ever pools them; the rows carry ``study`` and ``trial``). The driver holds that root's lock
(``sweep.execute.lock``: one ``sweep tune`` per study root; ``sweep run`` on the same results is not blocked).

The loop is Optuna's ask-and-tell: while a size has fewer than ``tune.n_trials`` trials (finished, pruned or in
flight) and the cluster has room (free CPUs and GPUs, ``tune.max_concurrent_trials``), the driver asks that size's
study for a trial, stores the run id as the trial's ``run_id`` attribute *before* submitting it, and submits the
run. Sizes take turns. Every second it reads the live metrics of the trials in flight (``sweep.training.live``
writes one at each evaluation), reports each new evaluation to its trial (step k = the k-th evaluation) and asks
the pruner; a trial to prune gets a stop request (``ResultsStore.request_stop``), which its trainer reads at its
next evaluation and ends as ``pruned``, its partial curve kept. A finished run is told to its study: the final
eval loss, ``pruned``, or ``failed`` (``sweep.tuning.study.objective_value`` for diverged runs). A failed trial does
not count towards ``n_trials``, so a new one replaces it (at most ``n_trials`` failures per size, then the size
stops with a warning).

Crash-proof: the journal (``sweep.tuning.study.open_storage``) records every ask, attribute and tell as it happens.
A driver killed at any point (SIGKILL included) leaves trials ``RUNNING`` in it; the next ``sweep tune`` rebuilds
each such trial's run from its stored parameters, checks its id against the ``run_id`` attribute, and then tells
the study the run's recorded outcome if the ledger has one (a run that finished while no driver listened), or
trains it again, resuming from its checkpoint. A trial asked but never given its ``run_id`` never started: it is
told ``failed`` and replaced. So no trial is lost, none is trained twice, and finished trials are not retrained
(``tests/tuning/test_tune_crash.py``). SIGINT and SIGTERM stop as ``sweep run`` does (``sweep.execute.stop``).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import optuna
import pandas as pd
import ray

from sweep.config import ConfigError, SweepConfig
from sweep.execute.cluster import ClusterConfig, connect
from sweep.execute.lock import results_lock
from sweep.execute.backend import RayBackend, RunBackend, submit
from sweep.execute.orchestrate import Capacity, collect_result, demand
from sweep.execute.placement import CapacityRequest, RunDemand, holds, refuse_unplaceable
from sweep.execute.progress import log
from sweep.execute.schedule import Resources
from sweep.execute.stop import stopping_on_signals
from sweep.planning.plan import RunSpec
from sweep.results.storage import FINISHED_STATUSES, ResultsStore
from sweep.results.uri import child_root
from sweep.training.data import check_corpus_holds, load_corpus
from sweep.training.tracking import for_workers
from sweep.tuning.rule import RuleFit
from sweep.tuning.study import objective_value, open_storage, open_studies, searched, suggest, trial_spec, tuned_sizes

LIVE_POLL_SECONDS = 1.0
"""How often the live metrics of the trials in flight are read for the pruner."""


def tuning_root(results_root: str) -> str:
    """Where a sweep's tuning trials live: ``RESULTS/tune`` (a results root of its own)."""
    return child_root(results_root, "tune")


@dataclass
class TuneOutcome:
    study: str
    states: dict[str, int] = field(default_factory=dict)
    """Trials by Optuna state over every size (COMPLETE, PRUNED, FAIL, RUNNING)."""
    trained: int = 0
    """Trial runs this driver trained (resumed ones included)."""
    told_from_ledger: int = 0
    """Trials a previous driver left running whose runs had finished: told from their ledger rows, not retrained."""
    wall_seconds: float = 0.0


@dataclass
class _Size:
    index: int
    target: float
    n_params: int
    study: optuna.Study
    probe: RunSpec
    """A trial run of this size (its resources and horizon are every trial's)."""
    failures: int = 0


@dataclass
class _Trial:
    size: _Size
    trial: optuna.Trial
    spec: RunSpec
    reported: set[int] = field(default_factory=set)
    prune_asked: bool = False


class TuneLoop:
    """One driver's ask-and-tell loop over every size's study (module docstring)."""

    def __init__(self, config: SweepConfig, store: ResultsStore, sizes: list[_Size], vocab_size: int, fingerprint: str,
                 backend: RunBackend | None) -> None:  # fmt: skip
        """``backend``: where trials train (``sweep.execute.backend``; set before ``run`` when not known yet)."""
        self.config, self.store, self.sizes, self.vocab, self.fingerprint = config, store, sizes, vocab_size, fingerprint
        self.backend = backend
        self.in_flight: dict[ray.ObjectRef, _Trial] = {}
        self.waiting: list[_Trial] = []
        """Trials of an earlier driver to train again (resumed from their checkpoints), started first."""
        self.outcome = TuneOutcome(config.study)
        self.limit = config.tune.max_concurrent_trials or math.inf
        self.polled = 0.0

    # --- resuming what an earlier driver left ---------------------------------------------------------------
    def resume(self) -> None:
        """Tell or requeue every trial an earlier driver left ``RUNNING`` (module docstring)."""
        ledger = self.store.read_runs(self.config.study)
        rows = {row["run_id"]: row for row in ledger.to_dict("records")}
        for size in self.sizes:
            for frozen in size.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                trial = optuna.trial.Trial(size.study, frozen._trial_id)
                run_id = frozen.user_attrs.get("run_id")
                spec = self._spec_or_none(size, frozen)
                if run_id is None or spec is None or spec.run_id != run_id:
                    why = "asked but never started (its driver stopped)" if run_id is None else "its run no longer matches the sweep file"
                    trial.set_user_attr("error", why)
                    size.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    log(f"trial {frozen.number} of N={size.n_params:,}: {why}: replaced by a new trial")
                    continue
                row = rows.get(run_id)
                if row is not None and row["status"] in FINISHED_STATUSES:
                    self._tell(_Trial(size, trial, spec, set(frozen.intermediate_values)), _summary_of(row, spec))
                    self.outcome.told_from_ledger += 1
                    self.store.clear_live_metrics(spec.sweep, run_id)  # its worker was killed after its commit
                else:
                    self.waiting.append(_Trial(size, trial, spec, set(frozen.intermediate_values)))
        if self.waiting:
            log(f"resuming {len(self.waiting)} trial(s) an earlier driver left in flight (from their checkpoints)")

    def _spec_or_none(self, size: _Size, frozen: optuna.trial.FrozenTrial) -> RunSpec | None:
        if set(frozen.params) != searched(self.config):
            return None
        return trial_spec(self.config, size.target, dict(frozen.params), self.vocab, self.fingerprint, trial=frozen.number)

    # --- the loop -------------------------------------------------------------------------------------------
    def counted(self, size: _Size) -> int:
        """Trials of ``size`` that count towards ``tune.n_trials``: finished, pruned, in flight or waiting."""
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
        return len(size.study.get_trials(deepcopy=False, states=states))

    def wants_more(self, size: _Size) -> bool:
        return self.counted(size) < self.config.tune.n_trials and size.failures < self.config.tune.n_trials

    def has_work(self) -> bool:
        return bool(self.waiting or self.in_flight or any(self.wants_more(size) for size in self.sizes))

    def run(self) -> TuneOutcome:
        if self.has_work():
            self._loop()
        for size in self.sizes:
            for state, trials in _by_state(size.study).items():
                self.outcome.states[state] = self.outcome.states.get(state, 0) + trials
        return self.outcome

    def _loop(self) -> None:
        cluster = self.backend.cluster
        capacity = Capacity(cluster.nodes)
        probes = [size.probe for size in self.sizes]
        if not all(holds(capacity.nodes(), RunDemand.of(spec)) for spec in probes):
            refuse_unplaceable(probes, capacity.nodes(), cluster.autoscaler_or_unknown())
        wanted = CapacityRequest(cluster.request)
        turn = 0
        try:
            while self.has_work():
                free = capacity.total() - sum((demand(t.spec) for t in self.in_flight.values()), Resources())
                turn = self._start_what_fits(free, turn)
                wanted.update([t.spec for t in self.in_flight.values()] + [s.probe for s in self.sizes if self.wants_more(s)])
                self._report_live()
                for ref in self.backend.wait(list(self.in_flight), self.backend.poll_seconds):
                    trial = self.in_flight.pop(ref)
                    self._tell(trial, collect_result(ref, trial.spec, self.store, self.backend))
        finally:
            wanted.clear()

    def _start_what_fits(self, free: Resources, turn: int) -> int:
        """Start resumed trials, then new ones (sizes taking turns), while they fit ``free``; the next turn."""
        while self.waiting and len(self.in_flight) < self.limit and demand(self.waiting[0].spec).fits_in(free):
            trial = self.waiting.pop(0)
            free = free - demand(trial.spec)
            self._submit(trial)
        while len(self.in_flight) < self.limit and not self.waiting:
            candidates = [self.sizes[(turn + k) % len(self.sizes)] for k in range(len(self.sizes))]
            size = next((s for s in candidates if self.wants_more(s) and demand(s.probe).fits_in(free)), None)
            if size is None:
                break
            turn = (size.index + 1) % len(self.sizes)
            trial = self._ask(size)
            if trial is not None:
                free = free - demand(trial.spec)
                self._submit(trial)
        return turn

    def _ask(self, size: _Size) -> _Trial | None:
        """A new trial of ``size`` with its run id stored; None if that run already finished (told at once)."""
        trial = size.study.ask()
        spec = trial_spec(self.config, size.target, suggest(trial, self.config), self.vocab, self.fingerprint, trial=trial.number)
        trial.set_user_attr("run_id", spec.run_id)
        row = self.store.read_run(spec.sweep, spec.run_id)
        if row is not None and row["status"] in FINISHED_STATUSES:  # the same values as an earlier trial: its run
            self._tell(_Trial(size, trial, spec), _summary_of(row, spec))
            return None
        return _Trial(size, trial, spec)

    def _submit(self, trial: _Trial) -> None:
        self.in_flight[self.backend.start(trial.spec, self.store.root, self.config.resources.max_retries)] = trial
        self.outcome.trained += 1
        params = ", ".join(f"{k} {v:.3g}" for k, v in trial.trial.params.items())
        log(f"trial {trial.trial.number} of N={trial.size.n_params:,} started: {params} (run {trial.spec.run_id})")

    def _report_live(self) -> None:
        """Report the new evaluations of the trials in flight and request a stop of those the pruner prunes."""
        if not self.in_flight or time.monotonic() - self.polled < LIVE_POLL_SECONDS:
            return
        self.polled = time.monotonic()
        live = self.store.read_live_metrics(self.config.study)
        by_run = {run_id: rows for run_id, rows in live.groupby("run_id")} if not live.empty else {}
        for trial in self.in_flight.values():
            rows = by_run.get(trial.spec.run_id)
            if rows is not None and not trial.prune_asked and self._report(trial, rows) and trial.trial.should_prune():
                k = max(trial.reported)
                reason = f"pruned by the {self.config.tune.pruner} pruner at evaluation {k} of {len(trial.spec.eval_steps)}"
                self.store.request_stop(trial.spec.sweep, trial.spec.run_id, reason)
                trial.prune_asked = True

    def _report(self, trial: _Trial, rows) -> bool:
        """Report ``rows``' evaluations not yet reported (before the last: that one is the trial's value); True if
        any was new."""
        evaluations = {step: k + 1 for k, step in enumerate(trial.spec.eval_steps)}
        new = False
        for step, loss in zip(rows["step"], rows["eval_loss"]):
            k = evaluations.get(int(step))
            if k is None or k in trial.reported or loss is None or not math.isfinite(loss) or k == len(evaluations):
                continue
            trial.trial.report(float(loss), k)
            trial.reported.add(k)
            new = True
        return new

    def _tell(self, trial: _Trial, summary: dict) -> None:
        """Tell the trial's study how its run ended (module docstring), its evaluations reported first."""
        metrics = self.store.read_run_metrics(trial.spec.sweep, trial.spec.run_id)
        if not metrics.empty:
            self._report(trial, metrics)
        status, size = summary["status"], trial.size
        trial.trial.set_user_attr("status", status)
        value = objective_value(status, summary.get("final_eval_loss"), self.vocab)
        if status == "pruned":
            size.study.tell(trial.trial, state=optuna.trial.TrialState.PRUNED)
        elif value is None:
            trial.trial.set_user_attr("error", (summary.get("error") or "")[:500])
            size.study.tell(trial.trial, state=optuna.trial.TrialState.FAIL)
            size.failures += 1
        else:
            size.study.tell(trial.trial, value)
        done = self.counted(size) - sum(1 for t in self.in_flight.values() if t.size is size) - sum(1 for t in self.waiting if t.size is size)
        loss = summary.get("final_eval_loss")
        detail = f"eval loss {loss:.4f}" if status == "completed" and loss is not None else (summary.get("error") or "").strip().split("\n")[0]
        log(f"trial {trial.trial.number} of N={size.n_params:,} {status}: lr {trial.spec.lr:.3g}, {detail} "
            f"[{done}/{self.config.tune.n_trials} of this size]")  # fmt: skip


def _summary_of(row: dict, spec: RunSpec) -> dict:
    return {"run_id": spec.run_id, "status": row["status"], "final_eval_loss": row["final_eval_loss"], "error": row["error"],
            "wall_seconds": row["wall_seconds"]}  # fmt: skip


def _by_state(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def prepare_sizes(config: SweepConfig, vocab_size: int, fingerprint: str, studies: list[optuna.Study] | None = None) -> list[_Size]:
    """The sizes to tune with a probe trial run each (its horizon checked now: ``ConfigError`` before anything
    trains), and their studies when given."""
    if config.tune is None:
        raise ConfigError("tune: the sweep file has no tune section (see sweep/configs/tune-demo.yaml)")
    sizes = []
    for index, target in enumerate(tuned_sizes(config)):
        probe = trial_spec(config, target, {"lr": config.tune.space.lr.low}, vocab_size, fingerprint)
        sizes.append(_Size(index, target, probe.n_params_nonembedding, studies[index] if studies else None, probe))
    if len({size.n_params for size in sizes}) < len(sizes):
        raise ConfigError("tune.sizes: two sizes map to the same model shape (the ladder snaps them); give distinct sizes")
    return sizes


def run_tune(config: SweepConfig, results_root: str, cluster: ClusterConfig | None = None, n_boot: int = 1000) -> TuneResult:
    """Run ``config``'s tuning studies to ``tune.n_trials`` trials per size (module docstring), then fit the rules
    and write the rule table and the report (``finish``). Raises ``SweepLocked`` if another ``sweep tune`` holds
    the tuning root and ``SweepStopped`` after a clean stop on SIGINT or SIGTERM. Ray is started (or joined) only
    when there is a trial to train."""
    started = time.perf_counter()
    corpus = load_corpus(config.data)
    sizes = prepare_sizes(config, corpus.vocab_size, corpus.fingerprint)
    largest = max((size.probe for size in sizes), key=lambda spec: spec.batch_size)
    check_corpus_holds(corpus, config.data, largest.batch_size, largest.seq_len)
    store = ResultsStore(tuning_root(results_root))
    store.require_root(bucket_only=True)
    with results_lock(store, sweep=config.study):
        studies = open_studies(config, open_storage(config, store), [size.n_params for size in sizes])
        for size, study in zip(sizes, studies):
            size.study = study
        loop = TuneLoop(config, store, sizes, corpus.vocab_size, corpus.fingerprint, backend=None)
        loop.resume()
        log(f"tuning {config.study}: {len(sizes)} size(s) x {config.tune.n_trials} trials, {config.tune.sampler} sampler, "
            f"{config.tune.pruner} pruner; trials in {store.shown}")  # fmt: skip
        if loop.has_work():
            connected_here = not ray.is_initialized()
            connect(cluster or ClusterConfig())
            backend = RayBackend(functools.partial(submit, tracking=for_workers(config.tracking)))
            with stopping_on_signals(config.study, store, backend, disconnect=connected_here) as runs:
                loop.backend = runs
                outcome = loop.run()
        else:
            outcome = loop.run()
        outcome.wall_seconds = time.perf_counter() - started
        return finish(config, store, studies, [size.n_params for size in sizes], outcome, n_boot)


@dataclass
class TuneResult:
    """A study after ``sweep tune``: what this driver did, every trial, the fitted rules and where they were written."""

    outcome: TuneOutcome
    table: pd.DataFrame
    fit: RuleFit
    rule_file: str
    report_file: str


def finish(config: SweepConfig, store: ResultsStore, studies: list[optuna.Study], sizes: list[int], outcome: TuneOutcome,
           n_boot: int) -> TuneResult:  # fmt: skip
    """Fit the rules to the study's trials, write the rule table and the report."""
    from sweep.tuning.report import render
    from sweep.tuning.summary import fit_table, trial_table, write_rule

    table = trial_table(studies, sizes, store.read_runs(config.study))
    fit = fit_table(table, n_boot=n_boot, seed=config.tune.seed)
    horizon = config.tune.horizon.model_dump(exclude_none=True)
    rule_file = write_rule(store, config.study, fit, horizon=horizon, sampler=config.tune.sampler, pruner=config.tune.pruner,
                           trials=outcome.states, sweep=config.name)  # fmt: skip
    report_file = f"{store.base}/report/{config.study}.html"
    store.write_atomic(report_file, render(config.study, table, fit, studies, rule_file).encode("utf-8"))
    return TuneResult(outcome, table, fit, rule_file, report_file)
