"""Law families: parametric forms of final loss L(N, D), each a pure function with its gradient in its parameters
and its compute-optimal allocation, fitted robustly. ``sweep.fitting.selection`` chooses among them by how well
they extrapolate.

Families (``FAMILIES``; parameters theta, all fitted on a log-loss Huber objective like Approach 3):

- ``chinchilla``: E + A/N^alpha + B/D^beta (Hoffmann et al. 2022). Fitted by ``sweep.fitting.parametric``
  (variable projection, then L-BFGS); allocation in closed form (eq. 4) under C = 6ND, bisection otherwise.
- ``farseer``: E + A/N^alpha + B(N)/D^beta(N), B(N) = B (N/N0)^gamma, beta(N) = beta (N/N0)^delta: the data term's
  coefficient and exponent depend on N, as in Farseer (Li et al. 2025, "Farseer: A Refined Scaling Law in Large
  Language Models", whose B(N) and A(N) are exponentials of power laws in N; we take their first-order, power-law
  shape, two parameters fewer, so a sweep of tens of runs can identify it). N0 is the runs' geometric-mean size,
  so beta is the data exponent there. gamma = delta = 0 is Chinchilla's form.
- ``kaplan``: E + ((Nc/N)^(alphaN/alphaD) + Dc/D)^alphaD (Kaplan et al. 2020, eq. 1.5, with an irreducible E as
  later fits use). Allocation under C = 6ND has a closed form, N_opt = (p Nc^p C / (6 Dc))^(1/(p+1)),
  p = alphaN/alphaD; the tests check the numeric allocation against it.
- ``data_constrained``: Chinchilla's form with the effective data D' of Muennighoff et al. 2023 ("Scaling
  Data-Constrained Language Models", eq. 5): D' = U + U R* (1 - exp(-R/R*)), R = D/U - 1 repeated epochs of U
  unique tokens. Needs a ``unique_tokens`` column, and runs that repeat data; a compute-optimal answer assumes
  fresh data (D' = D).

Fitting (``fit_law``): L-BFGS-B on the summed Huber (delta 1e-3) of log L_model - log L with the analytic gradient
J^T psi(r), from several starts derived from the Chinchilla fit (every richer family contains it or approximates
it there). scipy does the optimisation; what no library has is the families themselves and their gradients.

Allocation (``FittedLaw.optimal_allocation``): minimise L(N, C/f(N)) over log N on a grid of ``GRID_POINTS``
between the N whose D/N is the fitted runs' smallest / 100 and largest x 100, then golden-section search in the
cells either side of the grid's best: every family here is unimodal along an iso-FLOP line near its minimum, and
the grid finds the global one. Outside that range a form is extrapolated along an axis the runs never saw, and
some fall without end there (a Farseer-form data term whose coefficient shrinks with N goes to 0 as N grows at 2
tokens a run): ``optimum_inside`` says so, and ``sweep.fitting.selection`` skips such a family.

Pure: arrays in, frozen results out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from sweep.fitting.blas import one_blas_thread
from sweep.fitting.compute import FlopsPerToken, six_nd
from sweep.fitting.compute import optimal_allocation as chinchilla_allocation
from sweep.fitting.parametric import HUBER_DELTA, ParametricFit, fit_parametric, huber, theta_of

Model = Callable[[np.ndarray, dict], tuple[np.ndarray, np.ndarray]]
"""(theta, columns) -> (L, dL/dtheta of shape (runs, parameters)); columns: log_n, log_d, log_u (unique tokens),
log_n0 (the reference size)."""


@dataclass(frozen=True)
class LawFamily:
    name: str
    formula: str
    parameters: tuple[str, ...]
    """Names of theta's entries, in order."""
    model: Model
    bounds: tuple[tuple[float | None, float | None], ...]
    reference: str
    needs_unique_tokens: bool = False

    @property
    def size(self) -> int:
        return len(self.parameters)


def _chinchilla(theta, x):
    a, b, e, alpha, beta = theta
    t1, t2, t0 = np.exp(a - alpha * x["log_n"]), np.exp(b - beta * x["log_d"]), np.exp(e) * np.ones_like(x["log_n"])
    jac = np.stack([t1, t2, t0, -t1 * x["log_n"], -t2 * x["log_d"]], axis=1)
    return t0 + t1 + t2, jac


def _farseer(theta, x):
    a, b, e, alpha, beta, gamma, delta = theta
    rel = x["log_n"] - x["log_n0"]
    exponent = beta * np.exp(delta * rel)  # beta(N)
    t1, t0 = np.exp(a - alpha * x["log_n"]), np.exp(e) * np.ones_like(rel)
    t2 = np.exp(b + gamma * rel - exponent * x["log_d"])
    jac = np.stack([t1, t2, t0, -t1 * x["log_n"], -t2 * np.exp(delta * rel) * x["log_d"], t2 * rel,
                    -t2 * exponent * rel * x["log_d"]], axis=1)  # fmt: skip
    return t0 + t1 + t2, jac


def _kaplan(theta, x):
    e, log_nc, log_dc, alpha_n, alpha_d = theta
    p = alpha_n / alpha_d
    z1, z2 = p * (log_nc - x["log_n"]), log_dc - x["log_d"]
    log_u = np.logaddexp(z1, z2)
    s1, s2 = np.exp(z1 - log_u), np.exp(z2 - log_u)  # shares of (Nc/N)^p and Dc/D in their sum u
    t = np.exp(alpha_d * log_u)
    t0 = np.exp(e) * np.ones_like(t)
    gap = log_nc - x["log_n"]
    jac = np.stack([t0, t * alpha_n * s1, t * alpha_d * s2, t * s1 * gap, t * (log_u - s1 * gap * p)], axis=1)
    return t0 + t, jac


def effective_tokens(log_d, log_u, log_r_star):
    """(log D', d D'/d log R*) of Muennighoff et al.'s eq. 5, with U the unique tokens actually read (min(U, D))."""
    d, u = np.exp(log_d), np.exp(np.minimum(log_u, log_d))
    r, r_star = d / u - 1.0, np.exp(log_r_star)
    decay = np.exp(-r / r_star)
    d_eff = u + u * r_star * (1.0 - decay)
    d_r_star = u * r_star * ((1.0 - decay) - (r / r_star) * decay)  # d D' / d log R*
    return np.log(d_eff), d_r_star


def _data_constrained(theta, x):
    a, b, e, alpha, beta, log_r_star = theta
    log_d_eff, d_r_star = effective_tokens(x["log_d"], x["log_u"], log_r_star)
    t1, t2, t0 = np.exp(a - alpha * x["log_n"]), np.exp(b - beta * log_d_eff), np.exp(e) * np.ones_like(log_d_eff)
    jac = np.stack([t1, t2, t0, -t1 * x["log_n"], -t2 * log_d_eff, -beta * t2 * d_r_star / np.exp(log_d_eff)], axis=1)
    return t0 + t1 + t2, jac


EXPONENT = (1e-3, 3.0)
RATIO_ROOM = 100.0
"""The allocation searches D/N from the runs' smallest / 100 to their largest x 100."""
GRID_POINTS = 801
SLOPE_STEP = 1.5
"""The local exponent a is read between C / 1.5 and 1.5 C (``FittedLaw.frontier``)."""
FAMILIES: dict[str, LawFamily] = {
    family.name: family
    for family in (
        LawFamily("chinchilla", "E + A/N^alpha + B/D^beta", ("log_A", "log_B", "log_E", "alpha", "beta"), _chinchilla,
                  ((None, None),) * 3 + (EXPONENT, EXPONENT), "Hoffmann et al. 2022"),
        LawFamily("farseer", "E + A/N^alpha + B (N/N0)^gamma / D^(beta (N/N0)^delta)",
                  ("log_A", "log_B", "log_E", "alpha", "beta", "gamma", "delta"), _farseer,
                  ((None, None),) * 3 + (EXPONENT, EXPONENT, (-3.0, 3.0), (-1.0, 1.0)),
                  "after Li et al. 2025 (Farseer): data term depending on N"),
        LawFamily("kaplan", "E + ((Nc/N)^(alphaN/alphaD) + Dc/D)^alphaD", ("log_E", "log_Nc", "log_Dc", "alphaN", "alphaD"),
                  _kaplan, ((None, None), (-50.0, 120.0), (-50.0, 120.0), EXPONENT, EXPONENT), "Kaplan et al. 2020"),
        LawFamily("data_constrained", "E + A/N^alpha + B/D'^beta, D' = U + U R* (1 - exp(-(D/U - 1)/R*))",
                  ("log_A", "log_B", "log_E", "alpha", "beta", "log_R_star"), _data_constrained,
                  ((None, None),) * 3 + (EXPONENT, EXPONENT, (-5.0, 8.0)), "Muennighoff et al. 2023", needs_unique_tokens=True),
    )
}
"""Every law family, by name (``--law``)."""


def columns(n_params, tokens, unique_tokens=None, log_n0: float | None = None) -> dict:
    """The model's inputs: log N, log D, log U (U = D where not given) and the reference size log N0."""
    log_n, log_d = np.log(np.asarray(n_params, dtype=float)), np.log(np.asarray(tokens, dtype=float))
    log_n, log_d = np.broadcast_arrays(log_n, log_d)
    log_u = log_d if unique_tokens is None else np.broadcast_to(np.log(np.asarray(unique_tokens, dtype=float)), log_d.shape)
    return {"log_n": log_n.ravel(), "log_d": log_d.ravel(), "log_u": np.asarray(log_u).ravel(),
            "log_n0": float(np.mean(log_n) if log_n0 is None else log_n0), "shape": log_d.shape}  # fmt: skip


@dataclass(frozen=True)
class FittedLaw:
    family: LawFamily
    theta: tuple[float, ...]
    objective: float
    """Summed Huber (delta 1e-3) of the log-loss residuals."""
    n_runs: int
    log_n0: float
    """log of the reference size N0 (the fitted runs' geometric-mean N)."""
    compute: FlopsPerToken = field(default_factory=six_nd)
    tokens_per_param: tuple[float, float] = (20.0 / 1e6, 20.0 * 1e6)
    """The fitted runs' smallest and largest D/N (``fit_law`` sets it): where the allocation may look."""

    @property
    def values(self) -> dict[str, float]:
        """The parameters in natural units (log_X shown as X)."""
        out = {}
        for name, value in zip(self.family.parameters, self.theta):
            out[name.removeprefix("log_")] = float(np.exp(value)) if name.startswith("log_") else float(value)
        if self.family.name == "farseer":
            out["N0"] = float(np.exp(self.log_n0))
        return out

    def loss(self, n_params, tokens, unique_tokens=None):
        x = columns(n_params, tokens, unique_tokens, self.log_n0)
        value, _ = self.family.model(np.asarray(self.theta), x)
        return value.reshape(x["shape"]) if x["shape"] else float(value[0])

    def optimal_allocation(self, flops):
        """(N_opt, D_opt) minimising L at training compute C = f(N) D (fresh data: D' = D), searched where D/N lies
        within ``RATIO_ROOM`` of the runs' own range (module docstring)."""
        c = np.asarray(flops, dtype=float)
        if self.family.name == "chinchilla":
            a, b, e, alpha, beta = self.theta
            return chinchilla_allocation(c, E=np.exp(e), A=np.exp(a), B=np.exp(b), alpha=alpha, beta=beta, compute=self.compute)
        flat = np.atleast_1d(c).ravel()
        grid, values = self._along(flat)
        best = np.argmin(values, axis=1)
        rows, last = np.arange(len(flat)), grid.shape[1] - 1
        low, high = grid[rows, np.clip(best - 1, 0, last)], grid[rows, np.clip(best + 1, 0, last)]
        ratio = (np.sqrt(5.0) - 1.0) / 2.0
        for _ in range(60):  # golden section: the minimum stays inside [low, high]
            left, right = high - ratio * (high - low), low + ratio * (high - low)
            lower = self._loss_on_line(flat, left) < self._loss_on_line(flat, right)
            low, high = np.where(lower, low, left), np.where(lower, right, high)
        n_opt = np.exp(0.5 * (low + high))
        n_opt = n_opt.reshape(c.shape) if c.shape else float(n_opt[0])
        return n_opt, c / self.compute(n_opt)

    def optimum_inside(self, flops: float) -> bool:
        """Whether the loss at ``flops`` has its minimum inside the searched D/N range, not at its edge: a form fitted
        far from where it is asked (a data term that vanishes as N grows, say) can fall without end along the
        iso-FLOP line, and its "optimum" is then the search's bound, not a prediction."""
        if self.family.name == "chinchilla":
            return True
        _, values = self._along(np.array([float(flops)]))
        best = int(np.argmin(values[0]))
        return 0 < best < values.shape[1] - 1

    def _loss_on_line(self, flat: np.ndarray, log_n: np.ndarray) -> np.ndarray:
        """L on the iso-FLOP line of each budget at log N (one column per budget, or a grid of them)."""
        n = np.exp(log_n)
        budgets = flat[:, None] if log_n.ndim == 2 else flat
        return self.loss(n, budgets / self.compute(n))

    def _along(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The search grid in log N of each budget (``GRID_POINTS`` between the D/N bounds) and L on it."""
        low_ratio, high_ratio = self.tokens_per_param
        low_ratio, high_ratio = low_ratio / RATIO_ROOM, high_ratio * RATIO_ROOM

        def log_n_at(ratio):  # N with C = f(N) D and D = ratio N: N = sqrt(C / (ratio f(N)/N)), one fixed-point step
            guess = np.sqrt(flat / (ratio * 6.0))
            return 0.5 * np.log(flat / (ratio * self.compute.ratio(guess)))

        grid = np.linspace(log_n_at(high_ratio), log_n_at(low_ratio), GRID_POINTS, axis=1)
        with np.errstate(all="ignore"):
            values = self._loss_on_line(flat, grid)
        return grid, np.where(np.isfinite(values), values, np.inf)

    def optimal_loss(self, flops):
        n, d = self.optimal_allocation(flops)
        return self.loss(n, d)

    def exponent_a(self, flops: float) -> float:
        """d log N_opt / d log C at ``flops`` (Chinchilla's a, which for the other families varies with C)."""
        return float(self.frontier([flops])["a"][0])

    def frontier(self, flops) -> dict[str, np.ndarray]:
        """N_opt, D_opt, their loss and the local exponent a (the slope of log N_opt between C / 1.5 and 1.5 C) at
        each budget of ``flops``, from one allocation of all three budgets of each."""
        flops = np.asarray(flops, dtype=float)
        k = len(flops)
        n_opt, d_opt = self.optimal_allocation(np.concatenate([flops / SLOPE_STEP, flops, flops * SLOPE_STEP]))
        n, d = n_opt[k:2 * k], d_opt[k:2 * k]
        return {"n_opt": n, "d_opt": d, "loss": self.loss(n, d), "a": np.log(n_opt[2 * k:] / n_opt[:k]) / np.log(SLOPE_STEP**2)}


def objective_and_gradient(theta, family: LawFamily, x: dict, log_loss: np.ndarray, delta: float = HUBER_DELTA):
    """Summed Huber of r = log L_model - log L and its gradient J^T psi(r) / L_model."""
    with np.errstate(all="ignore"):
        value, jac = family.model(np.asarray(theta), x)
        if not (np.all(np.isfinite(value)) and np.all(value > 0) and np.all(np.isfinite(jac))):
            return 1e30, np.zeros(len(theta))
        residual = np.log(value) - log_loss
    psi = np.clip(residual, -delta, delta)
    return float(huber(residual, delta).sum()), (psi / value) @ jac


def starts_for(family: LawFamily, base: np.ndarray) -> list[np.ndarray]:
    """Starting points from Chinchilla's fit ``base`` = (log A, log B, log E, alpha, beta)."""
    a, b, e, alpha, beta = base
    if family.name == "chinchilla":
        return [np.array(base)]
    if family.name == "farseer":
        return [np.array([a, b, e, alpha, beta, gamma, d]) for gamma in (0.0, -0.3, 0.3) for d in (0.0, -0.05, 0.05)]
    if family.name == "kaplan":
        return [np.array([e + shift, a / alpha, b / beta, alpha, beta]) for shift in (0.0, np.log(0.8), np.log(0.5))]
    return [np.array([a, b, e, alpha, beta, np.log(r_star)]) for r_star in (5.0, 15.0, 50.0)]


@one_blas_thread
def fit_law(family: LawFamily, n_params, tokens, loss, *, unique_tokens=None, compute: FlopsPerToken | None = None,
            starts: list[np.ndarray] | None = None, log_n0: float | None = None, base: ParametricFit | None = None) -> FittedLaw:  # fmt: skip
    """``family`` fitted to the runs (module docstring); ``starts`` replace the Chinchilla-derived ones (a
    bootstrap's warm start); ``base``: Chinchilla's fit of these same runs where the caller has it (every family
    starts from it). Raises ValueError where no start gives a finite fit."""
    compute = compute or six_nd()
    n, d, loss = (np.asarray(v, dtype=float) for v in (n_params, tokens, loss))
    x = columns(n, d, unique_tokens, log_n0)
    ratios = (float(np.min(d / n)), float(np.max(d / n)))
    if starts is None:
        base = base or fit_parametric(n, d, loss, compute=compute)
        if family.name == "chinchilla":
            return FittedLaw(family, tuple(float(v) for v in theta_of(base)), base.objective, len(n), x["log_n0"], compute, ratios)
        starts = starts_for(family, theta_of(base))
    log_loss = np.log(loss)
    best_value, best_theta = np.inf, None
    for start in starts:
        result = minimize(objective_and_gradient, start, args=(family, x, log_loss), jac=True, method="L-BFGS-B",
                          bounds=family.bounds, options={"maxiter": 3000, "ftol": 1e-15, "gtol": 1e-12})  # fmt: skip
        if np.isfinite(result.fun) and result.fun < min(best_value, 1e29):
            best_value, best_theta = float(result.fun), result.x
    if best_theta is None:
        raise ValueError(f"no start gave a finite {family.name} law")
    return FittedLaw(family, tuple(float(v) for v in best_theta), best_value, len(n), x["log_n0"], compute, ratios)
