"""A lease on one object-store key: a lock that holds across hosts, which a dead holder cannot keep.

Built on S3's conditional writes (boto3; pyarrow's ``S3FileSystem`` has none), on the store's clock only:

- **acquire**: ``PUT key`` with ``If-None-Match: *``: exactly one contender creates the object. If it exists, it
  is read: live (its age by the store's clock, ``Date`` minus ``Last-Modified``, is under its TTL) means held;
  expired means taken over with ``PUT`` ``If-Match: <the expired object's ETag>``, so of two contenders for the same
  expired lease only one wins (the other gets 412 and sees the winner as the live holder).
- **renew**: a daemon thread rewrites the object every TTL/3 with ``If-Match: <the ETag it last wrote>``. A 412
  means someone took the lease over (this process stalled past its TTL): the lease is lost, ``on_lost`` is told.
- **release**: the thread stops and the object is deleted with ``If-Match: <its ETag>`` (never someone else's).

The object's body names the holder (pid, host, start time, TTL, a random lease id, and what the caller adds;
never credentials).
Stores that ignore the conditional headers (some S3-compatible servers) are detected on acquire by a second
``If-None-Match: *`` PUT that must fail: if it succeeds, ``acquire`` warns once that the lease guards nothing
against a contender that starts at the same moment (a live holder is still seen, since contenders read first).

Example (a per-run claim would use its own key)::

    lease = ObjectLease(ResultsStore("s3://bucket/results"), ".sweep.lease", ttl_seconds=60, holder={"sweep": "x"})
    lease.acquire(block=False)    # raises LeaseHeld naming the holder, or returns the holder dict written
    ...
    lease.release()
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable

from sweep.results.storage import ResultsStore
from sweep.results.uri import s3_client_options

DEFAULT_LEASE_TTL_SECONDS = 60.0


def lease_ttl_seconds() -> float:
    """Leases' time to live: ``SWEEP_LEASE_TTL_SECONDS`` (tests shorten it), else 60 s. A SIGKILLed holder's lease
    blocks others for at most this long."""
    return float(os.environ.get("SWEEP_LEASE_TTL_SECONDS", DEFAULT_LEASE_TTL_SECONDS))


_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


class LeaseHeld(Exception):
    """Another live holder has the lease; ``holder`` is what its object says, ``seconds_left`` its remaining TTL."""

    def __init__(self, where: str, holder: dict, seconds_left: float) -> None:
        self.where, self.holder, self.seconds_left = where, holder, seconds_left
        super().__init__(f"lease {where} is held by pid {holder.get('pid', '?')} on {holder.get('host', '?')} (expires in {seconds_left:.0f} s unless renewed)")


class LeaseUnsupported(Exception):
    """The store has no conditional writes this module can use (only ``s3://`` roots do here)."""


def _conflict(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return False
    return str(error.response.get("Error", {}).get("Code")) in _CONFLICT or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412)


def _missing(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404


class ObjectLease:
    """A TTL lease on ``key`` under ``store``'s root (an ``s3://`` root), renewed by a thread while held."""

    def __init__(self, store: ResultsStore, key: str, ttl_seconds: float, holder: dict | None = None,
                 on_lost: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, pause: Callable[[float], bool] | None = None) -> None:  # fmt: skip
        """``clock`` and ``pause`` (wait up to that many seconds; True: stop renewing) time the renewals; tests
        pass simulated ones, so hours of renewals take no time."""
        if store.fs.type_name != "s3":
            raise LeaseUnsupported(f"{store.fs.type_name} stores have no conditional writes here")
        import boto3
        from botocore.config import Config

        # Short timeouts: a lease request is tiny, and a hung store must not hold up the driver's exit for minutes.
        timeouts = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 2})
        self.client = boto3.client("s3", config=timeouts, **s3_client_options(store.root))
        self.bucket, _, prefix = store.base.partition("/")
        self.key = f"{prefix}/{key}" if prefix else key
        self.where = f"s3://{self.bucket}/{self.key}"
        self.ttl = float(ttl_seconds)
        self.extra = dict(holder or {})
        self.on_lost = on_lost or (lambda message: None)
        self.warn = warn or (lambda message: None)
        self.etag: str | None = None
        self.holder: dict | None = None
        self.lease_id = uuid.uuid4().hex  # tells this holder's object from any other's, same process included
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.clock, self.pause = clock, pause or self._stop.wait

    def _body(self) -> bytes:
        now = datetime.now(timezone.utc)
        self.holder = {
            "pid": os.getpid(), "host": socket.gethostname(), **self.extra, "lease_id": self.lease_id,
            "started_at": (self.holder or {}).get("started_at", now.isoformat(timespec="seconds")),
            "renewed_at": now.isoformat(timespec="seconds"), "ttl_seconds": self.ttl,
            "expires_at": (now + timedelta(seconds=self.ttl)).isoformat(timespec="seconds"),
        }  # fmt: skip
        return json.dumps(self.holder).encode()

    def _put(self, **condition: str) -> str:
        return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(), ContentType="application/json", **condition)["ETag"]

    def read(self) -> tuple[dict, str, float] | None:
        """``(holder, etag, seconds_left)`` of the lease object as it is now, or None if there is none.
        ``seconds_left`` is by the store's clock (negative: expired)."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as error:
            if _missing(error):
                return None
            raise
        body = response["Body"].read()
        try:
            holder = json.loads(body or b"{}")
        except json.JSONDecodeError:
            holder = {}
        date = response["ResponseMetadata"].get("HTTPHeaders", {}).get("date")
        now = parsedate_to_datetime(date) if date else datetime.now(timezone.utc)
        age = (now - response["LastModified"]).total_seconds()
        return holder, response["ETag"], float(holder.get("ttl_seconds", self.ttl)) - age

    def acquire(self, block: bool = False, poll_seconds: float = 1.0) -> dict:
        """Take the lease and start renewing it; returns the holder written. Raises ``LeaseHeld`` while another
        live holder has it (``block=False``), or waits for it to be released or expire (``block=True``)."""
        while True:
            try:
                return self._try_acquire()
            except LeaseHeld:
                if not block:
                    raise
            time.sleep(poll_seconds)

    def _try_acquire(self) -> dict:
        try:
            self.etag = self._put(IfNoneMatch="*")
            self._probe()
        except Exception as error:
            if not _conflict(error):
                raise
            current = self.read()
            if current is None:  # released between our PUT and our read: try again at once
                return self._try_acquire()
            holder, etag, seconds_left = current
            if seconds_left > 0:
                raise LeaseHeld(self.where, holder, seconds_left) from None
            try:
                self.etag = self._put(IfMatch=etag)  # take over the expired lease; one contender wins
            except Exception as takeover_error:
                if not _conflict(takeover_error):
                    raise
                winner = self.read()
                if winner is None:
                    return self._try_acquire()
                raise LeaseHeld(self.where, winner[0], winner[2]) from None
        self._start_renewing()
        return dict(self.holder or {})

    def _probe(self) -> None:
        """A second create-only PUT must be refused; if the store accepts it, it ignores conditional headers."""
        try:
            etag = self._put(IfNoneMatch="*")
        except Exception as error:
            if _conflict(error):
                return
            raise
        self.etag = etag
        self.warn(f"{self.where}: this store ignores conditional writes (If-None-Match), so the lease cannot stop two drivers that start at the same moment")

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-renew {self.key}", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        """Renew every TTL/3 until stopped; a renewal refused (taken over) or failing for a whole TTL loses it."""
        last_renewed = self.clock()
        while not self.pause(self.ttl / 3):
            try:
                self.etag = self._put(IfMatch=self.etag or "")
                last_renewed = self.clock()
            except Exception as error:
                if _conflict(error) and self._still_ours():
                    continue  # a renewal that failed in transit had landed: carry on from the ETag read back
                if _conflict(error) or self.clock() - last_renewed > self.ttl:
                    self.etag = None
                    cause = "taken over by another holder" if _conflict(error) else f"not renewed for {self.ttl:.0f} s: {type(error).__name__}"
                    self.on_lost(f"lease {self.where} lost ({cause}); another driver may now start")
                    return

    def _still_ours(self) -> bool:
        """Whether the lease object is still the one this process wrote last (then adopt its ETag)."""
        try:
            current = self.read()
        except Exception:
            return False
        mine = current is not None and current[0].get("lease_id") == self.lease_id
        if mine:
            self.etag = current[1]
        return mine

    def release(self) -> None:
        """Stop renewing and delete the lease object if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # a renewal in flight ends within its timeouts; past that, the TTL frees it
            self._thread = None
        if self.etag is None:
            return
        from botocore.exceptions import ParamValidationError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag)
        except ParamValidationError:  # a botocore without conditional deletes: check, then delete (a narrow race)
            if self._still_ours():
                self.client.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception as error:
            if not (_conflict(error) or _missing(error)):
                raise
        self.etag, self.holder = None, None

    def __enter__(self) -> dict:
        return self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()
