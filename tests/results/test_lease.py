"""The object-store lease (``sweep.results.lease``) against a local S3 server: exclusive while renewed, taken over
only once expired, by exactly one of two contenders, and released at once on a clean exit."""

import threading
import time

import pytest

from sweep.results.lease import LeaseHeld, LeaseUnsupported, ObjectLease
from sweep.results.storage import ResultsStore
from tests.conftest import s3_root


@pytest.fixture
def store(s3_endpoint, s3_bucket):
    return ResultsStore(s3_root(s3_endpoint, s3_bucket[0]))


def test_local_roots_have_no_lease(tmp_path):
    with pytest.raises(LeaseUnsupported):
        ObjectLease(ResultsStore(tmp_path), "x.lease", ttl_seconds=5)


def test_held_while_renewed_then_released_at_once(store):
    warnings = []
    first = ObjectLease(store, "x.lease", ttl_seconds=2, holder={"sweep": "a"}, warn=warnings.append)
    holder = first.acquire()
    assert holder["sweep"] == "a" and "command" not in holder and not warnings  # moto honours If-None-Match
    time.sleep(5)  # more than twice the TTL: only the renewals keep it
    second = ObjectLease(store, "x.lease", ttl_seconds=2)
    with pytest.raises(LeaseHeld, match=f"pid {holder['pid']}") as held:
        second.acquire(block=False)
    assert held.value.holder["sweep"] == "a" and 0 < held.value.seconds_left <= 2
    first.release()
    assert second.read() is None
    second.acquire(block=False)
    second.release()


def test_expired_lease_is_taken_over_by_one_contender(store):
    dead = ObjectLease(store, "x.lease", ttl_seconds=3)
    dead.acquire()
    dead._stop.set()  # the holder stops renewing, as a SIGKILLed driver would
    dead._thread.join()
    contenders = [ObjectLease(store, "x.lease", ttl_seconds=30) for _ in range(2)]
    with pytest.raises(LeaseHeld):
        contenders[0].acquire(block=False)  # not expired yet
    time.sleep(4.5)  # past the TTL by the store's clock (whole seconds)
    results, barrier = [], threading.Barrier(2)

    def contend(lease):
        barrier.wait()
        try:
            results.append(("won", lease.acquire(block=False)["pid"]))
        except LeaseHeld as error:
            results.append(("refused", error.holder.get("ttl_seconds")))

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(kind for kind, _ in results) == ["refused", "won"]
    assert dict(results)["refused"] == 30  # the loser names the winner's lease, not the expired one
    dead.release()  # the dead holder's ETag is stale: its release must not delete the winner's lease
    assert store.fs.get_file_info(f"{store.base}/x.lease").is_file
    for lease in contenders:
        lease.release()
    assert ObjectLease(store, "x.lease", ttl_seconds=1).read() is None


def test_a_lease_overwritten_by_another_holder_is_reported_lost(store):
    lost = []
    mine = ObjectLease(store, "x.lease", ttl_seconds=1.5, on_lost=lost.append)
    mine.acquire()
    store.fs.delete_file(f"{store.base}/x.lease")
    other = ObjectLease(store, "x.lease", ttl_seconds=30)
    other.acquire()
    deadline = time.monotonic() + 20
    while not lost and time.monotonic() < deadline:  # its next renewal (every TTL/3) finds the ETag changed
        time.sleep(0.1)
    assert lost and "lost" in lost[0] and "taken over" in lost[0]
    mine.release()  # no longer ours: the other holder's lease stays
    assert other.read()[0]["ttl_seconds"] == 30
    other.release()


def test_a_store_that_ignores_conditional_writes_is_named_in_a_warning(store):
    warnings = []
    lease = ObjectLease(store, "x.lease", ttl_seconds=30, warn=warnings.append)
    put_object = lease.client.put_object
    lease.client.put_object = lambda IfNoneMatch=None, **kwargs: put_object(**kwargs)  # a server deaf to the header
    lease.acquire()
    lease.release()
    assert len(warnings) == 1 and "ignores conditional writes" in warnings[0] and "test:test" not in warnings[0]
