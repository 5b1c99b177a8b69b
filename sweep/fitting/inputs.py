"""Fit inputs: the table every fitter takes (``n_params, tokens, loss, budget``), from a results store or a file.

From a results store, only ``completed`` runs are fitted; diverged, failed and interrupted runs are returned beside the table so
callers can list them. N is the non-embedding parameter count by default (Kaplan et al. 2020 show it gives
cleaner laws at small scale, where embeddings are a large share of the total); ``params="total"`` uses
Chinchilla's total count.

The FLOP convention travels with the table (``flops_convention``, see ``sweep.fitting.compute``): runs of a
results store were sized by their sweep's convention, and the fits split budgets by each run's own FLOPs per token.

From a file (CSV or Parquet, e.g. runs of another tool): columns ``n_params``, ``tokens`` (or ``flops``, then
D = C / 6N), ``loss``, optionally ``flops`` (else C = 6ND) and ``budget`` (else runs are grouped by FLOPs: a run
joins the current group while its FLOPs are within 5% of the group's first, and the group's budget is their
geometric mean). ``--flops-convention`` says how the file's compute relates to N and D: ``6ND`` (the default, and
what published tables such as Chinchilla's use) or ``table`` (each row's ``flops / tokens``, which then needs both
columns); under ``6ND`` a table whose ``flops`` disagree with 6ND by more than 2% gets a warning. Epoch AI's Chinchilla file is read as is (``Model Size`` -> n_params, ``Training FLOP`` -> flops).
A file that cannot be fitted at all is one error naming it (and its column); a row that cannot be used is left out
and listed (``fit_inputs_from_file``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import pandas as pd

from sweep.fitting.compute import FlopsPerToken, fit_flops_per_token, six_nd
from sweep.results.storage import TRUNK_SCHEDULES, ResultsStore

FILE_CONVENTIONS = ("6ND", "table")
"""``--flops-convention`` of an ``--input`` table (module docstring)."""
SIX_ND_TOLERANCE = 0.02


@dataclass(frozen=True)
class FitInputs:
    runs: pd.DataFrame
    """Columns n_params, tokens, loss, budget (plus sweep, run_id, seed, flops, data_fingerprint, tokenizer_sha256)."""
    excluded: pd.DataFrame
    """Ledger rows not fitted (diverged, failed, interrupted), with their status and error."""
    flops_convention: str = "6ND"
    """How C relates to N and D: ``6ND``, or the name of a convention whose FLOPs per token are read off each run
    (``flops / tokens``; a results store's sweep convention, or ``table``). See ``compute``."""
    warnings: tuple[str, ...] = ()
    """What a reader of the fit should know about the table (e.g. its FLOPs disagree with its convention)."""
    pseudo_budgets: dict | None = None
    """Set when a table had no ``budget`` column and its runs were grouped by FLOPs (``group_budgets``): how many
    groups, and their smallest and largest run counts. Such groups are not iso-FLOP budgets that were planned."""

    def compute(self) -> FlopsPerToken:
        """The FLOPs per token f(N) that splits a budget into N and D (``sweep.fitting.compute``)."""
        if self.flops_convention == "6ND" or self.runs.empty:
            return six_nd()
        runs = self.runs
        return fit_flops_per_token(runs["n_params"], runs["flops"], runs["tokens"], f"{self.flops_convention} (each run's FLOPs per token)")


def fit_inputs_from_results(store: ResultsStore, sweep: str | None = None, params: str = "nonembedding") -> FitInputs:
    ledger = store.read_runs(sweep)
    if params not in ("nonembedding", "total"):
        raise ValueError(f"params must be 'nonembedding' or 'total', got {params!r}")
    trunk = ledger["schedule"].isin(TRUNK_SCHEDULES) if "schedule" in ledger else False  # trunks: no readout
    completed = ledger[(ledger["status"] == "completed") & ledger["final_eval_loss"].notna() & ~trunk]
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
            "data_fingerprint": completed["data_fingerprint"] if "data_fingerprint" in completed else None,
            "tokenizer_sha256": completed["tokenizer_sha256"] if "tokenizer_sha256" in completed else None,
        }
    ).reset_index(drop=True)
    excluded = ledger.loc[~ledger.index.isin(completed.index), ["sweep", "run_id", "status", "error"]]
    conventions = sorted(completed["flops_convention"].dropna().unique()) if "flops_convention" in completed else []
    return FitInputs(runs=runs, excluded=excluded.reset_index(drop=True), flops_convention=", ".join(conventions) or "table")


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


class TableError(ValueError):
    """A table of runs that cannot be fitted at all; the message names the file and, where one is at fault, the column."""


def _read_table(path: Path) -> pd.DataFrame:
    """The file as a frame: Parquet by suffix (``.parquet``, ``.pq``), else CSV; ``TableError`` for anything unreadable."""
    try:
        if path.suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise TableError(f"{path}: empty (no header, no rows)") from None
    except UnicodeDecodeError as error:
        raise TableError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start}); "
                         "a CSV or Parquet table of runs is expected") from None
    except (ValueError, OSError, TypeError) as error:  # pyarrow's ArrowInvalid is a ValueError; a corrupt page an OSError
        what = "Parquet" if path.suffix in (".parquet", ".pq") else "CSV"
        detail = " ".join(str(error).split())[:200] or type(error).__name__
        raise TableError(f"{path}: not a readable {what} table ({detail})") from None


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """The column as floats (text that is no number becomes NaN); ``TableError`` naming it when it holds no number
    at all or values that are not scalars."""
    try:
        values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    except (TypeError, ValueError):
        raise TableError(f"{path}: column {column} is not numeric (it holds {frame[column].dtype} values)") from None
    if len(values) and values.isna().all():
        raise TableError(f"{path}: column {column} holds no numbers")
    return values


def fit_inputs_from_file(path: str | Path, flops_convention: str = "6ND") -> FitInputs:
    """Read a CSV or Parquet table of runs (module docstring) into the fitters' table.

    What cannot be fitted at all raises ``TableError`` naming the file (and the column): no such file, not a file,
    not a readable table, a required column missing, or holding no number. A row that merely cannot be used (a
    missing, non-numeric, non-finite or non-positive ``n_params``, ``tokens``, ``loss``, ``flops`` or ``budget``) is
    left out and listed in ``excluded`` with the column at fault, so one bad row never stops a fit and no
    non-finite value ever reaches the fitters. ``flops_convention``: ``6ND`` or ``table`` (module docstring)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise TableError(f"{path}: not a file")
    return fit_inputs_from_frame(_read_table(path), path, flops_convention)


def fit_inputs_from_frame(frame: pd.DataFrame, path: str | Path = "the table", flops_convention: str = "6ND") -> FitInputs:
    """``fit_inputs_from_file`` on a DataFrame already in memory (a notebook's); ``path`` names it in messages."""
    if flops_convention not in FILE_CONVENTIONS:
        raise ValueError(f"unknown FLOP convention {flops_convention!r} for a table; choose one of {', '.join(FILE_CONVENTIONS)}")
    path = Path(path)
    frame = frame.rename(columns={k: v for k, v in COLUMN_ALIASES.items() if k in frame.columns and v not in frame.columns})
    if flops_convention == "table" and not {"flops", "tokens"} <= set(frame.columns):
        raise TableError(f"{path}: --flops-convention table reads each row's flops / tokens, and the table lacks "
                         f"{' and '.join(sorted({'flops', 'tokens'} - set(frame.columns)))}")
    if "tokens" not in frame.columns and {"flops", "n_params"} <= set(frame.columns):
        frame["tokens"] = _numbers(frame, "flops", path) / (6.0 * _numbers(frame, "n_params", path))
    missing = {"n_params", "tokens", "loss"} - set(frame.columns)
    if missing:
        raise TableError(f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(sorted(missing))} "
                         "(need n_params, tokens or flops, loss)")
    runs = pd.DataFrame({c: _numbers(frame, c, path) for c in ("n_params", "tokens", "loss")})
    runs["flops"] = _numbers(frame, "flops", path) if "flops" in frame.columns else 6.0 * runs["n_params"] * runs["tokens"]
    columns = ["n_params", "tokens", "loss", "flops"] + (["budget"] if "budget" in frame.columns else [])
    if "budget" in frame.columns:
        runs["budget"] = _numbers(frame, "budget", path)
    values = runs[columns].to_numpy()
    bad_cells = ~np.isfinite(values) | (values <= 0)
    bad = bad_cells.any(axis=1)
    reasons = [f"missing, non-numeric, non-finite or non-positive {columns[int(np.argmax(row))]}" for row in bad_cells[bad]]
    kept = runs[~bad].reset_index(drop=True)
    pseudo = None
    if "budget" not in kept.columns:
        kept["budget"] = group_budgets(kept["flops"].to_numpy())
        sizes = kept.groupby("budget").size()
        pseudo = {"count": int(len(sizes)), "min_runs": int(sizes.min()) if len(sizes) else 0,
                  "max_runs": int(sizes.max()) if len(sizes) else 0, "tolerance": 0.05}  # fmt: skip
    excluded = pd.DataFrame({"sweep": path.name, "run_id": runs.index[bad].astype(str), "status": "invalid", "error": reasons})
    return FitInputs(runs=kept, excluded=excluded, flops_convention=flops_convention, warnings=_six_nd_check(kept, flops_convention, path),
                     pseudo_budgets=pseudo)  # fmt: skip


def _six_nd_check(runs: pd.DataFrame, flops_convention: str, path: Path) -> tuple[str, ...]:
    """A warning when a table read as 6ND carries FLOPs that are not 6ND (its compute was counted otherwise)."""
    if flops_convention != "6ND" or runs.empty:
        return ()
    ratio = runs["flops"] / (6.0 * runs["n_params"] * runs["tokens"])
    if float((ratio - 1.0).abs().max()) <= SIX_ND_TOLERANCE:
        return ()
    return (f"{path.name}: its flops are {ratio.min():.3g}-{ratio.max():.3g}x 6ND; the fits split budgets by C = 6ND "
            "(--flops-convention 6ND); --flops-convention table uses each row's flops / tokens instead",)


def drop_highest_loss(inputs: FitInputs, count: int) -> FitInputs:
    """Leave out the ``count`` runs of highest loss (Epoch excluded Chinchilla's 5 highest as outliers)."""
    if count <= 0:
        return inputs
    order = inputs.runs.sort_values("loss", kind="stable")
    kept, dropped = order.iloc[:-count], order.iloc[-count:]
    note = pd.DataFrame({"sweep": "", "run_id": dropped.index.astype(str), "status": "dropped", "error": "among the highest losses"})
    return replace(inputs, runs=kept.sort_index().reset_index(drop=True), excluded=pd.concat([inputs.excluded, note], ignore_index=True))


def exclude_stale(inputs: FitInputs, planned: set[str], config: str) -> FitInputs:
    """Leave out the runs that the sweep file ``config`` no longer plans (``planned``: its run ids): runs of an
    earlier version of the sweep (another ``lr_scale``, other data) share its name but not its plan, and must not be
    fitted with it. They are listed in ``excluded`` as ``stale``."""
    stale = ~inputs.runs["run_id"].isin(planned)
    if not stale.any():
        return inputs
    note = pd.DataFrame({"sweep": inputs.runs.loc[stale, "sweep"], "run_id": inputs.runs.loc[stale, "run_id"], "status": "stale",
                         "error": f"not in the current plan of {config} (--include-stale fits it)"})  # fmt: skip
    return replace(inputs, runs=inputs.runs[~stale].reset_index(drop=True), excluded=pd.concat([inputs.excluded, note], ignore_index=True))
