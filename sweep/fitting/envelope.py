"""Approach 1 of Hoffmann et al. (2022): the lower envelope of loss against FLOPs over all runs, then power laws.

Chinchilla read, for each FLOP count, the model with the lowest loss off the smoothed training curves of runs
with several cosine cycle lengths. A point on a training curve is only valid where the run's own schedule has
ended: a cosine-decayed run half-way through its schedule has a higher loss than a run scheduled to stop there
(Chinchilla's Figure A1). Our runs decay over exactly their own steps, so each contributes one valid point, its
final loss at its total FLOPs. The envelope is therefore taken at the resolution of the budgets: for each FLOP
group (the ``budget`` column), the run of lowest loss, kept if its loss is below every smaller group's best (the
envelope is monotone). Then log10 N_opt and log10 D_opt are fitted linearly in log10 C over the envelope runs.

With one budget's best run per point, Approach 1 reads the argmin where Approach 2 interpolates a parabola; it
is coarse on small grids and the two agree as the size ladder gets denser. It is therefore not the independent
check Chinchilla's Approach 1 was (its envelope ran over the training curves of several schedule lengths): read its
agreement with Approach 2 as the same iso-FLOP data seen twice, until runs train with several horizons.

Intervals (``envelope_intervals``): a bootstrap of a minimum is degenerate (a resample's best run can only be the
full sample's or a worse one, so the estimate sits on the interval's edge), so the intervals of a, b and the
predictions are the Student-t intervals of the least-squares lines through the envelope (n - 2 degrees of
freedom, from the envelope's scatter about them; ``sweep.fitting.isoflop.power_law_intervals``), widened by the
grid's resolution: an envelope run's N stands for a minimum anywhere between its neighbouring sizes, so each point
carries the variance of a uniform error over half the log spacing to them (h^2 / 3, h the mean half-gap in log10;
likewise for D). A ladder whose minima fall on one line therefore still gets an interval. They need three
envelope points. Pure: a table in, a frozen result out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sweep.fitting.isoflop import Frontier, fit_power_law, power_law_intervals


@dataclass(frozen=True)
class Approach1Result(Frontier):
    envelope: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The envelope runs, by increasing FLOPs: budget, flops, n_params, tokens, loss."""


def lower_envelope(runs: pd.DataFrame) -> pd.DataFrame:
    """Each budget's lowest-loss run, where it improves on every smaller budget (see the module docstring)."""
    best = runs.loc[runs.groupby("budget")["loss"].idxmin()].sort_values("budget")
    improving = best["loss"] < best["loss"].cummin().shift(fill_value=np.inf)
    columns = [c for c in ("budget", "flops", "n_params", "tokens", "loss") if c in best.columns]
    return best.loc[improving, columns].reset_index(drop=True)


def fit_approach1(runs: pd.DataFrame) -> Approach1Result:
    """The envelope and its N_opt, D_opt power laws (None with fewer than two envelope points)."""
    envelope = lower_envelope(runs)
    if len(envelope) < 2:
        return Approach1Result(n_opt=None, d_opt=None, envelope=envelope)
    flops = envelope["flops"].to_numpy(dtype=float) if "flops" in envelope else envelope["budget"].to_numpy(dtype=float)
    return Approach1Result(
        n_opt=fit_power_law(flops, envelope["n_params"].to_numpy(dtype=float)),
        d_opt=fit_power_law(flops, envelope["tokens"].to_numpy(dtype=float)),
        envelope=envelope,
    )


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
    widened by the resolution of ``runs``' size grid when given; empty with fewer than 3 envelope points."""
    envelope = result.envelope
    if len(envelope) < 3:
        return {}
    flops = envelope["flops"] if "flops" in envelope else envelope["budget"]
    out = {}
    for quantity, column, exponent in (("n_opt", "n_params", "a"), ("d_opt", "tokens", "b")):
        resolution = grid_resolution(envelope, runs, column) if runs is not None else 0.0
        intervals = power_law_intervals(flops, envelope[column], predict_flops, level, resolution)
        out[exponent] = intervals.pop("exponent")
        out |= {key.replace("at@", f"{quantity}@"): value for key, value in intervals.items()}
    return out
