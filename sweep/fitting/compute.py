"""Training FLOPs per token as a function of model size: the one FLOP convention the fits use end to end.

A sweep sizes its runs under its own convention (``6N``, ``6N+attention`` or ``chinchilla``, see
``models/accounting.py``), so a run's compute is C = f(N) D, with f(N) its FLOPs per token. Approach 3's
compute-optimal allocation, ``sweep predict``, the extrapolation check and the report's curves must split a budget
C into N and D by the same f, or they answer in another currency than the runs were sized in: on the demo ladder
``6N+attention`` is 12-28% above 6N.

f is known at the runs' sizes (``flops / tokens``). Between them, log(f(N)/N) is interpolated linearly in log N;
below the smallest run f(N)/N is held at its value. Above the largest, f(N)/N follows k + m N^(-1/3): on a ladder
of fixed aspect ratio (d_model ~ n_layer ~ N^(1/3)) the attention FLOPs 12 L T d grow as N^(2/3), so their share of
f falls as N^(-1/3), the term every convention's excess over its parameter FLOPs ends up dominated by. k and m
continue the runs' own trend: the value at the largest run and the least-squares slope s of log(f/N) over the runs
of the top decade of N (clipped to [-1/3, 0], so k = r (1 + 3s) >= 0; one size: s = 0, f/N held).
Basis functions fitted over the whole ladder were tried first and rejected: no small family follows a snapped
ladder (integer layers, whole heads, a vocabulary-sized output head inside N) to better than 5-20% at realistic
vocabularies, while interpolation is exact at every run. ``six_nd()`` is the plain C = 6ND of tables that carry no
sizing (the default for ``--input``, ``--flops-convention 6ND``).

Compute-optimal allocation under L(N, D) = E + A/N^alpha + B/D^beta and C = f(N) D: minimise over log N
g(N) = A N^-alpha + B (f(N)/C)^beta; g'(log N) = -alpha A N^-alpha + beta B (f(N)/C)^beta e(N), with e = N f'/f
the elasticity of f (1 plus the slope of log(f/N), close to 1), rises with log N, so its root is found by
bisection, vectorised over budgets; as f is only piecewise smooth, the bisection starts from the cells around the
minimum of g on a grid of 0.025 in log N (6 decades either side of the closed form), so a bend at a rung never
traps it in a local minimum. With f = 6N this is Hoffmann et al.'s closed form (eq. 4), which the tests check.

Pure: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd



@dataclass(frozen=True)
class FlopsPerToken:
    """f(N): training FLOPs per token of a model of N parameters, as f(N)/N interpolated in log N (module docstring)."""

    log_n: tuple[float, ...] = (0.0,)
    """log N of the distinct run sizes, increasing."""
    log_ratio: tuple[float, ...] = (float(np.log(6.0)),)
    """log(f(N)/N) at each of them."""
    tail_slope: float = 0.0
    """s: d log(f/N) / d log N at the largest run, continued as k + m N^(-1/3) beyond it (module docstring)."""
    name: str = "6ND"
    """The convention, as shown: ``6ND``, or the sweep's (``6N+attention (each run's FLOPs per token)``)."""
    max_relative_error: float = 0.0
    """The largest |f(N_i) / (C_i / D_i) - 1| over the runs (non-zero only where runs of one size differ)."""

    def _tail(self) -> tuple[float, float, float]:
        """(N_max, k, m) of f/N = k + m N^(-1/3) beyond the largest run."""
        n_max, r = float(np.exp(self.log_n[-1])), float(np.exp(self.log_ratio[-1]))
        return n_max, r * (1.0 + 3.0 * self.tail_slope), -3.0 * self.tail_slope * r * n_max ** (1.0 / 3.0)

    def ratio(self, n_params):
        """f(N) / N."""
        n = np.asarray(n_params, dtype=float)
        inside = np.exp(np.interp(np.log(n), self.log_n, self.log_ratio))
        n_max, k, m = self._tail()
        return np.where(n > n_max, k + m * np.maximum(n, n_max) ** (-1.0 / 3.0), inside)

    def __call__(self, n_params):
        return np.asarray(n_params, dtype=float) * self.ratio(n_params)

    def elasticity(self, n_params):
        """N f'(N) / f(N): 1 plus the slope of log(f/N) in log N (0 below the runs; the tail's above them)."""
        n = np.asarray(n_params, dtype=float)
        log_n = np.log(n)
        n_max, k, m = self._tail()
        tail = m * np.maximum(n, n_max) ** (-1.0 / 3.0)
        slope = np.where(n > n_max, -tail / (3.0 * (k + tail)), 0.0)
        if len(self.log_n) >= 2:
            slopes = np.diff(self.log_ratio) / np.diff(self.log_n)
            segment = np.clip(np.searchsorted(self.log_n, log_n) - 1, 0, len(slopes) - 1)
            slope = np.where((log_n > self.log_n[0]) & (log_n <= self.log_n[-1]), slopes[segment], slope)
        return 1.0 + slope

    @property
    def is_linear(self) -> bool:
        """f = k N: C = k N D, where allocation has a closed form."""
        return len(set(self.log_ratio)) == 1 and self.tail_slope == 0.0

    def tokens(self, flops, n_params):
        """D = C / f(N)."""
        return np.asarray(flops, dtype=float) / self(n_params)

    def as_dict(self) -> dict:
        return {"name": self.name, "n_params": [float(np.exp(x)) for x in self.log_n],
                "flops_per_token_over_n": [float(np.exp(x)) for x in self.log_ratio], "tail_slope": self.tail_slope,
                "max_relative_error": self.max_relative_error}  # fmt: skip


def six_nd() -> FlopsPerToken:
    """C = 6ND."""
    return FlopsPerToken()


def fit_flops_per_token(n_params, flops, tokens, name: str) -> FlopsPerToken:
    """f from runs' FLOPs per token (``flops / tokens``): the geometric mean of f/N at each distinct N."""
    n, per_token = np.asarray(n_params, dtype=float), np.asarray(flops, dtype=float) / np.asarray(tokens, dtype=float)
    if len(n) == 0 or not (np.all(np.isfinite(per_token)) and np.all(per_token > 0) and np.all(n > 0)):
        raise ValueError("FLOPs per token need positive, finite n_params, flops and tokens")
    frame = pd.DataFrame({"log_n": np.log(n), "log_ratio": np.log(per_token / n)}).groupby("log_n")["log_ratio"].mean()
    top = frame[frame.index >= frame.index[-1] - np.log(10.0)]
    slope = float(np.polyfit(top.index, top.to_numpy(), 1)[0]) if len(top) >= 2 else 0.0
    fitted = FlopsPerToken(tuple(float(x) for x in frame.index), tuple(float(x) for x in frame), float(np.clip(slope, -1 / 3, 0.0)), name)
    return replace(fitted, max_relative_error=float(np.max(np.abs(fitted(n) / per_token - 1.0))))


def optimal_allocation(flops, *, E: float, A: float, B: float, alpha: float, beta: float, compute: FlopsPerToken):
    """(N_opt, D_opt) minimising E + A/N^alpha + B/D^beta subject to C = f(N) D (module docstring); arrays like
    ``flops``."""
    c = np.asarray(flops, dtype=float)
    a = beta / (alpha + beta)
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    k = float(np.exp(compute.log_ratio[-1]))
    closed = G * (c / k) ** a  # Hoffmann et al. eq. 4 with C = k N D, k: f/N at the largest run (the grid's centre)
    if compute.is_linear:
        return closed, c / (k * closed)

    def loss(log_n):  # g(N) up to E, log_n: (budgets..., grid)
        n = np.exp(log_n)
        return A * n**-alpha + B * (compute(n) / c[..., None]) ** beta

    def slope(log_n):  # g'(log N)
        n = np.exp(log_n)
        return -alpha * A * n**-alpha + beta * B * (compute(n) / c) ** beta * compute.elasticity(n)

    # The global minimum on a grid first (a ladder's snapped f can bend g at a rung), then bisection inside the
    # grid cells either side of it.
    steps = np.linspace(-6.0, 6.0, 481)  # 0.025 in log N around the closed form
    grid = np.log(closed)[..., None] + steps
    best = np.argmin(loss(grid), axis=-1)
    low = np.take_along_axis(grid, np.clip(best - 1, 0, len(steps) - 1)[..., None], -1)[..., 0]
    high = np.take_along_axis(grid, np.clip(best + 1, 0, len(steps) - 1)[..., None], -1)[..., 0]
    for _ in range(64):
        middle = 0.5 * (low + high)
        rising = slope(middle) > 0
        low, high = np.where(rising, low, middle), np.where(rising, middle, high)
    n_opt = np.exp(0.5 * (low + high))
    return n_opt, c / compute(n_opt)


def describe_convention(convention: dict) -> str:
    """One line for a summary's ``flops_convention`` (``FlopsPerToken.as_dict``): ``C = 6ND``, or
    ``6N+attention (each run's FLOPs per token): C = f(N) D, f(N)/N 7.71 at N = 7.1e+03 ... 6.21 at N = 1.7e+05``."""
    if convention["name"] == "6ND":
        return "C = 6ND"
    sizes, ratios = convention["n_params"], convention["flops_per_token_over_n"]
    span = f"{ratios[0]:.3g} at N = {sizes[0]:.2g}" + (f" ... {ratios[-1]:.3g} at N = {sizes[-1]:.2g}" if len(sizes) > 1 else "")
    return f"{convention['name']}: C = f(N) D, f(N)/N {span}"
