"""``sweep status``: counts by status, FLOPs done of planned, and runs in flight, for each sweep of a results root.

Read from the ledger (what finished) and the driver's status file (what was planned, what is in flight). Runs in
flight are only reported while a driver holds the results lock. ``interrupted`` lists the runs that will resume
from their checkpoints at the next ``sweep run``: those with a ledger row ``interrupted`` (a driver stopped by
SIGINT or SIGTERM wrote it) and those left in flight by a driver that died without one (SIGKILL, a crash); a run
the live driver is training again is in flight, not interrupted.

Throughput: the mean over completed runs of their recorded tokens/s and MFU (``sweep.training.hardware``), each
over the runs that recorded one (ledgers written before these columns, and devices of unknown peak, have none),
with how many runs that mean covers; None when no run recorded it.
"""

from __future__ import annotations

import pandas as pd

from sweep.execute.lock import lock_holder
from sweep.execute.progress import read_status
from sweep.results.storage import FINISHED_STATUSES, RUN_STATUSES, ResultsStore


def sweep_names(store: ResultsStore, ledger: pd.DataFrame) -> list[str]:
    """Sweeps with ledger rows or a driver status file."""
    import pyarrow.fs as pafs

    names = set(ledger["sweep"])
    selector = pafs.FileSelector(f"{store.base}/progress", allow_not_found=True)
    for info in store.fs.get_file_info(selector):
        if info.base_name.startswith("sweep=") and info.base_name.endswith(".json"):
            names.add(info.base_name.removeprefix("sweep=").removesuffix(".json"))
    return sorted(names)


def interrupted_runs(runs: pd.DataFrame, in_flight: list[str], pending: list[str], live: bool) -> list[str]:
    """Runs stopped mid-way: rows ``interrupted``, plus a dead driver's runs in flight that are still pending."""
    marked = set(runs.loc[runs["status"] == "interrupted", "run_id"])
    left = set() if live else {r for r in in_flight if r in pending}
    return sorted((marked | left) - (set(in_flight) if live else set()))


def throughput(runs: pd.DataFrame) -> dict:
    """Mean tokens/s and MFU of the completed runs among ``runs`` that recorded them (module docstring)."""
    completed = runs[runs["status"] == "completed"]
    summary = {}
    for column in ("tokens_per_second", "mfu"):
        values = completed[column].dropna().astype(float)
        summary[f"{column}_mean"] = float(values.mean()) if len(values) else None
        summary[f"{column}_runs"] = int(len(values))
    return summary


def sweep_status(store: ResultsStore, sweep: str | None = None) -> dict:
    """``{"running": holder or None, "sweeps": [...]}`` with one entry per sweep (see the module docstring): its
    counts by status, planned and pending runs, runs in flight and interrupted, FLOPs done and planned, and
    ``tokens_per_second_mean``, ``mfu_mean`` (None when unknown) with ``tokens_per_second_runs``, ``mfu_runs``."""
    holder = lock_holder(store)
    ledger = store.read_runs()
    entries = []
    for name in [sweep] if sweep else sweep_names(store, ledger):
        runs = ledger[ledger["sweep"] == name]
        counts = {status: int((runs["status"] == status).sum()) for status in RUN_STATUSES}
        status = read_status(store, name) or {"planned": [], "in_flight": [], "driver": None}
        planned = {p["run_id"]: p["flops"] for p in status["planned"]}
        driver = status.get("driver") or {}
        live = holder is not None and bool(driver) and all(holder.get(k) == driver.get(k) for k in ("pid", "host"))
        in_flight = status["in_flight"] if live else []
        finished = runs[runs["status"].isin(FINISHED_STATUSES)]
        finished_ids = set(finished["run_id"])
        pending = [r for r in planned if r not in finished_ids]
        entries.append(
            {
                "sweep": name,
                "counts": counts,
                "planned_runs": len(planned),
                "pending_runs": len(pending),
                "in_flight": in_flight,
                "interrupted": interrupted_runs(runs, status["in_flight"], pending, live),
                "flops_done": float(finished["flops"].sum()),
                "flops_planned": float(sum(planned.values())),
                **throughput(runs),
            }
        )
    return {"running": holder, "sweeps": entries}
