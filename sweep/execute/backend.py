"""The run loop's two seams: the clock it keeps time by, and the backend that starts, waits for and stops runs.

The scheduling loop (``sweep.execute.orchestrate.run_planned``) reads every duration it acts on (placement waits,
capacity re-reads, progress lines, time left) from a ``Clock``, and does everything that touches runs through a
``RunBackend``: start one, wait up to a timeout for one to end, take its summary, cancel those still running. On a
cluster these are the system clock and Ray (``RayBackend``: a plain Ray task per single-worker run, a Ray Train
``TorchTrainer`` per DDP run). A test passes a simulated clock and backend instead (``tests/execute/simulated.py``),
so runs of hours, trunks whose branch points are hours apart, nodes that join after 15 minutes and week-long
sweeps go through the same loop in seconds of real time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Hashable, Protocol, Sequence

if TYPE_CHECKING:  # the plan imports torch: not needed at run time here, nor by ``sweep --help``
    from sweep.config import TrackingConfig
    from sweep.execute.placement import ClusterAccess
    from sweep.planning.plan import RunSpec


class Clock(Protocol):
    """What the driver keeps time by."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (intervals, deadlines)."""

    def now(self) -> datetime:
        """The time of day, timezone-aware UTC (ledger rows' ``started_at`` and ``finished_at``)."""


class SystemClock:
    """The machine's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


SYSTEM_CLOCK = SystemClock()


class RunLost(Exception):
    """A run's task ended without a summary: its worker or node died past its retries, or it was cancelled."""


class RunBackend(Protocol):
    """Where runs train. A handle is whatever ``start`` returns (a Ray ``ObjectRef``), hashable."""

    cluster: ClusterAccess
    """Reads the cluster's nodes and autoscaler, and tells the autoscaler what the sweep wants."""
    poll_seconds: float
    """The longest the loop waits for a run to end before it looks again at what waits (new nodes, branch points,
    timeouts, progress lines, a stop): every timer of the driver is this fine."""

    def start(self, spec: RunSpec, results_root: str, max_retries: int) -> Hashable:
        """Start one run; it records itself in the results store (``sweep.training.worker``)."""

    def wait(self, handles: Sequence[Hashable], timeout_seconds: float) -> list[Hashable]:
        """At most one of ``handles`` that has ended, waiting up to ``timeout_seconds`` for one; with no handles,
        a pause of ``timeout_seconds``."""

    def result(self, handle: Hashable) -> dict:
        """The ended run's summary (``sweep.training.worker.summarize``); raises ``RunLost`` when it has none."""

    def cancel(self, handles: Sequence[Hashable], wait_seconds: float) -> None:
        """Stop the runs of ``handles`` still running (their checkpoints stay) and give them ``wait_seconds`` to end."""

    def shutdown(self) -> None:
        """Leave the cluster (embedded Ray: stop it)."""


def submit(spec: RunSpec, results_root: str, max_retries: int, tracking: TrackingConfig | None = None) -> Any:
    """Start one run on Ray: a plain task for one worker, a Ray Train ``TorchTrainer`` for several; ``tracking``:
    the experiment trackers its worker mirrors it to (``sweep.training.tracking.for_workers``)."""
    import ray

    from sweep.training.worker import execute_run

    if spec.workers == 1:
        task = ray.remote(execute_run).options(num_cpus=spec.cpus, num_gpus=spec.gpus, max_retries=max_retries)
        return task.remote(spec, results_root, tracking=tracking)
    from sweep.training.distributed import execute_ddp_run

    # The launcher only waits on the trainer; the workers' resources are reserved by Ray Train's placement group.
    return ray.remote(execute_ddp_run).options(num_cpus=0, max_retries=max_retries).remote(spec, results_root, tracking=tracking)


def _ray_cluster_access() -> ClusterAccess:
    from sweep.execute.placement import ClusterAccess

    return ClusterAccess()


@dataclass
class RayBackend:
    """Runs as Ray tasks (``submit``, or a stand-in ``start_run`` that returns an ``ObjectRef``) on the connected
    cluster."""

    start_run: Callable[[RunSpec, str, int], Any] = submit
    cluster: ClusterAccess = field(default_factory=lambda: _ray_cluster_access())
    poll_seconds: float = 1.0
    """Ray's ``wait`` timeout; a signal interrupts it at once, whatever it is."""

    def start(self, spec: RunSpec, results_root: str, max_retries: int) -> Any:
        return self.start_run(spec, results_root, max_retries)

    def wait(self, handles: Sequence[Any], timeout_seconds: float) -> list[Any]:
        import ray

        if not handles:
            time.sleep(timeout_seconds)
            return []
        return ray.wait(list(handles), num_returns=1, timeout=timeout_seconds)[0]

    def result(self, handle: Any) -> dict:
        import ray

        try:
            return ray.get(handle)
        except (ray.exceptions.RayError, OSError) as error:
            raise RunLost(f"{type(error).__name__}: {error}") from error

    def cancel(self, handles: Sequence[Any], wait_seconds: float) -> None:
        import ray

        if not handles:
            return
        _, pending = ray.wait(list(handles), num_returns=len(handles), timeout=0)
        for ref in pending:
            ray.cancel(ref, force=True)  # kills its worker (a DDP run's launcher, whose workers die with it)
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=wait_seconds)

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
