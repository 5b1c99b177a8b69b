"""The driver at real durations, on a simulated clock and cluster (``tests/execute/simulated.py``): trunks of hours
whose readouts wait on them and not on nodes, nodes that join after 15 minutes, a week-long sweep whose driver is
killed half way, stages of ``model.sizes: auto``, a stop request hours in; every timer of the loop at its cadence."""

from __future__ import annotations

import os
import re
import signal

import pandas as pd
import pytest

from sweep.config import parse_config
from sweep.execute.orchestrate import prepare_plan, run_sweep
from sweep.execute.progress import LINE_EVERY_SECONDS, read_status
from sweep.execute.schedule import Resources
from sweep.execute.status import sweep_status
from sweep.execute.stop import SweepStopped
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config
from tests.execute.simulated import DriverKilled, SimClock, SimCluster, paced_as_planned

HOUR = 3600.0


def wsd_config(schedule: str = "wsd", **resources) -> dict:
    """The issue's repro: the demo-like ladder on wsd, 3 budgets x 2 sizes: 2 trunks, 6 readouts."""
    return tiny_config(name=f"{schedule}-slow-trunk", budgets=[2e9, 4e9, 8e9],
                       training={"schedule": schedule, "checkpoint_every_steps": 20},
                       resources={"placement_timeout_seconds": 900, **resources})  # fmt: skip


def simulate(config, tmp_path, hours_for_largest: float, nodes=(Resources(2, 0),), **cluster) -> tuple[SimCluster, SimClock]:
    """A simulated cluster of ``nodes`` for ``config``'s plan, its longest run taking ``hours_for_largest`` hours."""
    clock = SimClock()
    pace = paced_as_planned(config.resources, prepare_plan(config).runs, hours_for_largest)
    return SimCluster(clock, str(tmp_path), list(nodes), pace, **cluster), clock


def ledger(tmp_path, sweep: str):
    return ResultsStore(str(tmp_path)).read_runs(sweep).set_index("run_id")


@pytest.mark.parametrize("schedule", ["wsd", "wsds"])
def test_readouts_wait_on_hours_long_trunks_not_for_nodes(tmp_path, capsys, schedule):
    """The issue's repro at GPU durations: trunks of 6 simulated hours, branch points hours apart, the default
    placement timeout of 15 minutes. Every readout completes, none is recorded Unplaceable, each starts once its
    branch point exists, and the log says what each trunk's readouts wait on."""
    config = parse_config(wsd_config(schedule))
    sim, clock = simulate(config, tmp_path, hours_for_largest=6)
    plan = prepare_plan(config)
    seen, wait = [], sim.wait

    def wait_and_look(handles, timeout_seconds):  # `sweep status` an hour in
        if clock.t > HOUR and not seen:
            seen.append(sweep_status(ResultsStore(str(tmp_path)), config.name)["sweeps"][0])
        return wait(handles, timeout_seconds)

    sim.wait = wait_and_look
    outcome = run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    runs = ledger(tmp_path, config.name)
    assert outcome.statuses == {"completed": len(plan.runs)} and len(plan.runs) == 8, runs["error"].dropna().tolist()
    assert set(runs["status"]) == {"completed"}
    trunks = {s.run_id: s for s in plan.runs if s.parent_run_id is None}
    assert clock.t > 4 * HOUR  # the trunks trained for hours, in seconds of real time
    for spec in plan.runs:
        if spec.parent_run_id is not None:  # a readout starts after its branch point was written, from it
            trunk = trunks[spec.parent_run_id]
            first_step = runs.loc[trunk.run_id, "started_at"] + pd.Timedelta(seconds=sim.startup_seconds)
            branch_written = first_step + pd.Timedelta(seconds=spec.branch_step * sim.seconds_per_step(trunk))
            assert runs.loc[spec.run_id, "started_at"] >= branch_written - pd.Timedelta(milliseconds=1)  # rows keep µs
            assert runs.loc[spec.run_id, "resumed_from_step"] == spec.branch_step
    err = capsys.readouterr().err
    assert "Unplaceable" not in err and "waiting for the autoscaler" not in err
    waits = [line for line in err.splitlines() if "wait for their trunks' branch points" in line]
    assert waits and re.search(r"readout @\d+ of trunk [0-9a-f]{8}: trunk (queued|starting|at step \d+)", waits[0]), err
    assert any("trunk at step" in line for line in waits), waits  # re-read every 10 minutes while the trunks train
    assert sim.started.count(next(iter(trunks))) == 1  # nothing trained twice
    waiting = seen[0]["waiting"]
    assert len(waiting) >= 3 and all(re.fullmatch(r"readout @\d+ of trunk [0-9a-f]{8}: trunk (at step \d+|starting)", why)
                                     for why in waiting.values()), waiting  # fmt: skip


def test_a_readout_recorded_unplaceable_by_an_older_driver_is_trained_by_the_next_run(tmp_path):
    """Which failed runs a rerun retries: every run not finished (completed or diverged), so a readout that an
    older driver recorded failed as Unplaceable while its trunk trained is trained by the next ``sweep run``."""
    from sweep.training.worker import failed_outcome, ledger_row

    config = parse_config(wsd_config())
    plan = prepare_plan(config)
    store = ResultsStore(str(tmp_path))
    readout = next(s for s in plan.runs if s.parent_run_id is not None)
    sim, clock = simulate(config, tmp_path, hours_for_largest=2)
    error = "Unplaceable: no node could hold 1 worker of 1 CPU within resources.placement_timeout_seconds = 5 s (largest node: 2 CPU)"
    store.write_run(config.name, ledger_row(readout, failed_outcome(store, readout, error), clock.now(), clock.now(), node=None))
    outcome = run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    assert outcome.statuses == {"completed": len(plan.runs)} and outcome.skipped_finished == 0
    assert ledger(tmp_path, config.name).loc[readout.run_id, "status"] == "completed"


def test_a_trunk_that_dies_fails_only_the_readouts_past_it_and_the_rerun_finishes(tmp_path, capsys):
    """A trunk whose worker dies between branch points: readouts whose branch point exists complete, the later
    ones are recorded failed naming the trunk (not left waiting, not trained from step 0); the rerun resumes the
    trunk from its checkpoint and trains the rest."""
    config = parse_config(wsd_config(max_retries=0))
    plan = prepare_plan(config)
    trunk = max((s for s in plan.runs if s.parent_run_id is None), key=lambda s: s.steps)
    readouts = sorted((s for s in plan.runs if s.parent_run_id == trunk.run_id), key=lambda s: s.branch_step)
    death = (readouts[0].branch_step + readouts[1].branch_step) // 2
    sim, clock = simulate(config, tmp_path, hours_for_largest=3, die_at={trunk.run_id: death}, checkpoint_every_steps=10)
    outcome = run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    runs = ledger(tmp_path, config.name)
    assert runs.loc[trunk.run_id, "status"] == "failed" and runs.loc[readouts[0].run_id, "status"] == "completed"
    for later in readouts[1:]:
        assert runs.loc[later.run_id, "status"] == "failed"
        assert f"trunk {trunk.run_id} ended before branch step {later.branch_step}: failed" in runs.loc[later.run_id, "error"]
    assert outcome.failed == 1 + len(readouts) - 1
    again = run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    runs = ledger(tmp_path, config.name)
    assert set(runs["status"]) == {"completed"} and again.statuses == {"completed": len(readouts)}
    assert runs.loc[trunk.run_id, "resumed_from_step"] == death - death % 10  # from its newest checkpoint


def _gpu_config(**resources) -> dict:
    return tiny_config(name="gpus", budgets=[2e9, 4e9], resources={"gpus_per_worker": 1, **resources})


def test_runs_wait_for_nodes_that_join_after_15_minutes(tmp_path, capsys):
    """An autoscaling cluster whose GPU nodes take 15 minutes to join: with a 20-minute placement timeout every run
    trains; the waiting line comes once, then every 60 s while runs wait; capacity is re-read within seconds of
    the join, and the autoscaler is asked once per change of demand, then told nothing is wanted."""
    config = parse_config(_gpu_config(placement_timeout_seconds=1200))
    plan = prepare_plan(config)
    sim, clock = simulate(config, tmp_path, hours_for_largest=2, nodes=(Resources(4, 0),), node_type=Resources(8, 1),
                          join_seconds=900, max_nodes=2)  # fmt: skip
    sim.poll_seconds = 1.0  # Ray's: the waits below are checked to the second
    outcome = run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    runs = ledger(tmp_path, config.name)
    assert outcome.statuses == {"completed": len(plan.runs)}
    first_start = (runs["started_at"].min() - clock.origin).total_seconds()
    assert 900 <= first_start <= 900 + 2 + 1  # the node joined at 900 s; capacity re-read every 2 s, the poll 1 s
    err = capsys.readouterr().err
    waits = [line for line in err.splitlines() if "waiting for the autoscaler to add nodes" in line]
    assert len(waits) == 15, waits  # at 0 s, then every 60 s until the join at 900 s
    assert "waited 840 s of 1200 s" in waits[-1]
    assert sim.requests[0] == [{"CPU": 1, "GPU": 1}] * len(plan.runs) and sim.requests[-1] == []
    assert len(sim.requests) <= 2 * len(plan.runs) + 2


def test_runs_that_wait_past_the_placement_timeout_are_recorded_failed_then_trained_by_the_rerun(tmp_path):
    config = parse_config(_gpu_config(placement_timeout_seconds=600))
    plan = prepare_plan(config)
    sim, clock = simulate(config, tmp_path, hours_for_largest=2, nodes=(Resources(4, 0),), node_type=Resources(8, 1),
                          join_seconds=900, max_nodes=2)  # fmt: skip
    sim.poll_seconds = 1.0
    outcome = run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    runs = ledger(tmp_path, config.name)
    assert outcome.statuses == {"failed": len(plan.runs)} and runs["error"].str.contains("placement_timeout_seconds = 600 s").all()
    recorded = (runs["finished_at"] - clock.origin).dt.total_seconds()
    assert ((recorded >= 600) & (recorded <= 601)).all()
    again = run_sweep(config, str(tmp_path), backend=sim, clock=clock)  # the nodes have joined meanwhile
    assert again.statuses == {"completed": len(plan.runs)}


def test_a_week_long_sweep_whose_driver_is_killed_half_way_finishes_on_the_rerun(tmp_path, capsys):
    """Runs of up to 3 days on a 4-CPU cluster 11,000x slower than the plan assumes, the sweep about a week; the
    driver dies at 3.5 days (embedded Ray and its runs with it). The rerun trains only what is missing, resuming
    the runs in flight from their newest checkpoint; no run completes twice; the progress line comes every 10
    minutes. The time left holds within 10% from the first hour, before any run has completed (from the runs in
    flight's tokens/s), and from the restart on (from the speed measured before it), the status file rewritten at
    least every minute."""
    config = parse_config(tiny_config(name="week", budgets=[2e9, 4e9, 8e9, 1.6e10], model={"sizes": [3e3, 8e3, 2e4]},
                                      training={"seeds": [0, 1, 2], "checkpoint_every_steps": 20}))  # fmt: skip
    plan = prepare_plan(config)
    sim, clock = simulate(config, tmp_path, hours_for_largest=72, nodes=(Resources(4, 0),), poll_seconds=60.0, checkpoint_every_steps=20)
    total_hours = sum(sim.seconds_per_step(s) * s.training_steps for s in plan.runs) / HOUR
    assert 4 * 24 * 6 < total_hours < 4 * 24 * 8  # about a week of the cluster's 4 slots
    store, samples, wait = ResultsStore(str(tmp_path)), [], sim.wait

    def wait_and_read_the_status_file(handles, timeout_seconds):
        status = read_status(store, "week")
        if status is not None and (not samples or clock.t - samples[-1][0] >= 12 * HOUR):
            updated = (pd.Timestamp(status["updated_at"]) - clock.origin).total_seconds()
            samples.append((clock.t, status["seconds_left"], clock.t - updated))
        return wait(handles, timeout_seconds)

    sim.wait = wait_and_read_the_status_file
    sim.kill_at = 3.5 * 24 * HOUR
    with pytest.raises(DriverKilled):
        run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    before = ledger(tmp_path, "week")
    in_flight = {s.run_id for s in plan.runs if sim.checkpoints.newest_step(s.sweep, s.run_id) > 0}
    assert 0 < len(before) < len(plan.runs) and in_flight
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if re.search(r"runs \d+/\d+ done", line)]
    assert abs(len(lines) - 3.5 * 24 * HOUR / LINE_EVERY_SECONDS) <= 2, len(lines)
    restart_at = clock.t
    outcome = run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    runs = ledger(tmp_path, "week")
    assert set(runs["status"]) == {"completed"} and len(runs) == len(plan.runs)
    assert outcome.skipped_finished == len(before) and outcome.statuses == {"completed": len(plan.runs) - len(before)}
    assert all(sim.started.count(run_id) <= 2 for run_id in runs.index)
    assert all(runs.loc[run_id, "resumed_from_step"] > 0 for run_id in in_flight)
    assert clock.t < total_hours * HOUR / 4 + 36 * HOUR  # LPT on 4 slots, the kill costing what was in flight
    assert all(age <= 61 for _, _, age in samples[1:]), samples  # rewritten at least every minute
    end = clock.t
    for t, left, _ in samples[1:]:  # the first is the driver's start, before any run
        if t > restart_at:
            assert left == pytest.approx(end - t, rel=0.1), (t / HOUR, left / HOUR, (end - t) / HOUR)
        else:  # before the kill (whose cost is not the driver's to know): against the 4 slots' work left
            assert left == pytest.approx(total_hours * HOUR / 4 - t, rel=0.1), ([(a / HOUR, b / HOUR) for a, b, _ in samples], total_hours / 4, restart_at / HOUR)
    err = capsys.readouterr().err
    first_after = next(line for line in err.splitlines() if re.search(r"runs \d+/\d+ done", line))
    assert "their planned time" in first_after  # the restarted driver's first line knows the measured speed


def test_stages_of_sizes_auto_with_hours_long_runs(tmp_path, capsys):
    """``model.sizes: auto``: one invocation trains the smallest budget's runs (hours each), plans the next budget
    around their minimum, trains it, and so on."""
    config = parse_config(tiny_config(name="auto", budgets=[2e9, 8e9, 3.2e10], model={
        "sizes": "auto", "auto_sizes": {"first": [3e3, 3e4], "first_points": 3, "points": 3, "span": 4}}))  # fmt: skip
    plan = prepare_plan(config)
    sim, clock = simulate(config, tmp_path, hours_for_largest=3)
    outcome = run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    runs = ledger(tmp_path, "auto")
    assert outcome.statuses == {"completed": 9} and sorted(runs.groupby("flops_budget").size()) == [3, 3, 3]
    started = runs.groupby("flops_budget")["started_at"].min().sort_index()
    finished = runs.groupby("flops_budget")["finished_at"].max().sort_index()
    assert (started.iloc[1:].values >= finished.iloc[:-1].values).all()  # a budget waits for the smaller ones
    assert clock.t > 3 * HOUR and plan.pending


def test_a_stop_request_hours_in_records_the_runs_in_flight_interrupted(tmp_path, monkeypatch):
    """SIGTERM 5 simulated hours into a sweep of 8-hour runs: the runs in flight are cancelled and recorded
    interrupted with their checkpoints kept (exit 143); the rerun resumes them."""
    config = parse_config(tiny_config(name="stop", training={"checkpoint_every_steps": 20}))
    plan = prepare_plan(config)
    sim, clock = simulate(config, tmp_path, hours_for_largest=8, poll_seconds=30.0)
    wait = sim.wait

    def wait_then_signal(handles, timeout_seconds):
        ended = wait(handles, timeout_seconds)
        if clock.t >= 5 * HOUR and not getattr(sim, "signalled", False):
            sim.signalled = True
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises in the main thread: here
        return ended

    monkeypatch.setattr(sim, "wait", wait_then_signal)
    with pytest.raises(SweepStopped) as stopped:
        run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    assert stopped.value.exit_code == 143 and stopped.value.interrupted == 2
    runs = ledger(tmp_path, "stop")
    assert (runs["status"] == "interrupted").sum() == 2
    monkeypatch.setattr(sim, "wait", wait)
    outcome = run_sweep(config, str(tmp_path), backend=sim, clock=clock)
    assert set(ledger(tmp_path, "stop")["status"]) == {"completed"} and outcome.statuses == {"completed": len(plan.runs) - (runs["status"] == "completed").sum()}

