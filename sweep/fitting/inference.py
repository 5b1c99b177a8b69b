"""Inference-aware allocation (Sardana & Frankle 2023, "Beyond Chinchilla-Optimal: Accounting for Inference in
Language Model Scaling Laws"): the model size N and token count D that reach a target loss with the fewest training
plus inference FLOPs, when the model will then serve ``inference_tokens`` tokens.

With Approach 3's law L(N, D) = E + A/N^alpha + B/D^beta, the target loss l fixes D for each N,
D(N) = (B / (l - E - A/N^alpha))^(1/beta), defined for N above N_min = (A / (l - E))^(1/alpha); the cost is

    total(N) = f(N) D(N)  +  2 N T          training (the sweep's FLOPs per token f) + inference (a forward pass,
                                            2 FLOPs per parameter per token, Kaplan et al.'s count)

minimised over log N by a bounded scalar search (scipy). With T = 0 this is the compute-optimal model of the
budget whose optimal loss is l (Chinchilla's answer); as T grows the optimum moves to a smaller model trained on
more tokens. No closed form exists (Sardana & Frankle solve it numerically too).

Pure: a fitted law in, a dict out.
"""

from __future__ import annotations

import math

import numpy as np

from sweep.fitting.parametric import ParametricFit

INFERENCE_FLOPS_PER_PARAMETER = 2.0
"""FLOPs per parameter per token of a forward pass (inference), as Kaplan et al. count it."""
SEARCH_DECADES = 6.0
"""How far above N_min (the smallest model that can reach the target at all) the search for N goes."""


def tokens_for_loss(fit: ParametricFit, n_params: float, target_loss: float) -> float:
    """D such that L(N, D) = target_loss (inf where N alone cannot reach it)."""
    room = target_loss - fit.E - fit.A / n_params**fit.alpha
    return (fit.B / room) ** (1.0 / fit.beta) if room > 0 else math.inf


def allocation(fit: ParametricFit, n_params: float, tokens: float, inference_tokens: float) -> dict:
    """N, D, their training, inference and total FLOPs, and tokens per parameter."""
    training = float(fit.compute(n_params) * tokens)
    inference = INFERENCE_FLOPS_PER_PARAMETER * n_params * inference_tokens
    return {"n_params": float(n_params), "tokens": float(tokens), "training_flops": training, "inference_flops": float(inference),
            "total_flops": training + float(inference), "tokens_per_param": float(tokens / n_params)}  # fmt: skip


def inference_optimal(fit: ParametricFit, target_loss: float, inference_tokens: float) -> dict:
    """The allocation reaching ``target_loss`` with the fewest training plus inference FLOPs (module docstring).
    Raises ``ValueError`` for a target at or below the law's irreducible loss E."""
    from scipy.optimize import minimize_scalar

    if not target_loss > fit.E:
        raise ValueError(f"the target loss {target_loss:.4g} is not above the law's irreducible loss E = {fit.E:.4g}")
    n_min = (fit.A / (target_loss - fit.E)) ** (1.0 / fit.alpha)

    def log_total(x: float) -> float:
        n = 10.0**x
        d = tokens_for_loss(fit, n, target_loss)
        return math.log(allocation(fit, n, d, inference_tokens)["total_flops"]) if math.isfinite(d) else math.inf

    lo = math.log10(n_min) + 1e-9
    grid = np.linspace(lo, lo + SEARCH_DECADES, 241)  # bracket the minimum first: total is convex-ish but steep near N_min
    best = int(np.argmin([log_total(x) for x in grid]))
    bounds = (grid[max(0, best - 1)], grid[min(len(grid) - 1, best + 1)])
    x = minimize_scalar(log_total, bounds=bounds, method="bounded", options={"xatol": 1e-9}).x
    n = 10.0**x
    return allocation(fit, n, tokens_for_loss(fit, n, target_loss), inference_tokens)


def inference_plan(fit: ParametricFit, flops: float, inference_tokens: float) -> dict:
    """For a training budget ``flops``: its compute-optimal model (target: that model's loss) with the inference
    cost of ``inference_tokens`` added, beside the inference-optimal model that reaches the same loss."""
    n_opt, d_opt = fit.optimal_allocation(flops)
    target = float(fit.loss(n_opt, d_opt))
    compute_optimal = allocation(fit, float(n_opt), float(d_opt), inference_tokens)
    best = inference_optimal(fit, target, inference_tokens)
    saved = 1.0 - best["total_flops"] / compute_optimal["total_flops"]
    return {"flops": float(flops), "inference_tokens": float(inference_tokens), "target_loss": target,
            "compute_optimal": compute_optimal, "inference_optimal": best, "total_saved": saved}  # fmt: skip
