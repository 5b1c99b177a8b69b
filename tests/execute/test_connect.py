"""Joining a real token-authenticated Ray cluster (``ray start --head`` on 127.0.0.1, Ray 2.60's defaults): a sweep
joins it with the token on this machine and records its runs there; a wrong token or a dead address is one line
and exit 5, within seconds. Each test stops exactly the processes it started (its ``ray start --block`` and that
process's descendants), never by name."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import yaml

from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
# Every port `ray start --head` would otherwise take at a fixed default (6379, 10001, 52365, ...): other Rays share
# this machine. The rest (workers, metrics agent) Ray picks at random.
PORT_FLAGS = ("ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
              "runtime-env-agent-port", "node-manager-port", "object-manager-port")  # fmt: skip


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the test session's Ray settings (conftest turns token auth off for its own Ray)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    return {**env, "PATH": f"{BIN}:{env.get('PATH', '')}", **extra}


def stop_tree(pid: int, timeout: float = 30.0) -> list[psutil.Process]:
    """SIGTERM a process we started and every descendant of it, then SIGKILL what is left; returns what was alive."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=10)
    return procs


def node_ids(address: str) -> set[str]:
    """Node ids of the cluster at ``address`` (the head this module started), asked of its GCS with the token."""
    probe = "import json, sys, ray; ray.init(address=sys.argv[1], logging_level='ERROR'); print(json.dumps([n['NodeID'] for n in ray.nodes()]))"
    result = subprocess.run([sys.executable, "-c", probe, address], env=clean_env(RAY_AUTH_MODE="token"),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def wait_listening(port: int, deadline_s: float = 120.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A real Ray head (token auth on, as `ray start` defaults) on 127.0.0.1 with 2 CPUs; yields (address, pid)."""
    tmp = tmp_path_factory.mktemp("head")
    port = free_port()
    command = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
               f"--temp-dir={tmp / 'ray'}", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
               *(f"--{flag}={free_port()}" for flag in PORT_FLAGS)]  # fmt: skip
    head = subprocess.Popen(command, env=clean_env(), stdout=open(tmp / "head.log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_listening(port)
        yield f"127.0.0.1:{port}", head.pid
    finally:
        stop_tree(head.pid)
        head.wait(timeout=30)


def sweep_run(tmp_path: Path, address: str, env: dict[str, str], name: str = "joined") -> subprocess.CompletedProcess:
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config(name=name)))
    command = [str(BIN / "sweep"), "run", str(config), "--results", str(tmp_path / "results"), "--address", address]
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_sweep_joins_a_token_cluster_and_records_its_runs_there(tmp_path, ray_head):
    address, _ = ray_head
    result = sweep_run(tmp_path, address, clean_env())  # the token: ~/.ray/auth_token, written by `ray start`
    assert result.returncode == 0, result.stderr[-3000:]
    runs = ResultsStore(str(tmp_path / "results")).read_runs("joined")
    assert len(runs) == 4 and set(runs["status"]) == {"completed"}
    assert set(runs["node"]) <= node_ids(address)  # trained on the cluster's node, not an embedded Ray
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_sweep_tune_joins_a_token_cluster_and_trains_its_trials_there(tmp_path, ray_head):
    address, _ = ray_head
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump(tiny_config(name="joined", tune={
        "horizon": {"budget_flops": 2e9}, "sizes": [3e3], "n_trials": 2, "sampler": "random", "pruner": "none"})))  # fmt: skip
    command = [str(BIN / "sweep"), "tune", str(config), "--results", str(tmp_path / "results"), "--address", address, "--bootstrap", "0"]
    result = subprocess.run(command, env=clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = ResultsStore(str(tmp_path / "results" / "tune")).read_runs("joined-tune")
    assert len(trials) == 2 and set(trials["status"]) == {"completed"} and sorted(trials["trial"]) == [0, 1]
    assert set(trials["node"]) <= node_ids(address)  # trained on the cluster's node, not an embedded Ray
    assert "study joined-tune: 2 trials (2 complete)" in result.stdout and "Traceback" not in result.stderr


def test_a_wrong_token_is_one_line_and_exit_5(tmp_path, ray_head):
    address, _ = ray_head
    started = time.monotonic()
    result = sweep_run(tmp_path, address, clean_env(RAY_AUTH_TOKEN="0" * 32))
    assert result.returncode == 5, result.stderr[-3000:]
    assert time.monotonic() - started < 90  # Ray alone retries a refused token for minutes
    errors = [line for line in result.stderr.splitlines() if not line.startswith("[sweep ")]
    assert errors == [f"sweep: error: cannot connect to Ray at {address}: the cluster rejected the authentication "
                      "token from RAY_AUTH_TOKEN"]  # fmt: skip
    assert "0" * 32 not in result.stderr + result.stdout


def test_no_token_on_this_machine_is_one_line_naming_where_to_put_it(tmp_path, ray_head):
    address, _ = ray_head
    home = tmp_path / "home"  # a machine that never saw the head's ~/.ray/auth_token
    home.mkdir()
    result = sweep_run(tmp_path, address, clean_env(HOME=str(home)))
    assert result.returncode == 5, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if not line.startswith("[sweep ")]
    assert len(errors) == 1 and errors[0].startswith(f"sweep: error: cannot connect to Ray at {address}: the cluster "
                                                     "requires an authentication token and none was found")  # fmt: skip


def test_a_dead_address_is_one_line_and_exit_5(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = sweep_run(tmp_path, address, clean_env())
    assert result.returncode == 5, result.stderr[-3000:]
    assert time.monotonic() - started < 60  # a dead address used to hang for 80 s or more
    errors = [line for line in result.stderr.splitlines() if not line.startswith("[sweep ")]
    assert errors == [f"sweep: error: cannot connect to Ray at {address}: Connection refused"]


@pytest.mark.parametrize(("address", "cause"), [("junk", "not HOST:PORT, ray://HOST:PORT or auto"),
                                                ("nohost.invalid:6379", "")])  # fmt: skip
def test_an_address_that_names_no_server_is_refused_before_ray_starts(address, cause):
    from sweep.execute.cluster import ClusterUnreachable, _check_reachable

    with pytest.raises(ClusterUnreachable, match=f"^cannot connect to Ray at {re.escape(address)}: {re.escape(cause)}"):
        _check_reachable(address)  # (the resolver's own words for an unknown host vary)


@pytest.mark.slow
def test_embedded_sweep_never_joins_the_cluster_ray_start_recorded(tmp_path):
    """`ray start` records its cluster in RAY_TMPDIR/ray/ray_current_cluster, and a plain ray.init() joins it (a
    dead one included). An embedded sweep starts its own Ray all the same."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay under 107 bytes
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")  # a cluster long gone
        config = tmp_path / "sweep.yaml"
        config.write_text(yaml.safe_dump(tiny_config(name="own", budgets=[2e9], model={"sizes": [3e3]})))
        command = [str(BIN / "sweep"), "run", str(config), "--results", str(tmp_path / "results")]
        result = subprocess.run(command, env=clean_env(RAY_TMPDIR=str(ray_tmp)), cwd=tmp_path, capture_output=True,
                                text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert ResultsStore(str(tmp_path / "results")).read_runs("own")["status"].tolist() == ["completed"]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
