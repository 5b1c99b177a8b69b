"""Scaling-law sweeps: declare a sweep in YAML, train its grid on Ray, record Parquet, fit the frontier.

Public surface: the config loader, the planner, the driver, the results store and the fitters. The folders follow
the data, one way: ``config`` (YAML -> pydantic) -> ``planning`` (runs and their horizon) -> ``execute`` (Ray:
connect, schedule, lock, progress) -> ``training`` (one run: loop, data, checkpoints, recording) -> ``results``
(the Parquet store) -> ``fitting`` (scaling-law fits) -> ``report`` (figures, HTML); ``cli`` is the ``sweep``
command.
"""

from sweep.config import ConfigError, SweepConfig, load_config, parse_config
from sweep.planning.plan import Plan, RunSpec, plan_sweep
from sweep.results.storage import ResultsStore

__all__ = ["ConfigError", "Plan", "ResultsStore", "RunSpec", "SweepConfig", "load_config", "parse_config", "plan_sweep"]
