"""Scaling-law sweeps: declare a sweep in YAML, train its grid on Ray, record Parquet, fit the frontier.

Public surface: the config loader, the planner, the results store, and the notebook API (``sweep.api``: load runs
and metrics, fit, predict, plot). The folders follow
the data, one way: ``config`` (YAML -> pydantic) -> ``planning`` (runs and their horizon) -> ``execute`` (Ray:
connect, schedule, lock, progress) -> ``training`` (one run: loop, data, checkpoints, recording) -> ``results``
(the Parquet store) -> ``fitting`` (scaling-law fits) -> ``report`` (figures, HTML); ``cli`` is the ``sweep``
command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweep.config import ConfigError, SweepConfig, load_config, parse_config
    from sweep.planning.plan import Plan, RunSpec, plan_sweep
    from sweep.results.storage import ResultsStore
    from sweep.api import Fit, fit, load_metrics, load_runs, plot_curves, plot_frontier, plot_isoflop, predict

_PUBLIC = {
    "ConfigError": "sweep.config", "SweepConfig": "sweep.config", "load_config": "sweep.config",
    "parse_config": "sweep.config", "Plan": "sweep.planning.plan", "RunSpec": "sweep.planning.plan",
    "plan_sweep": "sweep.planning.plan", "ResultsStore": "sweep.results.storage",
    "Fit": "sweep.api", "fit": "sweep.api", "load_runs": "sweep.api", "load_metrics": "sweep.api", "predict": "sweep.api",
    "plot_isoflop": "sweep.api", "plot_curves": "sweep.api", "plot_frontier": "sweep.api",
}  # fmt: skip
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    """Import the public names on first use, so ``sweep --help`` does not load torch (``planning`` does)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
