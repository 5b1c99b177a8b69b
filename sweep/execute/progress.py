"""Sweep progress: what the driver tells people while it runs, and the status file ``sweep status`` reads.

On a terminal, one live line (runs done of planned, runs in flight, FLOPs done of planned, time left: the
planned durations still to go, scaled by the measured speed against the plan, ``speed_vs_plan``); elsewhere (cron,
CI, logs), one plain line per run start and finish, with its FLOPs and loss, and the live line's text every
``LINE_EVERY_SECONDS``. FLOPs done are what runs actually trained, as ``sweep status`` counts them: a diverged or failed
run adds the ``flops_spent`` of its worker's summary (the steps up to its divergence, or to its newest
checkpoint), and runs finished before this invocation count their ledger's ``flops_spent`` (``spent``), not their
planned FLOPs. The finish line of a run that did not complete says what it spent.

The driver also keeps ``RESULTS/progress/sweep=NAME.json`` current (written atomically): the planned runs with
their FLOPs, the runs in flight, the time left and the measured speed against the plan, and the driver's pid,
host and start time (nothing else of the lock's holder
record, and never the command line, which may carry credentials).
"""

from __future__ import annotations

import heapq
import json
import math
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from sweep.execute.backend import SYSTEM_CLOCK, Clock
from sweep.results.storage import FINISHED_STATUSES, ResultsStore

if TYPE_CHECKING:  # the plan imports torch: not needed at run time here, nor by ``sweep --help``
    from sweep.planning.plan import RunSpec

STATUS_EVERY_SECONDS = 60.0
"""The status file is rewritten at least this often while the driver runs (at most once a second)."""
LINE_EVERY_SECONDS = 600.0
"""Off a terminal, the progress line is printed this often between runs' start and finish lines."""
DRIVER_FIELDS = ("pid", "host", "started_at")
"""What the status file records of the driver: enough for ``sweep status`` to match it with the lock's holder."""


def log(message: str, stream: TextIO | None = None) -> None:
    print(f"[sweep {datetime.now().strftime('%H:%M:%S')}] {message}", file=stream or sys.stderr, flush=True)


def describe(spec: RunSpec) -> str:
    return f"{spec.run_id} N={spec.n_params_nonembedding:,} D={spec.tokens:,} C={spec.flops:.3g}"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def status_path(store: ResultsStore, sweep: str) -> str:
    return f"{store.base}/progress/sweep={sweep}.json"


class Progress:
    """Tracks one sweep invocation's runs; reports to a stream and the status file."""

    def __init__(self, store: ResultsStore, sweep: str, planned: list[RunSpec], todo: list[RunSpec],
                 durations: dict[str, float], driver: dict, stream: TextIO | None = None,
                 spent: Mapping[str, float] | None = None, clock: Clock = SYSTEM_CLOCK,
                 earlier: tuple[float, float] = (0.0, 0.0)) -> None:  # fmt: skip
        """``spent``: FLOPs the planned runs not in ``todo`` (finished earlier) actually trained, by run id, from
        their ledger rows; a run it lacks counts its planned FLOPs. ``earlier``: (measured, planned) seconds of
        the runs completed before this invocation, the start of ``speed_vs_plan``."""
        self.store, self.sweep, self.clock = store, sweep, clock
        self.driver = {key: driver[key] for key in DRIVER_FIELDS if key in driver}
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.planned = {s.run_id: s.training_flops for s in planned}
        self.tokens = {s.run_id: s.training_steps * s.batch_tokens for s in planned}
        """Tokens each run trains (a wsd readout: its decay only), for ``live_speed``."""
        self.todo = {s.run_id for s in todo}
        self.durations = durations
        spent = spent or {}
        self.flops_done = sum(spent.get(run_id, flops) for run_id, flops in self.planned.items() if run_id not in self.todo)
        self.in_flight: dict[str, float] = {}
        self.measured_seconds, self.planned_seconds = earlier  # of the runs completed so far
        self.done = 0
        self.waiting: dict[str, str] = {}
        """Readouts waiting on their trunks, and on what (``sweep.execute.placement.TrunkWaits``)."""
        self.started = clock.monotonic()
        self.slots = 0
        """The most runs in flight at once so far."""
        self.share_left: dict[str, float] = {}
        """Of each run in flight, the share of its steps this invocation trains (less than 1: resumed)."""
        self._live_speed: float | None = None
        self._status_written, self._status_stale, self._line_at = -math.inf, False, self.started
        self._write_status(force=True)

    def run_started(self, spec: RunSpec, from_step: int = 0) -> None:
        """``from_step``: the checkpoint the run resumes from (its time left counts only the steps after it)."""
        self.in_flight[spec.run_id] = self.clock.monotonic()
        origin = spec.branch_step if spec.parent_run_id is not None else 0
        self.share_left[spec.run_id] = 1.0 - max(0, from_step - origin) / max(1, spec.steps - origin)
        self.slots = max(self.slots, len(self.in_flight))
        if not self.live:
            log(f"start {describe(spec)} ({spec.workers} worker{'s' if spec.workers > 1 else ''})", self.stream)
        self._write_status()
        self.refresh()

    def run_finished(self, spec: RunSpec, summary: dict) -> None:
        self.in_flight.pop(spec.run_id, None)
        self.todo.discard(spec.run_id)
        self.done += 1
        status = summary["status"]
        wall = summary.get("wall_seconds") or 0.0
        if status == "completed" and wall > 0 and self.durations.get(spec.run_id, 0.0) > 0:
            self.measured_seconds += wall
            self.planned_seconds += self.durations[spec.run_id]
        spent = summary.get("flops_spent")  # what the run trained (a diverged run: up to its divergence)
        if spent is None:  # a summary without it (a worker of an older version): its plan when finished, else nothing
            spent = spec.training_flops if status in FINISHED_STATUSES else 0.0
        self.flops_done += spent
        loss = summary.get("final_eval_loss")
        error = (summary.get("error") or "").strip().splitlines()
        detail = f"eval_loss={loss:.4f}" if loss is not None else (error[0] if error else "")
        if status != "completed":
            detail = f"{detail}; spent {spent:.3g} FLOPs".lstrip("; ")
        self._clear_line()
        log(f"[{self.done}/{self.done + len(self.todo)}] {status} {describe(spec)} {detail} ({summary.get('wall_seconds') or 0:.1f} s)", self.stream)
        self._write_status()
        self.refresh()

    @property
    def speed_vs_plan(self) -> float | None:
        """Measured over planned run time (None before anything was measured): the planned durations
        (``sweep.planning.throughput``, from assumed FLOP/s) scaled by it are the estimate of what is left, so the
        ETA learns the cluster's real speed. From the runs completed so far (this invocation's and, for a
        restarted driver, its predecessors', ``earlier``); before the first completes (on GPUs, hours: the longest
        runs start first), from the tokens/s the runs in flight measure (``live_speed``)."""
        return self.measured_seconds / self.planned_seconds if self.planned_seconds > 0 else self._live_speed

    def live_speed(self) -> float | None:
        """What the runs in flight take against their plan, from the tokens/s of their latest live metrics row:
        their training tokens over that rate, summed, over their planned durations summed (None: none measured)."""
        if not self.in_flight:
            return None
        live = self.store.read_live_metrics(self.sweep)
        projected = planned = 0.0
        for run_id, rows in live[live["run_id"].isin(set(self.in_flight))].groupby("run_id"):
            rates = rows["tokens_per_second"].dropna()
            rate = float(rates.iloc[-1]) if len(rates) else 0.0
            if rate > 0 and self.durations.get(run_id, 0.0) > 0 and self.tokens.get(run_id):
                projected += self.tokens[run_id] / rate
                planned += self.durations[run_id]
        return projected / planned if planned > 0 else None

    def seconds_left(self) -> float:
        """When the last run should end: the runs in flight end as their scaled durations say (planned duration
        times ``speed_vs_plan`` once measured, less the steps a resumed run had done), then the runs waiting start
        longest first, each on the first slot free, as the driver starts them (LPT). The slots are the most runs
        this driver has had in flight at once (the count of this moment dips between one run's end and the next
        one's start)."""
        now, speed = self.clock.monotonic(), self.speed_vs_plan or 1.0
        free = sorted(max(0.0, self.durations[r] * speed * self.share_left.get(r, 1.0) - (now - t)) for r, t in self.in_flight.items())
        free += [0.0] * max(0, max(1, self.slots) - len(free))
        heapq.heapify(free)
        for duration in sorted((self.durations[r] * speed for r in self.todo if r not in self.in_flight), reverse=True):
            heapq.heapreplace(free, free[0] + duration)
        return max(free)

    def refresh(self) -> None:
        """Write a pending status update (and at least every ``STATUS_EVERY_SECONDS``, so ``sweep status`` shows
        a current time left while runs train for hours); redraw the live line (terminal), or print it as a plain
        line every ``LINE_EVERY_SECONDS`` (cron, logs: a sweep of hours-long runs is not silent between them)."""
        now = self.clock.monotonic()
        if now - self._status_written >= STATUS_EVERY_SECONDS:
            if self.planned_seconds <= 0:  # nothing completed yet: measure the runs in flight, once a minute
                self._live_speed = self.live_speed()
            self._write_status()
        elif self._status_stale:
            self._write_status()
        if self.live:
            self.stream.write("\r\033[K" + self.line())
            self.stream.flush()
        elif now - self._line_at >= LINE_EVERY_SECONDS:
            self._line_at = now
            log(self.line(), self.stream)

    def line(self) -> str:
        """Runs done and running, FLOPs done of planned, elapsed and time left, in one line."""
        total = sum(self.planned.values())
        waiting = f", {len(self.waiting)} waiting on trunks" if self.waiting else ""
        return (
            f"runs {len(self.planned) - len(self.todo)}/{len(self.planned)} done, {len(self.in_flight)} running{waiting} | "
            f"FLOPs {self.flops_done:.3g}/{total:.3g} ({self.flops_done / total if total else 0:.0%}) | "
            f"elapsed {_clock(self.clock.monotonic() - self.started)}, left ~{_clock(self.seconds_left())}"
            + (f" (runs take {self.speed_vs_plan:.2g}x their planned time)" if self.speed_vs_plan else "")
        )

    def _clear_line(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")

    def close(self) -> None:
        self._clear_line()
        self.in_flight.clear()
        self._write_status(force=True)

    def _write_status(self, force: bool = False) -> None:
        """Rewrite the status file, at most once a second (a sweep of many short runs would otherwise spend its
        time here); ``refresh`` catches up on what was skipped."""
        now = self.clock.monotonic()
        if not force and now - self._status_written < 1.0:
            self._status_stale = True
            return
        self._status_written, self._status_stale = now, False
        status = {
            "sweep": self.sweep,
            "planned": [{"run_id": r, "flops": f} for r, f in self.planned.items()],
            "in_flight": sorted(self.in_flight),
            "waiting": dict(sorted(self.waiting.items())),
            "seconds_left": round(self.seconds_left(), 1) if self.todo else 0.0,
            "speed_vs_plan": self.speed_vs_plan,
            "driver": self.driver,
            "updated_at": self.clock.now().isoformat(timespec="seconds"),
        }
        self.store.write_atomic(status_path(self.store, self.sweep), json.dumps(status).encode())


def read_status(store: ResultsStore, sweep: str) -> dict | None:
    """The driver's status file of ``sweep``, or None when there is none. One that is not what ``Progress`` writes
    (bad JSON, a planned entry without a run id or finite FLOPs) is named in one line through ``store.warn`` and
    ignored: ``sweep status`` then reports the ledger alone."""
    path = status_path(store, sweep)
    try:
        with store.fs.open_input_stream(path) as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        store.warn(f"cannot read {store.shown_path(path)}: {str(error).splitlines()[0]}; ignored")
        return None
    try:
        status = json.loads(data)
        planned = [{"run_id": str(p["run_id"]), "flops": float(p["flops"])} for p in status["planned"]]
        in_flight = [str(r) for r in status["in_flight"]]
        waiting = {str(run_id): str(why) for run_id, why in (status.get("waiting") or {}).items()}  # absent from older files
        driver = status.get("driver") or {}
        if not all(math.isfinite(p["flops"]) and p["flops"] >= 0 for p in planned) or not isinstance(driver, dict):
            raise ValueError("planned FLOPs must be finite")
        for key in ("seconds_left", "speed_vs_plan"):  # absent from older files; a number or null
            value = status.get(key)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be a finite number")
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        reason = "not JSON" if isinstance(error, json.JSONDecodeError) else f"not a status file ({type(error).__name__}: {error})"
        store.warn(f"ignored damaged status file {store.shown_path(path)}: {reason}")
        return None
    return {**status, "planned": planned, "in_flight": in_flight, "waiting": waiting, "driver": driver}
