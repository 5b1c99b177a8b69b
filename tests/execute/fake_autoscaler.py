"""Ray's fake autoscaling cluster on this machine, for tests: a head with no CPUs whose autoscaler (Ray's own fake
multi-node provider) launches up to ``max_workers`` 1-CPU worker nodes as extra raylets when work waits.

Started with ``RAY_FAKE_CLUSTER=1 ray start --head --block --autoscaling-config=FILE`` (``ray.cluster_utils.
AutoscalingCluster`` does not work in the Ray 2.60 wheel). The fake workers always dial the GCS on port 6379, so the
head must listen there; ``six_three_seven_nine_is_free`` lets a test skip when another cluster holds it. Every other
port is a free one, the temp dir is the caller's, and ``stop`` ends exactly the processes this head started: the
``ray start`` process and its descendants (GCS, raylet, monitor, and the worker raylets the monitor launched, with
their workers), found from the PID this module spawned, never by name.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

GCS_PORT = 6379


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def six_three_seven_nine_is_free() -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", GCS_PORT))
        except OSError:
            return False
    return True


def autoscaling_config(max_workers: int) -> dict:
    """Ray's fake multi-node provider: a 0-CPU head and 0..max_workers nodes of 1 CPU."""
    return {
        "cluster_name": "fake", "max_workers": max_workers,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "ray.worker.cpu": {"resources": {"CPU": 1, "object_store_memory": 200_000_000}, "node_config": {},
                               "min_workers": 0, "max_workers": max_workers},
        },
        "head_node_type": "ray.head.default", "auth": {}, "upscaling_speed": 1.0, "idle_timeout_minutes": 5, "docker": {},
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
        "head_start_ray_commands": [], "worker_start_ray_commands": [], "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
    }  # fmt: skip


class FakeAutoscalingCluster:
    """``start`` it, join it at ``address`` (with ``env``), ``stop`` it."""

    def __init__(self, temp_dir: Path, max_workers: int = 3) -> None:
        self.temp_dir, self.max_workers = temp_dir, max_workers
        self.address = f"127.0.0.1:{GCS_PORT}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        self.env.pop("RAY_ADDRESS", None)
        self.head: subprocess.Popen | None = None

    def start(self, timeout_seconds: float = 120) -> None:
        config = self.temp_dir / "autoscaling.json"
        config.write_text(json.dumps(autoscaling_config(self.max_workers)))
        env = {**self.env, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "AUTOSCALER_METRIC_PORT": str(free_port())}
        ray = Path(sys.executable).with_name("ray")
        self.head = subprocess.Popen(
            [str(ray), "start", "--head", "--block", f"--port={GCS_PORT}", "--num-cpus=0", "--node-ip-address=127.0.0.1",
             f"--autoscaling-config={config}", f"--temp-dir={self.temp_dir / 'ray'}", "--include-dashboard=false",
             f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
             f"--metrics-export-port={free_port()}", "--disable-usage-stats"],
            env=env, stdout=open(self.temp_dir / "head.log", "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_seconds
        while "Ray runtime started" not in (self.temp_dir / "head.log").read_text():
            if self.head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fake autoscaling head did not start: {(self.temp_dir / 'head.log').read_text()[-2000:]}")
            time.sleep(0.5)

    def stop(self) -> list[int]:
        """End the head's process tree (worker nodes included); return the PIDs still alive afterwards (none)."""
        if self.head is None:
            return []
        try:
            tree = psutil.Process(self.head.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        for process in tree:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(tree, timeout=15)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        self.head.kill()  # `ray start --block` answers SIGTERM by draining for 30 s; its children are gone already
        self.head.wait(timeout=30)
        _, alive = psutil.wait_procs(tree, timeout=10)
        return [process.pid for process in alive]
