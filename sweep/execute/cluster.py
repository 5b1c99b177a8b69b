"""Where a sweep runs: the cluster file (``clusters/*.yaml``) and connecting Ray to it.

A cluster file says how the driver reaches Ray::

    address: null        # null: start embedded Ray on this machine; "auto", "ray://host:10001" or "host:6379": join one
    num_cpus: null       # embedded only: CPUs Ray may use (null: all of this machine's)
    num_gpus: null       # embedded only: GPUs Ray may use (null: all it detects)
    dashboard: true      # embedded only: start Ray's dashboard (Ray Train's state API needs it for DDP runs)

``clusters/local.yaml`` is the default and holds exactly these values. ``--address`` on the command line wins
over the file's address.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sweep.config import ConfigError, describe_validation_error


class ClusterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = None
    """Ray address to join; null starts embedded Ray."""
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    """CPUs for embedded Ray (null: all)."""
    num_gpus: Annotated[int, Field(ge=0)] | None = None
    """GPUs for embedded Ray (null: all detected)."""
    dashboard: bool = True
    """Start Ray's dashboard with embedded Ray; Ray Train (multi-worker runs) queries its state API."""


def load_cluster(path: str | Path | None) -> ClusterConfig:
    """The cluster file at ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        return ClusterConfig()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return ClusterConfig.model_validate(data)
    except OSError as error:
        raise ConfigError(f"cannot read cluster file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    except ValidationError as error:
        raise ConfigError(f"{path}: {describe_validation_error(error)}") from None


def connect(cluster: ClusterConfig) -> None:
    """Join ``cluster.address`` or start embedded Ray; an already-initialised Ray (tests, notebooks) is reused."""
    import ray

    if ray.is_initialized():
        return
    if cluster.address:
        ray.init(address=cluster.address, logging_level="WARNING")
    else:
        ray.init(
            num_cpus=cluster.num_cpus,
            num_gpus=cluster.num_gpus,
            include_dashboard=cluster.dashboard,
            logging_level="WARNING",
        )
