"""Where a sweep runs: the cluster file (``clusters/*.yaml``) and connecting Ray to it.

A cluster file says how the driver reaches Ray::

    address: null        # null: start embedded Ray on this machine; "auto", "ray://host:10001" or "host:6379": join one
    num_cpus: null       # embedded only: CPUs Ray may use (null: all of this machine's)
    num_gpus: null       # embedded only: GPUs Ray may use (null: all it detects)
    dashboard: true      # embedded only: start Ray's dashboard (Ray Train's state API needs it for DDP runs)
    verbose: false       # show Ray's own logs on the terminal instead of only in the log file
    log_file: null       # where Ray's own logs go (null: ``sweep run`` picks RESULTS/logs/ray-TIME.log)

``clusters/local.yaml`` is the default and holds exactly these values. ``--address`` on the command line wins
over the file's address.

Embedded Ray listens on loopback only: Ray picks its node address by asking the route to the outside world unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` is off (the switch that keeps Ray local on macOS); with it off every server
(GCS, raylet, object manager, workers, dashboard and its agents) binds 127.0.0.1. It is read when ``ray`` is
imported, so ``connect`` sets it for the processes Ray starts and for this process's already-imported copy.
Embedded means embedded: an inherited ``RAY_ADDRESS`` (which ``ray.init()`` would silently join) is named and
dropped, and Ray is started with ``address="local"``: a plain ``ray.init()`` also joins whatever cluster the last
``ray start`` on this machine recorded in ``/tmp/ray/ray_current_cluster`` (anyone's, or a dead one); joining needs
an address.

Token authentication stays on (Ray 2.60's default): embedded Ray uses ``~/.ray/auth_token`` (created if missing),
and joining presents the token Ray finds on this machine (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, else
``~/.ray/auth_token``), as ``ray start`` does; an explicit ``RAY_AUTH_MODE`` is respected. The token is never
printed. Ray's notice that it turned tokens on goes to the log file with Ray's other logs.

Quiet by default: with ``log_file`` set (``sweep run`` sets it) and not ``verbose``, Ray's driver-side logging and
everything Ray forwards to the driver (workers' stdout/stderr, raylet and autoscaler messages) go to that file,
without colour codes, and the terminal carries only the sweep's own lines.

A join is checked before the driver commits to it: the address must accept a TCP connection within
``REACH_TIMEOUT_S``, and a throw-away ``ray.init`` in a child process must succeed within ``PROBE_TIMEOUT_S``
(a wrong token otherwise retries for minutes, printing C++ warnings). Any failure is one ``ClusterUnreachable``
line naming the address and the cause.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sweep.config import ConfigError, describe_validation_error

REACH_TIMEOUT_S = 5.0
"""Seconds to wait for the cluster's address to accept a TCP connection."""
PROBE_TIMEOUT_S = 60.0
"""Seconds a trial ``ray.init`` against the cluster may take before the join is given up."""
_AUTH_FAILURE = ("InvalidAuthToken", "Unauthenticated", "AuthenticationError")
_PROBE = "import sys, ray; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); ray.shutdown()"


class ClusterUnreachable(Exception):
    """The Ray cluster at an address cannot be joined; the message names the address and the cause."""


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
    verbose: bool = False
    """Show Ray's own logs (driver-side logging, workers' output, raylet and autoscaler messages) on the terminal."""
    log_file: str | None = None
    """File for Ray's own logs when not verbose (null: leave Ray's logging as Ray sets it up)."""


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
    """Join ``cluster.address`` or start embedded Ray; an already-initialised Ray (tests, notebooks) is reused.

    Raises ``ClusterUnreachable`` when the address cannot be joined.
    """
    import ray

    if ray.is_initialized():
        return
    quiet = _route_ray_logs(cluster)
    context = _join(cluster.address) if cluster.address else _start_embedded(cluster)
    if quiet:
        _forward_worker_output(Path(cluster.log_file))
        session = getattr(context, "address_info", {}).get("session_dir")  # (a Ray Client context has none)
        if session:
            logging.getLogger("ray").warning("Ray session logs (all of Ray's processes): %s/logs", session)


def _start_embedded(cluster: ClusterConfig):
    import ray
    from ray._private import ray_constants

    from sweep.execute.progress import log

    inherited = os.environ.pop("RAY_ADDRESS", None)
    if inherited:
        log(f"ignoring RAY_ADDRESS={inherited}; pass --address to join it")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the Ray processes started below: bind loopback
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process imported ray before the variable was set
    return ray.init(
        address="local",  # a new Ray of our own, never the cluster /tmp/ray/ray_current_cluster names
        num_cpus=cluster.num_cpus,
        num_gpus=cluster.num_gpus,
        include_dashboard=cluster.dashboard,
        dashboard_host="127.0.0.1",
        logging_level="WARNING",
    )


def _join(address: str):
    import ray
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    _check_reachable(address)
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)  # what `ray.init(address="auto")` does
    _probe(address)
    try:
        return ray.init(address=address, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as error:
        raise ClusterUnreachable(f"cannot connect to Ray at {address}: {_first_line(str(error))}") from None


def _check_reachable(address: str) -> None:
    """Fail fast (``REACH_TIMEOUT_S``) when nothing answers at ``host:port`` (or ``ray://host:port``)."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ClusterUnreachable(f"cannot connect to Ray at {address}: not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as error:
        cause = f"no answer within {REACH_TIMEOUT_S:g} s" if isinstance(error, TimeoutError) else error.strerror or str(error)
        raise ClusterUnreachable(f"cannot connect to Ray at {address}: {cause}") from None


def _probe(address: str) -> None:
    """A trial ``ray.init`` in a child process, stopped at the first sign of a refused token or after the timeout."""
    child = subprocess.Popen([sys.executable, "-c", _PROBE, address], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    with selectors.DefaultSelector() as selector:
        selector.register(child.stderr, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(timeout=min(left, 0.5)):
                continue
            line = child.stderr.readline()
            if not line:
                break  # end of output: the child has exited
            lines.append(line)
            if any(marker in line for marker in _AUTH_FAILURE):
                break
    if child.poll() is None:
        child.kill()
    code = child.wait()
    if code == 0:
        return
    output = "".join(lines)
    if any(marker in output for marker in _AUTH_FAILURE):
        raise ClusterUnreachable(f"cannot connect to Ray at {address}: {_auth_cause()}")
    if time.monotonic() >= deadline:
        raise ClusterUnreachable(f"cannot connect to Ray at {address}: no answer within {PROBE_TIMEOUT_S:g} s")
    errors = [line.strip() for line in lines if "Error" in line and not line.startswith(" ")]
    raise ClusterUnreachable(f"cannot connect to Ray at {address}: {errors[-1] if errors else 'ray.init failed'}")


def _auth_cause() -> str:
    """Why the cluster refused us, naming where the token came from (never the token itself)."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return "the cluster requires an authentication token and RAY_AUTH_MODE=disabled sends none"
    if os.environ.get("RAY_AUTH_TOKEN"):
        source = "RAY_AUTH_TOKEN"
    elif os.environ.get("RAY_AUTH_TOKEN_PATH"):
        source = f"RAY_AUTH_TOKEN_PATH={os.environ['RAY_AUTH_TOKEN_PATH']}"
    elif (Path.home() / ".ray" / "auth_token").exists():
        source = "~/.ray/auth_token"
    else:
        return ("the cluster requires an authentication token and none was found (copy the head's ~/.ray/auth_token "
                "here, or set RAY_AUTH_TOKEN_PATH to a copy, or RAY_AUTH_TOKEN to its contents)")  # fmt: skip
    return f"the cluster rejected the authentication token from {source}"


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["unknown error"])[0]


def _route_ray_logs(cluster: ClusterConfig) -> bool:
    """Send Ray's driver-side logging to ``cluster.log_file`` (unless verbose); True when Ray is to be quiet.

    No colour codes in Ray's forwarded lines when stdout is not a terminal (``RAY_COLOR_PREFIX=0``), nor in the file.
    """
    if not sys.stdout.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    if cluster.verbose or not cluster.log_file:
        return False
    os.environ["RAY_COLOR_PREFIX"] = "0"
    path = Path(cluster.log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ray_logger = logging.getLogger("ray")
    for old in list(ray_logger.handlers):
        ray_logger.removeHandler(old)
    ray_logger.addHandler(handler)
    ray_logger.propagate = False
    from sweep.execute.progress import log

    log(f"Ray's logs: {path.resolve()} (--verbose shows them here)")
    return True


def _forward_worker_output(path: Path) -> None:
    """Write what Ray forwards to the driver (workers' stdout and stderr, raylet and autoscaler messages) to ``path``
    instead of this process's stdout/stderr: Ray's own printer, given the file in place of the terminal."""
    from ray._private import worker as ray_worker

    sink = open(path, "a", buffering=1, encoding="utf-8")  # line-buffered appends, beside the logging handler's
    dispatcher = ray_worker.global_worker_stdstream_dispatcher
    dispatcher.remove_handler("ray_print_logs")
    dispatcher.add_handler("ray_print_logs", lambda batch: ray_worker.print_worker_logs(batch, sink))
