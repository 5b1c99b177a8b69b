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

The ladder's edge: a budget whose best run is its smallest or largest size has its optimum there or beyond, where no
run says how far; its run is an edge minimum, listed in ``Approach1Result.edges`` and left out of the lines
(``include_edges=True`` keeps it). Kept in, such runs flatten the line: on Chinchilla's law with the largest
budget's optimum 0.6 decades past the largest size (9 budgets, 9 sizes, 4 of the best runs at the largest), a =
0.325 with them against the true 0.452, 0.450 without (``tests/fitting/test_approach1_honest.py``).
For ``crossings``, a smallest (largest) size that is still the lowest curve at the smallest (largest) budgets is
said in ``edges`` too: the switch points stay valid, but the frontier runs past the ladder there. With fewer than 2
points off the edge no line is fitted, and ``Approach1Result.not_fitted`` says why.

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
    edges: tuple[str, ...] = ()
    """Where the envelope meets the ladder's edge, one line each (module docstring): ``budget minima``: each edge
    minimum, left out of the lines unless ``include_edges``; ``crossings``: the frontier running past the ladder."""
    not_fitted: str | None = None
    """Why no lines were fitted, where the table has 2 or more budgets but fewer than 2 points off the ladder's edge."""


def budget_bests(runs: pd.DataFrame) -> pd.DataFrame:
    """Each budget's lowest-loss run, smallest budget first."""
    return runs.loc[runs.groupby("budget")["loss"].idxmin()].sort_values("budget")


def lower_envelope(runs: pd.DataFrame) -> pd.DataFrame:
    """Each budget's lowest-loss run, where it improves on every smaller budget (``budget minima``)."""
    best = budget_bests(runs)
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


def lowest_curve(curves: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Along a fine grid x of log10 C: which curves cover each x, their log10 losses there, and the index of the
    lowest covering curve (``size_curves``' order, smallest size first)."""
    lo, hi = min(c[1][0] for c in curves), max(c[1][-1] for c in curves)
    x = np.linspace(lo, hi, max(2, int(np.ceil((hi - lo) * GRID_POINTS_PER_DECADE)) + 1))
    covered = np.array([(x >= c[1][0]) & (x <= c[1][-1]) for c in curves])
    losses = np.array([np.interp(x, c[1], c[2]) for c in curves])
    return x, covered, losses, np.where(covered, losses, np.inf).argmin(axis=0)


def switch_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Where the lowest size curve passes from one size to another (``crossings``, module docstring)."""
    curves = size_curves(runs)
    columns = ["flops", "n_params", "tokens", "loss", "from_n_params", "to_n_params"]
    if len(curves) < CURVE_SIZES:
        return pd.DataFrame(columns=columns)
    x, covered, losses, lowest = lowest_curve(curves)
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


def frontier_edges(runs: pd.DataFrame) -> tuple[str, ...]:
    """``crossings``: a line where the smallest size is still the lowest curve at the smallest budgets, or the
    largest at the largest: the frontier runs past that end of the ladder (module docstring)."""
    curves = size_curves(runs)
    if len(curves) < CURVE_SIZES:
        return ()
    x, _, _, lowest = lowest_curve(curves)
    lines = []
    for end, size, neighbour, side in ((-1, len(curves) - 1, len(curves) - 2, "largest"), (0, 0, 1, "smallest")):
        if lowest[end] != size:
            continue
        others = np.flatnonzero(lowest != size)
        c = 10.0 ** x[(others[-1] + 1) if end else (others[0] - 1)] if len(others) else 10.0 ** x[-1 - end]
        mid = np.sqrt(curves[size][0] * curves[neighbour][0])
        span = (f"from C = {c:.3g} to the largest budget ({10.0 ** x[-1]:.3g})" if end
                else f"from the smallest budget ({10.0 ** x[0]:.3g}) to C = {c:.3g}")  # fmt: skip
        lines.append(f"the {side} size (N = {curves[size][0]:.3g}) is still the lowest curve {span}: the "
                     f"compute-optimal size there is {'above' if end else 'below'} {mid:.3g} and may lie past the "
                     f"ladder's {side} size, where no switch point can be read (the switch points stay valid; a "
                     f"{'larger' if end else 'smaller'} size would show where the frontier goes)")  # fmt: skip
    return tuple(lines)


def edge_sides(envelope: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """Per envelope run: ``smallest``, ``largest`` or ``only`` where it is that size of its budget's runs (an edge
    minimum), else ``""``."""
    sides = []
    for row in envelope.itertuples():
        sizes = runs.loc[runs["budget"] == row.budget, "n_params"]
        low, high = row.n_params <= sizes.min(), row.n_params >= sizes.max()
        sides.append("only" if low and high else "smallest" if low else "largest" if high else "")
    return sides


def dominated_edges(runs: pd.DataFrame, envelope: pd.DataFrame) -> tuple[str, ...]:
    """Budgets whose best run is an end of their ladder and no lower than a smaller budget's best, so the envelope
    has no point there: their sizes lie so far from the optimum that even the edge minimum is dominated (measured:
    the largest budget's sizes a decade short of its optimum dropped out of Approach 1 without a word)."""
    best = budget_bests(runs)
    missing = best[~best["budget"].isin(envelope["budget"])]
    return tuple(f"{_edge_start(row, side)} and no lower than a smaller budget's best, so its optimum lies beyond the "
                 "sizes run: no point of the envelope" for row, side in zip(missing.itertuples(), edge_sides(missing, runs)) if side)  # fmt: skip


def _edge_start(row, side: str) -> str:
    """``budget C: its best run (N = ...) is its largest size``, the start of every edge line."""
    what = "its only size" if side == "only" else f"its {side} size"
    return f"budget {row.budget:.3g}: its best run (N = {row.n_params:.3g}) is {what}"


def _edge_line(row, side: str, kept: bool) -> str:
    return (f"{_edge_start(row, side)}, so its optimum may lie beyond the sizes run: an edge minimum, "
            f"{'kept in (include_edges)' if kept else 'left out of'} the lines")


def _why_not(switches: pd.DataFrame | None, kept: int, sides: list[str]) -> str:
    """Why ``budget minima`` fitted no line: the points off the ladder's edge and where the others sit."""
    found = f"{len(switches)} switch point{'s' * (len(switches) != 1)} and " if switches is not None else ""
    minima = f"{kept} budget minim{'um' if kept == 1 else 'a'}"
    text = f"Approach 1 has {found}{minima} off the ladder's edge; a line needs 2"
    edge = [side for side in sides if side]
    if edge:
        text += f": {len(edge)} of the {len(sides)} envelope runs are their budget's smallest or largest size"
        if set(edge) == {"largest"}:
            text += " (every one the largest: the compute-optimal size lies past the ladder's end; add larger sizes)"
        elif set(edge) == {"smallest"}:
            text += " (every one the smallest: the compute-optimal size lies below the ladder; add smaller sizes)"
    return text


def fit_approach1(runs: pd.DataFrame, include_edges: bool = False) -> Approach1Result:
    """The envelope (``crossings`` where the sizes' curves give 2 or more switch points, else ``budget minima``)
    and its N_opt, D_opt power laws; edge minima left out unless ``include_edges`` (module docstring); no laws
    with fewer than two points, ``not_fitted`` saying why where the table has 2 or more budgets."""
    crossings = fit_crossings(runs)
    if crossings is not None:
        return replace(crossings, edges=frontier_edges(runs))
    note, switches = None, None
    if len(size_curves(runs)) >= CURVE_SIZES:
        switches = switch_points(runs)
        where = "; ".join(f"N {p.from_n_params:,.0f} to {p.to_n_params:,.0f} at C = {p.flops:.3g}" for p in switches.itertuples())
        note = (f"the sizes' curves give {len(switches)} switch point(s) ({where or 'the same size is best throughout'}), "
                "2 are needed: read at each budget's best run instead (a denser ladder near the optimum gives more)")
    envelope = lower_envelope(runs)
    sides = edge_sides(envelope, runs)
    edges = tuple(_edge_line(row, side, include_edges) for row, side in zip(envelope.itertuples(), sides) if side)
    edges += dominated_edges(runs, envelope)
    kept = envelope if include_edges else envelope[[not side for side in sides]].reset_index(drop=True)
    if len(kept) < 2:
        why = _why_not(switches, len(kept), sides) if runs["budget"].nunique() >= 2 else None
        return Approach1Result(n_opt=None, d_opt=None, envelope=kept, note=note, edges=edges, not_fitted=why)
    return replace(_through(kept, "budget minima"), note=note, edges=edges)


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


def why_no_interval(result: Approach1Result) -> str | None:
    """Why a fitted result's lines have no interval (``envelope_intervals`` needs 3 points), else None."""
    if result.n_opt is None or len(result.envelope) >= 3:
        return None
    return f"{len(result.envelope)} points fix each line exactly, no scatter to measure (Student-t intervals need 3)"


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
