"""Run checkpoints: the full training state of a run, saved every N steps under the results root, loaded on resume.

A checkpoint holds the model, optimizer and scheduler states, the RNG states, the number of completed steps (the
data position follows from it, see ``sweep.training.data.TokenStream``), the metrics rows logged so far and the run's
elapsed time. Resuming from it continues the run exactly: on CPU the loss curve is bitwise that of a run never
stopped (tested); on GPU, kernels with non-deterministic reductions make it equal within float noise.

Layout: ``checkpoints/sweep=NAME/RUN_ID/step-000000123.pt`` (written whole or not at all, by
``ResultsStore.write_atomic``, so a half-written checkpoint is never loaded; older ones are deleted after a newer
one lands). A finished run's checkpoints are deleted once its ledger row is written.
"""

from __future__ import annotations

import io
import re

import pyarrow.fs as pafs
import torch

from sweep.results.storage import ResultsStore

_NAME = re.compile(r"^step-(\d{9})\.pt$")


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
        """Write ``state`` as the checkpoint at ``step``, atomically, then drop older checkpoints of the run."""
        directory = self._dir(sweep, run_id)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.store.write_atomic(f"{directory}/step-{step:09d}.pt", buffer.getvalue())
        for older in self._steps(sweep, run_id):
            if older < step:
                self.fs.delete_file(f"{directory}/step-{older:09d}.pt")

    def latest(self, sweep: str, run_id: str) -> dict | None:
        """The newest checkpoint's state, or None when the run has none."""
        steps = self._steps(sweep, run_id)
        if not steps:
            return None
        with self.fs.open_input_file(f"{self._dir(sweep, run_id)}/step-{steps[-1]:09d}.pt") as handle:
            return torch.load(io.BytesIO(handle.read()), map_location="cpu", weights_only=True)

    def clear(self, sweep: str, run_id: str) -> None:
        """Delete every checkpoint of the run (after its ledger row is written)."""
        directory = self._dir(sweep, run_id)
        if self.fs.get_file_info(directory).type == pafs.FileType.Directory:
            self.fs.delete_dir(directory)
