"""Run by tests/execute/test_multinode.py in its own process (it needs a Ray of its own): a sweep on a simulated
three-node cluster (``ray.cluster_utils.Cluster``: a head with no CPUs and two worker nodes), one worker node
removed mid-sweep. Prints one JSON line with what happened."""

import json
import socket
import sys
import threading
import time

import pandas as pd
import ray
from ray.cluster_utils import Cluster
from ray.util.state import list_tasks

from sweep.execute.cluster import ClusterConfig
from sweep.config import parse_config
from sweep.execute.orchestrate import run_sweep
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config


def free_port() -> int:
    """A port nobody listens on (the test session's own Ray may hold the dashboard's default 8265)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(results: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": True, "dashboard_port": free_port()})
    keep, lose = cluster.add_node(num_cpus=2), cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR")
    config = parse_config(
        tiny_config(
            name="multinode",
            budgets=[1.2e10, 1.6e10, 2e10, 2.4e10],
            model={"sizes": [3e3, 8e3]},
            training={"checkpoint_every_steps": 20, "log_every_steps": 10},
            resources={"max_retries": 3},
        )
    )
    store, outcome = ResultsStore(results), {}
    driver = threading.Thread(target=lambda: outcome.update(o=run_sweep(config, results, ClusterConfig(address=cluster.address))))
    driver.start()
    deadline = time.monotonic() + 240
    while set(store.read_runs("multinode")["node"]) != {keep.node_id, lose.node_id} and time.monotonic() < deadline:
        time.sleep(0.2)  # until runs have finished on both worker nodes
    # Our cluster's address: without it Ray's state API guesses one machine-wide and fails if other Rays run here.
    running = list_tasks(address=cluster.address, filters=[("state", "=", "RUNNING"), ("name", "=", "execute_run")])
    lost = [t.node_id for t in running if t.node_id == lose.node_id]
    removed_at = pd.Timestamp.now(tz="UTC")
    cluster.remove_node(lose)
    driver.join(timeout=300)
    runs = store.read_runs("multinode")
    after = runs[runs["finished_at"] > removed_at]
    print("RESULT " + json.dumps({
        "statuses": outcome["o"].statuses,
        "nodes_seen": sorted(set(runs["node"])),
        "keep": keep.node_id,
        "lose": lose.node_id,
        "in_flight_on_removed_node": len(lost),
        "finished_after_removal": {"kept": int((after["node"] == keep.node_id).sum()), "removed": int((after["node"] == lose.node_id).sum())},
        "n_runs": len(runs),
    }), flush=True)  # fmt: skip
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
