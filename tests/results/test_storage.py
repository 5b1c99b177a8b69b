"""Parquet results: declared columns, atomic writes, readable by pandas, pyarrow, DuckDB and Polars."""

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from sweep.results.storage import METRICS_SCHEMA, RUNS_SCHEMA, ResultsStore

REQUIRED_RUN_COLUMNS = (
    "sweep run_id status n_layer d_model n_head seq_len vocab_size n_params n_params_nonembedding tokens flops "
    "flops_budget lr batch_tokens seed final_train_loss final_eval_loss wall_seconds device started_at finished_at "
    "data_fingerprint error"
).split()
REQUIRED_METRIC_COLUMNS = "sweep run_id step tokens flops train_loss eval_loss lr grad_norm tokens_per_second wall_seconds".split()


def run_row(run_id: str, status: str = "completed", loss: float | None = 2.5) -> dict:
    now = datetime.now(timezone.utc)
    return {
        "run_id": run_id, "status": status, "n_layer": 2, "d_model": 64, "n_head": 4, "seq_len": 128,
        "vocab_size": 256, "n_params": 1000, "n_params_nonembedding": 800, "tokens": 4096, "flops": 1e9,
        "flops_budget": 1e9, "lr": 1e-3, "batch_tokens": 512, "seed": 0, "final_train_loss": loss,
        "final_eval_loss": loss, "wall_seconds": 1.5, "device": "cpu", "started_at": now, "finished_at": now,
        "data_fingerprint": "abc", "error": None,
    }  # fmt: skip


def metric_rows(n: int) -> list[dict]:
    return [
        {"step": s, "tokens": 512 * s, "flops": 1e6 * s, "train_loss": 3.0 - 0.1 * s, "eval_loss": None if s < n else 2.0,
         "lr": 1e-3, "grad_norm": 1.0, "tokens_per_second": 1e4, "wall_seconds": 0.1 * s}
        for s in range(1, n + 1)
    ]  # fmt: skip


@pytest.fixture
def store(tmp_path):
    store = ResultsStore(tmp_path / "results")
    store.write_metrics("alpha", "r1", metric_rows(3))
    store.write_run("alpha", run_row("r1"))
    store.write_run("alpha", run_row("r2", status="diverged", loss=None))
    store.write_metrics("beta", "r3", metric_rows(2))
    store.write_run("beta", run_row("r3", status="failed", loss=None))
    return store


def test_round_trip_has_every_column(store):
    runs = store.read_runs()
    assert set(REQUIRED_RUN_COLUMNS) <= set(runs.columns)
    assert sorted(runs["run_id"]) == ["r1", "r2", "r3"]
    r1 = runs.set_index("run_id").loc["r1"]
    assert r1["sweep"] == "alpha" and r1["final_eval_loss"] == 2.5 and r1["n_params"] == 1000
    metrics = store.read_metrics()
    assert set(REQUIRED_METRIC_COLUMNS) <= set(metrics.columns) and len(metrics) == 5
    assert store.read_runs("beta")["status"].tolist() == ["failed"]
    assert store.finished_run_ids("alpha") == {"r1", "r2"}


def test_read_run_reads_one_row_as_the_ledger_has_it(store):
    r2 = store.read_run("alpha", "r2")
    ledger = store.read_runs("alpha").set_index("run_id").loc["r2"]
    assert r2["status"] == ledger["status"] == "diverged" and r2["final_eval_loss"] is None
    assert r2["started_at"] == ledger["started_at"] and r2["n_params"] == ledger["n_params"]
    assert store.read_run("alpha", "r3") is None and store.read_run("gamma", "r1") is None  # other sweep, none


def test_rewrite_replaces_not_duplicates(store):
    store.write_metrics("alpha", "r1", metric_rows(4))
    store.write_run("alpha", run_row("r1", loss=2.0))
    assert len(store.read_runs("alpha")) == 2
    assert store.read_metrics("alpha")["step"].tolist() == [1, 2, 3, 4]


def test_no_temporary_files_left(store):
    assert [p for p in Path(store.base).rglob("*") if p.name.startswith(".")] == []


def test_empty_store_reads_empty_frames(tmp_path):
    store = ResultsStore(tmp_path / "none")
    assert store.read_runs().empty and store.finished_run_ids("x") == set()
    assert list(store.read_metrics().columns) == ["sweep", *METRICS_SCHEMA.names]


def test_invalid_rows_rejected(tmp_path):
    store = ResultsStore(tmp_path)
    with pytest.raises(ValueError, match="status"):
        store.write_run("s", {**run_row("x"), "status": "running"})
    with pytest.raises(ValueError, match="unknown ledger columns"):
        store.write_run("s", {**run_row("x"), "colour": "red"})


def test_readable_by_pandas_pyarrow_duckdb_polars(store):
    root = store.base
    frame = pd.read_parquet(f"{root}/runs")
    assert set(REQUIRED_RUN_COLUMNS) <= set(frame.columns) and len(frame) == 3
    table = ds.dataset(f"{root}/metrics", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 5 and "sweep" in table.column_names

    duckdb = pytest.importorskip("duckdb")
    count = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{root}/runs/*/*.parquet', hive_partitioning=true) WHERE sweep = 'alpha'"
    ).fetchall()[0][0]
    assert count == 2

    polars = pytest.importorskip("polars")
    metrics = polars.read_parquet(f"{root}/metrics/**/*.parquet", hive_partitioning=True)
    assert metrics.height == 5 and "sweep" in metrics.columns
    assert set(RUNS_SCHEMA.names) <= set(polars.read_parquet(f"{root}/runs/**/*.parquet", hive_partitioning=True).columns)


THROUGHPUT_COLUMNS = ("micro_batch_tokens", "precision", "compile", "lr_rule", "batch_rule", "warmup_steps", "warmup_tokens",
                      "beta1", "beta2", "weight_decay", "memory_estimate_bytes", "data_order", "workers",
                      "tokens_per_second", "model_flops_per_second", "peak_flops", "mfu")  # fmt: skip


def test_ledger_files_written_before_the_throughput_columns_still_read(tmp_path):
    """A file with the schema of before issue 8 (no throughput or how-it-trained columns) next to a new one: the
    ledger and ``read_run`` give the old row with those columns null, the new row with its values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert set(THROUGHPUT_COLUMNS) <= set(RUNS_SCHEMA.names)
    old_schema = pa.schema([field for field in RUNS_SCHEMA if field.name not in THROUGHPUT_COLUMNS])
    store = ResultsStore(tmp_path / "results")
    directory = Path(store.base) / "runs" / "sweep=old"
    directory.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([run_row("before")], schema=old_schema), directory / "before.parquet")
    store.write_run("old", {**run_row("after"), "precision": "bf16", "tokens_per_second": 2e4, "mfu": 0.4, "workers": 2})

    ledger = store.read_runs("old").set_index("run_id")
    assert set(THROUGHPUT_COLUMNS) <= set(ledger.columns)
    assert ledger.loc["before"][list(THROUGHPUT_COLUMNS)].isna().all()
    assert ledger.loc["before", "final_eval_loss"] == 2.5
    after = ledger.loc["after"]
    assert (after["precision"], after["tokens_per_second"], after["mfu"], after["workers"]) == ("bf16", 2e4, 0.4, 2)
    assert len(store.read_runs()) == 2  # every sweep, through the hive-partitioned dataset

    before = store.read_run("old", "before")
    assert before["status"] == "completed" and before["n_params"] == 1000
    assert all(before[column] is None for column in THROUGHPUT_COLUMNS)
    assert store.read_run("old", "after")["precision"] == "bf16"
    assert store.finished_run_ids("old") == {"before", "after"}


def test_a_damaged_file_is_named_once_and_the_rest_is_read(store):
    lines = []
    store = ResultsStore(store.root, warn=lines.append)
    directory = Path(store.base) / "runs" / "sweep=alpha"
    (directory / "r9.parquet").write_bytes(b"PAR1 not really")
    runs = store.read_runs()
    assert sorted(runs["run_id"]) == ["r1", "r2", "r3"]
    store.read_runs("alpha")
    assert len(lines) == 1 and str(directory / "r9.parquet") in lines[0] and "not a readable Parquet file" in lines[0]
    assert store.read_run("alpha", "r9") is None


def test_a_foreign_table_never_becomes_a_row(store):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = []
    store = ResultsStore(store.root, warn=lines.append)
    pq.write_table(pa.table({"run_id": ["r7"], "status": ["completed"], "flops": ["1e9"]}), Path(store.base) / "runs" / "sweep=alpha" / "r7.parquet")
    pq.write_table(pa.table({"x": [1]}), Path(store.base) / "runs" / "sweep=alpha" / "r8.parquet")
    assert sorted(store.read_runs("alpha")["run_id"]) == ["r1", "r2"]
    assert any("column flops is string, not double" in line for line in lines)
    assert any("unknown column 'x'" in line for line in lines)


def test_a_copied_ledger_file_is_not_counted_twice(store):
    directory = Path(store.base) / "runs" / "sweep=alpha"
    (directory / "r1 (copy).parquet").write_bytes((directory / "r1.parquet").read_bytes())
    (directory / "r1-copy.parquet").write_bytes((directory / "r1.parquet").read_bytes())
    quiet = ResultsStore(store.root, warn=lambda line: None)
    assert quiet.read_runs("alpha")["run_id"].tolist().count("r1") == 1
    assert all("r1" in path for path in quiet.damaged)


def test_writes_refuse_what_reads_would_set_aside(store):
    with pytest.raises(ValueError, match="without a finite final_eval_loss"):
        store.write_run("alpha", run_row("r5", loss=None))
    with pytest.raises(ValueError, match="status"):
        store.write_run("alpha", run_row("r5", status="done"))


def test_metrics_of_another_run_or_out_of_order_are_damaged(store):
    import pyarrow as pa
    import pyarrow.parquet as pq

    quiet = ResultsStore(store.root, warn=lambda line: None)
    directory = Path(store.base) / "metrics" / "sweep=alpha"
    rows = [{"run_id": "r1", **row} for row in metric_rows(3)]
    pq.write_table(pa.Table.from_pylist(rows, schema=METRICS_SCHEMA), directory / "r2.parquet")  # r1's rows
    pq.write_table(pa.Table.from_pylist(rows[::-1], schema=METRICS_SCHEMA), directory / "r1.parquet")  # steps 3, 2, 1
    assert quiet.read_metrics("alpha").empty
    reasons = sorted(d.reason for d in quiet.damaged.values())
    assert reasons[0].startswith("holds rows of run(s) 'r1'") and reasons[1].startswith("steps are not positive")
