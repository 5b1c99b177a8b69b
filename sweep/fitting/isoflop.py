"""Approach 2 of Hoffmann et al. (2022): iso-FLOP minima, then power laws for the compute-optimal frontier.

For each compute budget C, the minimum of final loss over x = log10 N gives N_opt(C) and L_opt(C); D_opt(C) is read
off the budget's own runs there (log tokens is linear in log N at fixed C). Then log10 N_opt = a log10 C + const and
log10 D_opt = b log10 C + const. How each minimum is read is a ``MinimumRule``:

- ``parabola`` (Chinchilla's): a parabola in x, least squares over the runs (all seeds) of the ``window`` sizes
  nearest the budget's best size. A parabola through a wide curve is biased: loss against log N is not symmetric
  about its minimum far from it, so on real sweeps of a decade or more each side the full-curve vertex is pulled
  towards the flatter side; a window keeps the fit where the curve is nearly quadratic.
  ``benchmarks/fit_accuracy.py`` measures both (``docs/fit-accuracy.md``).
- ``akima`` (the default): Akima's interpolating spline of the per-size mean loss in x (Porian et al. 2024's
  method), minimised on a fine grid between the sampled sizes; no shape assumed, so no bias from asymmetry, but it
  follows the noise of the points nearest the minimum, which its bootstrap intervals report.
- ``spline``: a cubic smoothing spline of the per-size mean log loss in x, its roughness penalty chosen by
  generalised cross-validation (``scipy.interpolate.make_smoothing_spline``; Craven & Wahba 1979), minimised on
  the same grid: no shape assumed, like Akima, but it smooths the noise that Akima follows. It needs 5 sizes; a
  budget of 3 or 4 is read by Akima's spline.

Measured (``docs/fit-accuracy.md``): on Porian et al.'s 15 public tables Akima reproduces the published a to 0.004
on average (every published value inside its interval), a 7-size window to 0.012, every size to 0.025; on
synthetic Chinchilla-form laws a parabola is 4-10x more precise than Akima. Akima is the default because real
curves are not Chinchilla-shaped, and a shape bias shows in no interval.

A budget whose best size (lowest mean loss) is its smallest or largest is an *edge* budget: its minimum lies at or
beyond the ladder, and a vertex fitted there rests on sizes from one side only (measured: 0.78x the true N_opt, with
no warning, before this rule). It is kept in the result flagged (``edge``) and left out of the power laws unless
``include_edges``. A budget whose best size is interior is never dropped for where a parabola's vertex falls: the
window is centred on that size.

Pure: a DataFrame in, a frozen result out; no I/O, no plotting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FIT_COLUMNS = ("n_params", "tokens", "loss", "budget")
MINIMUM_METHODS = ("parabola", "akima", "spline")
DEFAULT_METHOD = "akima"
"""How budgets' minima are read unless asked otherwise (measured, module docstring)."""
DEFAULT_WINDOW = 7
"""Sizes a budget's parabola is fitted to, centred on its best size (``MinimumRule``; measured, module docstring)."""
AKIMA_GRID = 2001
"""Points of the grid in log N on which an Akima or smoothing spline's minimum is sought."""
SPLINE_SIZES = 5
"""Sizes a smoothing spline needs (fewer: Akima's)."""


@dataclass(frozen=True)
class MinimumRule:
    """How each budget's minimum is read (module docstring)."""

    method: str = DEFAULT_METHOD
    """``akima``, ``spline`` or ``parabola``."""
    window: int | None = DEFAULT_WINDOW
    """``parabola``: the number of sizes fitted, centred on the best one (None or 0: every size); at least 3."""
    include_edges: bool = False
    """Fit the power laws through edge budgets' minima too (their vertex rests on one side's sizes)."""

    def __post_init__(self) -> None:
        if self.method not in MINIMUM_METHODS:
            raise ValueError(f"minimum method must be one of {MINIMUM_METHODS}, got {self.method!r}")
        if self.window not in (None, 0) and self.window < 3:
            raise ValueError(f"a parabola needs a window of 3 or more sizes, got {self.window}")

    def describe(self) -> str:
        if self.method == "akima":
            return "Akima spline of mean loss in log N, minimised between the sizes"
        if self.method == "spline":
            return "smoothing spline of mean log loss in log N (penalty by GCV), minimised between the sizes"
        return f"parabola in log N through the {self.window} sizes nearest each budget's best" if self.window else "parabola in log N through every size"

    def as_dict(self) -> dict:
        return {"method": self.method, "window": self.window if self.method == "parabola" else None,
                "include_edges": self.include_edges, "description": self.describe()}  # fmt: skip


@dataclass(frozen=True)
class PowerLaw:
    """y = coefficient * C ** exponent, fitted by least squares in log10-log10 space."""

    exponent: float
    coefficient: float
    r_squared: float

    def __call__(self, flops: float | np.ndarray) -> float | np.ndarray:
        return self.coefficient * np.asarray(flops, dtype=float) ** self.exponent


@dataclass(frozen=True)
class IsoFlopFit:
    """One budget's minimum: the parabola ``loss = c2 x^2 + c1 x + c0`` in x = log10 N it was read from (NaN for an
    Akima minimum), and the minimum where usable (``interior``)."""

    budget: float
    n_runs: int
    coefficients: tuple[float, float, float]
    interior: bool
    n_opt: float | None
    d_opt: float | None
    loss_opt: float | None
    note: str | None = None
    """Why the budget has no usable minimum (``interior`` false), or what to know about it (an edge budget kept)."""
    edge: str | None = None
    """``smallest`` or ``largest``: the budget's best size is at that end of its ladder (module docstring)."""
    sizes_fitted: int = 0
    """Distinct sizes the minimum was read from."""
    knots: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    """An Akima minimum's spline: the sizes (log10 N) and their mean losses it passes through."""
    smoothing: tuple[tuple[float, ...], tuple[float, ...], int] | None = None
    """A smoothing-spline minimum's spline of log loss in x: its knots, coefficients and degree (a B-spline)."""

    def curve(self, x: np.ndarray) -> np.ndarray | None:
        """The fitted loss at x = log10 N (NaN outside a spline's sizes), or None when nothing was fitted."""
        if self.smoothing is not None:
            from scipy.interpolate import BSpline

            t, c, k = self.smoothing
            x = np.asarray(x, dtype=float)
            inside = (x >= t[0]) & (x <= t[-1])
            return np.where(inside, np.exp(BSpline(np.asarray(t), np.asarray(c), k)(np.clip(x, t[0], t[-1]))), np.nan)
        if self.knots is not None:
            from scipy.interpolate import Akima1DInterpolator

            return Akima1DInterpolator(*(np.asarray(k) for k in self.knots), extrapolate=False)(np.asarray(x, dtype=float))
        if np.isfinite(self.coefficients[0]):
            return np.polyval(self.coefficients, x)
        return None

@dataclass(frozen=True)
class Frontier:
    """The compute-optimal frontier as power laws, shared by Approaches 1 and 2."""

    n_opt: PowerLaw | None
    """N_opt(C) = k C^a; None when too few points were usable."""
    d_opt: PowerLaw | None
    """D_opt(C) = k C^b."""

    @property
    def a(self) -> float | None:
        return None if self.n_opt is None else self.n_opt.exponent

    @property
    def b(self) -> float | None:
        return None if self.d_opt is None else self.d_opt.exponent


@dataclass(frozen=True)
class Approach2Result(Frontier):
    budgets: tuple[IsoFlopFit, ...] = ()
    """Every budget's parabola; the frontier uses those with an interior minimum (at least two)."""


def power_law_intervals(flops, values, predict_flops, level: float = 0.95, resolution: float = 0.0) -> dict[str, list[float]]:
    """Student-t intervals of a least-squares power law (``fit_power_law``): its exponent, and its mean value at each
    of ``predict_flops`` (keys ``exponent`` and ``at@C``), from the scatter about the line with n - 2 degrees of
    freedom, plus ``resolution``: a variance in log10 y that each point carries whatever the scatter (e.g. a
    minimum read off a grid of sizes). Centred on the fitted line by construction; empty with fewer than 3 points."""
    from scipy.stats import t as student

    x, y = np.log10(np.asarray(flops, dtype=float)), np.log10(np.asarray(values, dtype=float))
    if len(x) < 3:
        return {}
    slope, intercept = np.polyfit(x, y, 1)
    sxx = float(np.sum((x - x.mean()) ** 2))
    scatter = float(np.sqrt(np.sum((y - (slope * x + intercept)) ** 2) / (len(x) - 2) + resolution))
    q = float(student.ppf(0.5 + level / 2, len(x) - 2))
    out = {"exponent": [float(slope - q * scatter / np.sqrt(sxx)), float(slope + q * scatter / np.sqrt(sxx))]}
    for c in predict_flops:
        x0 = np.log10(c)
        half = q * scatter * np.sqrt(1.0 / len(x) + (x0 - x.mean()) ** 2 / sxx)
        centre = slope * x0 + intercept
        out[f"at@{c:.3g}"] = [float(10 ** (centre - half)), float(10 ** (centre + half))]
    return out


def fit_power_law(flops: np.ndarray, values: np.ndarray) -> PowerLaw:
    """Least-squares line through (log10 C, log10 y)."""
    x, y = np.log10(flops), np.log10(values)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    r_squared = 1.0 - float(np.sum(residual**2) / total) if total > 0 else 1.0
    return PowerLaw(exponent=float(slope), coefficient=float(10.0**intercept), r_squared=r_squared)


def fit_budget(budget: float, n_params: np.ndarray, tokens: np.ndarray, loss: np.ndarray,
               rule: MinimumRule = MinimumRule()) -> IsoFlopFit:  # fmt: skip
    """One budget's minimum by ``rule`` (module docstring): ``interior`` when it is usable for the power laws."""
    x, loss = np.log10(np.asarray(n_params, dtype=float)), np.asarray(loss, dtype=float)
    sizes = np.unique(x)
    if len(sizes) < 3:
        return IsoFlopFit(budget, len(x), (np.nan,) * 3, False, None, None, None, "fewer than 3 model sizes", sizes_fitted=len(sizes))
    means = np.array([loss[x == size].mean() for size in sizes])
    best = int(np.argmin(means))
    edge = "smallest" if best == 0 else "largest" if best == len(sizes) - 1 else None
    edge_note = (f"lowest loss at the {edge} model size: the minimum lies at or beyond the ladder's edge, and a fit there "
                 "rests on sizes from one side only") if edge else None  # fmt: skip
    if edge and not rule.include_edges:
        return IsoFlopFit(budget, len(x), (np.nan,) * 3, False, None, None, None, f"{edge_note}; left out of the power laws",
                          edge=edge, sizes_fitted=len(sizes))  # fmt: skip
    kept = window_sizes(sizes, best, rule.window if rule.method == "parabola" else None)
    inside, knots, smoothing = np.isin(x, kept), None, None
    if rule.method == "spline" and len(kept) >= SPLINE_SIZES:
        (vertex, loss_opt, smoothing), coefficients, why = _spline_minimum(kept, means[np.isin(sizes, kept)]), (np.nan,) * 3, None
    elif rule.method in ("akima", "spline"):
        knots = (tuple(kept.tolist()), tuple(means[np.isin(sizes, kept)].tolist()))
        (vertex, loss_opt), coefficients, why = _akima_minimum(*(np.asarray(k) for k in knots)), (np.nan,) * 3, None
    else:
        vertex, loss_opt, coefficients, why = _parabola_minimum(x[inside], loss[inside])
    if why is None and not (edge or kept.min() < vertex < kept.max()):
        side = "smallest" if vertex <= kept.min() else "largest"
        why = f"parabola's minimum at or beyond the {side} size it was fitted to"
    if why is not None:
        return IsoFlopFit(budget, len(x), coefficients, False, None, None, None, why, edge=edge, sizes_fitted=len(kept), knots=knots,
                          smoothing=smoothing)  # fmt: skip
    slope, intercept = np.polyfit(x[inside], np.log10(np.asarray(tokens, dtype=float)[inside]), 1)
    return IsoFlopFit(budget, len(x), coefficients, True, 10.0**vertex, 10.0 ** (slope * vertex + intercept), loss_opt,
                      f"{edge_note}; kept (include_edges)" if edge else None, edge=edge, sizes_fitted=len(kept), knots=knots,
                      smoothing=smoothing)  # fmt: skip


def window_sizes(sizes: np.ndarray, best: int, window: int | None) -> np.ndarray:
    """The ``window`` sizes (log10, sorted) nearest in rank to ``sizes[best]``, shifted to stay inside; all with None."""
    if not window or window >= len(sizes):
        return sizes
    start = min(max(0, best - window // 2), len(sizes) - window)
    return sizes[start : start + window]


def _parabola_minimum(x: np.ndarray, loss: np.ndarray) -> tuple[float, float | None, tuple[float, float, float], str | None]:
    """(vertex, loss there, coefficients, why not usable) of the least-squares parabola through (x, loss)."""
    c2, c1, c0 = (float(c) for c in np.polyfit(x, loss, 2))
    if c2 <= 0:
        return np.nan, None, (c2, c1, c0), "parabola opens downward"
    vertex = -c1 / (2 * c2)
    return vertex, c2 * vertex**2 + c1 * vertex + c0, (c2, c1, c0), None


def _akima_minimum(sizes: np.ndarray, means: np.ndarray) -> tuple[float, float]:
    """(argmin, min) of Akima's spline through the per-size mean losses, on a fine grid between the sizes."""
    from scipy.interpolate import Akima1DInterpolator

    grid = np.linspace(sizes[0], sizes[-1], AKIMA_GRID)
    values = Akima1DInterpolator(sizes, means)(grid)
    i = int(np.nanargmin(values))
    return float(grid[i]), float(values[i])


def _spline_minimum(sizes: np.ndarray, means: np.ndarray) -> tuple[float, float, tuple]:
    """(argmin, min, (knots, coefficients, degree)) of the GCV smoothing spline of log mean loss in log10 N."""
    from scipy.interpolate import make_smoothing_spline

    spline = make_smoothing_spline(sizes, np.log(means))
    grid = np.linspace(sizes[0], sizes[-1], AKIMA_GRID)
    values = spline(grid)
    i = int(np.nanargmin(values))
    return float(grid[i]), float(np.exp(values[i])), (tuple(spline.t.tolist()), tuple(spline.c.tolist()), int(spline.k))


def frontier(fits: tuple[IsoFlopFit, ...]) -> Approach2Result:
    """The N_opt and D_opt power laws through the budgets that have an interior minimum."""
    usable = [f for f in fits if f.interior]
    if len(usable) < 2:
        return Approach2Result(n_opt=None, d_opt=None, budgets=fits)
    flops = np.array([f.budget for f in usable])
    return Approach2Result(
        n_opt=fit_power_law(flops, np.array([f.n_opt for f in usable])),
        d_opt=fit_power_law(flops, np.array([f.d_opt for f in usable])),
        budgets=fits,
    )


def budget_arrays(runs: pd.DataFrame) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
    """(budget, n_params, tokens, loss) per budget, smallest budget first."""
    return [
        (float(budget), *(group[c].to_numpy(dtype=float) for c in ("n_params", "tokens", "loss")))
        for budget, group in runs.groupby("budget", sort=True)
    ]


def fit_approach2(runs: pd.DataFrame, rule: MinimumRule = MinimumRule()) -> Approach2Result:
    """Each budget's minimum by ``rule`` and the N_opt, D_opt power laws; ``runs`` has ``FIT_COLUMNS``."""
    missing = set(FIT_COLUMNS) - set(runs.columns)
    if missing:
        raise ValueError(f"runs lack columns {sorted(missing)}")
    return frontier(tuple(fit_budget(*arrays, rule=rule) for arrays in budget_arrays(runs)))
