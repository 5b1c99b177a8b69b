"""Ledger and metrics reads: validated file-by-file reads against pyarrow's one-shot dataset read, same process.

``ResultsStore.read_runs`` / ``read_metrics`` read each file on its own and check it (``sweep.results.validation``)
so that one damaged file is skipped and named instead of failing the read or turning into a row of nulls. The
baseline is what the store did before: one ``pyarrow.dataset`` read of the whole folder with the declared schema
(no checks). A synthetic results root of ``--runs`` runs (one ledger file and one metrics file of ``--rows`` rows
each) is written once to a temporary local directory; both readers then run alternately, ``--repeats`` times each,
and the table gives the median seconds and the ratio (validated / baseline).

    python benchmarks/ledger_read.py [--runs 2000] [--rows 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.results.storage import METRICS_SCHEMA, RUNS_SCHEMA, ResultsStore  # noqa: E402

SWEEP = "bench"


def write_root(root: Path, runs: int, rows: int) -> ResultsStore:
    store, now = ResultsStore(root), datetime.now(timezone.utc)
    for i in range(runs):
        run_id = f"run{i:06d}"
        store.write_metrics(SWEEP, run_id, [
            {"step": s, "tokens": 512 * s, "flops": 1e6 * s, "train_loss": 3.0, "eval_loss": 2.0 if s == rows else None,
             "lr": 1e-3, "grad_norm": 1.0, "tokens_per_second": 1e4, "wall_seconds": 0.1 * s}
            for s in range(1, rows + 1)
        ])  # fmt: skip
        store.write_run(SWEEP, {
            "run_id": run_id, "status": "completed", "n_params": 1000, "n_params_nonembedding": 800, "tokens": 4096,
            "flops": 1e9, "flops_budget": 1e9, "seed": 0, "final_eval_loss": 2.0, "steps": rows, "started_at": now,
            "finished_at": now,
        })  # fmt: skip
    return store


def baseline_read(store: ResultsStore, dataset: str, schema: pa.Schema) -> int:
    """The store's read before issue 9: one dataset scan of the sweep's folder, no per-file checks."""
    path = f"{store.base}/{dataset}/sweep={SWEEP}"
    return ds.dataset(path, filesystem=store.fs, format="parquet", schema=schema).to_table().to_pandas().shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        store = write_root(Path(directory), args.runs, args.rows)
        print(f"{args.runs} runs x {args.rows} metrics rows written in {time.perf_counter() - started:.1f} s (local disk)")
        readers = {
            ("ledger", "baseline"): lambda: baseline_read(store, "runs", RUNS_SCHEMA),
            ("ledger", "validated"): lambda: len(ResultsStore(store.root).read_runs(SWEEP)),
            ("metrics", "baseline"): lambda: baseline_read(store, "metrics", METRICS_SCHEMA),
            ("metrics", "validated"): lambda: len(ResultsStore(store.root).read_metrics(SWEEP)),
        }
        times: dict[tuple[str, str], list[float]] = {key: [] for key in readers}
        for _ in range(args.repeats):  # alternated: each repeat runs every reader once
            for key, read in readers.items():
                started = time.perf_counter()
                count = read()
                times[key].append(time.perf_counter() - started)
                assert count == (args.runs if key[0] == "ledger" else args.runs * args.rows), (key, count)
        print(f"{'read':<10}{'baseline s':>12}{'validated s':>13}{'ratio':>8}   (median of {args.repeats})")
        for dataset in ("ledger", "metrics"):
            base = statistics.median(times[(dataset, "baseline")])
            ours = statistics.median(times[(dataset, "validated")])
            print(f"{dataset:<10}{base:>12.3f}{ours:>13.3f}{ours / base:>8.2f}")


if __name__ == "__main__":
    main()
