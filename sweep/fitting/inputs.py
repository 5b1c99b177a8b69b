"""Fit inputs: the table every fitter takes (``n_params, tokens, loss, budget``), from a results store or a file.

From a results store, only ``completed`` runs are fitted; diverged, failed and interrupted runs are returned beside the table so
callers can list them. N is the non-embedding parameter count by default (Kaplan et al. 2020 show it gives
cleaner laws at small scale, where embeddings are a large share of the total); ``params="total"`` uses
Chinchilla's total count.

From a file (CSV or Parquet, e.g. runs of another tool): columns ``n_params``, ``tokens`` (or ``flops``, then
D = C / 6N), ``loss``, optionally ``flops`` (else C = 6ND) and ``budget`` (else runs are grouped by FLOPs: a run
joins the current group while its FLOPs are within 5% of the group's first, and the group's budget is their
geometric mean). Epoch AI's Chinchilla file is read as is (``Model Size`` -> n_params, ``Training FLOP`` -> flops).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import pandas as pd

from sweep.results.storage import ResultsStore


@dataclass(frozen=True)
class FitInputs:
    runs: pd.DataFrame
    """Columns n_params, tokens, loss, budget (plus sweep, run_id, seed, flops)."""
    excluded: pd.DataFrame
    """Ledger rows not fitted (diverged, failed, interrupted), with their status and error."""


def fit_inputs_from_results(store: ResultsStore, sweep: str | None = None, params: str = "nonembedding") -> FitInputs:
    ledger = store.read_runs(sweep)
    if params not in ("nonembedding", "total"):
        raise ValueError(f"params must be 'nonembedding' or 'total', got {params!r}")
    completed = ledger[(ledger["status"] == "completed") & ledger["final_eval_loss"].notna()]
    n_column = "n_params_nonembedding" if params == "nonembedding" else "n_params"
    runs = pd.DataFrame(
        {
            "sweep": completed["sweep"],
            "run_id": completed["run_id"],
            "seed": completed["seed"],
            "n_params": completed[n_column].astype(float),
            "tokens": completed["tokens"].astype(float),
            "flops": completed["flops"],
            "loss": completed["final_eval_loss"],
            "budget": completed["flops_budget"],
        }
    ).reset_index(drop=True)
    excluded = ledger.loc[~ledger.index.isin(completed.index), ["sweep", "run_id", "status", "error"]]
    return FitInputs(runs=runs, excluded=excluded.reset_index(drop=True))


COLUMN_ALIASES = {"Model Size": "n_params", "Training FLOP": "flops", "N": "n_params", "D": "tokens", "C": "flops"}


def group_budgets(flops: np.ndarray, tolerance: float = 0.05) -> np.ndarray:
    """Budget of each run: runs within ``tolerance`` of their group's smallest FLOPs share the group's geometric mean."""
    order = np.argsort(flops)
    budgets = np.empty(len(flops))
    start = 0
    for i in range(1, len(order) + 1):
        if i == len(order) or flops[order[i]] > flops[order[start]] * (1.0 + tolerance):
            members = order[start:i]
            budgets[members] = float(np.exp(np.mean(np.log(flops[members]))))
            start = i
    return budgets


def fit_inputs_from_file(path: str | Path) -> FitInputs:
    """Read a CSV or Parquet table of runs (module docstring) into the fitters' table."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    frame = frame.rename(columns={k: v for k, v in COLUMN_ALIASES.items() if k in frame.columns and v not in frame.columns})
    if "tokens" not in frame.columns and {"flops", "n_params"} <= set(frame.columns):
        frame["tokens"] = frame["flops"] / (6.0 * frame["n_params"])
    missing = {"n_params", "tokens", "loss"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)} (need n_params, tokens or flops, loss)")
    runs = pd.DataFrame({c: frame[c].astype(float) for c in ("n_params", "tokens", "loss")})
    runs["flops"] = frame["flops"].astype(float) if "flops" in frame.columns else 6.0 * runs["n_params"] * runs["tokens"]
    runs["budget"] = frame["budget"].astype(float) if "budget" in frame.columns else group_budgets(runs["flops"].to_numpy())
    bad = ~np.isfinite(runs[["n_params", "tokens", "loss"]]).all(axis=1) | (runs[["n_params", "tokens", "loss"]] <= 0).any(axis=1)
    excluded = pd.DataFrame({"sweep": path.name, "run_id": runs.index[bad].astype(str), "status": "invalid", "error": "non-positive or missing value"})
    return FitInputs(runs=runs[~bad].reset_index(drop=True), excluded=excluded)


def drop_highest_loss(inputs: FitInputs, count: int) -> FitInputs:
    """Leave out the ``count`` runs of highest loss (Epoch excluded Chinchilla's 5 highest as outliers)."""
    if count <= 0:
        return inputs
    order = inputs.runs.sort_values("loss", kind="stable")
    kept, dropped = order.iloc[:-count], order.iloc[-count:]
    note = pd.DataFrame({"sweep": "", "run_id": dropped.index.astype(str), "status": "dropped", "error": "among the highest losses"})
    return FitInputs(runs=kept.sort_index().reset_index(drop=True), excluded=pd.concat([inputs.excluded, note], ignore_index=True))
