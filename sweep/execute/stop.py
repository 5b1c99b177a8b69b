"""Clean stops: SIGINT (Ctrl-C) and SIGTERM (systemd, Kubernetes, SLURM) end ``sweep run`` in seconds, in one line.

``stopping_on_signals`` wraps the scheduling loop once Ray is connected: ``ray.init`` installs its own handlers
(on SIGTERM, Ray's core worker aborts the driver with a C++ stack dump), so ours go in after it and are restored
when the loop ends. The handler does no work: it records the signal and raises ``KeyboardInterrupt`` in the main
thread (inside ``ray.wait``, which the loop calls with a 1 s timeout, Ray turns it into an interruption). Then,
outside the handler:

1. every run this driver started and that has not ended is cancelled with ``ray.cancel(force=True)``, which kills
   its worker (for a DDP run, the launcher, whose Ray Train workers die with it). Only this sweep's tasks: a
   joined cluster (``--address``) keeps running, and so do other jobs on it;
2. Ray is left: ``ray.shutdown()`` stops embedded Ray (GCS, raylet, dashboard, workers) or, on a joined cluster,
   only disconnects this driver;
3. each run that did not end by itself since this driver started it waits for its claim (``sweep.training.claim``:
   its trainer is gone once the claim is free) and gets a ledger row ``interrupted``. Its checkpoints stay, so the
   next ``sweep run`` resumes it;
4. ``SweepStopped`` carries the one-line message and the exit code (130 for SIGINT, 143 for SIGTERM) to the CLI;
   the results lock is released on the way out, as for any exception.

A second SIGINT or SIGTERM during these steps exits at once with the same code (``os._exit``), writing nothing
more; the runs then have no ``interrupted`` row, and the next ``sweep run`` resumes them from their checkpoints all
the same.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator

import pandas as pd

from sweep.execute.backend import SYSTEM_CLOCK, Clock
from sweep.execute.progress import log
from sweep.results.storage import ResultsStore
from sweep.training.claim import ClaimTimeout, RunClaims, claims_for

if TYPE_CHECKING:  # the plan imports torch: not needed at run time here, nor by ``sweep --help``
    from sweep.execute.backend import RunBackend
    from sweep.planning.plan import RunSpec

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CANCEL_WAIT_SECONDS = 3.0
"""How long cancelled tasks get to end before Ray is shut down."""
CLAIM_WAIT_SECONDS = 5.0
"""How long to wait for a cancelled run's trainer to let go of its claim before giving up on its row."""


class SweepStopped(Exception):
    """``sweep run`` was stopped by a signal; ``exit_code`` is 128 + the signal's number (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, sweep: str, signum: int, interrupted: int) -> None:
        self.signum, self.interrupted, self.exit_code = signum, interrupted, 128 + signum
        runs = (
            f"{interrupted} run{'s' if interrupted != 1 else ''} interrupted, checkpoints kept; rerun the same command to resume"
            if interrupted
            else "no run was in flight"
        )
        super().__init__(f"sweep {sweep}: stopped by {signal.Signals(signum).name}; {runs}")


_received: list[int] = []
"""The stop signal received (the handler's only record): Ray re-raises a ``KeyboardInterrupt`` raised inside its
blocking calls as a new one, so the exception itself cannot carry the signal's number."""


def _exit_now(signum: int, frame: Any) -> None:
    os._exit(128 + signum)


def _raise(signum: int, frame: Any) -> None:
    """Record the signal and raise ``KeyboardInterrupt`` in the main thread: the one exception Ray's blocking calls
    (``ray.wait``, ``ray.get``) turn into an interruption rather than an internal error, and a BaseException, so no
    ``except Exception`` on the way swallows it. A second signal exits at once."""
    _received.append(signum)
    for each in STOP_SIGNALS:
        signal.signal(each, _exit_now)
    raise KeyboardInterrupt


@dataclass
class StartedRuns:
    """Wraps the backend that starts runs (``sweep.execute.backend``), remembering each run, its handle and when it
    was started; otherwise the backend itself to the loop (``start``, ``wait``, ``result``, ``cluster``)."""

    backend: RunBackend
    clock: Clock
    started: dict[str, tuple[RunSpec, Any, datetime]] = field(default_factory=dict)

    @property
    def cluster(self) -> Any:
        return self.backend.cluster

    @property
    def poll_seconds(self) -> float:
        return self.backend.poll_seconds

    def start(self, spec: RunSpec, results_root: str, max_retries: int) -> Any:
        started_at = self.clock.now()
        handle = self.backend.start(spec, results_root, max_retries)
        self.started[spec.run_id] = (spec, handle, started_at)
        return handle

    def wait(self, handles: Any, timeout_seconds: float) -> list:
        return self.backend.wait(handles, timeout_seconds)

    def result(self, handle: Any) -> dict:
        return self.backend.result(handle)

    def not_ended(self, store: ResultsStore, sweep: str) -> list[tuple[RunSpec, datetime]]:
        """Runs started here whose ledger row was not written since (by their worker, or by the driver as failed)."""
        ledger = store.read_runs(sweep)
        return [(spec, at) for spec, _, at in self.started.values() if not _ended_since(ledger, spec.run_id, at)]

    def cancel(self) -> None:
        """Force-cancel the runs still running (kills their workers) and give them a moment to end."""
        handles = [handle for _, handle, _ in self.started.values()]
        try:
            self.backend.cancel(handles, CANCEL_WAIT_SECONDS)
        except Exception as error:  # Ray itself going down (its raylet got the same Ctrl-C): nothing left to cancel
            log(f"cancelling runs: {type(error).__name__}: {error}")


def _ended_since(ledger: pd.DataFrame, run_id: str, started_at: datetime) -> bool:
    rows = ledger[ledger["run_id"] == run_id]
    return bool((rows["finished_at"] >= pd.Timestamp(started_at)).any())


def record_interrupted(store: ResultsStore, claims: RunClaims, spec: RunSpec, started_at: datetime, signum: int,
                       clock: Clock = SYSTEM_CLOCK) -> bool:  # fmt: skip
    """Write the run's ``interrupted`` row once its trainer let go of its claim, unless it ended by itself meanwhile."""
    from sweep.training.worker import failed_outcome, ledger_row  # torch: imported only when a stop happens

    try:
        with claims.hold(spec.sweep, spec.run_id, timeout=CLAIM_WAIT_SECONDS):
            if _ended_since(store.read_runs(spec.sweep), spec.run_id, started_at):
                return False
            outcome = failed_outcome(store, spec, f"stopped by {signal.Signals(signum).name}", status="interrupted")
            now = clock.now()
            store.write_run(spec.sweep, ledger_row(spec, outcome, started_at, now, node=None))
            return True
    except ClaimTimeout as error:
        log(f"run {spec.run_id} not marked interrupted: {error}")
        return False


@contextmanager
def stopping_on_signals(sweep: str, store: ResultsStore, backend: RunBackend, disconnect: bool,
                        clock: Clock = SYSTEM_CLOCK) -> Iterator[StartedRuns]:  # fmt: skip
    """Run the block (the scheduling loop, running runs through the ``StartedRuns`` yielded, which wraps
    ``backend``) so that SIGINT and SIGTERM stop it cleanly (module docstring); ``disconnect``: this driver
    connected the backend (called ``ray.init``) and shuts it down. Outside the main thread (a driver in a thread,
    as some tests run it) signals cannot be handled: no-op."""
    runs = StartedRuns(backend, clock)
    if threading.current_thread() is not threading.main_thread():  # Python delivers signals to the main thread only
        yield runs
        return
    _received.clear()
    previous = {each: signal.signal(each, _raise) for each in STOP_SIGNALS}
    try:
        yield runs
    except KeyboardInterrupt:
        if not _received:  # not ours (raised by hand): nothing to stop cleanly for
            raise
        signum = _received[0]
        runs.cancel()
        if disconnect:
            backend.shutdown()
        claims = claims_for(store, log)
        interrupted = [spec for spec, at in runs.not_ended(store, sweep) if record_interrupted(store, claims, spec, at, signum, clock)]
        raise SweepStopped(sweep, signum, len(interrupted)) from None
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
