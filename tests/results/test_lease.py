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


def test_renewals_over_hours_of_a_simulated_clock(store):
    """The renewal timer on a simulated clock: a PUT every TTL/3 for 6 hours; a store unreachable for less than a
    TTL loses nothing, one unreachable past a TTL loses the lease at the first renewal after it, once."""
    from botocore.exceptions import EndpointConnectionError

    now, lost, puts = [0.0], [], []
    outage = [(2 * 3600, 2 * 3600 + 50), (5 * 3600, 5 * 3600 + 90)]  # 50 s, then 90 s without the store

    def pause(seconds):
        now[0] += seconds
        return now[0] > 6 * 3600

    lease = ObjectLease(store, "x.lease", ttl_seconds=60, on_lost=lost.append)
    lease.acquire()
    lease._stop.set()  # the real thread stops; the loop runs here, on the simulated clock
    lease._thread.join()
    lease.clock, lease.pause = (lambda: now[0]), pause
    put_object = lease.client.put_object

    def put(**kwargs):
        if any(start <= now[0] < end for start, end in outage):
            raise EndpointConnectionError(endpoint_url="http://unreachable")
        puts.append(now[0])
        return put_object(**kwargs)

    lease.client.put_object = put
    lease._renew_loop()
    assert len(lost) == 1 and "not renewed for 60 s" in lost[0], (now, len(puts), puts[-3:])
    assert now[0] == 5 * 3600 + 60  # lost at the first failed renewal more than a TTL after the last good one
    gaps = [b - a for a, b in zip(puts, puts[1:])]
    assert max(gaps) == 80  # the 50 s outage: three renewals failed, the fourth went through
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(20)  # every TTL/3
    assert len(puts) == pytest.approx(5 * 3600 / 20, abs=5)
    lease.etag = None  # released as lost: nothing of ours to delete
