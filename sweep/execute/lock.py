"""One sweep at a time per results root: a lock that a dead holder can never leave behind.

- **Local or shared filesystem**: ``flock`` on ``RESULTS/.sweep.lock``. The kernel drops it when its holder dies,
  SIGKILL included, so a stale lock is taken over by simply acquiring it. It guards one host, or every host of a
  shared filesystem whose locks work across clients (NFSv4, or v3 with lockd). The file is opened with
  ``O_NOFOLLOW``: a symlink planted at the lock path is refused (``LockPathError``, exit 2), never followed.
- **S3** (``s3://`` roots): a lease object ``RESULTS/.sweep.lease`` (``sweep.results.lease``) created with a
  conditional PUT, renewed while the driver lives and taken over once it expired, so it holds across hosts. A
  SIGKILLed driver's lease blocks others until its TTL passes (``SWEEP_LEASE_TTL_SECONDS``, default 60 s).
- **Other object stores** (``gs://``, ``abfs://``): pyarrow gives no conditional write, so the lock is a local
  ``flock`` under ``$SWEEP_CACHE/locks`` that guards this host only; ``results_lock`` says so in one warning line.

The holder record (pid, host, start time, sweep name; never the command line, which may carry credentials) only
names the holder for error messages and ``sweep status``. File descriptors are close-on-exec, so a Ray daemon
outliving a killed driver does not keep the lock.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import stat
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sweep.config import ConfigError, cache_dir
from sweep.results.lease import LeaseHeld, ObjectLease, lease_ttl_seconds
from sweep.results.storage import ResultsStore

LOCK_NAME = ".sweep.lock"
LEASE_KEY = ".sweep.lease"


class SweepLocked(Exception):
    """Another live process holds the results root's lock."""

    def __init__(self, where: str | Path, holder: dict, detail: str = "") -> None:
        self.where, self.holder = where, holder
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started_at', '?')}"
        super().__init__(f"results directory is locked by another sweep ({who}; {detail or f'lock file {where}'})")


class LockPathError(ConfigError):
    """The lock path is a symlink or not a regular file: refused rather than followed or overwritten."""


def uses_lease(store: ResultsStore) -> bool:
    return store.fs.type_name == "s3"


def lock_path(store: ResultsStore) -> Path:
    """The local lock file: ``RESULTS/.sweep.lock``, or for an object store without leases a file under the cache
    named by the hash of the store and path (credentials play no part in it)."""
    if store.is_object_store:
        name = hashlib.sha256(f"{store.fs.type_name}://{store.base}".encode()).hexdigest()[:16]
        return cache_dir() / "locks" / f"{name}.lock"
    return Path(store.base) / LOCK_NAME


def _new_holder(sweep: str | None) -> dict:
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return holder | ({"sweep": sweep} if sweep else {})


def _open_lock_file(path: Path, create: bool) -> int:
    """A descriptor of the lock file, never through a symlink; raises ``LockPathError`` for anything but a file."""
    flags = (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise LockPathError(f"lock path {path} is a symbolic link; refusing to follow it (remove it to run)") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LockPathError(f"lock path {path} is not a regular file; refusing to use it")
    return fd


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        return json.loads(os.read(fd, 65536) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


@contextmanager
def _file_lock(path: Path, holder: dict) -> Iterator[dict]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_lock_file(path, create=True)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepLocked(path, _read_holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield holder
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _lease_lock(store: ResultsStore, holder: dict, ttl_seconds: float, warn: Callable[[str], None]) -> Iterator[dict]:
    extra = {"sweep": holder["sweep"]} if "sweep" in holder else {}
    lease = ObjectLease(store, LEASE_KEY, ttl_seconds, holder=extra, on_lost=lambda m: warn(f"warning: {m}"), warn=lambda m: warn(f"warning: {m}"))
    try:
        written = lease.acquire(block=False)
    except LeaseHeld as held:
        raise SweepLocked(held.where, held.holder, f"lease {held.where}, expires in {held.seconds_left:.0f} s unless renewed") from None
    try:
        yield written
    finally:
        lease.release()


@contextmanager
def results_lock(store: ResultsStore, sweep: str | None = None, ttl_seconds: float | None = None,
                 warn: Callable[[str], None] | None = None) -> Iterator[dict]:  # fmt: skip
    """Hold the results root's lock for the block (see the module docstring); yields the holder record.

    Raises ``SweepLocked`` naming the holder if it is taken, ``LockPathError`` if the lock path is a symlink.
    """
    if warn is None:
        from sweep.execute.progress import log as warn  # the driver's log; imported late: it loads the planner

    holder = _new_holder(sweep)
    if uses_lease(store):
        with _lease_lock(store, holder, ttl_seconds or lease_ttl_seconds(), warn) as written:
            yield written
        return
    if store.is_object_store:
        warn(f"warning: {store.fs.type_name} stores offer no conditional writes here: the lock on {store.shown} guards this host only")
    with _file_lock(lock_path(store), holder) as written:
        yield written


def lock_holder(store: ResultsStore) -> dict | None:
    """The live holder of the lock, or None when no sweep holds it (a leftover file or an expired lease of a dead
    one is ignored)."""
    if uses_lease(store):
        current = ObjectLease(store, LEASE_KEY, lease_ttl_seconds()).read()
        return current[0] if current is not None and current[2] > 0 else None
    path = lock_path(store)
    if not os.path.lexists(path):
        return None
    fd = _open_lock_file(path, create=False)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
