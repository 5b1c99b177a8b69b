"""What makes a file of the results root what its place says it is: the checks every read applies, file by file.

A ledger file ``runs/sweep=NAME/RUN_ID.parquet`` must be a Parquet table whose columns all belong to
``RUNS_SCHEMA`` with the declared types (older files may lack columns added later, which read as null, but never
the ``REQUIRED`` ones), holding exactly one row, for the run its name gives, with a known status; a completed
run's row has a finite evaluation loss. A metrics file ``metrics/sweep=NAME/RUN_ID.parquet`` must hold that run's
rows only, with positive, strictly increasing steps. Anything else (a 0-byte, truncated or non-Parquet file, a
foreign table, a column of another type, a copy of another run's row) is damaged: readers skip it and name it,
and no foreign file ever becomes a row (``sweep.results.storage``, ``sweep.results.quarantine``).

pyarrow's dataset reader would read such files as rows of nulls (a foreign schema) or fail the whole read on one
of them (a truncated file): hence one file at a time, each checked before it joins the others.
"""

from __future__ import annotations

import functools
import math

import pyarrow as pa
import pyarrow.compute as pc

REQUIRED_RUN_COLUMNS = (
    "run_id", "status", "n_params", "n_params_nonembedding", "tokens", "flops", "flops_budget", "seed",
    "final_eval_loss",
)  # fmt: skip
"""Columns every ledger file has had since the first release: fits and ``sweep status`` rely on them."""
REQUIRED_METRIC_COLUMNS = ("run_id", "step", "tokens", "flops", "train_loss", "eval_loss")


def _type_name(dtype: pa.DataType) -> str:
    return str(dtype).replace("timestamp[us, tz=UTC]", "timestamp")


def schema_problem(found: pa.Schema, declared: pa.Schema, required: tuple[str, ...]) -> str | None:
    """Why a file's schema is not (a subset of) the declared one, or None when it is."""
    if found.equals(declared):  # what this tool writes today: nothing to compare column by column
        return None
    types = _types(declared)
    for field in found:
        expected = types.get(field.name)
        if expected is None:
            return f"unknown column {field.name!r} (not a file this tool wrote)"
        if not field.type.equals(expected):
            return f"column {field.name} is {_type_name(field.type)}, not {_type_name(expected)}"
    missing = [name for name in required if found.get_field_index(name) < 0]
    if missing:
        return f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    return None


@functools.lru_cache(maxsize=4)
def _types(declared: pa.Schema) -> dict[str, pa.DataType]:
    return {field.name: field.type for field in declared}


def conform(table: pa.Table, declared: pa.Schema) -> pa.Table:
    """``table`` (already checked by ``schema_problem``) with the declared columns in order, absent ones null."""
    if table.schema.equals(declared):
        return table
    present = set(table.column_names)
    columns = [
        table.column(field.name) if field.name in present else pa.nulls(table.num_rows, field.type) for field in declared
    ]
    return pa.Table.from_arrays(columns, schema=declared)


def ledger_problem(table: pa.Table, run_id: str, statuses: tuple[str, ...]) -> str | None:
    """Why a ledger file's table is not one row of run ``run_id`` (its file name), or None when it is."""
    if table.num_rows != 1:
        return f"{table.num_rows} rows (a ledger file holds one run's row)"
    found_id, status, loss = (table.column(name)[0].as_py() for name in ("run_id", "status", "final_eval_loss"))
    if found_id != run_id:
        return f"holds the row of run {found_id!r}, not of the run it is named after (a copied file?)"
    if status not in statuses:
        return f"status {status!r} is not one of {', '.join(statuses)}"
    if status == "completed" and (loss is None or not math.isfinite(loss)):
        return "a completed run without a finite final_eval_loss"
    return None


def metrics_problem(table: pa.Table, run_id: str) -> str | None:
    """Why a metrics file's table is not run ``run_id``'s rows, or None when it is."""
    if table.num_rows == 0:
        return "no rows"
    ids = pc.unique(table.column("run_id")).to_pylist()
    if ids != [run_id]:
        return f"holds rows of run(s) {', '.join(repr(i) for i in ids[:3])}, not only of the run it is named after"
    steps = table.column("step")
    if steps.null_count:
        return "a row without a step"
    values = steps.to_pylist()
    if values[0] < 1 or any(b <= a for a, b in zip(values, values[1:])):
        return "steps are not positive and strictly increasing"
    return None
