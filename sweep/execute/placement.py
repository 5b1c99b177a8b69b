"""Where runs can go: can any node of the cluster hold a run, now or ever, and what the autoscaler should see.

A run is ``workers`` identical training processes, each asking for ``cpus`` CPUs and ``gpus`` GPUs. One node holds
``min(node CPUs / cpus, node GPUs / gpus)`` of them (rounded down), so a set of nodes holds the run when those counts
add up to ``workers``; a single-worker run must fit one node, and a DDP run's workers may spread over several (its
``PACK`` placement is soft). The decision is a pure function (``placement``); the rest reads Ray.

- **Now**: the nodes alive now hold the run (they may be busy; it waits its turn like any other run).
- **Wait**: they do not, but an autoscaler can add nodes that might (or we cannot tell which node types it has).
  The driver tells the autoscaler about its queue (``request_capacity``) and waits at most
  ``resources.placement_timeout_seconds`` for such a node.
- **Never**: no autoscaler, or none of its node types would help. ``refuse_unplaceable`` raises ``Unplaceable``
  (exit 2) before any training starts. Embedded Ray never autoscales.

Whether a cluster autoscales is read from Ray's own autoscaler state (``autoscaler_view``): the cluster config in
the GCS where an autoscaler publishes one (its node groups give the launchable node types), else the v2
autoscaler's state, else the status the v1 monitor writes, whose node types are ``node_<id>`` placeholders when
no autoscaling config was given (``ray start`` without ``--autoscaling-config``, ``ray.init()``).
Open-source Ray 2.60's autoscalers do not publish their node types, so there "might a new node hold it" is
unknown and such a run waits for the timeout rather than being refused. These reads use Ray's private state API
and internal KV (as Ray Data's own autoscaling code does); if they fail (a ``ray://`` client), runs wait likewise.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterable, Sequence

from sweep.config import ConfigError
from sweep.execute.progress import log
from sweep.execute.schedule import Resources
from sweep.planning.plan import RunSpec


class Unplaceable(ConfigError):
    """A run asks for more than any node of a cluster that cannot grow will ever have (exit 2, before training)."""


@dataclass(frozen=True)
class RunDemand:
    """What one run asks Ray for: ``workers`` processes of ``per_worker`` each."""

    workers: int
    per_worker: Resources

    @classmethod
    def of(cls, spec: RunSpec) -> "RunDemand":
        return cls(spec.workers, Resources(cpus=spec.cpus, gpus=spec.gpus))

    def __str__(self) -> str:
        return f"{self.workers} worker{'s' if self.workers > 1 else ''} of {format_resources(self.per_worker)}"

    def bundles(self) -> list[dict[str, float]]:
        """The run's workers as Ray resource bundles (``request_resources`` form; zero amounts left out)."""
        bundle = {name: value for name, value in (("CPU", self.per_worker.cpus), ("GPU", self.per_worker.gpus)) if value > 0}
        return [bundle] * self.workers


class Placement(Enum):
    NOW = "now"
    WAIT = "wait"
    NEVER = "never"


@dataclass(frozen=True)
class AutoscalerView:
    """What Ray says about growing the cluster."""

    autoscales: bool
    """An autoscaler may add nodes."""
    node_types: tuple[tuple[Resources, int], ...] | None = None
    """(resources of one node, most nodes of that type, -1: no limit) for each type it can launch; None: unknown."""
    source: str = ""
    """Where this came from, for messages (e.g. "embedded Ray", "the v1 autoscaler's status")."""


def format_resources(resources: Resources, gpus: bool = False) -> str:
    """``2 CPU`` or ``2 CPU + 1 GPU`` (GPUs shown when there are some, or when ``gpus``)."""
    return f"{resources.cpus:g} CPU" + (f" + {resources.gpus:g} GPU" if resources.gpus or gpus else "")


def workers_per_node(node: Resources, worker: Resources) -> int:
    """How many workers of ``worker`` one node of ``node`` holds."""
    counts = [int(have / need + 1e-9) for have, need in ((node.cpus, worker.cpus), (node.gpus, worker.gpus)) if need > 0]
    return max(0, min(counts)) if counts else 1 << 30


def holds(nodes: Iterable[Resources], demand: RunDemand) -> bool:
    """Whether these nodes, all free, hold every worker of the run."""
    return sum(workers_per_node(node, demand.per_worker) for node in nodes) >= demand.workers


def placement(demand: RunDemand, nodes: Sequence[Resources], scaler: AutoscalerView) -> Placement:
    """Whether the run fits the nodes alive now, may fit once the autoscaler adds nodes, or never will."""
    if holds(nodes, demand):
        return Placement.NOW
    if not scaler.autoscales:
        return Placement.NEVER
    if scaler.node_types is None:
        return Placement.WAIT
    launchable = [node for node, most in scaler.node_types for _ in range(demand.workers if most < 0 else min(most, demand.workers))]
    return Placement.WAIT if holds([*nodes, *launchable], demand) else Placement.NEVER


def largest(nodes: Iterable[Resources]) -> Resources:
    """The node with the most GPUs, then CPUs (for messages)."""
    return max(nodes, key=lambda node: (node.gpus, node.cpus), default=Resources())


def refuse_unplaceable(specs: Sequence[RunSpec], nodes: Sequence[Resources], scaler: AutoscalerView) -> None:
    """Raise ``Unplaceable`` naming the first run no node can ever hold, its demand and the largest node."""
    never = [s for s in specs if placement(RunDemand.of(s), nodes, scaler) is Placement.NEVER]
    if not never:
        return
    spec, others = never[0], len(never) - 1
    gpus = spec.gpus > 0
    where = f"the largest node has {format_resources(largest(nodes), gpus)}" if nodes else "the cluster has no nodes"
    if scaler.node_types:
        where += f", the largest the autoscaler can add {format_resources(largest(n for n, _ in scaler.node_types), gpus)}"
    grow = "" if scaler.autoscales else f" and the cluster cannot grow ({scaler.source})"
    more = f" ({others} more run{'s' if others > 1 else ''} likewise)" if others else ""
    raise Unplaceable(
        f"run {spec.run_id} (N={spec.n_params_nonembedding:,}) needs {RunDemand.of(spec)}; {where}{grow}: "
        f"no node will ever hold it{more}; lower resources.cpus_per_worker / gpus_per_worker, or add nodes"
    )


def cluster_nodes() -> list[Resources]:
    """The total CPUs and GPUs of every node alive now."""
    import ray

    return [
        Resources(cpus=node["Resources"].get("CPU", 0.0), gpus=node["Resources"].get("GPU", 0.0))
        for node in ray.nodes()
        if node.get("Alive")
    ]


def autoscaler_view(settle_seconds: float = 12.0) -> AutoscalerView:
    """Whether the connected Ray cluster autoscales, and its launchable node types where Ray publishes them.

    Waits up to ``settle_seconds`` for the v1 monitor's first status report on a freshly started cluster.
    """
    import ray._private.state
    from ray.autoscaler.v2.utils import is_autoscaler_v2

    config = ray._private.state.state.get_cluster_config()
    if config is not None and config.node_group_configs:
        groups = tuple(
            (Resources(cpus=group.resources.get("CPU", 0), gpus=group.resources.get("GPU", 0)), group.max_count)
            for group in config.node_group_configs
            if group.max_count != 0 and group.resources
        )
        grows = any(group.max_count == -1 or group.max_count > group.min_count for group in config.node_group_configs)
        return AutoscalerView(grows, groups, "no node group of its autoscaler can grow")
    if is_autoscaler_v2(fetch_from_server=True):
        return AutoscalerView(_v2_autoscaler_reported(), None, "its v2 autoscaler has not reported")
    deadline = time.monotonic() + settle_seconds
    while (report := _v1_autoscaler_report()) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    if report is None:
        return AutoscalerView(False, None, "no autoscaler reports to its GCS")
    return AutoscalerView(_v1_has_node_types(report), None, "Ray's monitor runs without an autoscaling config")


def _v2_autoscaler_reported() -> bool:
    from ray._private.worker import global_worker
    from ray.core.generated.autoscaler_pb2 import GetClusterStatusReply

    reply = GetClusterStatusReply()
    reply.ParseFromString(global_worker.gcs_client.get_cluster_status(timeout_s=10))
    return reply.autoscaling_state.autoscaler_state_version > 0


def _v1_autoscaler_report() -> dict | None:
    from ray._private import ray_constants
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
    return json.loads(raw).get("autoscaler_report") if raw else None


def _v1_has_node_types(report: dict) -> bool:
    """False when every node's type is the ``node_<id>`` placeholder of Ray's read-only provider (no autoscaling)."""
    from ray.autoscaler._private.util import format_readonly_node_type

    mapping = report.get("node_type_mapping") or {}
    return any(node_type != format_readonly_node_type(node_id) for node_id, node_type in mapping.items())


def request_capacity(bundles: list[dict[str, float]]) -> None:
    """Tell Ray's autoscaler the bundles the sweep wants to hold at once (replaces the previous request; an empty
    list clears it). Without an autoscaler nothing acts on it."""
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=bundles)


@dataclass(frozen=True)
class ClusterAccess:
    """How the driver reads and asks Ray about nodes (tests and the benchmark pass stand-ins)."""

    nodes: Callable[[], list[Resources]] = cluster_nodes
    autoscaler: Callable[[], AutoscalerView] = autoscaler_view
    request: Callable[[list[dict[str, float]]], None] = request_capacity

    def autoscaler_or_unknown(self) -> AutoscalerView:
        """``autoscaler()``, or "may grow, node types unknown" when Ray's state cannot be read (e.g. ``ray://``)."""
        try:
            return self.autoscaler()
        except Exception as error:  # private Ray state: never let reading it stop a sweep
            log(f"warning: cannot tell whether the cluster autoscales ({type(error).__name__}: {error}); runs no node holds will wait")
            return AutoscalerView(True, None, "unknown")


class CapacityRequest:
    """Keeps Ray's autoscaler told what the sweep wants to hold at once: the bundles of the runs in flight and of
    the next waiting ones, up to ``resources.max_concurrent_runs`` runs (``request_resources`` is a target for the
    whole cluster, not an increment). Asks again only when that changes; ``clear`` withdraws it."""

    def __init__(self, request: Callable[[list[dict[str, float]]], None]) -> None:
        self._request, self._last, self._broken = request, None, False

    def update(self, specs: Iterable[RunSpec]) -> None:
        bundles = [bundle for spec in specs for bundle in RunDemand.of(spec).bundles()]
        if bundles == self._last or self._broken:
            return
        try:
            self._request(bundles)
            self._last = bundles
        except Exception as error:  # e.g. a Ray Client connection without the internal KV: scheduling still works
            self._broken = True
            log(f"warning: cannot tell Ray's autoscaler about waiting runs ({type(error).__name__}: {error})")

    def clear(self) -> None:
        if self._last:
            self.update([])


class PlacementWaits:
    """Runs that no node alive now can hold, waiting for the autoscaler: when each began waiting, a log line when
    runs start waiting and every ``report_every_seconds`` while any do, and which ones ran out of time."""

    def __init__(self, timeout_seconds: float, report_every_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout, self.report_every, self.clock = timeout_seconds, report_every_seconds, clock
        self.since: dict[str, float] = {}
        self._reported = -math.inf

    def update(self, waiting: Sequence[RunSpec], nodes: Sequence[Resources]) -> list[RunSpec]:
        """Note the runs waiting now (the others stop waiting); return those past the timeout, longest wait first."""
        now, ids = self.clock(), {s.run_id for s in waiting}
        self.since = {run_id: t for run_id, t in self.since.items() if run_id in ids}
        new = [s for s in waiting if s.run_id not in self.since]
        self.since.update({s.run_id: now for s in new})
        if new or (waiting and now - self._reported >= self.report_every):
            self._report(waiting, new, nodes, now)
        expired = [s for s in waiting if now - self.since[s.run_id] >= self.timeout]
        for spec in expired:
            del self.since[spec.run_id]
        return expired

    def _report(self, waiting: Sequence[RunSpec], new: Sequence[RunSpec], nodes: Sequence[Resources], now: float) -> None:
        self._reported = now
        first = new[0] if new else waiting[0]
        longest = max(now - self.since[s.run_id] for s in waiting)
        log(
            f"waiting for the autoscaler to add nodes: {len(waiting)} run{'s' if len(waiting) > 1 else ''} no node alive now "
            f"can hold (run {first.run_id} needs {RunDemand.of(first)}; {len(nodes)} node{'s' if len(nodes) != 1 else ''}, "
            f"largest {format_resources(largest(nodes))}); waited {longest:.0f} s of {self.timeout:g} s (resources.placement_timeout_seconds)"
        )


def unplaced_error(spec: RunSpec, timeout_seconds: float, nodes: Sequence[Resources]) -> str:
    """The ledger error of a run that waited ``timeout_seconds`` for a node that could hold it."""
    return (
        f"Unplaceable: no node could hold {RunDemand.of(spec)} within resources.placement_timeout_seconds = "
        f"{timeout_seconds:g} s (largest node: {format_resources(largest(nodes))})"
    )


class TrunkWaits:
    """Readouts waiting on their trunks' branch points (``sweep.execute.branches``): no timeout, since the trunk
    may train for hours. A log line when readouts start waiting and every ``report_every_seconds`` while any do,
    saying what each trunk's first waiting readout waits on."""

    def __init__(self, report_every_seconds: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.report_every, self.clock = report_every_seconds, clock
        self.reasons: dict[str, str] = {}
        self._reported = -math.inf

    def update(self, waiting: Sequence[RunSpec], describe: Callable[[RunSpec], str]) -> dict[str, str]:
        """Note the readouts waiting now; returns what each waits on (``describe``, re-read when a line is due)."""
        now = self.clock()
        new = [s for s in waiting if s.run_id not in self.reasons]
        self.reasons = {s.run_id: self.reasons[s.run_id] for s in waiting if s.run_id in self.reasons}
        if new or (waiting and now - self._reported >= self.report_every):
            self._reported = now
            self.reasons = {s.run_id: describe(s) for s in waiting}
            by_trunk: dict[str | None, RunSpec] = {}
            for spec in waiting:
                by_trunk.setdefault(spec.parent_run_id, spec)
            firsts = list(by_trunk.values())
            shown = "; ".join(self.reasons[s.run_id] for s in firsts[:3]) + (f"; {len(firsts) - 3} more trunks" if len(firsts) > 3 else "")
            log(f"{len(waiting)} readout{'s' if len(waiting) > 1 else ''} wait for their trunks' branch points "
                f"(no timeout while the trunk is queued or training): {shown}")  # fmt: skip
        return dict(self.reasons)
