"""The code version of this package: the git commit of the checkout it runs from, and installed package versions.

One place for both, read by the driver (each run records the commit of the checkout that launched it; a sweep
name may hold it, ``{git_sha}``), by the workers (the versions of torch, ray and this package that trained a run)
and by the report's provenance. Nothing here reads the environment or a secret.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE = "scaling-sweep"


@lru_cache(maxsize=None)
def package_version(name: str) -> str:
    """``name``'s installed version, or ``not installed``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout this package runs from (12 hex digits, ``+dirty`` with changes to tracked files),
    or None outside one. Read once per process."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
