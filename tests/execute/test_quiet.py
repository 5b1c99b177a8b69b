"""An embedded ``sweep run`` as cron or CI sees it (stdout and stderr are pipes): the sweep's own lines on stderr
only, none of Ray's (they go to the log file whose path is printed once), no colour codes; Ray listens on loopback
only; an inherited ``RAY_ADDRESS`` is named and not followed. One subprocess sweep checks all of it."""

from __future__ import annotations

import ipaddress
import subprocess
import time
from pathlib import Path

import psutil
import yaml

from tests.conftest import tiny_config
from tests.execute.test_connect import BIN, clean_env, free_port, stop_tree

import pytest

pytestmark = pytest.mark.slow


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def listening(pid: int) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of ``pid`` and its descendants."""
    found = set()
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for proc in procs:
        try:
            found |= {(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN}  # fmt: skip
        except psutil.Error:
            pass
    return found


def test_embedded_sweep_is_quiet_loopback_only_and_ignores_ray_address(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config(name="quiet")))
    dead = f"127.0.0.1:{free_port()}"
    command = [str(BIN / "sweep"), "run", str(config), "--results", str(tmp_path / "results")]
    driver = subprocess.Popen(command, env=clean_env(RAY_ADDRESS=dead), cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    sockets: set[tuple[str, str, int]] = set()
    started = time.monotonic()
    while driver.poll() is None and time.monotonic() - started < 300:
        sockets |= listening(driver.pid)  # sampled while Ray starts and the runs train
        time.sleep(0.3)
    try:
        stdout, stderr = driver.communicate(timeout=60)
    finally:
        stop_tree(driver.pid, timeout=5)  # nothing should be left; if something is, it is ours
    assert driver.returncode == 0, stderr[-3000:]
    print(f"{len(sockets)} listening sockets: {sorted(sockets)}")

    assert {name for name, _, _ in sockets} >= {"gcs_server", "raylet"}  # sampled while Ray was up
    assert all(is_loopback(ip) for _, ip, _ in sockets), sorted(s for s in sockets if not is_loopback(s[1]))

    assert stdout == ""  # the sweep's own lines go to stderr
    assert "\x1b[" not in stderr
    lines = stderr.splitlines()
    assert all(line.startswith("[sweep ") for line in lines), [line for line in lines if not line.startswith("[sweep ")]
    assert not any("(raylet)" in line or "WARNING" in line or "(autoscaler)" in line for line in lines)
    assert sum(f"ignoring RAY_ADDRESS={dead}; pass --address to join it" in line for line in lines) == 1
    (log_line,) = [line for line in lines if "Ray's logs: " in line]
    log_file = Path(log_line.split("Ray's logs: ")[1].split(" (")[0])
    assert log_file.is_file() and log_file.parent == (tmp_path / "results" / "logs").resolve()
    assert "Ray session logs" in log_file.read_text()


FORWARD = """
import sys, ray
from sweep.execute.cluster import ClusterConfig, connect
connect(ClusterConfig(num_cpus=1, dashboard=False, log_file=sys.argv[1]))
@ray.remote
def shout():
    print("out from a worker"); print("err from a worker", file=sys.stderr)
ray.get(shout.remote())
ray.shutdown()  # flushes what the workers printed to the driver
"""


def test_what_workers_print_goes_to_the_log_file_not_the_terminal(tmp_path):
    log_file = tmp_path / "logs" / "ray.log"
    driver = subprocess.run([str(BIN / "python"), "-c", FORWARD, str(log_file)], env=clean_env(), cwd=tmp_path,
                            capture_output=True, text=True, timeout=180)  # fmt: skip
    assert driver.returncode == 0, driver.stderr[-3000:]
    assert driver.stdout == "" and "from a worker" not in driver.stderr and "\x1b[" not in driver.stderr
    text = log_file.read_text()
    assert "out from a worker" in text and "err from a worker" in text and "\x1b[" not in text
