"""Sweep progress: what the driver tells people while it runs, and the status file ``sweep status`` reads.

On a terminal, one live line (runs done of planned, runs in flight, FLOPs done of planned, time left: the
planned durations still to go, scaled by the measured speed of the runs completed so far, ``speed_vs_plan``); elsewhere (cron, CI, logs), one plain line per run start and finish, with its
FLOPs and loss. FLOPs done are what runs actually trained, as ``sweep status`` counts them: a diverged or failed
run adds the ``flops_spent`` of its worker's summary (the steps up to its divergence, or to its newest
checkpoint), and runs finished before this invocation count their ledger's ``flops_spent`` (``spent``), not their
planned FLOPs. The finish line of a run that did not complete says what it spent.

The driver also keeps ``RESULTS/progress/sweep=NAME.json`` current (written atomically): the planned runs with
their FLOPs, the runs in flight, the time left and the measured speed against the plan, and the driver's pid,
host and start time (nothing else of the lock's holder
record, and never the command line, which may carry credentials).
"""

from __future__ import annotations

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
        self._status_written, self._status_stale, self._line_at = -math.inf, False, self.started
        self._write_status(force=True)

    def run_started(self, spec: RunSpec) -> None:
        self.in_flight[spec.run_id] = self.clock.monotonic()
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
        """Measured over planned run time of the runs this invocation completed (None before the first): the
        planned durations (``sweep.planning.plan.estimated_seconds``, from assumed FLOP/s) scaled by it are the
        estimate of what is left, so the ETA learns the machine's real speed as runs finish (and a restarted
        driver starts from the speed its predecessors measured, ``earlier``)."""
        return self.measured_seconds / self.planned_seconds if self.planned_seconds > 0 else None

    def seconds_left(self) -> float:
        """Durations of the runs still waiting, plus what remains of those in flight, over the runs in flight; each
        planned duration scaled by ``speed_vs_plan`` once a run has completed."""
        now, speed = self.clock.monotonic(), self.speed_vs_plan or 1.0
        waiting = sum(self.durations[r] * speed for r in self.todo if r not in self.in_flight)
        running = sum(max(0.0, self.durations[r] * speed - (now - t)) for r, t in self.in_flight.items())
        return (waiting + running) / max(1, len(self.in_flight))

    def refresh(self) -> None:
        """Write a pending status update (and at least every ``STATUS_EVERY_SECONDS``, so ``sweep status`` shows
        a current time left while runs train for hours); redraw the live line (terminal), or print it as a plain
        line every ``LINE_EVERY_SECONDS`` (cron, logs: a sweep of hours-long runs is not silent between them)."""
        now = self.clock.monotonic()
        if self._status_stale or now - self._status_written >= STATUS_EVERY_SECONDS:
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
