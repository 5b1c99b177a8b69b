"""Approach 3 of Hoffmann et al. (2022): the parametric loss L(N, D) = E + A / N^alpha + B / D^beta.

Fitted as Hoffmann et al. and Epoch AI (Besiroglu et al. 2024) did: minimise the sum over runs of the Huber loss
(delta = 1e-3) of the log-loss residual, with the model in log-sum-exp form,

    r_i = LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i,   A = exp(a), B = exp(b), E = exp(e).

Chinchilla's recipe runs L-BFGS from a grid of 4,500 initialisations. We find the same optimum far faster, by
variable projection: for fixed exponents (alpha, beta) the model is linear in (E, A, B), so a 2-D grid over the
exponents with a least-squares solve for (E, A, B) at each point (relative residuals, which equal log residuals
to first order; all points solved in one batch) maps the whole landscape in one pass; L-BFGS with analytic gradients then polishes
the best few grid points on the exact Huber objective. Compute-optimal allocation from the fit splits C into N
and D by the runs' own FLOPs per token f(N) (``sweep.fitting.compute``): with f = 6N it is Hoffmann et al.'s
eq. 4, N_opt(C) = G (C/6)^a, D_opt(C) = G^-1 (C/6)^b with a = beta/(alpha+beta), b = alpha/(alpha+beta),
G = (alpha A / (beta B))^(1/(alpha+beta)); a and b remain the exponents of N_opt and D_opt as C grows (f tends to
k1 N), and are reported as such.

Pure: arrays in, a frozen result out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from sweep.fitting.blas import one_blas_thread
from sweep.fitting.compute import FlopsPerToken, optimal_allocation

HUBER_DELTA = 1e-3


@dataclass(frozen=True)
class ParametricFit:
    """L(N, D) = E + A / N^alpha + B / D^beta, with the objective value it reached."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    """Sum over runs of Huber(delta) of the log-loss residuals."""
    n_runs: int
    compute: FlopsPerToken = FlopsPerToken()
    """FLOPs per token f(N) of the runs: C = f(N) D splits a budget (``optimal_allocation``)."""

    @property
    def a(self) -> float:
        """N_opt grows as C^a."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """D_opt grows as C^b."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def loss(self, n_params, tokens):
        n, d = np.asarray(n_params, dtype=float), np.asarray(tokens, dtype=float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def optimal_allocation(self, flops):
        """(N_opt, D_opt) minimising L for training compute C = f(N) D (``compute``)."""
        return optimal_allocation(flops, E=self.E, A=self.A, B=self.B, alpha=self.alpha, beta=self.beta, compute=self.compute)

    def optimal_loss(self, flops):
        n, d = self.optimal_allocation(flops)
        return self.loss(n, d)


def huber(residual: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    absolute = np.abs(residual)
    return np.where(absolute <= delta, 0.5 * residual**2, delta * (absolute - 0.5 * delta))


def objective_and_gradient(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray,
                           delta: float = HUBER_DELTA) -> tuple[float, np.ndarray]:  # fmt: skip
    """Summed Huber objective and its exact gradient in theta = (a, b, e, alpha, beta).

    r = LSE(t1, t2, t3) - log L with t1 = a - alpha log N, t2 = b - beta log D, t3 = e; d LSE / d t_k is the softmax
    weight w_k, and Huber'(r) = clip(r, -delta, delta). Written out by hand: it runs ~10^5 times per bootstrap.
    """
    a, b, e, alpha, beta = theta
    t1, t2 = a - alpha * log_n, b - beta * log_d
    top = np.maximum(np.maximum(t1, t2), e)
    x1, x2, x3 = np.exp(t1 - top), np.exp(t2 - top), np.exp(e - top)
    total = x1 + x2 + x3
    residual = top + np.log(total) - log_loss
    slope = np.clip(residual, -delta, delta) / total  # Huber'(r), divided by the softmax denominator
    g1, g2 = slope * x1, slope * x2
    gradient = np.array([g1.sum(), g2.sum(), (slope * x3).sum(), -(g1 @ log_n), -(g2 @ log_d)])
    absolute = np.abs(residual)
    value = np.where(absolute <= delta, 0.5 * residual * residual, delta * (absolute - 0.5 * delta)).sum()
    return float(value), gradient


def _projected_grid(n: np.ndarray, d: np.ndarray, loss: np.ndarray, alphas: np.ndarray, betas: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """For every (alpha, beta) on the grid: the least-squares (E, A, B) on relative residuals, scored on the exact
    objective; pairs whose solution is not positive (no valid log-parameters) are left out.

    Vectorised over the whole grid: the 3 x 3 normal equations of every pair are built from inner products of the
    per-alpha columns N^-alpha and per-beta columns D^-beta, then solved in one batch.
    """
    w = 1.0 / loss  # relative residuals: (model - L) / L
    X, Y = n[None, :] ** -alphas[:, None], d[None, :] ** -betas[:, None]  # (alphas, runs), (betas, runs)
    ones = np.ones_like(loss)
    s11, s1x, s1y = np.sum(w * w), (X * w * w) @ ones, (Y * w * w) @ ones
    sxx, syy, sxy = (X * X * w * w) @ ones, (Y * Y * w * w) @ ones, (X * w * w) @ Y.T
    t1, tx, ty = np.sum(w), (X * w) @ ones, (Y * w) @ ones  # right-hand side: columns . (L / L)
    ka, kb = len(alphas), len(betas)
    normal = np.empty((ka, kb, 3, 3))
    normal[..., 0, 0] = s11
    normal[..., 0, 1] = normal[..., 1, 0] = s1x[:, None]
    normal[..., 0, 2] = normal[..., 2, 0] = s1y[None, :]
    normal[..., 1, 1] = sxx[:, None]
    normal[..., 1, 2] = normal[..., 2, 1] = sxy
    normal[..., 2, 2] = syy[None, :]
    rhs = np.stack(np.broadcast_arrays(t1, tx[:, None], ty[None, :]), axis=-1)[..., None]
    with np.errstate(all="ignore"):
        try:
            E, A, B = np.moveaxis(np.linalg.solve(normal, rhs)[..., 0], -1, 0)  # each (alphas, betas)
        except np.linalg.LinAlgError:  # a singular system: runs that cannot tell the terms apart
            return []
    valid = (E > 0) & (A > 0) & (B > 0) & np.isfinite(E) & np.isfinite(A) & np.isfinite(B)
    ia, ib = np.nonzero(valid)
    if len(ia) == 0:
        return []
    model = E[ia, ib][:, None] + A[ia, ib][:, None] * X[ia] + B[ia, ib][:, None] * Y[ib]  # (pairs, runs)
    values = np.sum(huber(np.log(model) - np.log(loss)[None, :]), axis=1)
    thetas = np.stack([np.log(A[ia, ib]), np.log(B[ia, ib]), np.log(E[ia, ib]), alphas[ia], betas[ib]], axis=1)
    order = np.argsort(values)
    return [(float(values[i]), thetas[i]) for i in order]


@one_blas_thread
def fit_parametric(n_params, tokens, loss, *, delta: float = HUBER_DELTA, grid_size: int = 40, polish: int = 8,
                   starts: list[np.ndarray] | None = None, compute: FlopsPerToken = FlopsPerToken()) -> ParametricFit:  # fmt: skip
    """Fit L(N, D) (see the module docstring). ``starts`` replaces the grid search (e.g. a bootstrap's warm start);
    ``compute`` is carried into the result for its allocation (the fit itself needs only N, D and L)."""
    n, d, loss = (np.asarray(v, dtype=float) for v in (n_params, tokens, loss))
    if not (len(n) == len(d) == len(loss) >= 5):
        raise ValueError("need at least 5 runs with n_params, tokens and loss")
    if len(np.unique(n)) < 2 or len(np.unique(d)) < 2:
        raise ValueError("need at least 2 distinct model sizes and 2 distinct token counts to tell A/N^alpha from B/D^beta")
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)
    if starts is None:
        exponents = np.linspace(0.05, 1.5, grid_size)
        starts = [theta for _, theta in _projected_grid(n, d, loss, exponents, exponents)[:polish]]
    best_value, best_theta = np.inf, None
    for start in starts:
        result = minimize(
            objective_and_gradient, start, args=(log_n, log_d, log_loss, delta), jac=True, method="L-BFGS-B",
            bounds=[(None, None), (None, None), (None, None), (1e-3, 3.0), (1e-3, 3.0)],
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12},
        )  # fmt: skip
        if result.fun < best_value:
            best_value, best_theta = float(result.fun), result.x
    if best_theta is None:
        raise ValueError("no starting point gave a positive E, A and B")
    a, b, e, alpha, beta = best_theta
    return ParametricFit(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha), beta=float(beta),
                         objective=best_value, n_runs=len(n), compute=compute)  # fmt: skip


def theta_of(fit: ParametricFit) -> np.ndarray:
    """The optimiser's parameters (log A, log B, log E, alpha, beta) of a fit, to warm-start another."""
    return np.array([np.log(fit.A), np.log(fit.B), np.log(fit.E), fit.alpha, fit.beta])
