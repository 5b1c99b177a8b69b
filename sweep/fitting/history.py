"""``sweep history PATTERN``: the trend of a nightly sweep's frontier across nights, from the results store alone.

For every sweep whose name matches a glob (``nightly-*``), in name order (``nightly-{date}`` sorts by night):
its runs, the code commits that trained them, Approach 3's frontier loss at a reference budget and the exponents
a of Approaches 2 and 3, each with its bootstrap interval (``fit_summary``). The reference budget is the largest
every matched sweep holds, so the nights are read at the same compute (else the latest sweep's largest, said so).
Pure but for the fits: per-sweep fit tables in, rows out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sweep.fitting.inputs import FitInputs
from sweep.fitting.summary import fit_summary


def reference_budget(tables: dict[str, FitInputs]) -> tuple[float, str | None]:
    """The largest budget every table holds, or the last table's largest with a note saying the nights differ."""
    shared = set.intersection(*(set(np.round(t.runs["budget"].astype(float), 6)) for t in tables.values()))
    if shared:
        return float(max(shared)), None
    last = float(list(tables.values())[-1].runs["budget"].max())
    return last, f"the sweeps share no budget: each is read at C = {last:.3g}, the latest sweep's largest"


def history_rows(tables: dict[str, FitInputs], ledgers: dict[str, pd.DataFrame], reference: float, n_boot: int = 200,
                 seed: int = 0) -> list[dict]:  # fmt: skip
    """One row per sweep of ``tables`` (in its order): runs, code commits, frontier loss at ``reference`` and the
    exponents, with intervals (None where an approach did not fit)."""
    rows = []
    for name, inputs in tables.items():
        summary = fit_summary(inputs, n_boot=n_boot, seed=seed, predict_flops=[reference])
        a2, a3 = summary["approach2"] or {}, summary["approach3"] or {}
        prediction = summary["predictions"][0].get("approach3") or {}
        ledger = ledgers.get(name, pd.DataFrame())
        commits = sorted(str(c) for c in ledger["code_commit"].dropna().unique()) if "code_commit" in ledger else []
        rows.append({"sweep": name, "runs": summary["n_runs"], "code_commits": commits,
                     "loss": prediction.get("loss"), "loss_ci": (a3.get("ci") or {}).get(f"loss@{reference:.3g}"),
                     "a_approach2": a2.get("a"), "a_approach2_ci": (a2.get("ci") or {}).get("a"),
                     "a_approach3": a3.get("a"), "a_approach3_ci": (a3.get("ci") or {}).get("a")})  # fmt: skip
    return rows
