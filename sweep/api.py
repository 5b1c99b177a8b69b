"""The Python API for notebooks: load a sweep's runs and metrics, fit, predict, plot. Everything ``sweep fit``,
``predict`` and ``report`` do, as functions returning DataFrames, a fit object and matplotlib figures.

Example (a notebook cell; the results of ``sweep demo``)::

    import sweep
    runs = sweep.load_runs("results")                 # the only sweep there, or sweep="NAME", or config="my.yaml"
    fit = sweep.fit("results", n_boot=200)
    fit.not_fitted                                    # {} or, per approach, what it needs
    sweep.predict(fit, 1e13)                          # N_opt, D_opt, loss per approach, with 95% intervals
    sweep.plot_isoflop(fit); sweep.plot_frontier(fit); sweep.plot_curves(sweep.load_metrics("results"), runs)

Scope is the CLI's (``scope``, which ``sweep.cli`` uses too): one sweep at a time, the only one in the results or the
one named, or the sweep file's (its name, its results root, its current plan: runs it no longer plans are stale
and left out unless ``include_stale``). Several sweeps and none named: ``ConfigError`` (a ``ValueError``) listing
them. Reads go through ``ResultsStore``: a damaged file is named and skipped, never fatal. Figures are returned,
never shown or saved here (``%matplotlib inline`` shows them; ``fig.savefig`` saves them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sweep.config import ConfigError, load_config
from sweep.fitting.inputs import FitInputs, exclude_stale, fit_inputs_from_file, fit_inputs_from_frame, fit_inputs_from_results
from sweep.fitting.isoflop import MinimumRule
from sweep.fitting.laws import FAMILIES
from sweep.fitting.summary import fit_summary
from sweep.results.storage import TRUNK_SCHEDULES, ResultsStore

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Fit", "Scope", "fit", "load_metrics", "load_runs", "plot_curves", "plot_frontier", "plot_isoflop", "predict", "scope"]

DEFAULT_RESULTS = "results"


@dataclass(frozen=True)
class Scope:
    """One sweep of one results root, and (given its sweep file) the run ids its current plan holds."""

    store: ResultsStore
    sweep: str | None
    """None only when the results hold no sweep at all."""
    planned: dict[str, float] | None = None
    """``{run_id: flops}`` of the sweep file's current plan; None without a sweep file."""
    config: str | None = None
    """The sweep file's path, when given."""


def scope(results: str | Path | None = None, sweep: str | None = None, config: str | Path | None = None) -> Scope:
    """The sweep to read: ``sweep`` if named, the sweep file's if ``config`` is given (its ``results:`` root too,
    unless ``results`` is), else the only sweep in ``results``.

    >>> scope("results").sweep  # doctest: +SKIP
    'demo'
    """
    from sweep.execute.orchestrate import prepare_plan

    cfg = load_config(str(config)) if config else None
    if cfg is not None and sweep and sweep != cfg.name:
        raise ConfigError(f"--sweep: {sweep!r} is not the sweep of {config} ({cfg.name!r}); give one or the other")
    root = str(results) if results else (cfg.results if cfg is not None and cfg.results else DEFAULT_RESULTS)
    store = ResultsStore(root)
    if cfg is not None:
        planned = {spec.run_id: spec.training_flops for spec in prepare_plan(cfg, store).runs}
        return Scope(store, cfg.name, planned, str(config))
    return Scope(store, sweep or only_sweep(store))


def only_sweep(store: ResultsStore) -> str | None:
    """The one sweep of a results root: fits never pool sweeps, whose runs may differ in data, rules or model
    family. Several: ``ConfigError`` listing them."""
    names = store.sweeps()
    if len(names) > 1:
        raise ConfigError(f"--sweep: {store.shown} holds {len(names)} sweeps ({', '.join(names)}); a fit never pools "
                          "sweeps: name one with --sweep")  # fmt: skip
    return names[0] if names else None


def load_runs(results: str | Path | None = None, sweep: str | None = None, config: str | Path | None = None,
              include_stale: bool = False) -> pd.DataFrame:  # fmt: skip
    """The ledger of one sweep (one row per run: status, N, D, C, losses, throughput; ``sweep.results.storage``).

    >>> runs = load_runs("results")  # doctest: +SKIP
    >>> runs.groupby("status").size()  # doctest: +SKIP
    """
    where = scope(results, sweep, config)
    runs = where.store.read_runs(where.sweep)
    if where.planned is not None and not include_stale:
        runs = runs[runs["run_id"].isin(set(where.planned))]
    return runs.reset_index(drop=True)


def load_metrics(results: str | Path | None = None, sweep: str | None = None, config: str | Path | None = None,
                 include_stale: bool = False) -> pd.DataFrame:  # fmt: skip
    """Per-step metrics of one sweep's runs: loss against ``flops``, ``tokens``, ``step``, ``lr``, tokens/s.

    >>> metrics = load_metrics("results")  # doctest: +SKIP
    >>> metrics.groupby("run_id")["train_loss"].last()  # doctest: +SKIP
    """
    where = scope(results, sweep, config)
    metrics = where.store.read_metrics(where.sweep)
    if where.planned is not None and not include_stale:
        metrics = metrics[metrics["run_id"].isin(set(where.planned))]
    return metrics.reset_index(drop=True)


def fit_inputs(source: str | Path | pd.DataFrame | None = None, *, sweep: str | None = None, config: str | Path | None = None,
               include_stale: bool = False, params: str = "nonembedding", flops_convention: str = "6ND") -> FitInputs:  # fmt: skip
    """The runs to fit: of a results root (``scope``), of a CSV/Parquet table (a path ending in .csv, .parquet or
    .pq), or of a DataFrame with ``n_params``, ``tokens`` (or ``flops``), ``loss`` and optionally ``budget``."""
    if isinstance(source, pd.DataFrame):
        return fit_inputs_from_frame(source, "the DataFrame", flops_convention)
    if source is not None and Path(str(source)).suffix in (".csv", ".parquet", ".pq") and Path(str(source)).is_file():
        return fit_inputs_from_file(source, flops_convention)
    return inputs_in_scope(scope(source, sweep, config), params=params, include_stale=include_stale)


def inputs_in_scope(where: Scope, params: str = "nonembedding", include_stale: bool = False) -> FitInputs:
    """The completed runs of a scope's sweep, stale runs left out (listed as ``stale``) unless ``include_stale``."""
    inputs = fit_inputs_from_results(where.store, where.sweep, params=params)
    if where.planned is not None and not include_stale:
        inputs = exclude_stale(inputs, set(where.planned), where.config)
    return inputs


@dataclass(frozen=True)
class Fit:
    """Approaches 1-3 fitted to one sweep (or table), with 95% bootstrap intervals: ``summary`` is the dict
    ``sweep fit --json`` prints (schema in ``sweep.fitting.summary``)."""

    summary: dict
    inputs: FitInputs
    n_boot: int
    seed: int
    minimum: MinimumRule = MinimumRule()
    """How Approach 2 read each budget's minimum (``sweep.fitting.isoflop.MinimumRule``)."""
    law: str | None = None
    """The law family asked for (None: chosen by held-out error; ``summary["laws"]`` says which)."""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def not_fitted(self) -> dict[str, str]:
        """Per approach (and the extrapolation check) that fitted nothing: what it needs."""
        return self.summary["not_fitted"]

    @property
    def warnings(self) -> list[str]:
        return self.summary["warnings"]

    def table(self) -> pd.DataFrame:
        """The fitted numbers, one row per (approach, quantity), with their 95% interval (NaN where none)."""
        rows = []
        for name in ("approach1", "approach2", "approach3"):
            part = self.summary[name] or {}
            for key in ("a", "b", "E", "A", "B", "alpha", "beta"):
                if part.get(key) is not None:
                    lo, hi = part.get("ci", {}).get(key, (np.nan, np.nan))
                    rows.append({"approach": name, "quantity": key, "value": part[key], "lo": lo, "hi": hi})
        return pd.DataFrame(rows, columns=["approach", "quantity", "value", "lo", "hi"])

    def _summary_at(self, flops: list[float]) -> dict:
        key = tuple(flops)
        if key not in self._cache:
            self._cache[key] = fit_summary(self.inputs, n_boot=self.n_boot, seed=self.seed, predict_flops=list(flops),
                                           minimum=self.minimum, law=self.law)  # fmt: skip
        return self._cache[key]


def fit(source: str | Path | pd.DataFrame | None = None, *, sweep: str | None = None, config: str | Path | None = None,
        include_stale: bool = False, params: str = "nonembedding", flops_convention: str = "6ND", n_boot: int = 1000,
        seed: int = 0, minimum: MinimumRule = MinimumRule(), law: str | None = None) -> Fit:  # fmt: skip
    """Fit Approaches 1-3 (``source``: a results root, a table path or a DataFrame; see ``fit_inputs``); ``minimum``:
    how Approach 2 reads each budget's minimum (default an Akima spline; ``MinimumRule("parabola", 7)``); ``law``:
    the law family to predict with (None: the one with the lowest held-out error, ``sweep.fitting.selection``).

    >>> f = fit("results", n_boot=200)  # doctest: +SKIP
    >>> f.table()  # doctest: +SKIP
    """
    inputs = fit_inputs(source, sweep=sweep, config=config, include_stale=include_stale, params=params, flops_convention=flops_convention)
    if inputs.runs.empty:
        raise ConfigError("no completed runs to fit")
    if law is not None and law not in FAMILIES:
        raise ConfigError(f"law: unknown family {law!r}; choose from {', '.join(FAMILIES)}")
    return Fit(fit_summary(inputs, n_boot=n_boot, seed=seed, minimum=minimum, law=law), inputs, n_boot, seed, minimum, law)


def predict(fitted: Fit, flops: float | list[float]) -> pd.DataFrame:
    """N_opt, D_opt (and Approach 3's loss) at each budget, per approach, with 95% intervals (``*_lo``, ``*_hi``)
    and, where an approach fitted nothing, the reason (``note``). The bootstrap reruns at these budgets.

    >>> predict(f, [1e13, 1e14])  # doctest: +SKIP
    """
    budgets = [float(c) for c in np.atleast_1d(flops)]
    summary = fitted._summary_at(budgets)
    rows = []
    for entry in summary["predictions"]:
        c = entry["flops"]
        for name in ("approach1", "approach2", "approach3"):
            row = {"flops": c, "approach": name}
            if name not in entry:
                rows.append(row | {"note": summary["not_fitted"].get(name, "not fitted")})
                continue
            ci = (summary[name] or {}).get("ci", {})
            for quantity, value in entry[name].items():
                lo, hi = ci.get(f"{quantity}@{c:.3g}", (np.nan, np.nan))
                row |= {quantity: value, f"{quantity}_lo": lo, f"{quantity}_hi": hi}
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["warnings"] = summary["warnings"]
    return frame


def _figure(width: float, height: float):
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def plot_isoflop(fitted: Fit) -> Figure:
    """Loss against N per budget, each budget's parabola and minimum (Approach 2)."""
    from sweep.fitting.isoflop import fit_approach2
    from sweep.report.plots import draw_isoflop

    fig, ax = _figure(7, 4.5)
    draw_isoflop(ax, fitted.inputs.runs, fit_approach2(fitted.inputs.runs, fitted.minimum))
    return fig


def plot_curves(metrics: pd.DataFrame, runs: pd.DataFrame) -> Figure:
    """Each run's training loss against FLOPs, coloured and labelled by model size, final losses as dots.
    ``runs``: ``load_runs`` (ledger columns) or a fit's table (``n_params``, ``flops``, ``loss``)."""
    from sweep.report.plots import draw_curves

    if "n_params" in runs and "loss" in runs:
        table = runs
    else:
        trunk = runs["schedule"].isin(TRUNK_SCHEDULES) if "schedule" in runs else False
        done = runs[(runs["status"] == "completed") & ~trunk]
        table = pd.DataFrame({"run_id": done["run_id"], "n_params": done["n_params_nonembedding"], "flops": done["flops"],
                              "loss": done["final_eval_loss"]})  # fmt: skip
    fig, ax = _figure(7.5, 4.6)
    draw_curves(ax, metrics, table)
    return fig


def plot_frontier(fitted: Fit) -> Figure:
    """N_opt and D_opt against C for every approach that fitted, with 95% bands, from the smallest budget to 10x
    the largest; an approach that fitted nothing is named in the title with the reason left to ``fitted.not_fitted``."""
    from sweep.report.plots import draw_frontier

    runs = fitted.inputs.runs
    grid = list(np.logspace(np.log10(runs["budget"].min()), np.log10(runs["budget"].max()) + 1.0, 12))
    summary = fitted._summary_at(grid)
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    draw_frontier(left, summary, grid, "n_opt")
    draw_frontier(right, summary, grid, "d_opt")
    missing = [name.replace("approach", "Approach ") for name in ("approach1", "approach2", "approach3") if name in summary["not_fitted"]]
    if missing:
        fig.suptitle(f"not fitted: {', '.join(missing)} (see fit.not_fitted)", fontsize=9)
    fig.tight_layout()
    return fig
