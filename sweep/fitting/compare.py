"""Sweep-to-sweep comparison (``sweep compare A B``): did B get worse than A?

No library compares two scaling sweeps, so this does, from two fit tables (pure: ``FitInputs`` in, a dict out):

- **Matched cells**: the runs of A and B at the same (budget, N) (budgets within 1%, N equal to 0.1%), each
  cell's loss the mean over its seeds; the delta B - A per cell, their mean and its Student-t 95% interval, and
  the seed-to-seed spread of each sweep where it has replicates (the noise a delta is read against).
- **Frontier shift**: each sweep fitted on its own (``fit_summary``, the same bootstrap seed), Approach 3's loss at
  each reference budget with its interval, and the exponents a of Approaches 2 and 3 with theirs.
- **Verdict**: a regression when B's frontier loss at a reference budget is worse than A's by more than
  ``threshold`` and B's interval lies wholly above A's (outside the intervals); where Approach 3 fitted neither
  sweep, when the matched cells' mean delta exceeds ``threshold`` with its interval above zero. ``sweep compare``
  exits 4 on a regression, 0 otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sweep.fitting.inputs import FitInputs
from sweep.fitting.summary import fit_summary

BUDGET_TOLERANCE = 0.01
SIZE_TOLERANCE = 0.001
DEFAULT_THRESHOLD = 0.01
"""Loss (nats per token) by which B must be worse to count as a regression."""


def _cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean loss per (budget, N), with the seed count and spread."""
    groups = runs.groupby(["budget", "n_params"])["loss"]
    return pd.DataFrame({"loss": groups.mean(), "seeds": groups.size(), "sd": groups.std(ddof=1)}).reset_index()


def matched_cells(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The (budget, N) cells both tables hold: budget, n_params, loss_a, loss_b, delta (B - A)."""
    cells_a, cells_b = _cells(a), _cells(b)
    rows = []
    for cell in cells_a.itertuples():
        same = cells_b[np.isclose(cells_b["budget"], cell.budget, rtol=BUDGET_TOLERANCE)
                       & np.isclose(cells_b["n_params"], cell.n_params, rtol=SIZE_TOLERANCE)]  # fmt: skip
        if len(same):
            other = same.iloc[0]
            rows.append({"budget": cell.budget, "n_params": cell.n_params, "loss_a": cell.loss, "loss_b": other["loss"],
                         "delta": other["loss"] - cell.loss})  # fmt: skip
    return pd.DataFrame(rows, columns=["budget", "n_params", "loss_a", "loss_b", "delta"])


def _mean_interval(values: np.ndarray, level: float = 0.95) -> list[float] | None:
    from scipy.stats import t as student

    if len(values) < 2:
        return None
    half = float(student.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return [float(values.mean() - half), float(values.mean() + half)]


def _noise(runs: pd.DataFrame) -> float | None:
    """Median seed-to-seed sd of loss over cells with replicates, else None."""
    sd = _cells(runs)["sd"].dropna()
    return float(sd.median()) if len(sd) else None


def compare(a: FitInputs, b: FitInputs, reference_flops: list[float] | None = None, threshold: float = DEFAULT_THRESHOLD,
            n_boot: int = 1000, seed: int = 0) -> dict:  # fmt: skip
    """The comparison of B against A (module docstring). ``reference_flops``: default the largest budget both hold
    (else the larger of their largest)."""
    common = sorted(set(np.round(a.runs["budget"], 6)) & set(np.round(b.runs["budget"], 6)))
    references = list(reference_flops or [float(common[-1]) if common else float(max(a.runs["budget"].max(), b.runs["budget"].max()))])
    fits = {name: fit_summary(inputs, n_boot=n_boot, seed=seed, predict_flops=references) for name, inputs in (("a", a), ("b", b))}
    cells = matched_cells(a.runs, b.runs)
    deltas = cells["delta"].to_numpy(dtype=float)
    mean_ci = _mean_interval(deltas)
    result = {
        "threshold": threshold,
        "reference_flops": references,
        "cells": {"matched": len(cells), "mean_delta": float(deltas.mean()) if len(deltas) else None, "mean_delta_ci": mean_ci,
                  "worse": int((deltas > 0).sum()), "noise_a": _noise(a.runs), "noise_b": _noise(b.runs),
                  "table": cells.to_dict("records")},
        "frontier": [],
        "data": trained_on(a, b),
        "tokenizer": tokenized_by(a, b),
        "exponents": {},
        "regression": False,
        "reasons": [],
    }  # fmt: skip
    for approach in ("approach2", "approach3"):
        result["exponents"][approach] = {side: {"a": (fits[side][approach] or {}).get("a"),
                                                "ci": ((fits[side][approach] or {}).get("ci") or {}).get("a")}
                                         for side in ("a", "b")}  # fmt: skip
    fitted = all(fits[side]["approach3"] for side in ("a", "b"))
    for c in references:
        entry = {"flops": c}
        for side in ("a", "b"):
            part = fits[side]["approach3"]
            entry[side] = {"loss": part and next(p["approach3"]["loss"] for p in fits[side]["predictions"] if p["flops"] == c),
                           "ci": part and part.get("ci", {}).get(f"loss@{c:.3g}")}  # fmt: skip
        if fitted:
            delta = entry["b"]["loss"] - entry["a"]["loss"]
            apart = bool(entry["a"]["ci"] and entry["b"]["ci"] and entry["b"]["ci"][0] > entry["a"]["ci"][1])
            entry["delta"], entry["outside_intervals"] = delta, apart
            if delta > threshold and apart:
                result["regression"] = True
                result["reasons"].append(f"frontier loss at C = {c:.3g} is {delta:+.4f} worse (B {entry['b']['loss']:.4f} "
                                         f"{_shown(entry['b']['ci'])} against A {entry['a']['loss']:.4f} {_shown(entry['a']['ci'])}), "
                                         f"beyond the threshold {threshold:g} and outside both intervals")  # fmt: skip
        result["frontier"].append(entry)
    if not fitted:
        result["reasons"].append("Approach 3 did not fit both sweeps: the verdict reads the matched cells")
        if mean_ci and deltas.mean() > threshold and mean_ci[0] > 0:
            result["regression"] = True
            result["reasons"].append(f"matched cells are {deltas.mean():+.4f} worse on average {_shown(mean_ci)} over "
                                     f"{len(deltas)} cells, beyond the threshold {threshold:g}")  # fmt: skip
    return result


def trained_on(a: FitInputs, b: FitInputs) -> dict:
    """The data fingerprints each side's runs recorded (``data_fingerprint``: every token file's bytes), and whether
    they are the same: a loss difference between sweeps on different data mixes the data's effect with the code's."""
    return _recorded(a, b, "data_fingerprint")


def tokenized_by(a: FitInputs, b: FitInputs) -> dict:
    """The tokenizers' SHA-256 each side's runs recorded (``tokenizer_sha256``, from the manifest of ``sweep data
    prepare``), and whether they are the same (None where a side recorded none): losses per token of two
    tokenizers are not comparable, whatever the code did."""
    return _recorded(a, b, "tokenizer_sha256")


def _recorded(a: FitInputs, b: FitInputs, column: str) -> dict:
    """The distinct values of ``column`` on each side (sorted), and whether they are the same where both have some."""
    sides = {}
    for name, inputs in (("a", a), ("b", b)):
        values = inputs.runs[column] if column in inputs.runs else None
        sides[name] = sorted(str(v) for v in values.dropna().unique()) if values is not None else []
    known = bool(sides["a"]) and bool(sides["b"])
    return sides | {"same": sides["a"] == sides["b"] if known else None}


def _shown(interval: list[float] | None) -> str:
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "[no interval]"
