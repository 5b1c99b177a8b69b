"""Results storage: the Parquet ledger of runs and the per-step metrics, with declared schemas and atomic writes.

Layout under a results root (a local directory or any URI pyarrow's filesystems open, e.g. ``s3://bucket/x``)::

    runs/sweep=NAME/RUN_ID.parquet      one row per run: the ledger (unique key: sweep, run_id)
    metrics/sweep=NAME/RUN_ID.parquet   one row per logged step (unique key: sweep, run_id, step)
    live/sweep=NAME/RUN_ID.parquet      a run in progress: the metrics rows so far (``sweep.training.live``),
                                        rewritten every few rows, dropped once the run's final metrics are written
    stop/sweep=NAME/RUN_ID              a request that a run in progress stop at its next evaluation (a tuning
                                        trial pruned by ``sweep tune``), dropped once the run is recorded
    sizes/sweep=NAME/BUDGET.json        ``model.sizes: auto``: the shapes a budget was given and why, written
                                        when ``sweep run`` first plans the budget, read by every later plan
    comparisons/NAME.json               ``sweep compare``'s verdict on sweep NAME (against which sweep, regression
                                        or not, why), read by ``sweep compare --last`` to find the last good night

Both datasets are Hive-partitioned by sweep; the ``sweep`` column comes from the directory name and is not stored
in the files (storing it twice makes pyarrow refuse to merge the schemas). Read them as they are::

    pandas.read_parquet("results/runs")                       # or pyarrow.dataset.dataset(..., partitioning="hive")
    duckdb.sql("FROM read_parquet('results/runs/*/*.parquet', hive_partitioning=true)")
    polars.read_parquet("results/runs/**/*.parquet", hive_partitioning=True)

Every file is written whole or not at all (``write_atomic``): on a local or shared filesystem under a temporary
name starting with ``.`` (which readers skip and ``*.parquet`` globs do not match), then renamed into place; on an
object store (S3, GCS) straight to its key, since a PUT is atomic there and a "rename" would be a copy. A run's metrics file is written before its
ledger row: the ledger row is the commit, and a rerun of a run without one overwrites its metrics file whole, so a
metrics row is never duplicated.

Each ledger row also records how the run trained (precision, micro-batch, compile, LR/batch rules, warm-up,
optimizer, workers) and its throughput: mean tokens/s, model FLOP/s under the run's own ``flops_convention``,
the device's peak and MFU (``sweep.training.hardware``). Columns added later read as null from older files
through ``ResultsStore``; other readers of a ledger that mixes old and new files take the schema of one file
(``pandas.read_parquet`` drops the newer columns), so ask them to merge by name (DuckDB: ``union_by_name=true``).

A root may carry credentials (``s3://KEY:SECRET@bucket/x``); ``ResultsStore.shown`` is the form of it that may be
printed (``sweep.results.uri.redact_uri``), an error opening it names only that form, and a ledger row's ``error``
is scrubbed of the root's secrets before it is written.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sweep.config import ConfigError
from sweep.results.quarantine import DamagedFile, quarantined, set_aside
from sweep.results.uri import redact_uri, scrub
from sweep.results.validation import (
    REQUIRED_METRIC_COLUMNS, REQUIRED_RUN_COLUMNS, conform, ledger_problem, metrics_problem, schema_problem,
)  # fmt: skip

TRUNK_SCHEDULES = ("wsd-trunk", "wsds-trunk")
"""Schedules of runs that only carry readouts (``sweep.planning.plan``): never fitted, never a point on a curve."""
RUN_STATUSES = ("completed", "diverged", "failed", "interrupted", "pruned")
"""``interrupted``: in flight when the driver was stopped by a signal (its checkpoints are kept; trained again).
``pruned``: a tuning trial Optuna's pruner stopped at an evaluation point (``sweep tune``; its partial curve kept)."""
FINISHED_STATUSES = ("completed", "diverged", "pruned")
"""Runs in these states are never trained again by ``sweep run``; ``failed`` and ``interrupted`` runs are."""

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""Sweep names and run ids as they appear in paths (``SweepConfig.name``'s rule)."""
_READERS = {"local": 4, "object store": 32}
"""Threads reading files at once: a few locally (parsing holds the GIL part of the time; 4 measured best on 2
cores, ``benchmarks/ledger_read.py``), many on an object store, where each file is a request's round trip."""
_OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})

RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("status", pa.string()),
        ("n_layer", pa.int32()),
        ("d_model", pa.int32()),
        ("n_head", pa.int32()),
        ("seq_len", pa.int32()),
        ("vocab_size", pa.int32()),
        ("n_params", pa.int64()),
        ("n_params_nonembedding", pa.int64()),
        ("tokens", pa.int64()),
        ("flops", pa.float64()),
        ("flops_budget", pa.float64()),
        ("flops_convention", pa.string()),
        ("flops_per_token", pa.float64()),
        ("flops_per_token_6n", pa.float64()),
        ("flops_per_token_6n_attention", pa.float64()),
        ("flops_per_token_chinchilla", pa.float64()),
        ("steps", pa.int64()),
        ("lr", pa.float64()),
        ("batch_tokens", pa.int64()),
        ("seed", pa.int64()),
        ("final_train_loss", pa.float64()),
        ("final_eval_loss", pa.float64()),
        ("wall_seconds", pa.float64()),
        ("device", pa.string()),
        ("node", pa.string()),
        ("resumed_from_step", pa.int64()),
        ("started_at", _TIMESTAMP),
        ("finished_at", _TIMESTAMP),
        ("first_step_at", _TIMESTAMP),
        ("data_fingerprint", pa.string()),
        ("tokenizer_sha256", pa.string()),  # from a manifest of `sweep data prepare`; null without one, in older files
        # How the run trained (RunSpec fields; precision and micro_batch_tokens as the run resolved them when its
        # outcome says so, else the spec's "auto" / 0). Files written before these columns read them as null.
        ("micro_batch_tokens", pa.int64()),
        ("precision", pa.string()),  # fp32 | bf16 (auto: the run did not say what it resolved to)
        ("compile", pa.bool_()),
        ("lr_rule", pa.string()),  # kaplan | power | fixed | tuned
        ("lr_study", pa.string()),  # lr_rule tuned: the study whose fitted rule gave lr
        ("batch_rule", pa.string()),  # fixed | power
        ("warmup_steps", pa.int64()),
        ("warmup_tokens", pa.int64()),
        ("beta1", pa.float64()),
        ("beta2", pa.float64()),
        ("weight_decay", pa.float64()),
        ("memory_estimate_bytes", pa.int64()),  # one worker's estimated peak (0: not estimated)
        ("data_order", pa.string()),
        ("workers", pa.int32()),
        # The LR schedule (training.schedule): cosine; wsd (a readout: its trunk's state at branch_step, then a decay
        # to the run's last step; its flops are a standalone run's to its tokens, what the fits read); wsd-trunk
        # (constant after warm-up; never fitted); wsds (a readout of a wsds-trunk, which decays to each readout's step
        # and returns to the peak: the trunk's state there, no training of its own); wsds-trunk (never fitted).
        # Null in files written before schedules: cosine.
        ("schedule", pa.string()),
        ("branch_step", pa.int64()),
        ("cooldown_shape", pa.string()),
        ("parent_run_id", pa.string()),
        ("size_reason", pa.string()),  # model.sizes auto: why the budget got this size (sweep.planning.auto_sizes)
        # Code version (sweep.versions): the git commit (+dirty) of the checkout that launched the run, null outside
        # one; the versions of torch, ray and this package in the process that trained it.
        ("code_commit", pa.string()),
        ("torch_version", pa.string()),
        ("ray_version", pa.string()),
        ("sweep_version", pa.string()),
        # Throughput (sweep.training.hardware), one FLOP convention end to end: model_flops_per_second is
        # tokens_per_second * flops_per_token, the same per-token FLOPs (flops_convention) that sized the run.
        ("tokens_per_second", pa.float64()),  # mean of the whole run, all workers; evaluation and checkpoints left out
        ("model_flops_per_second", pa.float64()),
        ("peak_flops", pa.float64()),  # one device's dense peak: resources.peak_flops, else the table by device and precision
        ("mfu", pa.float64()),  # model_flops_per_second / (workers * peak_flops); null when the peak is unknown
        # What the run actually trained when the row was written (completed: all its steps; diverged: up to the step
        # the divergence was noticed; failed or interrupted: as far as known, the step of its last checkpoint).
        ("steps_done", pa.int64()),
        ("flops_spent", pa.float64()),  # steps_done * batch_tokens * flops_per_token (flops_convention)
        ("error", pa.string()),
        # Tuning trials (sweep tune): the study, and the trial's number in its size's Optuna study; null otherwise.
        ("study", pa.string()),
        ("trial", pa.int64()),
        ("spec_json", pa.string()),
    ]
)

METRICS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("step", pa.int64()),
        ("tokens", pa.int64()),
        ("flops", pa.float64()),
        ("train_loss", pa.float64()),
        ("eval_loss", pa.float64()),
        ("lr", pa.float64()),
        ("grad_norm", pa.float64()),
        ("tokens_per_second", pa.float64()),
        ("wall_seconds", pa.float64()),
    ]
)


def _warn(message: str) -> None:
    print(f"sweep: warning: {message}", file=sys.stderr, flush=True)


class ResultsRootError(ConfigError):
    """The results root cannot be opened (a malformed URI, an unreachable store); names the root redacted."""


def _open_root(root: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in root:
        return pafs.LocalFileSystem(), str(Path(root).expanduser().resolve())
    try:
        return pafs.FileSystem.from_uri(root)
    except (ValueError, OSError) as error:  # pyarrow's messages may quote the URI: re-worded, scrubbed, unchained
        raise ResultsRootError(f"results root {redact_uri(root)}: {scrub(str(error), root)}") from None


class ResultsStore:
    """Reads and writes one results root. Cheap to construct; safe to use from Ray workers on any node."""

    def __init__(self, root: str | Path, warn: Callable[[str], None] | None = None) -> None:
        self.root = str(root)
        self.fs, self.base = _open_root(self.root)
        self.warn = warn or _warn
        """Where the one line naming a damaged file goes (default: stderr)."""
        self.damaged: dict[str, DamagedFile] = {}
        """Damaged or unreadable files met by this store's reads so far, by path."""

    @property
    def is_object_store(self) -> bool:
        return self.fs.type_name in _OBJECT_STORES

    @property
    def shown(self) -> str:
        """The root as it may be printed or stored: a local root resolved, a URI without its credentials."""
        return redact_uri(self.root) if "://" in self.root else self.base

    def require_root(self, bucket_only: bool = False) -> None:
        """Raise ``ResultsRootError`` (one line, exit 2) unless the root is a directory that exists; with
        ``bucket_only``, unless an object store's bucket exists (a driver creates the path inside it)."""
        if bucket_only and not self.is_object_store:
            return
        try:
            path = self.base.split("/", 1)[0] if bucket_only else self.base
            found = self.fs.get_file_info(path).type == pafs.FileType.Directory
        except OSError as error:
            raise ResultsRootError(f"results root {self.shown}: {scrub(str(error), self.root).splitlines()[0]}") from None
        if not found:
            raise ResultsRootError(f"results root {self.shown}: no such {'bucket' if bucket_only else 'directory'}")

    def _dir(self, dataset: str, sweep: str) -> str:
        return f"{self.base}/{dataset}/sweep={sweep}"

    def write_atomic(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` so that readers see the old file or the new one, never part of one."""
        directory, name = path.rsplit("/", 1)
        self.fs.create_dir(directory, recursive=True)
        if self.is_object_store:
            with self.fs.open_output_stream(path) as out:
                out.write(data)
            return
        temporary = f"{directory}/.{name}.{uuid.uuid4().hex}.tmp"
        try:
            with self.fs.open_output_stream(temporary) as out:
                out.write(data)
            self.fs.move(temporary, path)
        except BaseException:
            try:
                self.fs.delete_file(temporary)
            except OSError:
                pass
            raise

    def _write(self, table: pa.Table, dataset: str, sweep: str, run_id: str) -> None:
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        self.write_atomic(f"{self._dir(dataset, sweep)}/{run_id}.parquet", buffer.getvalue().to_pybytes())

    def set_aside(self, damaged: DamagedFile) -> str:
        """Move a damaged file of this root into ``quarantine/`` with its reason (``sweep.results.quarantine``);
        only for the driver holding the results lock, or a worker holding the run's claim. Returns the new path."""
        return set_aside(self.fs, self.base, damaged)

    def quarantined(self) -> list[dict]:
        """What has been set aside under this root, with reasons (``sweep.results.quarantine.quarantined``)."""
        return quarantined(self.fs, self.base)

    def write_metrics(self, sweep: str, run_id: str, rows: list[dict]) -> None:
        """Replace the metrics of ``run_id`` with ``rows`` (dicts with ``METRICS_SCHEMA``'s fields but run_id)."""
        table = pa.Table.from_pylist([{"run_id": run_id, **row} for row in rows], schema=METRICS_SCHEMA)
        self._write(table, "metrics", sweep, run_id)

    def write_live_metrics(self, sweep: str, run_id: str, rows: list[dict]) -> None:
        """Replace the partial metrics of a run in progress (``live/sweep=NAME/RUN_ID.parquet``, atomically: a
        reader sees the previous prefix or this one, never part of a file); ``sweep.training.live`` writes them."""
        table = pa.Table.from_pylist([{"run_id": run_id, **row} for row in rows], schema=METRICS_SCHEMA)
        self._write(table, "live", sweep, run_id)

    def clear_live_metrics(self, sweep: str, run_id: str) -> None:
        """Drop a run's partial metrics (its final metrics file replaces them); a missing one is no error."""
        try:
            self.fs.delete_file(f"{self._dir('live', sweep)}/{run_id}.parquet")
        except FileNotFoundError:
            pass

    def live_run_ids(self, sweep: str) -> list[str]:
        """Runs of ``sweep`` that have partial metrics (a listing, no file read)."""
        return [path.rsplit("/", 1)[1].removesuffix(".parquet") for _, path in self._files("live", sweep)]

    def read_live_metrics(self, sweep: str | None = None) -> pd.DataFrame:
        """The partial metrics of runs in progress (all sweeps, or one), as ``read_metrics`` returns final ones:
        each file a consistent prefix of its run's rows; a damaged one named and skipped. Never fitted."""
        frame = self._read("live", METRICS_SCHEMA, sweep)
        return frame.sort_values(["sweep", "run_id", "step"], ignore_index=True)

    def write_size_choice(self, sweep: str, budget: float, shapes: list[tuple[int, int, int]], reason: str) -> None:
        """Record the shapes (n_layer, d_model, n_head) ``model.sizes: auto`` gave ``budget``, and why."""
        record = {"budget": float(budget), "shapes": [list(shape) for shape in shapes], "reason": reason}
        self.write_atomic(f"{self._dir('sizes', sweep)}/{float(budget):.9e}.json", json.dumps(record).encode("utf-8"))

    def size_choices(self, sweep: str) -> dict[float, tuple[list[tuple[int, int, int]], str]]:
        """Every recorded ``model.sizes: auto`` choice of ``sweep``: budget -> (shapes, reason). A record that cannot
        be read is named (``warn``) and left out: the budget is chosen again from the results, and recorded anew."""
        top = self._dir("sizes", sweep)
        found = {}
        for info in self.fs.get_file_info(pafs.FileSelector(top, allow_not_found=True)):
            if info.type != pafs.FileType.File or not info.base_name.endswith(".json") or info.base_name.startswith("."):
                continue
            try:
                with self.fs.open_input_stream(info.path) as stream:
                    record = json.loads(stream.read().decode("utf-8"))
                shapes = [tuple(int(v) for v in shape) for shape in record["shapes"]]
                found[float(record["budget"])] = (shapes, str(record["reason"]))
            except (OSError, ValueError, KeyError, TypeError) as error:
                self.warn(f"warning: cannot read {self.shown_path(info.path)} ({type(error).__name__}): its budget's "
                          "sizes are chosen again from the results")
        return found

    def write_comparison(self, sweep: str, record: dict) -> None:
        """Record ``sweep compare``'s verdict on ``sweep`` (``comparisons/NAME.json``)."""
        self.write_atomic(f"{self.base}/comparisons/{sweep}.json", json.dumps(record, default=str).encode("utf-8"))

    def comparison(self, sweep: str) -> dict | None:
        """The recorded verdict on ``sweep``, or None (none recorded; one that cannot be read is named and None)."""
        path = f"{self.base}/comparisons/{sweep}.json"
        try:
            with self.fs.open_input_stream(path) as stream:
                record = json.loads(stream.read().decode("utf-8"))
            return record if isinstance(record, dict) else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            self.warn(f"warning: cannot read {self.shown_path(path)} ({type(error).__name__}): that sweep's verdict is unknown")
            return None

    def request_stop(self, sweep: str, run_id: str, reason: str) -> None:
        """Ask a run in progress to stop at its next evaluation (``stop/sweep=NAME/RUN_ID``: a tuning trial that
        Optuna's pruner stopped); its trainer reads it through ``stop_requested``."""
        self.write_atomic(f"{self._dir('stop', sweep)}/{run_id}", reason.encode("utf-8"))

    def stop_requested(self, sweep: str, run_id: str) -> str | None:
        """The reason a stop of the run was requested, or None (one small read; a missing file is no request)."""
        try:
            with self.fs.open_input_stream(f"{self._dir('stop', sweep)}/{run_id}") as stream:
                return stream.read().decode("utf-8", errors="replace") or "stop requested"
        except FileNotFoundError:
            return None

    def clear_stop_request(self, sweep: str, run_id: str) -> None:
        try:
            self.fs.delete_file(f"{self._dir('stop', sweep)}/{run_id}")
        except FileNotFoundError:
            pass

    def write_run(self, sweep: str, row: dict) -> None:
        """Write (or replace) the ledger row of ``row["run_id"]``; missing optional fields are null."""
        unknown = set(row) - set(RUNS_SCHEMA.names)
        if unknown:
            raise ValueError(f"unknown ledger columns: {sorted(unknown)}")
        if row.get("status") not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {row.get('status')!r}")
        if row.get("error"):
            row = {**row, "error": scrub(row["error"], self.root)}
        table = pa.Table.from_pylist([row], schema=RUNS_SCHEMA)
        problem = ledger_problem(table, row["run_id"], RUN_STATUSES)  # what every read checks, checked before writing
        if problem is not None:
            raise ValueError(f"ledger row of run {row['run_id']}: {problem}")
        self._write(table, "runs", sweep, row["run_id"])

    def _report(self, damaged: DamagedFile) -> None:
        """Name a damaged file once per store (``self.damaged`` keeps them all for callers that set them aside)."""
        if damaged.path not in self.damaged:
            self.damaged[damaged.path] = damaged
            what = "cannot read" if damaged.kind == "unreadable" else "skipped damaged file"
            self.warn(f"{what} {self.shown_path(damaged.path)}: {damaged.reason}")

    def shown_path(self, path: str) -> str:
        """A path of this root as it may be printed (a URI root's credentials left out)."""
        return path if "://" not in self.root else f"{self.shown.rstrip('/')}/{path.removeprefix(self.base + '/')}"

    def _files(self, dataset: str, sweep: str | None) -> list[tuple[str, str]]:
        """``(sweep, path)`` of each file of ``dataset`` (of one sweep, or all); files that have no place there are
        reported damaged. Names starting with ``.`` or ``_`` are skipped unseen: temporary files of writes in
        progress (``write_atomic``) and the hidden files pyarrow's readers skip too."""
        top = f"{self.base}/{dataset}"
        selector = pafs.FileSelector(top if sweep is None else self._dir(dataset, sweep), recursive=True, allow_not_found=True)
        found = []
        for info in self.fs.get_file_info(selector):
            parts = info.path.removeprefix(top + "/").split("/")
            if info.type != pafs.FileType.File or any(part.startswith((".", "_")) for part in parts):
                continue
            in_a_sweep = len(parts) == 2 and parts[0].startswith("sweep=") and _NAME.match(parts[0].removeprefix("sweep="))
            if in_a_sweep and parts[1].endswith(".parquet") and _NAME.match(parts[1].removesuffix(".parquet")):
                found.append((parts[0].removeprefix("sweep="), info.path))
            else:  # outside any sweep's folder: a stray, which any driver may set aside; inside one: that sweep's
                reason = f"not a results file: {dataset}/ holds sweep=NAME/RUN_ID.parquet only"
                self._report(DamagedFile(info.path, reason, kind="damaged" if in_a_sweep else "stray"))
        return sorted(found)

    def sweeps(self) -> list[str]:
        """The sweeps that have a ledger folder (``runs/sweep=NAME``), sorted: a listing, no file read."""
        infos = self.fs.get_file_info(pafs.FileSelector(f"{self.base}/runs", allow_not_found=True))
        names = (info.base_name.removeprefix("sweep=") for info in infos if info.type == pafs.FileType.Directory and info.base_name.startswith("sweep="))
        return sorted(name for name in names if _NAME.match(name))

    def find_strays(self) -> list[DamagedFile]:
        """The files of ``runs/`` and ``metrics/`` outside any ``sweep=NAME`` folder, each reported (a listing, no
        file read). They belong to no sweep, so the driver of any sweep may set them aside."""
        for dataset in ("runs", "metrics"):
            self._files(dataset, None)
        return [d for d in self.damaged.values() if d.kind == "stray"]

    def _read_file(self, path: str, kind: str) -> pa.Table | None:
        """One ledger or metrics file, checked (``sweep.results.validation``) and conformed to its schema; None
        (and the file reported) when it is damaged, unreadable, or gone."""
        schema, required = (RUNS_SCHEMA, REQUIRED_RUN_COLUMNS) if kind == "runs" else (METRICS_SCHEMA, REQUIRED_METRIC_COLUMNS)
        try:
            with self.fs.open_input_file(path) as handle:
                data = handle.read()
        except FileNotFoundError:
            return None  # set aside or replaced since it was listed
        except OSError as error:  # the store failed, not the file's content: named and skipped, never set aside
            self._report(DamagedFile(path, scrub(str(error), self.root).splitlines()[0], kind="unreadable"))
            return None
        try:
            table = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)  # 2x read_table's speed here
        except Exception as error:  # noqa: BLE001 - any parse failure of these bytes means the content is damaged
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            self._report(DamagedFile(path, f"not a readable Parquet file ({len(data)} bytes): {message}"))
            return None
        run_id = path.rsplit("/", 1)[1].removesuffix(".parquet")
        problem = schema_problem(table.schema, schema, required)
        if problem is None:
            table = conform(table, schema)
            problem = ledger_problem(table, run_id, RUN_STATUSES) if kind == "runs" else metrics_problem(table, run_id)
        if problem is not None:
            self._report(DamagedFile(path, problem))
            return None
        return table

    def _read(self, dataset: str, schema: pa.Schema, sweep: str | None) -> pd.DataFrame:
        """Every good file of ``dataset`` (one sweep, or all) as one frame with a leading ``sweep`` column; damaged
        files are named once and skipped (module docstring)."""
        files = self._files(dataset, sweep)
        with ThreadPoolExecutor(max_workers=_READERS["object store" if self.is_object_store else "local"]) as pool:  # object stores: one request per file, in parallel
            tables = list(pool.map(lambda item: self._read_file(item[1], dataset), files))
        full_schema = schema.insert(0, pa.field("sweep", pa.string()))
        parts = [
            table.add_column(0, "sweep", pa.array([name] * table.num_rows, pa.string()))
            for (name, _), table in zip(files, tables)
            if table is not None
        ]
        return (pa.concat_tables(parts) if parts else full_schema.empty_table()).to_pandas()

    def read_runs(self, sweep: str | None = None) -> pd.DataFrame:
        """The ledger (all sweeps, or one), one row per run; damaged files named and skipped."""
        return self._read("runs", RUNS_SCHEMA, sweep)

    def read_run(self, sweep: str, run_id: str) -> dict | None:
        """One run's ledger row as a dict (nulls as None), or None when the run has none (or only a damaged file,
        then named): one file read, not the whole ledger (workers ask this at every run start)."""
        table = self._read_file(f"{self._dir('runs', sweep)}/{run_id}.parquet", "runs")
        return table.to_pylist()[0] if table is not None else None

    def read_run_metrics(self, sweep: str, run_id: str) -> pd.DataFrame:
        """One run's metrics rows by step (empty when it has none, or only a damaged file, then named)."""
        table = self._read_file(f"{self._dir('metrics', sweep)}/{run_id}.parquet", "metrics")
        return (table if table is not None else METRICS_SCHEMA.empty_table()).to_pandas()

    def read_metrics(self, sweep: str | None = None) -> pd.DataFrame:
        """All metrics rows (all sweeps, or one), sorted by run and step; damaged files named and skipped."""
        frame = self._read("metrics", METRICS_SCHEMA, sweep)
        return frame.sort_values(["sweep", "run_id", "step"], ignore_index=True)

    def finished_run_ids(self, sweep: str) -> set[str]:
        """Runs of ``sweep`` that are completed or diverged: ``sweep run`` skips them."""
        runs = self.read_runs(sweep)
        return set(runs.loc[runs["status"].isin(FINISHED_STATUSES), "run_id"])
