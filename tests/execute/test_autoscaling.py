"""On Ray's own fake autoscaling cluster (a 0-CPU head, up to three 1-CPU worker nodes, none at the start), a sweep
of six runs makes the autoscaler add nodes and lands runs on every worker node: the driver tells the autoscaler
about its whole queue (``request_resources``) instead of submitting only what fits the nodes of the moment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config
from tests.execute.fake_autoscaler import FakeAutoscalingCluster, six_three_seven_nine_is_free

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fake_cluster(tmp_path_factory):
    if not six_three_seven_nine_is_free():
        pytest.skip("port 6379 is taken on this machine; Ray's fake autoscaler's worker nodes only dial 6379")
    # A short base: Ray's socket paths under the temp dir must stay within the 107-byte AF_UNIX limit.
    cluster = FakeAutoscalingCluster(tmp_path_factory.mktemp("fa"), max_workers=3)
    try:
        cluster.start()
        yield cluster
    finally:
        assert cluster.stop() == []


def sweep_run(cluster: FakeAutoscalingCluster, config: dict, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    began = time.monotonic()
    driver = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "run", str(tmp_path / "sweep.yaml"), "--results", str(tmp_path / "results"),
         "--address", cluster.address],
        cwd=Path(__file__).resolve().parents[2], env=cluster.env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    return driver, time.monotonic() - began


def test_a_run_no_node_type_holds_waits_visibly_then_fails(fake_cluster, tmp_path):
    """A GPU run on a CPU-only autoscaling cluster: it may not be refused (OSS Ray does not publish the node types),
    so it waits, says so, and is recorded failed after resources.placement_timeout_seconds; exit 1."""
    config = tiny_config(name="gpu", budgets=[2e9], resources={"gpus_per_worker": 1, "placement_timeout_seconds": 5})
    driver, wall = sweep_run(fake_cluster, config, tmp_path)
    assert driver.returncode == 1, driver.stderr[-3000:]
    assert "waiting for the autoscaler to add nodes: 2 runs" in driver.stderr
    runs = ResultsStore(str(tmp_path / "results")).read_runs("gpu")
    assert set(runs["status"]) == {"failed"} and runs["error"].str.contains("1 worker of 1 CPU \\+ 1 GPU").all()
    assert wall < 120


def test_sweep_scales_an_autoscaling_cluster_up_and_uses_every_node(fake_cluster, tmp_path):
    config = tiny_config(name="autoscale", budgets=[6e9, 8e9, 1e10], training={"checkpoint_every_steps": 0})
    driver, wall = sweep_run(fake_cluster, config, tmp_path)
    results = tmp_path / "results"
    assert driver.returncode == 0, driver.stderr[-3000:]
    runs = ResultsStore(str(results)).read_runs("autoscale")
    nodes = set(runs["node"])
    print(f"{len(runs)} runs on {len(nodes)} worker nodes in {wall:.1f} s: {sorted(nodes)}")
    print("\n".join(line for line in driver.stderr.splitlines() if line.startswith("[sweep")))
    assert len(runs) == 6 and set(runs["status"]) == {"completed"}
    assert len(nodes) == 3  # the autoscaler grew the cluster to its maximum and every worker node trained runs
