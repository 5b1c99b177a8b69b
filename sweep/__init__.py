"""Scaling-law sweeps: declare a sweep in YAML, train its grid on Ray, record Parquet, fit the frontier.

Public surface: the config loader, the planner, the driver, the results store and the fitters. Modules:
``config`` (YAML -> pydantic), ``data`` (corpus, split, batches), ``plan`` (runs and their horizon),
``train`` (one run), ``worker`` (one Ray task), ``orchestrate`` (the driver), ``storage`` (Parquet),
``fitting`` (scaling-law fits), ``plots`` (figures), ``cli`` (the ``sweep`` command).
"""

from sweep.config import ConfigError, SweepConfig, load_config, parse_config
from sweep.plan import Plan, RunSpec, plan_sweep
from sweep.storage import ResultsStore

__all__ = ["ConfigError", "Plan", "ResultsStore", "RunSpec", "SweepConfig", "load_config", "parse_config", "plan_sweep"]
