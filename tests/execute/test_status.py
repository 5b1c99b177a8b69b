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
