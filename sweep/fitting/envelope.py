"""Approach 1 of Hoffmann et al. (2022): the lower envelope of loss against FLOPs over all runs, then power laws.

Chinchilla read, for each FLOP count, the model with the lowest loss off the training curves of runs with several
cosine cycle lengths. A point on a training curve is only valid where the run's own schedule has ended: a
cosine-decayed run half-way through its schedule has a higher loss than a run scheduled to stop there
(Chinchilla's Figure A1). The valid points here are the runs themselves, each a final loss at its total FLOPs: a
cosine run, or a WSD readout (``training.schedule: wsd``), the end of one cooldown off its size's trunk. Two ways
to read the envelope, picked by what the table holds (``Approach1Result.method``):

- ``crossings`` (a table whose sizes each ran to several horizons, as every fixed ladder does): each size's
  curve is its valid points, log loss linear in log C between them (replicates averaged). Along a fine grid of C,
  the envelope is the lowest curve; where it passes from size p to size q, the two tie, and the compute-optimal
  size there is read as sqrt(N_p N_q) (exactly so where loss against log N is symmetric about its minimum, the
  assumption of Approach 2's parabolas; D likewise). The power laws are fitted through these switch points.
  Chinchilla fitted its envelope's argmin on 1,500 FLOP values instead, a staircase: through K full steps of a
  ladder a least-squares line has 1 - 1/K^2 of the true slope (0.89 for the 3 steps of a 5-size ladder), which
  its dozens of sizes made negligible and a small sweep's few do not. Between two budgets it reads where two sizes
  cross, which Approach 2's parabola through each budget alone does not see, but it reads the same runs: their
  agreement is corroboration, not independent data.
- ``budget minima`` (sizes that do not repeat across horizons, such as Epoch AI's digitised Chinchilla points):
  for each FLOP group (the ``budget`` column), the run of lowest loss, kept if its loss is below every smaller
  group's best (the envelope is monotone), and the lines fitted through those runs. This is the argmin of the
  data Approach 2 fits, coarse on small grids.

Intervals (``envelope_intervals``) are the Student-t intervals of the least-squares lines through the points
(n - 2 degrees of freedom, from their scatter about the lines; ``sweep.fitting.isoflop.power_law_intervals``), for
both methods; they need three points. Not a bootstrap: for ``budget minima`` a bootstrap of a minimum is
degenerate (a resample's best run can only be the full sample's or a worse one, so the estimate sits on the
interval's edge); for ``crossings`` a resample that drops a size's run at one budget cuts that size's curve there
and moves its crossings by a whole budget's spacing: measured on Chinchilla's law with 0.3% loss noise, 5 sizes
by 4 budgets, runs resampled within each budget gave intervals of a 1.35 wide against the t-intervals' 0.52, both
holding the truth (in 10 of 10 and 27 of 30 noise draws; ``tests/fitting/test_envelope.py`` checks the coverage).
The ``budget minima`` intervals are widened by the grid's resolution: an envelope run's N stands for a minimum
anywhere between its neighbouring sizes, so each point carries the variance of a uniform error over half the log
spacing to them (h^2 / 3, h the mean half-gap in log10; likewise for D); a switch point's N is where two sizes
tie, not a grid value, and carries none.

Pure: a table in, a frozen result out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from sweep.fitting.isoflop import Frontier, fit_power_law, power_law_intervals

CURVE_SIZES = 3
"""Sizes with a curve (2 or more horizons) the ``crossings`` method needs."""
GRID_POINTS_PER_DECADE = 200
"""Resolution of the FLOP grid along which the lowest curve is followed (the switch points are then refined)."""
METHODS = ("crossings", "budget minima")


@dataclass(frozen=True)
class Approach1Result(Frontier):
    envelope: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The points the power laws go through, by increasing FLOPs: ``crossings``: flops, n_params, tokens, loss at
    each switch, and the two sizes (``from_n_params``, ``to_n_params``); ``budget minima``: the envelope runs
    (budget, flops, n_params, tokens, loss)."""
    method: str = "budget minima"
    """``crossings`` or ``budget minima`` (module docstring)."""
    note: str | None = None
    """Why the sizes' curves were not read at their crossings, where the table has such curves."""


def lower_envelope(runs: pd.DataFrame) -> pd.DataFrame:
    """Each budget's lowest-loss run, where it improves on every smaller budget (``budget minima``)."""
    best = runs.loc[runs.groupby("budget")["loss"].idxmin()].sort_values("budget")
    improving = best["loss"] < best["loss"].cummin().shift(fill_value=np.inf)
    columns = [c for c in ("budget", "flops", "n_params", "tokens", "loss") if c in best.columns]
    return best.loc[improving, columns].reset_index(drop=True)


def _flops(runs: pd.DataFrame) -> pd.Series:
    return runs["flops"] if "flops" in runs else 6.0 * runs["n_params"] * runs["tokens"]


def size_curves(runs: pd.DataFrame) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
    """Per size with 2 or more horizons, smallest first: (N, log10 C, log10 loss, log10 D) by increasing C, the
    replicates of one horizon averaged in log loss."""
    table = pd.DataFrame({"n": runs["n_params"].astype(float), "d": runs["tokens"].astype(float),
                          "c": np.log10(_flops(runs).astype(float)), "l": np.log10(runs["loss"].astype(float))})  # fmt: skip
    curves = []
    for n, group in table.groupby("n", sort=True):
        points = group.groupby("d", sort=True).agg(c=("c", "mean"), l=("l", "mean")).reset_index().sort_values("c")
        if len(points) >= 2:
            curves.append((float(n), points["c"].to_numpy(), points["l"].to_numpy(), np.log10(points["d"].to_numpy())))
    return curves


def switch_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Where the lowest size curve passes from one size to another (``crossings``, module docstring)."""
    curves = size_curves(runs)
    columns = ["flops", "n_params", "tokens", "loss", "from_n_params", "to_n_params"]
    if len(curves) < CURVE_SIZES:
        return pd.DataFrame(columns=columns)
    lo, hi = min(c[1][0] for c in curves), max(c[1][-1] for c in curves)
    x = np.linspace(lo, hi, max(2, int(np.ceil((hi - lo) * GRID_POINTS_PER_DECADE)) + 1))
    covered = np.array([(x >= c[1][0]) & (x <= c[1][-1]) for c in curves])
    losses = np.array([np.interp(x, c[1], c[2]) for c in curves])
    lowest = np.where(covered, losses, np.inf).argmin(axis=0)
    rows = []
    for j in np.flatnonzero(lowest[1:] != lowest[:-1]):
        p, q = lowest[j], lowest[j + 1]
        if not (covered[p, j : j + 2].all() and covered[q, j : j + 2].all()):
            continue  # the lowest changed because a curve began or ended there, not because two sizes tied
        gap = losses[p, j : j + 2] - losses[q, j : j + 2]
        t = gap[0] / (gap[0] - gap[1]) if gap[0] != gap[1] else 0.5
        xc = x[j] + t * (x[j + 1] - x[j])
        (n_p, cp, lp, dp), (n_q, cq, lq, dq) = curves[p], curves[q]
        rows.append({"flops": 10.0**xc, "n_params": float(np.sqrt(n_p * n_q)),
                     "tokens": float(10.0 ** ((np.interp(xc, cp, dp) + np.interp(xc, cq, dq)) / 2)),
                     "loss": float(10.0 ** np.interp(xc, cp, lp)), "from_n_params": n_p, "to_n_params": n_q})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _through(points: pd.DataFrame, method: str) -> Approach1Result:
    flops = points["flops"].to_numpy(dtype=float) if "flops" in points else points["budget"].to_numpy(dtype=float)
    return Approach1Result(n_opt=fit_power_law(flops, points["n_params"].to_numpy(dtype=float)),
                           d_opt=fit_power_law(flops, points["tokens"].to_numpy(dtype=float)),
                           envelope=points, method=method)  # fmt: skip


def fit_crossings(runs: pd.DataFrame) -> Approach1Result | None:
    """The ``crossings`` envelope and its power laws; None with fewer than 2 switch points."""
    points = switch_points(runs)
    return _through(points, "crossings") if len(points) >= 2 else None


def fit_approach1(runs: pd.DataFrame) -> Approach1Result:
    """The envelope (``crossings`` where the sizes' curves give 2 or more switch points, else ``budget minima``)
    and its N_opt, D_opt power laws (None with fewer than two envelope points)."""
    crossings = fit_crossings(runs)
    if crossings is not None:
        return crossings
    note = None
    if len(size_curves(runs)) >= CURVE_SIZES:
        points = switch_points(runs)
        where = "; ".join(f"N {p.from_n_params:,.0f} to {p.to_n_params:,.0f} at C = {p.flops:.3g}" for p in points.itertuples())
        note = (f"the sizes' curves give {len(points)} switch point(s) ({where or 'the same size is best throughout'}), "
                "2 are needed: read at each budget's best run instead (a denser ladder near the optimum gives more)")
    envelope = lower_envelope(runs)
    if len(envelope) < 2:
        return Approach1Result(n_opt=None, d_opt=None, envelope=envelope, note=note)
    return replace(_through(envelope, "budget minima"), note=note)


def grid_resolution(envelope: pd.DataFrame, runs: pd.DataFrame, column: str) -> float:
    """Mean over envelope points of h^2 / 3, h half the mean log10 gap between the point's value of ``column`` and its
    neighbours among its budget's runs (module docstring)."""
    variances = []
    for row in envelope.itertuples():
        values = np.unique(np.log10(runs.loc[runs["budget"] == row.budget, column].to_numpy(dtype=float)))
        i = int(np.searchsorted(values, np.log10(getattr(row, column))))
        gaps = [values[j + 1] - values[j] for j in (i - 1, i) if 0 <= j < len(values) - 1]
        variances.append((np.mean(gaps) / 2.0) ** 2 / 3.0 if gaps else 0.0)
    return float(np.mean(variances)) if variances else 0.0


def envelope_intervals(result: Approach1Result, predict_flops: list[float], level: float = 0.95,
                       runs: pd.DataFrame | None = None) -> dict[str, list[float]]:  # fmt: skip
    """Intervals of a, b and N_opt, D_opt at each of ``predict_flops`` (the summary's ``ci`` keys; module docstring),
    for ``budget minima`` widened by the resolution of ``runs``' size grid when given; empty with fewer than 3
    envelope points."""
    envelope = result.envelope
    if len(envelope) < 3:
        return {}
    flops = envelope["flops"] if "flops" in envelope else envelope["budget"]
    out = {}
    for quantity, column, exponent in (("n_opt", "n_params", "a"), ("d_opt", "tokens", "b")):
        minima = result.method == "budget minima" and runs is not None
        resolution = grid_resolution(envelope, runs, column) if minima else 0.0
        intervals = power_law_intervals(flops, envelope[column], predict_flops, level, resolution)
        out[exponent] = intervals.pop("exponent")
        out |= {key.replace("at@", f"{quantity}@"): value for key, value in intervals.items()}
    return out
