"""Whether an interval of a predicted N_opt or D_opt is bounded by the data's scale: the one rule that ``sweep fit``,
``sweep predict`` and their JSON share for Approaches 1 and 2.

An interval [lo, hi] at a budget C is bounded when it is finite, positive and hi / lo is at most ``SCALE_FACTOR``
times the sweep's own span: the ratio of its largest to its smallest model size (token count for D_opt). Why 100:
a prediction goes up to ``EXTRAPOLATION_FACTOR`` (10x) past the largest budget before it is flagged as far, and over
that reach an exponent known only to its physical range (0 <= a <= 1: N_opt neither shrinks nor outgrows C) moves
N_opt by at most 10x either way, 100x in all. An interval wider than that beyond the sizes run says the fit pins
neither the frontier's level nor its slope; its ends come from a t quantile or the resamples, not from the data
(the demo's Approach 1 once printed N_opt 1.6e+07 [4.85e-19, 5.27e+32] at 1e21). The JSON keeps such an interval in
``ci`` and names it under the approach's ``unbounded`` with a warning; the text prints the estimate with the reason.
"""

from __future__ import annotations

import math

import pandas as pd

SCALE_FACTOR = 100.0
"""How many times wider than the sweep's own span of sizes (tokens) an N_opt (D_opt) interval may be (module
docstring)."""
SPANS = {"n_opt": "n_params", "d_opt": "tokens"}
"""The run column whose span bounds each predicted quantity's interval."""
APPROACHES = ("approach1", "approach2")


def unbounded_reason(interval: list[float], span: float) -> str | None:
    """Why ``interval`` is not bounded by a data ``span`` (max / min of the sizes or tokens run), briefly; None when
    it is."""
    lo, hi = interval
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0:
        return "not finite"
    if hi / lo > SCALE_FACTOR * span:
        return f"{hi / lo:.2g}x wide"
    return None


def unbounded_intervals(summary: dict, runs: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per approach (1 and 2), each predicted N_opt or D_opt (``ci`` key ``n_opt@C``, ``d_opt@C``) whose interval is
    not bounded by the data's scale, with the reason (``unbounded_reason``)."""
    spans = {quantity: float(runs[column].max() / runs[column].min()) for quantity, column in SPANS.items()}
    out = {}
    for name in APPROACHES:
        ci = (summary.get(name) or {}).get("ci") or {}
        reasons = {key: unbounded_reason(interval, spans[key.split("@")[0]])
                   for key, interval in ci.items() if key.split("@")[0] in spans}  # fmt: skip
        if any(reasons.values()):
            out[name] = {key: why for key, why in reasons.items() if why}
    return out


def unbounded_warnings(summary: dict, unbounded: dict[str, dict[str, str]], runs: pd.DataFrame) -> list[str]:
    """One warning per unbounded interval: which, how wide against what, and what the text prints instead."""
    notes = []
    for name, keys in unbounded.items():
        for key, why in keys.items():
            column = SPANS[key.split("@")[0]]
            span = float(runs[column].max() / runs[column].min())
            lo, hi = summary[name]["ci"][key]
            wide = why != "not finite"
            against = f", over {SCALE_FACTOR:g}x the runs' own span of {column} ({span:.3g}x)" if wide else ""
            notes.append(f"{name} {key}: its interval [{lo:.3g}, {hi:.3g}] is {why}{against}: the fit does not pin "
                         "this prediction, so the text prints the estimate without it (fitting/bounded.py)")  # fmt: skip
    return notes
