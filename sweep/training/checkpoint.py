"""Run checkpoints: the full training state of a run, saved every N steps under the results root, loaded on resume.

A checkpoint holds the model, optimizer and scheduler states, the RNG states, the number of completed steps (the
data position follows from it, see ``sweep.training.data.TokenStream``), the metrics rows logged so far and the run's
elapsed time. Resuming from it continues the run exactly: on CPU the loss curve is bitwise that of a run never
stopped (tested); on GPU, kernels with non-deterministic reductions make it equal within float noise.

Layout: ``checkpoints/sweep=NAME/RUN_ID/step-000000123.pt`` (written whole or not at all, by
``ResultsStore.write_atomic``, so a half-written checkpoint is never loaded). The newest two are kept (older ones
are deleted after a newer one lands): a checkpoint damaged after it was written (a disk fault, a bad copy, a
file cut short by hand) still leaves one to resume from, at twice the storage of a run in progress. A finished
run's checkpoints are deleted once its ledger row is written. A ``wsd`` trunk also writes ``branch-STEP.pt`` at
each readout's branch step: kept past the trunk's end, until every readout of it has finished (the driver clears
them), since a readout starts from one; a damaged one is set aside and its readout trains from step 0.

Resuming (``states``) tries the newest checkpoint first. One that ``torch.load`` refuses (0 bytes, truncated,
not a checkpoint) is named in one line, set aside under ``RESULTS/quarantine/`` with the reason
(``sweep.results.quarantine``) and the next older one is tried; with none left the run starts from step 0. A
checkpoint that loads but cannot be restored (keys missing, shapes of another model, a step other than the one
its name gives or outside the run) takes the same path through ``set_aside`` (``sweep.training.train``).
``torch.load`` runs with ``weights_only=True``: a checkpoint is data, never code.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator

import pyarrow.fs as pafs
import torch

from sweep.results.quarantine import DamagedFile
from sweep.results.storage import ResultsStore

KEEP = 2
"""Checkpoints kept per run in progress: the newest and the one before it."""

_NAME = re.compile(r"^step-(\d{9})\.pt$")
_BRANCH = re.compile(r"^branch-(\d{9})\.pt$")


class CheckpointStore:
    """Checkpoints of the runs of one results root (local path or pyarrow filesystem URI)."""

    def __init__(self, store: ResultsStore) -> None:
        self.store, self.fs, self.base = store, store.fs, store.base

    def _dir(self, sweep: str, run_id: str) -> str:
        return f"{self.base}/checkpoints/sweep={sweep}/{run_id}"

    def _steps(self, sweep: str, run_id: str) -> list[int]:
        selector = pafs.FileSelector(self._dir(sweep, run_id), allow_not_found=True)
        names = (info.base_name for info in self.fs.get_file_info(selector))
        return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)

    def save(self, sweep: str, run_id: str, step: int, state: dict) -> None:
        """Write ``state`` as the checkpoint at ``step``, atomically, then drop all but the newest ``KEEP``."""
        directory = self._dir(sweep, run_id)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.store.write_atomic(f"{directory}/step-{step:09d}.pt", buffer.getvalue())
        for older in [s for s in self._steps(sweep, run_id) if s <= step][:-KEEP]:
            self.fs.delete_file(f"{directory}/step-{older:09d}.pt")

    def newest_step(self, sweep: str, run_id: str) -> int:
        """The step of the run's newest checkpoint (0 when it has none); a listing, no file read."""
        steps = self._steps(sweep, run_id)
        return steps[-1] if steps else 0

    def states(self, sweep: str, run_id: str) -> Iterator[tuple[int, dict]]:
        """``(step, state)`` of the run's checkpoints, newest first; one that cannot be loaded is set aside and
        skipped (module docstring)."""
        for step in reversed(self._steps(sweep, run_id)):
            try:
                with self.fs.open_input_file(f"{self._dir(sweep, run_id)}/step-{step:09d}.pt") as handle:
                    data = handle.read()
            except FileNotFoundError:
                continue  # set aside or replaced meanwhile (another rank of the same run)
            try:
                state = _load(data)
            except Exception as error:  # noqa: BLE001 - whatever torch.load says, the file is not a usable checkpoint
                self.set_aside(sweep, run_id, step, f"cannot load it ({len(data)} bytes): {_first_line(error)}")
                continue
            yield step, state

    def latest(self, sweep: str, run_id: str) -> dict | None:
        """The newest loadable checkpoint's state, or None when the run has none."""
        return next((state for _, state in self.states(sweep, run_id)), None)

    def set_aside(self, sweep: str, run_id: str, step: int, reason: str) -> None:
        """Move the checkpoint at ``step`` to ``quarantine/`` with ``reason`` and say so in one line (stderr)."""
        path = f"{self._dir(sweep, run_id)}/step-{step:09d}.pt"
        target = self.store.set_aside(DamagedFile(path, reason))
        if target:
            print(f"sweep: warning: run {run_id}: checkpoint {self.store.shown_path(path)} {reason}; set aside as "
                  f"{self.store.shown_path(target)}, resuming from an older one or from step 0", file=sys.stderr, flush=True)

    def clear(self, sweep: str, run_id: str) -> None:
        """Delete every checkpoint of the run (after its ledger row is written), its branch points apart: they
        stay until every readout that starts from them has finished (``clear_branch_points``)."""
        directory = self._dir(sweep, run_id)
        if self.fs.get_file_info(directory).type != pafs.FileType.Directory:
            return
        if not self.branch_steps(sweep, run_id):
            self.fs.delete_dir(directory)
            return
        for step in self._steps(sweep, run_id):
            self.fs.delete_file(f"{directory}/step-{step:09d}.pt")

    # Branch points: a wsd trunk's state at each readout's branch step (sweep.planning.plan, "wsd").
    def save_branch_point(self, sweep: str, run_id: str, step: int, state: dict) -> None:
        """Write the trunk's state at ``step`` as a branch point (kept, unlike the rolling checkpoints)."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.store.write_atomic(f"{self._dir(sweep, run_id)}/branch-{step:09d}.pt", buffer.getvalue())

    def branch_steps(self, sweep: str, run_id: str) -> list[int]:
        """The steps of the trunk's branch points (a listing, no file read)."""
        selector = pafs.FileSelector(self._dir(sweep, run_id), allow_not_found=True)
        names = (info.base_name for info in self.fs.get_file_info(selector))
        return sorted(int(m.group(1)) for m in map(_BRANCH.match, names) if m)

    def branch_point(self, sweep: str, run_id: str, step: int) -> dict | None:
        """The trunk's state at ``step``, or None when it has none there (or only a damaged one, set aside)."""
        path = f"{self._dir(sweep, run_id)}/branch-{step:09d}.pt"
        try:
            with self.fs.open_input_file(path) as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        try:
            return _load(data)
        except Exception as error:  # noqa: BLE001 - not a usable checkpoint, whatever torch.load says
            target = self.store.set_aside(DamagedFile(path, f"cannot load it ({len(data)} bytes): {_first_line(error)}"))
            print(f"sweep: warning: branch point {self.store.shown_path(path)} is damaged; set aside as "
                  f"{self.store.shown_path(target)}: its readout trains from step 0", file=sys.stderr, flush=True)
            return None

    def clear_branch_points(self, sweep: str, run_id: str) -> None:
        """Delete a finished trunk's branch points (every readout of it has finished)."""
        directory = self._dir(sweep, run_id)
        if self.fs.get_file_info(directory).type == pafs.FileType.Directory:
            self.fs.delete_dir(directory)


def _load(data: bytes) -> dict:
    """A checkpoint's state from its bytes (``weights_only``: data, never code); raises if it is not one."""
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise TypeError(f"holds a {type(state).__name__}, not a checkpoint's dict")
    return state


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__  # one line, never a wall
