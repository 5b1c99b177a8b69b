"""Multi-node on one machine: a head and two worker nodes (``ray.cluster_utils.Cluster``); runs land on both
worker nodes, and removing one of them mid-sweep still completes the sweep, its lost runs retried elsewhere."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_sweep_survives_losing_a_worker_node(tmp_path):
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "tests.execute.multinode_sweep", str(tmp_path / "results")],
        cwd=root, env={**os.environ, "RAY_AUTH_MODE": "disabled"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT ")).removeprefix("RESULT "))
    assert report["statuses"] == {"completed": 8} and report["n_runs"] == 8
    assert set(report["nodes_seen"]) == {report["keep"], report["lose"]}  # runs landed on both worker nodes
    lost = report["in_flight_on_removed_node"]
    assert lost >= 1  # the removal cut runs short...
    assert report["finished_after_removal"]["removed"] == 0  # ...nothing finished on the removed node after it...
    assert report["finished_after_removal"]["kept"] >= lost  # ...and the lost runs were retried on the other one
    print(report)
