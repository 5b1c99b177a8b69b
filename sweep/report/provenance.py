"""Provenance of a report: what produced the numbers, so a reader can tell two reports apart and reproduce one.

The sweep file (its path and SHA-256, when given), the data fingerprints, tokenizers (SHA-256, where a manifest of
``sweep data prepare`` gave one) and FLOP conventions the runs recorded, the versions of the packages that trained
and fitted them, the code version (the package's version, and the git commit when it runs from a checkout;
``unknown`` otherwise), Python, and when the report was made. Nothing here
reads a secret: results URIs are shown redacted (``sweep.results.uri``), and no environment is recorded.
"""

from __future__ import annotations

import hashlib
import platform
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from sweep.versions import git_commit, package_version

PACKAGES = ("scaling-sweep", "torch", "ray", "pandas", "pyarrow", "numpy", "scipy", "optuna", "matplotlib")


def package_versions() -> dict[str, str]:
    return {name: package_version(name) for name in PACKAGES}


def provenance(config_path: str | None = None, ledger: pd.DataFrame | None = None, source: str | None = None) -> dict:
    """What produced a report (module docstring); ``source``: the results root (redacted) or the input table."""
    record = {"source": source, "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
              "python": platform.python_version(), "packages": package_versions(), "code": git_commit() or "unknown"}  # fmt: skip
    if config_path:
        path = Path(config_path)
        record["config"] = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    if ledger is not None and not ledger.empty:
        for column, key in (("data_fingerprint", "data_fingerprints"), ("tokenizer_sha256", "tokenizers"),
                            ("flops_convention", "flops_conventions"), ("sweep", "sweeps")):  # fmt: skip
            values = sorted(str(v) for v in ledger[column].dropna().unique()) if column in ledger else []
            if values:
                record[key] = values
    return record
