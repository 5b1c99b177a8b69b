"""Can any node ever hold a run: the pure decision, the up-front refusal (exit 2) and the bounded wait for nodes."""

from __future__ import annotations

import pytest

from sweep.cli import main
from sweep.config import parse_config
from sweep.execute.backend import RayBackend
from sweep.execute.orchestrate import SweepOutcome, prepare_plan, run_planned
from sweep.execute.placement import (
    AutoscalerView, CapacityRequest, ClusterAccess, Placement, PlacementWaits, RunDemand, Unplaceable, placement,
    refuse_unplaceable, workers_per_node,
)  # fmt: skip
from sweep.execute.schedule import Resources
from sweep.results.storage import ResultsStore
from sweep.training.checkpoint import CheckpointStore
from tests.conftest import tiny_config

FIXED = AutoscalerView(False, None, "test")
GROWS_UNKNOWN = AutoscalerView(True, None, "test")


def test_a_node_holds_as_many_workers_as_its_scarcest_resource_allows():
    assert workers_per_node(Resources(8, 2), Resources(2, 1)) == 2
    assert workers_per_node(Resources(8, 0), Resources(2, 0)) == 4
    assert workers_per_node(Resources(8, 0), Resources(1, 1)) == 0
    assert workers_per_node(Resources(0.3, 0), Resources(0.1, 0)) == 3  # no float floor surprise


@pytest.mark.parametrize(
    ("demand", "nodes", "scaler", "expected"),
    [
        (RunDemand(1, Resources(1, 0)), [Resources(2, 0)], FIXED, Placement.NOW),
        (RunDemand(1, Resources(1, 1)), [Resources(2, 0)], FIXED, Placement.NEVER),  # gpus_per_worker on a CPU machine
        (RunDemand(1, Resources(1e6, 0)), [Resources(2, 0)], FIXED, Placement.NEVER),
        # per node, not cluster totals: 3 CPUs over two 2-CPU nodes is no 3-CPU node
        (RunDemand(1, Resources(3, 0)), [Resources(2, 0), Resources(2, 0)], FIXED, Placement.NEVER),
        # a DDP run's workers may spread (PACK is soft), but each must fit a node
        (RunDemand(2, Resources(2, 0)), [Resources(2, 0), Resources(3, 0)], FIXED, Placement.NOW),
        (RunDemand(3, Resources(2, 0)), [Resources(2, 0), Resources(3, 0)], FIXED, Placement.NEVER),
        # autoscaling: wait when a node type might hold it (or the types are unknown), never when none would
        (RunDemand(1, Resources(1, 0)), [Resources(0, 0)], GROWS_UNKNOWN, Placement.WAIT),
        (RunDemand(2, Resources(4, 1)), [Resources(0, 0)], AutoscalerView(True, ((Resources(8, 1), 4),)), Placement.WAIT),
        (RunDemand(2, Resources(4, 1)), [Resources(0, 0)], AutoscalerView(True, ((Resources(8, 1), 1),)), Placement.NEVER),
        (RunDemand(1, Resources(1, 8)), [Resources(0, 0)], AutoscalerView(True, ((Resources(8, 4), -1),)), Placement.NEVER),
    ],
)  # fmt: skip
def test_placement(demand, nodes, scaler, expected):
    assert placement(demand, nodes, scaler) is expected


def _plan(tmp_path, **resources):
    config = parse_config(tiny_config(resources=resources, budgets=[2e9]))
    return config, prepare_plan(config)


def test_refusal_names_the_run_its_demand_and_the_largest_node(tmp_path):
    config, plan = _plan(tmp_path, gpus_per_worker=1)
    with pytest.raises(Unplaceable) as error:
        refuse_unplaceable(plan.runs, [Resources(2, 0)], FIXED)
    message = str(error.value)
    assert plan.runs[0].run_id in message and "needs 1 worker of 1 CPU + 1 GPU" in message and "largest node has 2 CPU + 0 GPU" in message
    assert "1 more run likewise" in message and "\n" not in message
    refuse_unplaceable(plan.runs, [Resources(2, 0)], GROWS_UNKNOWN)  # may grow: no refusal


@pytest.mark.parametrize("resources", [{"gpus_per_worker": 1}, {"cpus_per_worker": 4096}])
def test_sweep_run_refuses_a_run_no_node_can_hold(ray_session, tmp_path, capsys, resources):
    config = tmp_path / "sweep.yaml"
    config.write_text(__import__("yaml").safe_dump(tiny_config(resources=resources)))
    status = main(["run", str(config), "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("sweep: error:")]
    assert status == 2, err
    assert len(errors) == 1 and "no node will ever hold it" in errors[0] and "largest node has 2 CPU" in errors[0], err
    assert "Traceback" not in err
    assert ResultsStore(str(tmp_path / "results")).read_runs("tiny").empty  # nothing trained, nothing recorded


def test_a_run_waiting_for_nodes_times_out_failed_and_the_sweep_goes_on(tmp_path, capsys):
    """An autoscaling cluster (stand-in) whose nodes never grow: the runs wait visibly, then are recorded failed."""
    config, plan = _plan(tmp_path, gpus_per_worker=1, placement_timeout_seconds=2)
    requested: list[list[dict]] = []
    cluster = ClusterAccess(nodes=lambda: [Resources(2, 0)], autoscaler=lambda: GROWS_UNKNOWN, request=requested.append)
    store, outcome = ResultsStore(str(tmp_path / "results")), SweepOutcome(len(plan.runs), 0)

    def start(spec, root, retries):
        raise AssertionError("nothing may start")

    first = plan.runs[0]
    CheckpointStore(store).save(first.sweep, first.run_id, 3, {"step": 3})  # from an earlier invocation
    run_planned(config, store, plan, plan.runs, {"pid": 0}, outcome, RayBackend(start, cluster))
    assert outcome.statuses == {"failed": 2}
    runs = store.read_runs("tiny")
    assert set(runs["status"]) == {"failed"} and runs["error"].str.contains("placement_timeout_seconds = 2 s").all()
    # What they spent: the run's newest checkpoint (trained by an earlier invocation), none for the other.
    spent = runs.set_index("run_id")[["steps_done", "flops_spent"]].T.to_dict("list")
    assert spent == {first.run_id: [3, 3 * first.batch_tokens * first.flops_per_token], plan.runs[1].run_id: [0, 0.0]}
    assert requested == [[{"CPU": 1, "GPU": 1}] * 2, []]  # the autoscaler saw both runs' demand, then it was withdrawn
    assert "waiting for the autoscaler to add nodes: 2 runs" in capsys.readouterr().err


def test_waits_are_reported_once_then_every_interval(monkeypatch):
    now, reports = [0.0], []
    _, plan = _plan(None, gpus_per_worker=1)
    waits = PlacementWaits(timeout_seconds=100, report_every_seconds=60, clock=lambda: now[0])
    monkeypatch.setattr("sweep.execute.placement.log", reports.append)
    for t in (0, 10, 59, 61, 70, 100):
        now[0] = t
        expired = waits.update(plan.runs, [Resources(2, 0)])
    assert len(reports) == 2 and expired == plan.runs  # at 0 and at 61; at 100 both ran out of time


def test_capacity_request_asks_only_on_change_and_clears():
    _, plan = _plan(None)
    asked: list = []
    request = CapacityRequest(asked.append)
    request.update(plan.runs)
    request.update(plan.runs)
    request.update(plan.runs[:1])
    request.clear()
    assert asked == [[{"CPU": 1}, {"CPU": 1}], [{"CPU": 1}], []]


@pytest.mark.slow
def test_sweep_run_as_a_user_runs_it_refuses_in_one_line(tmp_path):
    """The same refusal from a fresh process that starts its own embedded Ray, as a user would run it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    config = tmp_path / "sweep.yaml"
    config.write_text(__import__("yaml").safe_dump(tiny_config(resources={"cpus_per_worker": 4096})))
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"} | {"RAY_AUTH_MODE": "disabled"}
    result = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "run", str(config), "--results", str(tmp_path / "results")],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("sweep: error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(errors) == 1 and "needs 1 worker of 4096 CPU;" in errors[0] and "cannot grow" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "results" / "runs").exists()


def test_a_read_only_monitor_is_no_autoscaler():
    """The v1 monitor's report as Ray 2.60 writes it: ``node_<id>`` placeholder types without an autoscaling config
    (``ray.init()``, ``ray start`` without one), the config's node types with one (the fake autoscaler's head)."""
    from sweep.execute.placement import _v1_has_node_types

    node = "c9fe008a6c6897eae078d00d1728b0d0ccd24e01c402ecad1cfb52be"
    assert not _v1_has_node_types({"node_type_mapping": {node: f"node_{node}"}})
    assert _v1_has_node_types({"node_type_mapping": {node: "ray.head.default"}})
    assert not _v1_has_node_types({"node_type_mapping": None})


def test_a_run_passed_twice_is_never_in_flight_twice(ray_session, tmp_path):
    import ray

    config, plan = _plan(tmp_path)
    started: list[str] = []

    def start(spec, root, retries):
        started.append(spec.run_id)
        return ray.put({"status": "completed", "run_id": spec.run_id, "final_eval_loss": 2.0, "wall_seconds": 0.0})

    cluster = ClusterAccess(nodes=lambda: [Resources(2, 0)], autoscaler=lambda: FIXED, request=lambda bundles: None)
    store, outcome = ResultsStore(str(tmp_path / "results")), SweepOutcome(len(plan.runs), 0)
    run_planned(config, store, plan, [*plan.runs, *plan.runs], {"pid": 0}, outcome, RayBackend(start, cluster))
    assert sorted(started) == sorted(s.run_id for s in plan.runs) and outcome.statuses == {"completed": len(plan.runs)}


def _dies() -> None:
    raise RuntimeError("worker lost")


def test_a_run_whose_worker_dies_is_recorded_failed_with_what_its_checkpoints_hold(ray_session, tmp_path, monkeypatch):
    """``_result``: past Ray's retries, the driver writes the failed row; FLOPs count the run's newest checkpoint,
    and the progress starts from what the finished runs spent (``spent``), not from their plan."""
    import ray

    from sweep.execute.progress import Progress

    config, plan = _plan(tmp_path)
    finished, dead = plan.runs
    store, outcome = ResultsStore(str(tmp_path / "results")), SweepOutcome(len(plan.runs), 1)
    CheckpointStore(store).save(dead.sweep, dead.run_id, 4, {"step": 4})
    counted: list[float] = []

    class Recorded(Progress):
        def close(self) -> None:
            counted.append(self.flops_done)
            super().close()

    monkeypatch.setattr("sweep.execute.orchestrate.Progress", Recorded)
    cluster = ClusterAccess(nodes=lambda: [Resources(2, 0)], autoscaler=lambda: FIXED, request=lambda bundles: None)
    start = lambda spec, root, retries: ray.remote(_dies).options(max_retries=0).remote()  # noqa: E731
    run_planned(config, store, plan, [dead], {"pid": 0}, outcome, RayBackend(start, cluster), spent={finished.run_id: 7.0})
    row = store.read_run(dead.sweep, dead.run_id)
    spent = 4 * dead.batch_tokens * dead.flops_per_token
    assert outcome.statuses == {"failed": 1} and row["status"] == "failed" and "worker lost" in row["error"]
    assert row["steps_done"] == 4 and row["flops_spent"] == spent and row["node"] is None
    assert counted == [7.0 + spent]
