"""One sweep at a time per results directory: an advisory lock that a dead holder can never leave behind.

The lock is ``flock`` on ``RESULTS/.sweep.lock`` (for a URI results root: a file under the local cache named by
the URI's hash, which guards one host only). The kernel drops an ``flock`` when its holder dies, SIGKILL
included, so a stale lock is taken over by simply acquiring it; the file's content (pid, host, start time,
command) only names the current holder for the error message. The file descriptor is not inherited by the
processes Ray spawns, so a Ray daemon outliving a killed driver does not keep the lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sweep.training.data import cache_dir
from sweep.results.storage import ResultsStore


class SweepLocked(Exception):
    """Another live process holds the results directory's lock."""

    def __init__(self, path: Path, holder: dict) -> None:
        self.path, self.holder = path, holder
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started_at', '?')}"
        super().__init__(f"results directory is locked by another sweep ({who}; lock file {path})")


def lock_path(store: ResultsStore) -> Path:
    if "://" in store.root:
        return cache_dir() / "locks" / f"{hashlib.sha256(store.root.encode()).hexdigest()[:16]}.lock"
    return Path(store.base) / ".sweep.lock"


def _read_holder(handle) -> dict:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {}


@contextmanager
def results_lock(store: ResultsStore) -> Iterator[dict]:
    """Hold the results directory's lock for the block; raises ``SweepLocked`` naming the holder if it is taken."""
    path = lock_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepLocked(path, _read_holder(handle)) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder))
        handle.flush()
        try:
            yield holder
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_holder(store: ResultsStore) -> dict | None:
    """The live holder of the lock, or None when no sweep holds it (a leftover file from a dead one is ignored)."""
    path = lock_path(store)
    if not path.exists():
        return None
    with open(path, "r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(handle)
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
