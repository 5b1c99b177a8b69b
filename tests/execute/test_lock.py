"""One sweep per results root: a second driver exits 3 naming the holder; a dead holder's lock is taken over; a
symlink at the lock path is refused; on S3 the lock is a lease that holds across processes (and hosts)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from sweep.cli import main
from sweep.execute.lock import LockPathError, SweepLocked, lock_holder, results_lock
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config
from tests.conftest import s3_root

HOLD = textwrap.dedent(
    """
    import sys
    from sweep.execute.lock import SweepLocked, results_lock
    from sweep.results.storage import ResultsStore
    try:
        with results_lock(ResultsStore(sys.argv[1])):
            print("locked", flush=True)
            if sys.argv[2] == "hold":
                sys.stdin.readline()  # until the test writes a line (a clean release) or kills this process
    except SweepLocked as error:
        print(f"refused: {error}", flush=True)
    """
)


def hold_lock_in_child(root, env=None):
    """A process holding the lock until killed or until a line arrives on its stdin."""
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(root), "hold"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "locked"
    return child


def try_lock_in_child(root, env=None) -> str:
    """Take the lock once in a new process and let go: ``"locked"`` or ``"refused: <message>"``."""
    return subprocess.run([sys.executable, "-c", HOLD, str(root), "try"], capture_output=True, text=True, env=env, timeout=60).stdout.strip()


def test_second_holder_refused_with_holder_named(tmp_path):
    store = ResultsStore(tmp_path)
    with results_lock(store) as holder:
        with pytest.raises(SweepLocked, match=f"pid {os.getpid()}"):
            with results_lock(store):
                pass
        assert lock_holder(store)["pid"] == holder["pid"]
    assert lock_holder(store) is None


def test_cli_exits_3_while_another_sweep_runs(tmp_path):
    child = hold_lock_in_child(tmp_path / "results")
    try:
        config = tmp_path / "sweep.yaml"
        config.write_text(yaml.safe_dump(tiny_config()))
        result = subprocess.run(
            [sys.executable, "-m", "sweep", "run", str(config), "--results", str(tmp_path / "results")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 3
        assert f"pid {child.pid}" in result.stderr and "Traceback" not in result.stderr
    finally:
        child.kill()
        child.wait()


def test_lock_of_killed_holder_is_taken_over(tmp_path):
    store = ResultsStore(tmp_path)
    child = hold_lock_in_child(tmp_path)
    assert lock_holder(store)["pid"] == child.pid
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    time.sleep(0.1)
    assert lock_holder(store) is None  # the leftover file names a dead pid but holds no lock
    with results_lock(store) as holder:
        assert holder["pid"] == os.getpid()


def test_symlink_at_the_lock_path_is_refused_and_its_target_untouched(tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("do not overwrite")
    results = tmp_path / "results"
    results.mkdir()
    (results / ".sweep.lock").symlink_to(target)
    store = ResultsStore(results)
    with pytest.raises(LockPathError, match="symbolic link"):
        with results_lock(store):
            pass
    with pytest.raises(LockPathError):
        lock_holder(store)  # sweep status does not follow it either
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    assert main(["run", str(config), "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(results / ".sweep.lock") in err and "Traceback" not in err
    assert target.read_text() == "do not overwrite"


def test_holder_record_names_no_command_line(tmp_path):
    with results_lock(ResultsStore(tmp_path), sweep="tiny") as holder:
        assert set(holder) == {"pid", "host", "started_at", "sweep"}
        assert json.loads((tmp_path / ".sweep.lock").read_text()) == holder


def test_object_stores_without_conditional_writes_warn_and_lock_this_host(tmp_path, monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setenv("SWEEP_CACHE", str(tmp_path))
    store = SimpleNamespace(fs=SimpleNamespace(type_name="gcs"), is_object_store=True, base="bucket/results", shown="gs://bucket/results")
    warnings = []
    with results_lock(store, warn=warnings.append) as holder:
        assert lock_holder(store)["pid"] == holder["pid"] == os.getpid()
    assert warnings == ["warning: gcs stores offer no conditional writes here: the lock on gs://bucket/results guards this host only"]
    assert list((tmp_path / "locks").glob("*.lock"))


@pytest.mark.slow
def test_s3_lease_refuses_a_second_driver_until_the_first_is_gone(tmp_path, s3_endpoint, s3_bucket):
    """Drivers in separate processes on one S3 root: refused while the first lives (renewed past its TTL), taken
    over only once a SIGKILLed holder's lease expired, and at once after a clean release."""
    ttl = 6.0
    uri, env = s3_root(s3_endpoint, s3_bucket[0]), {**os.environ, "SWEEP_LEASE_TTL_SECONDS": str(ttl)}
    first = hold_lock_in_child(uri, env)
    try:
        time.sleep(ttl + 1)  # from now on only its renewals keep the lease
        assert lock_holder(ResultsStore(uri))["pid"] == first.pid  # what sweep status shows
        config = tmp_path / "sweep.yaml"
        config.write_text(yaml.safe_dump(tiny_config()))
        second = subprocess.run([sys.executable, "-m", "sweep", "run", str(config), "--results", uri],
                                capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
        assert second.returncode == 3, second.stderr
        assert f"pid {first.pid}" in second.stderr and ".sweep.lease" in second.stderr and "Traceback" not in second.stderr
        assert "test:test" not in second.stderr + second.stdout
    finally:
        first.kill()  # SIGKILL: no release; the lease must expire
        first.wait()
    killed_at = time.monotonic()
    with pytest.raises(SweepLocked, match=f"pid {first.pid}"):  # in this process: no start-up time, still live
        with results_lock(ResultsStore(uri)):
            pass
    while (outcome := try_lock_in_child(uri, env)) != "locked":
        assert outcome.startswith("refused") and time.monotonic() - killed_at < ttl + 30
        time.sleep(0.2)
    print(f"lease taken over {time.monotonic() - killed_at:.1f} s after its holder was killed (TTL {ttl:.0f} s)")
    assert time.monotonic() - killed_at >= ttl / 3  # the last renewal came at most TTL/3 before the kill
    long_ttl = {**env, "SWEEP_LEASE_TTL_SECONDS": "600"}  # so that only a release can free it within the test
    third = hold_lock_in_child(uri, long_ttl)
    assert try_lock_in_child(uri, long_ttl).startswith(f"refused: results directory is locked by another sweep (pid {third.pid}")
    third.communicate("\n", timeout=60)  # a clean exit deletes the lease
    assert third.returncode == 0
    assert lock_holder(ResultsStore(uri)) is None
    assert try_lock_in_child(uri, long_ttl) == "locked"
