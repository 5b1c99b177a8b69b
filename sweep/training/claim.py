"""Run claims: one trainer per run at a time, even when workers outlive the driver that started them.

Why: when a driver dies, its Ray workers do not die with it at once. Embedded Ray's processes notice a dead
driver within a few seconds; a joined cluster cancels a dead driver's tasks only once it notices the job is gone.
Meanwhile such an orphan keeps training and may commit its run, while a rerun of ``sweep run`` (which read the
ledger before the orphan committed) starts the same run again.

The rule: the process that trains a run (``sweep.training.worker.execute_run``, or the launcher task of a DDP
run in ``sweep.training.distributed``) first takes the run's claim and holds it until the run's ledger row is
written. A second trainer of the same run waits for the claim (logging one line that it waits for an earlier
worker of that run), then re-reads the ledger: if the run is finished (completed or diverged) it returns the
recorded outcome without training; otherwise it resumes from the newest checkpoint, which the earlier worker
left. So a run ends as one ledger row and one metrics file, and is never trained by two processes at once.

``FlockClaims`` (local or shared POSIX results roots): an exclusive ``flock`` on
``RESULTS/claims/sweep=NAME/RUN_ID.lock``, opened with ``O_NOFOLLOW`` (a symlink planted there is refused, not
followed). The kernel drops an ``flock`` when its holder dies, SIGKILL included, so a crashed worker never leaves a
stale claim. Claim files are never deleted (deleting a lock file races with a process about to lock it); they
are empty but for the holder's pid and host, a few bytes per run.

``LeaseClaims`` (``s3://`` roots, where there is no ``flock``): a lease object
``RESULTS/claims/sweep=NAME/RUN_ID.lease`` (``sweep.results.lease``: created with S3's conditional put, renewed by a
thread while the trainer lives). A trainer that dies without releasing it blocks the run's next trainer until its
TTL passes (``SWEEP_LEASE_TTL_SECONDS``, default 60 s), after which the lease is taken over.

``NoClaims`` (other object stores, e.g. ``gs://``, ``abfs://``, which have no conditional writes here): the claim is a
no-op, and the protection above does not hold there; the results lock says so when the sweep starts.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Protocol

from sweep.results.storage import ResultsStore


class ClaimTimeout(Exception):
    """The run's claim was not free within the time asked for: another process still trains it."""


class RunClaims(Protocol):
    """Exclusive claims on runs: ``with claims.hold(sweep, run_id):`` trains the run with nobody else doing so."""

    def hold(self, sweep: str, run_id: str, timeout: float | None = None) -> ContextManager[None]:
        """Wait for the run's claim (forever, or up to ``timeout`` seconds, then ``ClaimTimeout``) and hold it."""
        ...


class NoClaims:
    """No claim at all (object-store roots until a lease is wired in): ``hold`` always succeeds at once."""

    @contextmanager
    def hold(self, sweep: str, run_id: str, timeout: float | None = None) -> Iterator[None]:
        yield


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # a Ray worker's stderr reaches the driver's log


def _holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {holder['pid']} on {holder['host']}"
    except (OSError, ValueError, KeyError):
        return "pid unknown"


class FlockClaims:
    """Claims as ``flock``s on files under ``directory`` (``RESULTS/claims``), one file per run."""

    def __init__(self, directory: Path, log: Callable[[str], None] = _stderr, poll_seconds: float = 0.2) -> None:
        self.directory, self.log, self.poll_seconds = directory, log, poll_seconds

    def path(self, sweep: str, run_id: str) -> Path:
        return self.directory / f"sweep={sweep}" / f"{run_id}.lock"

    @contextmanager
    def hold(self, sweep: str, run_id: str, timeout: float | None = None) -> Iterator[None]:
        path = self.path(sweep, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            self._acquire(fd, run_id, timeout)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    def _acquire(self, fd: int, run_id: str, timeout: float | None) -> None:
        """Take the flock, polling (so a Ray cancel or a signal handler can interrupt the wait) until ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if not waiting and timeout is None:
                self.log(f"run {run_id}: waiting for an earlier worker of this run ({_holder(fd)}) to finish or die")
            waiting = True
            if deadline is not None and time.monotonic() >= deadline:
                raise ClaimTimeout(f"run {run_id} is still claimed by {_holder(fd)}")
            time.sleep(self.poll_seconds)


class LeaseClaims:
    """Claims as object-store leases (``s3://`` roots): ``RESULTS/claims/sweep=NAME/RUN_ID.lease``."""

    def __init__(self, store: ResultsStore, log: Callable[[str], None] = _stderr, poll_seconds: float = 2.0) -> None:
        self.store, self.log, self.poll_seconds = store, log, poll_seconds

    @contextmanager
    def hold(self, sweep: str, run_id: str, timeout: float | None = None) -> Iterator[None]:
        from sweep.results.lease import LeaseHeld, ObjectLease, lease_ttl_seconds

        lease = ObjectLease(self.store, f"claims/sweep={sweep}/{run_id}.lease", lease_ttl_seconds(), holder={"run_id": run_id},
                            on_lost=self.log, warn=self.log)  # fmt: skip
        deadline = None if timeout is None else time.monotonic() + timeout
        waiting = False
        while True:
            try:
                lease.acquire(block=False)
                break
            except LeaseHeld as held:
                who = f"pid {held.holder.get('pid', '?')} on {held.holder.get('host', '?')}"
                if deadline is not None and time.monotonic() >= deadline:
                    raise ClaimTimeout(f"run {run_id} is still claimed by {who}") from None
                if not waiting and timeout is None:
                    self.log(f"run {run_id}: waiting for an earlier worker of this run ({who}) to finish, or its lease to expire")
                waiting = True
            time.sleep(self.poll_seconds)
        try:
            yield
        finally:
            lease.release()


def claims_for(store: ResultsStore, log: Callable[[str], None] = _stderr) -> RunClaims:
    """``FlockClaims`` under ``RESULTS/claims`` for a POSIX results root, ``LeaseClaims`` for ``s3://``,
    ``NoClaims`` for other object stores."""
    if store.fs.type_name == "local":
        return FlockClaims(Path(store.base) / "claims", log)
    if store.fs.type_name == "s3":
        return LeaseClaims(store, log)
    return NoClaims()
