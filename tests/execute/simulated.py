"""A simulated clock and cluster for the driver (``sweep.execute.backend``): the real run loop, store and plan, with
each run's training replaced by simulated time, so runs of hours and sweeps of days take seconds.

``SimClock`` moves only when the driver waits. ``SimCluster`` is a ``RunBackend``: a started run trains its steps at
``seconds_per_step(spec)`` simulated seconds each, from its newest simulated checkpoint; a trunk writes each
branch point (a real one, through ``CheckpointStore``) and a live metrics row when it reaches its step; a finished
run writes its ledger row and metrics as a worker does, its loss from a Chinchilla-style law. Nodes may join after
a delay once the driver asks the autoscaler for more than the cluster holds; runs may be told to die at a step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

from sweep.execute.backend import RunLost
from sweep.execute.placement import AutoscalerView, ClusterAccess
from sweep.execute.schedule import Resources
from sweep.config import ResourcesConfig
from sweep.planning.plan import RunSpec
from sweep.planning.throughput import planned_durations
from sweep.results.storage import ResultsStore
from sweep.training.checkpoint import CheckpointStore
from sweep.training.train import RunOutcome
from sweep.training.worker import ledger_row


class SimClock:
    """Simulated seconds since ``origin``; the backend's waits move it."""

    def __init__(self, origin: datetime = datetime(2026, 1, 5, tzinfo=timezone.utc)) -> None:
        self.t, self.origin = 0.0, origin

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=self.t)


def chinchilla_loss(n_params: float, tokens: float) -> float:
    """Hoffmann et al.'s fitted law (E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28)."""
    return 1.69 + 406.4 / n_params**0.34 + 410.7 / tokens**0.28


@dataclass
class SimRun:
    spec: RunSpec
    handle: int
    started: float
    """Simulated time its training began."""
    from_step: int
    """The step it resumed from."""
    seconds_per_step: float
    origin: int = 0
    """Its first step: 0, or a readout's branch step."""

    def time_at(self, step: int) -> float:
        return self.started + (step - self.from_step) * self.seconds_per_step

    @property
    def end(self) -> float:
        return self.time_at(self.spec.steps)


@dataclass
class SimCluster:
    """A ``RunBackend`` on simulated time (module docstring)."""

    clock: SimClock
    root: str
    nodes_now: list[Resources]
    seconds_per_step: Callable[[RunSpec], float]
    poll_seconds: float = 10.0
    """The driver's poll in simulated seconds (Ray's is 1 s; coarser here keeps week-long sweeps quick)."""
    startup_seconds: float = 30.0
    """Each run's start-up before its first step."""
    node_type: Resources | None = None
    """What the autoscaler adds (None: the cluster never grows)."""
    join_seconds: float = 900.0
    """How long a node the autoscaler adds takes to join."""
    max_nodes: int = 16
    die_at: dict[str, int] = field(default_factory=dict)
    """Runs whose worker dies when they reach this step (once)."""
    checkpoint_every_steps: int = 100
    kill_at: float | None = None
    """Simulated time at which the driver is killed (``wait`` raises ``DriverKilled``, once)."""
    started: list[str] = field(default_factory=list)
    """Every start, in order (a run started twice appears twice)."""
    requests: list[list[dict]] = field(default_factory=list)
    joins: list[float] = field(default_factory=list)
    """Simulated times at which nodes join."""
    running: dict[int, SimRun] = field(default_factory=dict)
    ended: dict[int, dict | str] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.store = ResultsStore(self.root)
        self.checkpoints = CheckpointStore(self.store)
        """Rolling checkpoints (written when a run stops: the newest it would have) and branch points, real files."""
        self.written: dict[str, set[int]] = {}
        scaler = AutoscalerView(self.node_type is not None, ((self.node_type, self.max_nodes),) if self.node_type else None, "simulated")
        self.cluster = ClusterAccess(nodes=self.nodes, autoscaler=lambda: scaler, request=self.request)

    # --- the cluster ----------------------------------------------------------------------------------------
    def nodes(self) -> list[Resources]:
        joined = sum(1 for t in self.joins if t <= self.clock.t)
        return [*self.nodes_now, *([self.node_type] * joined if self.node_type else [])]

    def request(self, bundles: list[dict]) -> None:
        """The autoscaler: adds nodes of ``node_type`` (joining ``join_seconds`` later) until the bundles fit."""
        self.requests.append(bundles)
        if self.node_type is None or not bundles:
            return
        gpus, cpus = sum(b.get("GPU", 0) for b in bundles), sum(b.get("CPU", 0) for b in bundles)
        have = sum(self.nodes_now, Resources()) + Resources(self.node_type.cpus * len(self.joins), self.node_type.gpus * len(self.joins))
        while (gpus > have.gpus + 1e-9 or cpus > have.cpus + 1e-9) and len(self.joins) < self.max_nodes:
            self.joins.append(self.clock.t + self.join_seconds)
            have = have + self.node_type

    # --- runs -----------------------------------------------------------------------------------------------
    def start(self, spec: RunSpec, results_root: str, max_retries: int) -> int:
        handle = next(self._ids)
        origin = spec.branch_step if spec.parent_run_id is not None else 0
        from_step = max(self.checkpoints.newest_step(spec.sweep, spec.run_id), origin)
        run = SimRun(spec, handle, self.clock.t + self.startup_seconds, from_step, self.seconds_per_step(spec), origin)
        self.running[handle] = run
        self.started.append(spec.run_id)
        self.store.write_live_metrics(spec.sweep, spec.run_id, [self._metrics_row(spec, from_step + 1, run)])  # its tokens/s
        return handle

    def _events(self) -> list[tuple[float, int, str, int]]:
        """(time, handle, kind, step) of what the running runs do next: branch points, death, the end."""
        events = []
        for handle, run in self.running.items():
            for step in run.spec.branch_steps if run.spec.schedule.endswith("trunk") else ():
                if step > run.from_step and step not in self.written.get(run.spec.run_id, set()):
                    events.append((run.time_at(step), handle, "branch", step))
            death = self.die_at.get(run.spec.run_id)
            if death is not None and run.from_step < death <= run.spec.steps:
                events.append((run.time_at(death), handle, "die", death))
            events.append((run.end, handle, "end", run.spec.steps))
        return sorted(events)

    def wait(self, handles: Sequence[int], timeout_seconds: float) -> list[int]:
        deadline = self.clock.t + timeout_seconds
        killed = self.kill_at is not None and self.kill_at <= deadline
        if killed:
            deadline = self.kill_at
        ready = [h for h in handles if h in self.ended]
        while not ready:
            events = [e for e in self._events() if e[0] <= deadline]
            if not events:
                break
            when, handle, kind, step = events[0]
            self.clock.t = max(self.clock.t, when)
            run = self.running[handle]
            if kind == "branch":
                self._branch_point(run, step)
            elif kind == "die":
                del self.die_at[run.spec.run_id]
                self._stop(run, step)
                self.ended[handle] = f"RayTaskError: worker of run {run.spec.run_id} died at step {step}"
            else:
                self._finish(run)
            ready = [h for h in handles if h in self.ended]
        if not ready:
            self.clock.t = max(self.clock.t, deadline)
        if killed and not ready:
            self.kill_at = None
            self.shutdown()
            raise DriverKilled(f"driver killed at {self.clock.t:.0f} s")
        return ready[:1]

    def _branch_point(self, run: SimRun, step: int) -> None:
        spec = run.spec
        self.checkpoints.save_branch_point(spec.sweep, spec.run_id, step, {"step": step})
        self.written.setdefault(spec.run_id, set()).add(step)
        self.store.write_live_metrics(spec.sweep, spec.run_id, [self._metrics_row(spec, step, run)])

    def _metrics_row(self, spec: RunSpec, step: int, run: SimRun) -> dict:
        tokens = step * spec.batch_tokens
        loss = chinchilla_loss(spec.n_params_nonembedding, max(tokens, 1))
        return {"step": step, "tokens": tokens, "flops": float(tokens * spec.flops_per_token), "train_loss": loss,
                "eval_loss": loss, "lr": spec.lr, "grad_norm": 1.0, "tokens_per_second": spec.batch_tokens / run.seconds_per_step if run.seconds_per_step > 0 else None,
                "wall_seconds": self.clock.t - run.started}  # fmt: skip

    def _stop(self, run: SimRun, step: int) -> None:
        """The run stops at ``step``: its newest checkpoint stays, as training would leave it."""
        done = step - step % self.checkpoint_every_steps
        if done > self.checkpoints.newest_step(run.spec.sweep, run.spec.run_id):
            self.checkpoints.save(run.spec.sweep, run.spec.run_id, done, {"step": done})
        del self.running[run.handle]

    def _finish(self, run: SimRun) -> None:
        spec = run.spec
        loss = chinchilla_loss(spec.n_params_nonembedding, spec.tokens)
        wall = self.startup_seconds + (spec.steps - run.origin) * run.seconds_per_step  # all its steps, as a resumed run counts them
        outcome = RunOutcome(status="completed", final_train_loss=loss, final_eval_loss=loss, device="sim", wall_seconds=wall,
                             steps_done=spec.steps, resumed_from_step=run.from_step)  # fmt: skip
        started_at = self.clock.origin + timedelta(seconds=run.started - self.startup_seconds)
        self.store.write_metrics(spec.sweep, spec.run_id, [self._metrics_row(spec, spec.steps, run)])
        self.store.write_run(spec.sweep, ledger_row(spec, outcome, started_at, self.clock.now(), node="sim"))
        self.store.clear_live_metrics(spec.sweep, spec.run_id)
        del self.running[run.handle]
        self.checkpoints.clear(spec.sweep, spec.run_id)
        self.ended[run.handle] = {"run_id": spec.run_id, "status": "completed", "final_eval_loss": loss,
                                  "wall_seconds": wall, "error": None, "flops_spent": spec.training_flops}  # fmt: skip

    def result(self, handle: int) -> dict:
        ended = self.ended.pop(handle)
        if isinstance(ended, str):
            raise RunLost(ended)
        return ended

    def cancel(self, handles: Sequence[int], wait_seconds: float) -> None:
        for handle in handles:
            run = self.running.get(handle)
            if run is not None:
                step = max(run.from_step, int((self.clock.t - run.started) / run.seconds_per_step) + run.from_step)
                self._stop(run, min(step, run.spec.steps))

    def shutdown(self) -> None:
        """A driver that dies takes embedded Ray with it: every run in flight stops at its newest checkpoint."""
        self.cancel(list(self.running), 0.0)

    def busy_gpus(self) -> float:
        return sum(run.spec.workers * run.spec.gpus for run in self.running.values())


def paced_as_planned(resources: ResourcesConfig, runs: list[RunSpec], hours_for_longest: float) -> Callable[[RunSpec], float]:
    """Seconds per step of each run: its planned duration (``sweep.planning.throughput.planned_durations``) scaled
    so that the longest run takes ``hours_for_longest`` hours, as on a cluster some constant factor slower or faster
    than the plan assumed (which the driver's time left must learn)."""
    durations = planned_durations(resources, runs)
    scale = hours_for_longest * 3600 / max(durations.values())

    def seconds_per_step(spec: RunSpec) -> float:  # runs planned later (sizes: auto) are timed when they start
        planned = durations.get(spec.run_id) or planned_durations(resources, [spec])[spec.run_id]
        return scale * planned / max(1, spec.training_steps)

    return seconds_per_step


class DriverKilled(BaseException):
    """The simulated driver dies here (a SIGKILL: nothing of it runs on; embedded Ray and its runs die with it)."""
