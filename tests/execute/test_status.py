"""``sweep status``: mean tokens/s and MFU of a sweep's completed runs, when recorded (older ledgers: none)."""

import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweep.cli import main
from sweep.execute.status import sweep_status
from sweep.results.storage import RUNS_SCHEMA, ResultsStore

NOW = datetime.now(timezone.utc)


def row(run_id, status="completed", **values):
    return {"run_id": run_id, "status": status, "flops": 1e9, "final_eval_loss": 2.0, "started_at": NOW, "finished_at": NOW, **values}


def test_status_shows_mean_throughput_and_mfu_of_completed_runs(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    store.write_run("fast", row("a", tokens_per_second=1e5, mfu=0.30))
    store.write_run("fast", row("b", tokens_per_second=3e5, mfu=0.50))
    store.write_run("fast", row("c", tokens_per_second=2e5))  # unknown peak: no MFU
    store.write_run("fast", row("d", status="failed", tokens_per_second=9e9, mfu=0.99))  # not completed: left out
    (entry,) = sweep_status(store)["sweeps"]
    assert entry["tokens_per_second_mean"] == pytest.approx(2e5) and entry["tokens_per_second_runs"] == 3
    assert entry["mfu_mean"] == pytest.approx(0.40) and entry["mfu_runs"] == 2

    assert main(["status", "--results", str(tmp_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["sweeps"][0]
    assert shown["tokens_per_second_mean"] == pytest.approx(2e5) and shown["mfu_mean"] == pytest.approx(0.40)
    assert main(["status", "--results", str(tmp_path)]) == 0
    assert "2e+05 tokens/s, MFU 40.0% (mean of completed runs)" in capsys.readouterr().out


def test_status_of_a_ledger_written_before_the_throughput_columns(tmp_path, capsys):
    old_schema = pa.schema([f for f in RUNS_SCHEMA if f.name not in ("tokens_per_second", "model_flops_per_second", "peak_flops", "mfu")])
    directory = tmp_path / "runs" / "sweep=old"
    directory.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row("x")], schema=old_schema), directory / "x.parquet")
    (entry,) = sweep_status(ResultsStore(tmp_path))["sweeps"]
    assert entry["counts"]["completed"] == 1
    assert entry["tokens_per_second_mean"] is None and entry["mfu_mean"] is None and entry["mfu_runs"] == 0
    assert main(["status", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "old: 1 completed" in out and "tokens/s" not in out and "MFU" not in out


def _planned(store, sweep, flops):
    """A driver's status file planning runs ``{run_id: flops}`` (no driver alive)."""
    status = {"sweep": sweep, "planned": [{"run_id": r, "flops": f} for r, f in flops.items()], "in_flight": [], "driver": {}}
    store.write_atomic(f"{store.base}/progress/sweep={sweep}.json", json.dumps(status).encode())


def test_flops_done_count_what_runs_spent_and_never_pass_the_plan(tmp_path):
    store = ResultsStore(tmp_path)
    _planned(store, "s", {"a": 1e9, "b": 1e9, "c": 1e9, "d": 1e9})
    store.write_run("s", row("a", steps=10, steps_done=10, flops_spent=1e9))
    store.write_run("s", row("b", status="diverged", final_eval_loss=None, steps_done=3, flops_spent=3e8))
    store.write_run("s", row("c", status="failed", final_eval_loss=None, steps_done=2, flops_spent=2e8))
    store.write_run("s", row("old", steps_done=10, flops_spent=5e9))  # finished under an earlier plan
    (entry,) = sweep_status(store)["sweeps"]
    assert entry["flops_done"] == pytest.approx(1.5e9) and entry["flops_planned"] == pytest.approx(4e9)
    assert entry["runs_outside_plan"] == 1 and entry["pending_runs"] == 2  # c failed: pending; d not started


def test_rows_written_before_flops_spent_count_completed_runs_whole_and_others_nothing(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_run("s", row("a"))
    store.write_run("s", row("b", status="diverged", final_eval_loss=None))
    (entry,) = sweep_status(store)["sweeps"]
    assert entry["flops_done"] == pytest.approx(1e9)


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe", b"[]", b'{"planned": [{"run_id": "a"}], "in_flight": []}',
                                     b'{"planned": [{"run_id": "a", "flops": "NaN"}], "in_flight": []}'])
def test_a_damaged_status_file_is_named_and_ignored(tmp_path, capsys, content):
    store = ResultsStore(tmp_path)
    store.write_run("s", row("a"))
    (tmp_path / "progress").mkdir()
    (tmp_path / "progress" / "sweep=s.json").write_bytes(content)
    report = sweep_status(store)
    assert report["sweeps"][0]["counts"]["completed"] == 1 and report["sweeps"][0]["planned_runs"] == 0
    assert any("sweep=s.json" in warning for warning in report["warnings"])
    assert main(["status", "--results", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "s: 1 completed" in out and err.count("\n") == 1 and "sweep=s.json" in err and "Traceback" not in err


def test_finished_runs_lacking_metrics_are_listed(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    rows = [{"step": s, "tokens": s, "flops": 1.0, "train_loss": 2.0, "eval_loss": 2.0} for s in (5, 10)]
    for run_id in ("whole", "short", "none"):
        store.write_run("s", row(run_id, steps=10))
    store.write_metrics("s", "whole", rows)
    store.write_metrics("s", "short", rows[:1])
    (entry,) = sweep_status(store)["sweeps"]
    assert entry["lacking_metrics"] == {"none": "no readable metrics file", "short": "metrics end at step 5 of 10"}
    assert main(["status", "--results", str(tmp_path)]) == 0
    assert "finished run short lacks its metrics (metrics end at step 5 of 10)" in capsys.readouterr().out


def test_status_says_what_each_waiting_readout_waits_on(tmp_path, capsys):
    """While a driver runs, ``sweep status`` lists the readouts waiting on their trunks, and on what."""
    from sweep.execute.lock import results_lock

    store = ResultsStore(tmp_path)
    with results_lock(store, sweep="wsd") as holder:
        status = {"sweep": "wsd", "planned": [{"run_id": r, "flops": 1e9} for r in ("t1", "r1", "r2")], "in_flight": ["t1"],
                  "waiting": {"r1": "readout @1626 of trunk f9dc7a23: trunk at step 900", "r2": "readout @3252 of trunk f9dc7a23: trunk at step 900"},
                  "driver": {k: holder[k] for k in ("pid", "host", "started_at")}}  # fmt: skip
        store.write_atomic(f"{store.base}/progress/sweep=wsd.json", json.dumps(status).encode())
        assert main(["status", "--results", str(tmp_path)]) == 0
        assert sweep_status(store, "wsd")["sweeps"][0]["waiting"] == status["waiting"]
    out = capsys.readouterr().out
    assert "  waiting: r1 (readout @1626 of trunk f9dc7a23: trunk at step 900)" in out and "  waiting: r2 (" in out
    assert sweep_status(store, "wsd")["sweeps"][0]["waiting"] == {}  # no driver: nothing waits
