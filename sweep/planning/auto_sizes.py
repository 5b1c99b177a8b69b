"""``model.sizes: auto``: each budget's model sizes, centred where the sweep's finished budgets put the optimum.

No library chooses iso-FLOP sizes from a sweep's own results, so this does (pure: a ledger in, choices out):

- The smallest budget gets a wide ladder: ``auto_sizes.first_points`` sizes log-spaced over ``auto_sizes.first``.
- A larger budget C is chosen once every smaller budget has finished (every planned run completed or diverged):
  ``auto_sizes.points`` sizes log-spaced over a factor ``auto_sizes.span`` about the N_opt(C) they predict:
  with two or more interior minima (each budget's iso-FLOP parabola, as Approach 2 fits it), their power law;
  with one, that minimum scaled by (C / C_j)^a with the assumed ``auto_sizes.exponent``; with none, the best run
  of the largest finished budget scaled likewise (the reason says the minimum was at the ladder's edge).
- A budget once chosen keeps its shapes and reason: ``sweep run`` records each choice in the results
  (``sizes/sweep=NAME/BUDGET.json``) before training it, and every later plan reads them back (stable run ids:
  a rerun, a repaired run or a budget added later never moves the sizes of a budget that has started).
- A budget whose smaller budgets have not all finished waits: ``sweep run`` plans it as soon as they have
  (``sweep.execute.orchestrate``), so one invocation trains the budgets in turn and a sweep grown night by night
  refines itself.

Each choice says why (``SizeChoice.reason``); every run records it (the ledger's ``size_reason``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweep.config import AutoSizesConfig
from sweep.fitting.isoflop import fit_budget, fit_power_law
from sweep.results.storage import FINISHED_STATUSES

@dataclass(frozen=True)
class SizeChoice:
    """One budget's sizes: target non-embedding counts (``targets``) or, kept from the ledger, shapes."""

    budget: float
    targets: tuple[float, ...] = ()
    shapes: tuple[tuple[int, int, int], ...] = ()
    """(n_layer, d_model, n_head): a choice as recorded (``targets`` snapped by the ladder)."""
    reason: str = ""
    recorded: bool = False
    """Read back from the results (else made by this plan, for ``sweep run`` to record)."""


def log_spaced(low: float, high: float, points: int) -> tuple[float, ...]:
    return tuple(float(n) for n in np.logspace(np.log10(low), np.log10(high), points))


def first_choice(auto: AutoSizesConfig, budget: float) -> SizeChoice:
    low, high = auto.first
    return SizeChoice(budget, log_spaced(low, high, auto.first_points),
                      reason=f"the smallest budget: a wide ladder, {auto.first_points} sizes from {low:.3g} to {high:.3g}")  # fmt: skip


def recorded_choice(recorded: dict[float, tuple[list, str]], budget: float) -> SizeChoice | None:
    """The choice recorded for ``budget`` (``ResultsStore.size_choices``), if any."""
    for flops, (shapes, reason) in recorded.items():
        if np.isclose(flops, budget, rtol=1e-9):
            return SizeChoice(budget, shapes=tuple(tuple(shape) for shape in shapes), reason=reason, recorded=True)
    return None


def finished(ledger: pd.DataFrame, run_ids: list[str]) -> pd.DataFrame | None:
    """The ledger rows of ``run_ids`` if every one is finished (completed or diverged), else None."""
    if ledger.empty or len(run_ids) == 0:
        return None
    rows = ledger[ledger["run_id"].isin(run_ids)]
    return rows if set(rows.loc[rows["status"].isin(FINISHED_STATUSES), "run_id"]) == set(run_ids) else None


def centred_choice(auto: AutoSizesConfig, budget: float, done: dict[float, pd.DataFrame]) -> SizeChoice | str:
    """Sizes for ``budget`` centred on the N_opt the finished budgets ``done`` (their ledger rows) predict, or why
    there is no prediction."""
    minima, best = [], None
    for flops, rows in sorted(done.items()):
        completed = rows[(rows["status"] == "completed") & rows["final_eval_loss"].notna()]
        if completed.empty:
            continue
        n = completed["n_params_nonembedding"].to_numpy(dtype=float)
        fit = fit_budget(flops, n, completed["tokens"].to_numpy(dtype=float), completed["final_eval_loss"].to_numpy(dtype=float))
        if fit.interior:
            minima.append((flops, fit.n_opt))
        best = (flops, float(n[completed["final_eval_loss"].to_numpy().argmin()]))
    if len(minima) >= 2:
        law = fit_power_law(np.array([c for c, _ in minima]), np.array([n for _, n in minima]))
        centre = float(law(budget))
        why = (f"centred on N_opt {centre:.3g}, the power law through the interior minima of budgets "
               f"{', '.join(f'{c:.3g}' for c, _ in minima)} (a = {law.exponent:.3f})")
    elif minima:
        (flops, n_opt), = minima
        centre = n_opt * (budget / flops) ** auto.exponent
        why = (f"centred on N_opt {centre:.3g}: budget {flops:.3g}'s interior minimum N = {n_opt:.3g} scaled by "
               f"(C / {flops:.3g})^{auto.exponent:g}, the assumed a (one interior minimum so far)")
    elif best is not None:
        flops, n_best = best
        centre = n_best * (budget / flops) ** auto.exponent
        why = (f"centred on N {centre:.3g}: no budget has an interior minimum yet; budget {flops:.3g}'s best run "
               f"(N = {n_best:.3g}, at its ladder's edge) scaled by (C / {flops:.3g})^{auto.exponent:g}")
    else:
        return f"budget {max(done):.3g} finished without a completed run: nothing to centre on"
    half = np.sqrt(auto.span)
    return SizeChoice(budget, log_spaced(centre / half, centre * half, auto.points),
                      reason=f"{why}; {auto.points} sizes over {auto.span:g}x")  # fmt: skip
