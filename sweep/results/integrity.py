"""Integrity of a finished run's record: its ledger row promises a metrics file; which finished runs lack theirs.

A run is committed by its ledger row, written after its metrics file (``sweep.results.storage``), so a finished
run whose metrics are missing, damaged (skipped by reads, or set aside) or cut short lost them afterwards: a file
deleted or truncated by hand, a bad copy, a disk fault. Its fit input (the ledger row) is intact, so fits and the
report keep working without its curve; ``sweep status`` lists such runs and ``sweep run --repair`` trains exactly
them again (``prepare_repair``): their ledger rows and what is left of their metrics are set aside first
(``sweep.results.quarantine``: kept, not deleted), which makes them pending, and the run trains from step 0
(its checkpoints were deleted when it finished). On CPU the retrained run is bitwise the one it replaces.

What "cut short" means: a completed run's metrics end at its last step (``steps``), where its final evaluation
is; a diverged run's have at least one row (they stop at the first non-finite step).
"""

from __future__ import annotations

import pandas as pd

from sweep.results.quarantine import DamagedFile
from sweep.results.storage import FINISHED_STATUSES, ResultsStore


def set_aside_damaged(store: ResultsStore, sweep: str) -> list[tuple[DamagedFile, str]]:
    """Set aside every file of ``sweep`` whose content the store's reads so far found damaged, and the files that
    lie outside any sweep's folder (not those the store failed to read: they may be good). Only for the driver
    holding the results lock, after reading the sweep's ledger and metrics and before it schedules anything.
    Returns ``(damaged file, where it went)`` for each file moved."""
    store.find_strays()
    moved = []
    for damaged in list(store.damaged.values()):
        if damaged.kind == "stray" or (damaged.kind == "damaged" and f"/sweep={sweep}/" in damaged.path):
            target = store.set_aside(damaged)
            if target:
                moved.append((damaged, target))
    return moved


def runs_lacking_metrics(ledger: pd.DataFrame, metrics: pd.DataFrame) -> dict[str, str]:
    """``{run_id: what is wrong}`` for the finished runs of ``ledger`` (one sweep) whose rows in ``metrics`` (the
    good files of the same sweep, as ``ResultsStore.read_metrics`` returns them) are missing or cut short."""
    last_step = metrics.groupby("run_id")["step"].max() if len(metrics) else pd.Series(dtype="int64")
    lacking = {}
    for row in ledger[ledger["status"].isin(FINISHED_STATUSES)].itertuples(index=False):
        if row.run_id not in last_step.index:
            lacking[row.run_id] = "no readable metrics file"
        elif row.status == "completed" and not pd.isna(row.steps) and last_step[row.run_id] != row.steps:
            lacking[row.run_id] = f"metrics end at step {last_step[row.run_id]} of {row.steps}"
    return dict(sorted(lacking.items()))


def prepare_repair(store: ResultsStore, sweep: str, lacking: dict[str, str]) -> list[str]:
    """Make the runs of ``lacking`` (``{run_id: what is wrong}``, from ``runs_lacking_metrics``) pending again for
    ``sweep run --repair``: set aside their ledger rows and metrics files, each with the reason. Only for the driver
    holding the results lock. Returns the run ids."""
    for run_id, why in sorted(lacking.items()):
        reason = f"set aside by sweep run --repair: {why}; the run is trained again"
        for dataset in ("metrics", "runs"):  # the ledger row last: until it moves, the run still counts as finished
            path = f"{store.base}/{dataset}/sweep={sweep}/{run_id}.parquet"
            if store.fs.get_file_info(path).type.name == "File":
                store.set_aside(DamagedFile(path, reason))
    return sorted(lacking)
