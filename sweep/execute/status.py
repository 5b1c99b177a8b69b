"""``sweep status``: counts by status, FLOPs done of planned, and runs in flight, for each sweep of a results root.

Read from the ledger (what finished) and the driver's status file (what was planned, what is in flight). Runs in
flight are only reported while a driver holds the results lock. ``interrupted`` lists the runs that will resume
from their checkpoints at the next ``sweep run``: those with a ledger row ``interrupted`` (a driver stopped by
SIGINT or SIGTERM wrote it) and those left in flight by a driver that died without one (SIGKILL, a crash); a run
the live driver is training again is in flight, not interrupted.

Damage: ledger and metrics files the reads skipped (``sweep.results.validation``), which the next ``sweep run``
sets aside, and what earlier runs already set aside under ``quarantine/`` with the reasons; finished runs whose
metrics are missing or cut short (``sweep.results.integrity``), which ``sweep run --repair`` trains again. A
damaged status file is named and ignored. FLOPs done are those the runs of the current plan actually spent.

Runs in flight: each one's latest metrics row from its live file (``sweep.training.live``): step, train and
evaluation loss, tokens/s, FLOPs so far and their share of its planned FLOPs; and, from the driver's status
file, its estimate of the time left, which learns from the measured speed of the runs it finished
(``sweep.execute.progress``).

Throughput: the mean over completed runs of their recorded tokens/s and MFU (``sweep.training.hardware``), each
over the runs that recorded one (ledgers written before these columns, and devices of unknown peak, have none),
with how many runs that mean covers; None when no run recorded it.
"""

from __future__ import annotations

import pandas as pd

from sweep.execute.lock import lock_holder
from sweep.execute.progress import read_status
from sweep.results.integrity import runs_lacking_metrics
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


def flops_spent(runs: pd.DataFrame) -> pd.Series:
    """FLOPs each ledger row's run actually trained: its ``flops_spent``; rows written before that column, their
    planned ``flops`` when completed and 0 otherwise (what they spent is unknown)."""
    fallback = runs["flops"].where(runs["status"] == "completed", 0.0)
    return runs["flops_spent"].astype(float).fillna(fallback.astype(float))


def latest_rows(store: ResultsStore, sweep: str, in_flight: list[str], planned: dict[str, float]) -> dict[str, dict]:
    """Each run in flight's latest live metrics row: ``{run_id: {"step", "train_loss", "eval_loss" (the latest
    evaluation so far), "tokens_per_second", "flops", "done" (share of its planned FLOPs)}}``; runs without a
    live file yet are left out."""
    if not in_flight:
        return {}
    live = store.read_live_metrics(sweep)
    latest = {}
    for run_id, rows in live[live["run_id"].isin(set(in_flight))].groupby("run_id"):
        last, evals = rows.iloc[-1], rows["eval_loss"].dropna()
        latest[run_id] = {
            "step": int(last["step"]), "train_loss": _number(last["train_loss"]),
            "eval_loss": _number(evals.iloc[-1]) if len(evals) else None,
            "tokens_per_second": _number(last["tokens_per_second"]), "flops": _number(last["flops"]),
            "done": _number(last["flops"] / planned[run_id]) if planned.get(run_id) else None,
        }  # fmt: skip
    return latest


def _number(value) -> float | None:
    return None if pd.isna(value) else float(value)


def sweep_entry(store: ResultsStore, name: str, runs: pd.DataFrame, metrics: pd.DataFrame, holder: dict | None,
                planned: dict[str, float] | None = None) -> dict:  # fmt: skip
    """One sweep's part of ``sweep_status``, from its ledger rows and metrics rows; ``planned`` (``{run_id: flops}``,
    from the sweep file) replaces the plan the last driver recorded."""
    status = read_status(store, name) or {"planned": [], "in_flight": [], "driver": None}
    planned = planned if planned is not None else {p["run_id"]: p["flops"] for p in status["planned"]}
    driver = status.get("driver") or {}
    live = holder is not None and bool(driver) and all(holder.get(k) == driver.get(k) for k in ("pid", "host"))
    in_flight = status["in_flight"] if live else []
    finished_ids = set(runs.loc[runs["status"].isin(FINISHED_STATUSES), "run_id"])
    pending = [r for r in planned if r not in finished_ids]
    # FLOPs done: what the runs of the current plan actually trained (a diverged or failed run counts the steps it
    # ran), so the share never passes 100%; ledger rows of runs no longer planned are counted apart.
    in_plan = runs["run_id"].isin(set(planned)) if planned else pd.Series(True, index=runs.index)
    return {
        "sweep": name,
        "counts": {status: int((runs["status"] == status).sum()) for status in RUN_STATUSES},
        "planned_runs": len(planned),
        "pending_runs": len(pending),
        "in_flight": in_flight,
        "waiting": (status.get("waiting") or {}) if live else {},
        "live": latest_rows(store, name, in_flight, planned),
        "seconds_left": status.get("seconds_left") if live else None,
        "speed_vs_plan": status.get("speed_vs_plan") if live else None,
        "interrupted": interrupted_runs(runs, status["in_flight"], pending, live),
        "flops_done": float(flops_spent(runs[in_plan]).sum()),
        "flops_planned": float(sum(planned.values())),
        "runs_outside_plan": int((~in_plan).sum()),
        "lacking_metrics": runs_lacking_metrics(runs, metrics),
        **throughput(runs),
    }


def sweep_status(store: ResultsStore, sweep: str | None = None, planned: dict[str, float] | None = None) -> dict:
    """``{"running", "sweeps", "damaged", "quarantined", "warnings"}``: the lock's holder or None; one entry per
    sweep (see the module docstring) with its counts by status, planned and pending runs, runs in flight and
    interrupted, each in-flight run's latest live row (``live``), the driver's estimate of the time left
    (``seconds_left``, with ``speed_vs_plan``: measured over planned run time), FLOPs done (spent by the runs of the plan) and planned, ledger rows outside the plan, finished runs
    lacking metrics (``{run_id: reason}``), and ``tokens_per_second_mean``, ``mfu_mean`` (None when unknown) with
    ``tokens_per_second_runs``, ``mfu_runs``; the damaged files the reads skipped (``{"path", "reason"}``, shown
    paths); what has been set aside under ``quarantine/``; other warnings met (a damaged status file). Raises
    ``ResultsRootError`` when the root does not exist (a typo must not read as an empty results directory). With
    ``planned`` (the current plan of ``sweep``'s file), runs outside it are stale: counted apart, FLOPs of the plan
    only."""
    store.require_root()
    warnings, store.warn = [], lambda message: warnings.append(message)  # listed in the report, not printed here
    holder = lock_holder(store)
    ledger = store.read_runs(sweep)
    names = [sweep] if sweep else sweep_names(store, ledger)
    metrics = store.read_metrics(sweep)
    entries = [sweep_entry(store, n, ledger[ledger["sweep"] == n], metrics[metrics["sweep"] == n], holder, planned) for n in names]
    damaged = [{"path": store.shown_path(d.path), "reason": d.reason} for d in store.damaged.values()]
    shown = {store.shown_path(d.path) for d in store.damaged.values()}
    others = [w for w in warnings if not any(path in w for path in shown)]  # e.g. a damaged status file
    return {"running": holder, "sweeps": entries, "damaged": damaged, "quarantined": store.quarantined(), "warnings": others}
