"""Rebuild the ledger row of a planned run whose metrics show it completed, instead of training it again.

A run's metrics file is written whole before its ledger row (the commit, ``sweep.results.storage``). So a planned
run with no ledger row but a good metrics file that ends at its last planned step with a finite evaluation loss
did complete: its row was lost afterwards (a damaged file set aside by ``sweep.results.integrity``, deleted by
hand) or never written (the worker died between the two writes). Training it again would cost its whole budget
to reproduce numbers already on disk; instead the driver writes its row from the plan's ``RunSpec`` and those
metrics, with the error column saying so. What only the lost row knew stays null: when and where it trained
(``started_at``, ``finished_at``, ``node``, ``device``) and its resolved precision and micro-batch. Its wall time
and throughput come from the metrics (the last row's ``wall_seconds``; tokens over the summed per-row rates).

Runs whose metrics stop early (diverged or interrupted: the metrics cannot tell which) are left to train again.
"""

from __future__ import annotations

import math

import pandas as pd

from sweep.planning.plan import RunSpec
from sweep.results.storage import ResultsStore
from sweep.training.train import RunOutcome
from sweep.training.worker import ledger_row

REBUILT_NOTE = "ledger row rebuilt from the run's metrics file (the original row was lost or damaged)"


def completed_outcome(spec: RunSpec, rows: pd.DataFrame) -> RunOutcome | None:
    """The outcome that ``rows`` (the run's metrics, by step) prove, or None unless they end at the run's last step
    with a finite evaluation loss there."""
    if rows.empty:
        return None
    last = rows.iloc[-1]
    if int(last["step"]) != spec.steps or pd.isna(last["eval_loss"]) or not math.isfinite(last["eval_loss"]):
        return None
    records = [{k: (None if pd.isna(v) else v) for k, v in row.items() if k not in ("sweep", "run_id")} for row in rows.to_dict("records")]
    return RunOutcome(
        status="completed", metrics=records, final_train_loss=float(last["train_loss"]),
        final_eval_loss=float(last["eval_loss"]), device=None, wall_seconds=float(last["wall_seconds"] or 0.0),
        error=REBUILT_NOTE, steps_done=spec.steps, inherited_steps=spec.branch_step if spec.parent_run_id else 0,
    )  # fmt: skip


def rebuild_ledger_rows(store: ResultsStore, specs: list[RunSpec], ledger: pd.DataFrame, metrics: pd.DataFrame) -> list[dict]:
    """Write the ledger row of each run of ``specs`` (one sweep) that has none in ``ledger`` but whose rows in
    ``metrics`` (the sweep's, as read) prove it completed (module docstring). Only for the driver holding the
    results lock. Returns the rows written."""
    recorded, rows = set(ledger["run_id"]), []
    for spec in specs:
        if spec.run_id in recorded:
            continue
        outcome = completed_outcome(spec, metrics[metrics["run_id"] == spec.run_id])
        if outcome is not None:
            rows.append(ledger_row(spec, outcome, None, None, node=None))
            store.write_run(spec.sweep, rows[-1])
    return rows
