"""The ``wsd`` DAG at run time: which readouts may start, what each waiting one waits on, and when a trunk's branch
points can go.

A readout (``sweep.planning.plan``, ``wsd``) starts from its trunk's state at its branch step. It may start once
that branch point exists, or once its trunk will not run in this invocation (finished earlier, or not in the plan:
it then starts from the branch point if there is one, else from step 0). While its trunk is queued or training it
waits, for as long as the trunk takes: hours on GPUs. That is waiting on a trunk, not on a node, so it never
counts against ``resources.placement_timeout_seconds``. If the trunk ends in this invocation without reaching the
readout's branch step (failed, interrupted, diverged before it), the readout is recorded ``failed`` with the
trunk's reason; the next ``sweep run`` retries the trunk and then the readout, as it retries every run not
finished.

A trunk's branch points are cleared once the trunk and all its readouts are finished. The trunks' checkpoint
folders are listed at most once per ``refresh``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweep.results.storage import FINISHED_STATUSES, ResultsStore

if TYPE_CHECKING:  # the plan imports torch
    from sweep.planning.plan import RunSpec


class Branches:
    """The readouts of a plan, their trunks, and the trunks' branch points (module docstring)."""

    def __init__(self, store: ResultsStore, planned: list[RunSpec], finished: set[str]) -> None:
        from sweep.training.checkpoint import CheckpointStore

        self.store, self.checkpoints, self.finished = store, CheckpointStore(store), set(finished)
        self.readouts: dict[str, list[RunSpec]] = {}
        for spec in planned:
            if spec.parent_run_id is not None:
                self.readouts.setdefault(spec.parent_run_id, []).append(spec)
        self.sweep = planned[0].sweep if planned else ""
        self.pending: set[str] = set()
        self.points: dict[str, set[int]] = {}
        self.steps: dict[str, int | None] | None = None
        """Trunks' newest steps read since the last ``refresh`` (one read of the live metrics serves them all)."""
        self.ended: dict[str, str] = {}
        """Trunks that ended in this invocation without finishing (or diverged): why, in one line."""
        for trunk in self.readouts:
            self._clear_if_done(trunk)  # left by a driver that stopped before it could clear them

    def refresh(self, pending: set[str]) -> None:
        """Note the runs still to finish (queued or in flight) and forget the listings and steps of the last pass."""
        self.pending, self.points, self.steps = pending, {}, None

    def _has_point(self, trunk: str, step: int) -> bool:
        if trunk not in self.points:
            self.points[trunk] = set(self.checkpoints.branch_steps(self.sweep, trunk))
        return step in self.points[trunk]

    def ready(self, spec: RunSpec) -> bool:
        """Whether the run may start now as far as its trunk goes (any run that is no readout may)."""
        trunk = spec.parent_run_id
        if trunk is None or (trunk not in self.pending and trunk not in self.ended):
            return True
        return self._has_point(trunk, spec.branch_step)

    def orphaned(self, spec: RunSpec) -> str | None:
        """Why the readout cannot be read out in this invocation (its trunk ended before its branch step), or None."""
        trunk = spec.parent_run_id
        if trunk is None or trunk not in self.ended or self._has_point(trunk, spec.branch_step):
            return None
        return f"trunk {trunk} ended before branch step {spec.branch_step}: {self.ended[trunk]}"

    def waiting_on(self, spec: RunSpec, in_flight: set[str]) -> str:
        """What a readout that is not ``ready`` waits on, for the log and ``sweep status``:
        ``readout @1626 of trunk f9dc7a23: trunk at step 900`` (from the trunk's live metrics), or ``... trunk queued``."""
        trunk = spec.parent_run_id or ""
        where = f"readout @{spec.branch_step} of trunk {trunk[:8]}"
        if trunk not in in_flight:
            return f"{where}: trunk queued"
        step = self.trunk_step(trunk)
        return f"{where}: trunk at step {step}" if step is not None else f"{where}: trunk starting"

    def trunk_step(self, trunk: str) -> int | None:
        """The trunk's newest step known: its live metrics' last row, else its newest checkpoint (None: neither).
        The sweep's live metrics are read once per ``refresh``, whatever the number of readouts asking."""
        if self.steps is None:
            live = self.store.read_live_metrics(self.sweep)
            self.steps = {str(run_id): int(step) for run_id, step in live.groupby("run_id")["step"].max().items()}
        if trunk not in self.steps:
            self.steps[trunk] = self.checkpoints.newest_step(self.sweep, trunk) or None
        return self.steps[trunk]

    def run_finished(self, spec: RunSpec, status: str, error: str | None = None) -> None:
        if status in FINISHED_STATUSES:
            self.finished.add(spec.run_id)
        if spec.run_id in self.readouts and status != "completed":
            first = (error or "").strip().splitlines()
            self.ended[spec.run_id] = f"{status}" + (f" ({first[0][:200]})" if first else "")
        self._clear_if_done(spec.parent_run_id or spec.run_id)

    def _clear_if_done(self, trunk: str) -> None:
        readouts = self.readouts.get(trunk)
        if readouts and trunk in self.finished and all(r.run_id in self.finished for r in readouts):
            self.checkpoints.clear_branch_points(self.sweep, trunk)
