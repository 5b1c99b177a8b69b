"""One sweep per results directory: a second driver exits 3 naming the holder; a dead holder's lock is taken over."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from sweep.execute.lock import SweepLocked, lock_holder, results_lock
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config

HOLD = textwrap.dedent(
    """
    import sys, time
    from sweep.execute.lock import results_lock
    from sweep.results.storage import ResultsStore
    with results_lock(ResultsStore(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def hold_lock_in_child(root):
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


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
