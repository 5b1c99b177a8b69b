"""Rules from studies: each size's best learning rate, then a power law LR*(N) across sizes, with bootstrap intervals.

Pure functions on plain rows (one per finished trial: ``n_params``, ``lr``, ``loss``, and ``batch_tokens`` when the
batch was searched); no Optuna, no I/O. For each size, with x = log10(lr) and y = its final evaluation loss:

1. the best trial is the lowest y;
2. the trials within ``WINDOW_DECADES`` of it in x (or, with fewer than 3 rates there, the ``NEAR_BEST`` nearest)
   get a parabola y = c0 + c1 x + c2 x^2 (least squares): a window of fixed width, since a model-based sampler
   crowds its trials so close to the best that over the nearest few the noise outweighs the curvature, while a
   window much wider than a decade bends the vertex towards the far side (the bowl is not symmetric). If it curves upward (c2 > 0) and its vertex x* = -c1 / (2 c2) lies inside those trials' x range,
   LR* = 10^x*; otherwise LR* is the best trial's rate and the size says why (too few trials, no curvature, the
   vertex outside the trials: widen ``tune.space.lr``). A best trial at the edge of every rate the size tried
   (pruned and diverged trials included) is flagged the same way: the optimum may lie beyond the searched range;
3. across sizes, log LR* = log c + k log(N / N0), least squares, with N0 the geometric mean of the sizes (the
   coefficient at N0 is the best-determined point of the line), so LR*(N) = c (N / N0)^k;
4. intervals: ``n_boot`` bootstrap resamples, each drawing every size's trials with replacement and redoing steps
   1-3; percentile 95% intervals of k, c and every size's LR*.

With the batch searched (``tune.space.batch_tokens``, a set of choices), each size's best batch is its best trial's,
and batch*(N) gets the same power law and bootstrap. Porian et al. (2024) fit both laws this way (their Figure 5: a
parabola in log LR around each size's best, then power laws in N); DeepSeek LLM (2024) fits them against compute.

A diverged trial (a rate too high) is no point on a parabola: it is left out here and counted (``diverged``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

WINDOW_DECADES = 0.5
"""The parabola of step 2 is fitted to the trials within this many decades of the best rate (a decade in all) ..."""
NEAR_BEST = 5
"""... or, when fewer than 3 distinct rates lie there, to the ``NEAR_BEST`` trials nearest the best; at least 3
distinct rates are needed."""
KIND = "sweep-tune-rule"
"""The ``kind`` of a rule table (``sweep.config.read_tuned_rule`` checks it)."""


@dataclass(frozen=True)
class SizeOptimum:
    """One size's best learning rate."""

    n_params: int
    """Non-embedding parameters."""
    lr: float
    """LR*: the parabola's vertex (``refined``) or the best trial's rate."""
    lr_interval: tuple[float, float] | None
    """95% bootstrap interval of LR* (None without bootstrap)."""
    best_trial_lr: float
    best_loss: float
    trials: int
    """Finished trials with a finite loss (the points fitted)."""
    diverged: int
    refined: bool
    """True when LR* is the parabola's vertex."""
    note: str | None = None
    """Why LR* is not refined, or why it may be off (the optimum at the edge of the trials)."""
    batch_tokens: int | None = None
    """The best trial's batch, when the batch was searched."""


@dataclass(frozen=True)
class PowerLaw:
    """value(N) = coefficient * (N / reference_params) ** exponent, with 95% intervals of both constants."""

    coefficient: float
    reference_params: float
    exponent: float
    coefficient_interval: tuple[float, float] | None = None
    exponent_interval: tuple[float, float] | None = None

    def at(self, n_params: float) -> float:
        return self.coefficient * (n_params / self.reference_params) ** self.exponent


@dataclass(frozen=True)
class RuleFit:
    """A study's fitted rules: every size's optimum, LR*(N), and batch*(N) when the batch was searched."""

    sizes: tuple[SizeOptimum, ...]
    lr_rule: PowerLaw | None
    """None with fewer than two sizes that have an optimum (``warnings`` says so)."""
    batch_rule: PowerLaw | None = None
    n_boot: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self, study: str, **context) -> dict:
        """The rule table ``sweep tune`` writes and ``training.lr_tuned`` reads (plain JSON data); ``context``:
        what produced it (horizon, trials, sampler...), stored beside the numbers."""
        return {
            "kind": KIND, "study": study,
            "lr_rule": None if self.lr_rule is None else {"form": "lr = coefficient * (N / reference_params) ** exponent", **asdict(self.lr_rule)},
            "batch_rule": None if self.batch_rule is None else {"form": "batch_tokens = coefficient * (N / reference_params) ** exponent", **asdict(self.batch_rule)},
            "sizes": [asdict(size) for size in self.sizes], "bootstrap_resamples": self.n_boot,
            "warnings": list(self.warnings), **context,
        }  # fmt: skip


def near_best(x: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Indices of the trials the parabola of step 2 is fitted to, x = log10(lr) (module docstring)."""
    distance = np.abs(x - x[int(np.argmin(losses))])
    near = np.flatnonzero(distance <= WINDOW_DECADES)
    if len(np.unique(x[near])) < 3:  # a sparse study: the nearest trials, however far
        near = np.argsort(distance, kind="stable")[:NEAR_BEST]
    return near


def best_lr(lrs: np.ndarray, losses: np.ndarray, tried: np.ndarray | None = None) -> tuple[float, bool, str | None]:
    """(LR*, refined, note) of one size's finished trials (module docstring, steps 1-2); ``tried``: every rate the
    size tried (pruned and diverged trials too), for the edge check: a rate beyond the best that was pruned or
    diverged shows the optimum is not beyond it."""
    x = np.log10(lrs)
    best = int(np.argmin(losses))
    span = np.log10(tried) if tried is not None and len(tried) else x
    edge = None
    if len(np.unique(span)) > 1 and (x[best] <= span.min() or x[best] >= span.max()):
        edge = "the best trial is at the edge of the rates tried: the optimum may lie beyond them (widen tune.space.lr)"
    near = near_best(x, losses)
    if len(np.unique(x[near])) < 3:
        return float(lrs[best]), False, edge or f"{len(np.unique(x[near]))} distinct rates: a parabola needs 3"
    c2, c1, _ = np.polyfit(x[near], losses[near], 2)
    if not c2 > 0:
        return float(lrs[best]), False, edge or "the losses near the best do not curve upward: the best trial's rate"
    vertex = -c1 / (2 * c2)
    if not x[near].min() <= vertex <= x[near].max():
        return float(lrs[best]), False, edge or "the parabola's minimum lies outside the trials near the best"
    return float(10**vertex), True, edge


def power_law(n_params: np.ndarray, values: np.ndarray) -> PowerLaw | None:
    """Least squares of log value against log N about N0 = the geometric mean of the sizes; None below 2 sizes."""
    if len(np.unique(n_params)) < 2:
        return None
    log_n, log_v = np.log(n_params), np.log(values)
    reference = float(np.exp(log_n.mean()))
    exponent, intercept = np.polyfit(log_n - log_n.mean(), log_v, 1)
    return PowerLaw(coefficient=float(np.exp(intercept)), reference_params=reference, exponent=float(exponent))


def _optima(groups: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each size's (N, LR*, best batch) of a list of (N, lrs, losses, batches, rates tried)."""
    ns, lrs, batches = [], [], []
    for n, lr, loss, batch, tried in groups:
        ns.append(n)
        lrs.append(best_lr(lr, loss, tried)[0])
        if batch is not None:
            batches.append(batch[int(np.argmin(loss))])
    return np.array(ns, float), np.array(lrs), np.array(batches, float) if batches else None


def _interval(values: list[float]) -> tuple[float, float] | None:
    finite = [v for v in values if math.isfinite(v)]
    return (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))) if len(finite) >= 10 else None


def fit_rules(trials: list[dict], n_boot: int = 1000, seed: int = 0) -> RuleFit:
    """Each size's LR* and the power laws across sizes (module docstring) of ``trials``: dicts with ``n_params``,
    ``lr``, ``loss`` (None or non-finite for a trial without a final loss: diverged, or ``status`` ``pruned``,
    which counts only as a rate tried) and, when the batch was searched, ``batch_tokens``."""
    by_size: dict[int, list[dict]] = {}
    for trial in trials:
        by_size.setdefault(int(trial["n_params"]), []).append(trial)
    searched_batch = any(t.get("batch_tokens") is not None for t in trials) and len({t.get("batch_tokens") for t in trials}) > 1
    groups, sizes, warnings = [], [], []
    for n, rows in sorted(by_size.items()):
        good = [r for r in rows if r["loss"] is not None and math.isfinite(r["loss"])]
        diverged = sum(1 for r in rows if r.get("status", "diverged") == "diverged" and r not in good)
        if not good:
            warnings.append(f"N={n:,}: no trial finished with a finite loss ({diverged} diverged): no optimum")
            continue
        lr = np.array([r["lr"] for r in good], float)
        loss = np.array([r["loss"] for r in good], float)
        tried = np.array([r["lr"] for r in rows], float)
        batch = np.array([r["batch_tokens"] for r in good], float) if searched_batch else None
        groups.append((n, lr, loss, batch, tried))
        value, refined, note = best_lr(lr, loss, tried)
        best = int(np.argmin(loss))
        sizes.append(SizeOptimum(n_params=n, lr=value, lr_interval=None, best_trial_lr=float(lr[best]), best_loss=float(loss[best]),
                                 trials=len(good), diverged=diverged, refined=refined, note=note,
                                 batch_tokens=int(batch[best]) if batch is not None else None))  # fmt: skip
        if note:
            warnings.append(f"N={n:,}: {note}")
    ns, lrs, batches = _optima(groups)
    lr_law = power_law(ns, lrs) if len(ns) else None
    batch_law = power_law(ns, batches) if batches is not None and len(ns) else None
    if lr_law is None:
        warnings.append(f"{len(ns)} size(s) with an optimum: a power law LR*(N) needs 2 or more")
    if n_boot and lr_law is not None:
        lr_law, batch_law, sizes = _bootstrap(groups, lr_law, batch_law, sizes, n_boot, seed)
        warnings += interval_warnings(sizes, lr_law)
    return RuleFit(sizes=tuple(sizes), lr_rule=lr_law, batch_rule=batch_law, n_boot=n_boot if lr_law else 0, warnings=tuple(warnings))


def _bootstrap(groups, lr_law: PowerLaw, batch_law: PowerLaw | None, sizes: list[SizeOptimum], n_boot: int, seed: int):
    """The laws and sizes with percentile intervals from ``n_boot`` resamples of every size's trials."""
    rng = np.random.default_rng(seed)
    exponents, coefficients, batch_exponents, batch_coefficients = [], [], [], []
    per_size: list[list[float]] = [[] for _ in groups]
    for _ in range(n_boot):
        drawn = []
        for n, lr, loss, batch, tried in groups:
            pick = rng.integers(0, len(lr), len(lr))
            drawn.append((n, lr[pick], loss[pick], None if batch is None else batch[pick], tried))
        ns, lrs, batches = _optima(drawn)
        for values, value in zip(per_size, lrs):
            values.append(value)
        law = power_law(ns, lrs)
        if law is None:
            continue
        # The same reference size as the point estimate, so the coefficient's interval is at one N.
        exponents.append(law.exponent)
        coefficients.append(law.at(lr_law.reference_params))
        if batch_law is not None and batches is not None:
            other = power_law(ns, batches)
            batch_exponents.append(other.exponent)
            batch_coefficients.append(other.at(batch_law.reference_params))
    lr_law = PowerLaw(lr_law.coefficient, lr_law.reference_params, lr_law.exponent, _interval(coefficients), _interval(exponents))
    if batch_law is not None:
        batch_law = PowerLaw(batch_law.coefficient, batch_law.reference_params, batch_law.exponent,
                             _interval(batch_coefficients), _interval(batch_exponents))  # fmt: skip
    sizes = [SizeOptimum(**{**asdict(size), "lr_interval": _interval(values)}) for size, values in zip(sizes, per_size)]
    return lr_law, batch_law, sizes


def interval_warnings(fit_sizes: list[SizeOptimum], law: PowerLaw | None) -> list[str]:
    """Every interval that does not hold its own estimate (a bootstrap of a minimum can fail to), said."""
    found = [f"N={s.n_params:,}: LR* {s.lr:.3g} lies outside its bootstrap interval [{s.lr_interval[0]:.3g}, {s.lr_interval[1]:.3g}]"
             for s in fit_sizes if s.lr_interval and not s.lr_interval[0] <= s.lr <= s.lr_interval[1]]  # fmt: skip
    if law is not None and law.exponent_interval and not law.exponent_interval[0] <= law.exponent <= law.exponent_interval[1]:
        found.append(f"the exponent {law.exponent:.3f} lies outside its bootstrap interval {law.exponent_interval}")
    return found
