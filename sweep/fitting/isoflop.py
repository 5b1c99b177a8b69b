"""Approach 2 of Hoffmann et al. (2022): iso-FLOP parabolas, then power laws for the compute-optimal frontier.

For each compute budget C, final loss is fitted as a parabola in x = log10 N (least squares over that budget's
runs, all seeds). Where the parabola opens upward and its vertex lies inside the sampled range of N, the vertex
gives N_opt(C) and L_opt(C), and D_opt(C) is read off the budget's own runs (log tokens is linear in log N at fixed
C, so it is interpolated there). Budgets without such an interior minimum are kept in the result with the
reason and left out of the power laws. Then log10 N_opt = a log10 C + const and log10 D_opt = b log10 C + const.

Pure: a DataFrame in, a frozen result out; no I/O, no plotting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FIT_COLUMNS = ("n_params", "tokens", "loss", "budget")


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
    """One budget's parabola ``loss = c2 x^2 + c1 x + c0`` in x = log10 N, and its minimum if interior."""

    budget: float
    n_runs: int
    coefficients: tuple[float, float, float]
    interior: bool
    n_opt: float | None
    d_opt: float | None
    loss_opt: float | None
    note: str | None = None
    """Why the budget has no usable minimum (``interior`` false)."""


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


def fit_budget(budget: float, n_params: np.ndarray, tokens: np.ndarray, loss: np.ndarray) -> IsoFlopFit:
    """The parabola of one budget's runs; ``interior`` only for an upward parabola with its vertex inside the data."""
    x = np.log10(n_params)
    if len(np.unique(x)) < 3:
        return IsoFlopFit(budget, len(x), (np.nan,) * 3, False, None, None, None, "fewer than 3 model sizes")
    c2, c1, c0 = (float(c) for c in np.polyfit(x, loss, 2))
    if c2 <= 0:
        return IsoFlopFit(budget, len(x), (c2, c1, c0), False, None, None, None, "parabola opens downward")
    vertex = -c1 / (2 * c2)
    if not x.min() < vertex < x.max():
        side = "smallest" if vertex <= x.min() else "largest"
        return IsoFlopFit(budget, len(x), (c2, c1, c0), False, None, None, None, f"minimum at or beyond the {side} model")
    slope, intercept = np.polyfit(x, np.log10(tokens), 1)
    loss_opt = c2 * vertex**2 + c1 * vertex + c0
    return IsoFlopFit(budget, len(x), (c2, c1, c0), True, 10.0**vertex, 10.0 ** (slope * vertex + intercept), loss_opt)


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


def fit_approach2(runs: pd.DataFrame) -> Approach2Result:
    """Iso-FLOP parabolas per budget and the N_opt, D_opt power laws; ``runs`` has ``FIT_COLUMNS``."""
    missing = set(FIT_COLUMNS) - set(runs.columns)
    if missing:
        raise ValueError(f"runs lack columns {sorted(missing)}")
    return frontier(tuple(fit_budget(*arrays) for arrays in budget_arrays(runs)))
