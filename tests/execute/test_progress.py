"""Progress reporting and ``sweep status``: plain lines off a terminal, one live line on it, and the status file."""

import io
import json

import pytest

from sweep.cli import main
from sweep.config import parse_config
from sweep.planning.plan import plan_sweep
from sweep.execute.progress import Progress, read_status
from sweep.execute.status import sweep_status
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def plan():
    return plan_sweep(parse_config(tiny_config(name="prog")), vocab_size=256, data_fingerprint="f").runs


def test_plain_lines_off_a_terminal(plan, tmp_path):
    out = io.StringIO()
    progress = Progress(ResultsStore(tmp_path), "prog", plan, plan, {s.run_id: 1.0 for s in plan}, {"pid": 1}, out)
    progress.run_started(plan[0])
    progress.run_finished(plan[0], {"status": "completed", "final_eval_loss": 2.5, "wall_seconds": 3.0})
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "start" in lines[0] and f"C={plan[0].flops:.3g}" in lines[0]
    assert "[1/4] completed" in lines[1] and "eval_loss=2.5000" in lines[1] and "\r" not in out.getvalue()


def test_live_line_on_a_terminal(plan, tmp_path):
    out = Terminal()
    progress = Progress(ResultsStore(tmp_path), "prog", plan, plan[1:], {s.run_id: 10.0 for s in plan}, {"pid": 1}, out)
    progress.run_started(plan[1])
    text = out.getvalue()
    assert "\r" in text and "runs 1/4 done, 1 running" in text and "FLOPs" in text and "left ~" in text
    progress._write_status(force=True)  # the driver loop's refresh does this within a second
    status = read_status(ResultsStore(tmp_path), "prog")
    assert status["in_flight"] == [plan[1].run_id] and len(status["planned"]) == 4


def test_status_reports_counts_and_interrupted_runs(plan, tmp_path, capsys):
    store = ResultsStore(tmp_path)
    progress = Progress(store, "prog", plan, plan, {s.run_id: 1.0 for s in plan}, {"pid": -1}, io.StringIO())
    progress.run_started(plan[0])
    progress._write_status(force=True)  # the driver dies here: its status file still lists plan[0] in flight
    report = sweep_status(store)
    (entry,) = report["sweeps"]
    assert report["running"] is None and entry["planned_runs"] == 4 and entry["pending_runs"] == 4
    assert entry["in_flight"] == [] and entry["interrupted"] == [plan[0].run_id]
    assert entry["flops_planned"] == pytest.approx(sum(s.flops for s in plan)) and entry["flops_done"] == 0
    assert main(["status", "--results", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sweeps"][0]["sweep"] == "prog"
    assert main(["status", "--results", str(tmp_path)]) == 0
    assert "1 interrupted" in capsys.readouterr().out


def test_run_exits_1_when_runs_failed(monkeypatch, tmp_path):
    import yaml

    import sweep.execute.orchestrate
    from sweep.execute.orchestrate import SweepOutcome

    monkeypatch.setattr(sweep.execute.orchestrate, "run_sweep", lambda *a, **k: SweepOutcome(2, 0, {"completed": 1, "failed": 1}))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_config()))
    assert main(["run", str(path), "--results", str(tmp_path)]) == 1


def test_flops_done_are_what_runs_spent_not_what_they_planned(plan, tmp_path):
    out = Terminal()
    earlier = {plan[0].run_id: plan[0].flops / 4}  # diverged in an earlier invocation, after a quarter of its steps
    progress = Progress(ResultsStore(tmp_path), "prog", plan, plan[1:], {s.run_id: 1.0 for s in plan}, {"pid": 1}, out, spent=earlier)
    assert progress.flops_done == plan[0].flops / 4
    progress.run_finished(plan[1], {"status": "diverged", "final_eval_loss": None, "wall_seconds": 1.0,
                                    "error": "non-finite loss at step 3", "flops_spent": 123.0})  # fmt: skip
    progress.run_finished(plan[2], {"status": "failed", "final_eval_loss": None, "wall_seconds": 1.0, "error": "boom", "flops_spent": 0.0})
    progress.run_finished(plan[3], {"status": "completed", "final_eval_loss": 2.0, "wall_seconds": 1.0, "flops_spent": plan[3].flops})
    assert progress.flops_done == pytest.approx(plan[0].flops / 4 + 123.0 + plan[3].flops)
    text = out.getvalue()
    assert f"FLOPs {progress.flops_done:.3g}/{sum(s.flops for s in plan):.3g}" in text
    assert "non-finite loss at step 3; spent 123 FLOPs" in text and "boom; spent 0 FLOPs" in text
    assert "eval_loss=2.0000 (" in text  # a completed run's line is as before


def test_a_summary_without_flops_spent_counts_the_plan_when_finished_else_nothing(plan, tmp_path):
    progress = Progress(ResultsStore(tmp_path), "prog", plan, plan, {s.run_id: 1.0 for s in plan}, {"pid": 1}, io.StringIO())
    progress.run_finished(plan[0], {"status": "diverged", "final_eval_loss": None, "wall_seconds": 1.0})
    progress.run_finished(plan[1], {"status": "failed", "final_eval_loss": None, "wall_seconds": 1.0})
    assert progress.flops_done == plan[0].flops


def test_the_driver_starts_from_what_finished_runs_spent(plan, tmp_path):
    from datetime import datetime, timezone

    from sweep.execute.orchestrate import check_results
    from sweep.training.train import RunOutcome
    from sweep.training.worker import ledger_row

    store, now = ResultsStore(tmp_path), datetime.now(timezone.utc)
    store.write_run("prog", ledger_row(plan[0], RunOutcome("completed", final_eval_loss=2.0, steps_done=plan[0].steps), now, now, None))
    store.write_run("prog", ledger_row(plan[1], RunOutcome("diverged", steps_done=3), now, now, None))
    store.write_run("prog", ledger_row(plan[2], RunOutcome("failed", steps_done=2), now, now, None))  # not finished
    spent = check_results(store, plan, repair=False)
    assert spent == pytest.approx({plan[0].run_id: plan[0].flops, plan[1].run_id: 3 * plan[1].batch_tokens * plan[1].flops_per_token})
