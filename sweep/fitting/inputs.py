"""Fit inputs: the table every fitter takes (``n_params, tokens, loss, budget``), built from a results store.

Only ``completed`` runs are fitted; diverged and failed runs are returned beside the table so callers can list them.
N is the non-embedding parameter count by default (Kaplan et al. 2020 show it gives cleaner laws at small
scale, where embeddings are a large share of the total); ``params="total"`` uses Chinchilla's total count.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sweep.storage import ResultsStore


@dataclass(frozen=True)
class FitInputs:
    runs: pd.DataFrame
    """Columns n_params, tokens, loss, budget (plus sweep, run_id, seed, flops)."""
    excluded: pd.DataFrame
    """Ledger rows not fitted (diverged, failed), with their status and error."""


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
