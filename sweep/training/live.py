"""Live curves: a running run's metrics rows, readable while it trains.

The final metrics file of a run is written once, when it finishes (``sweep.training.worker.record``): on a GPU run
of hours nobody would see its curve until then. So the trainer (rank 0 of a DDP run) also rewrites
``RESULTS/live/sweep=NAME/RUN_ID.parquet`` with every row so far: at its first row, at each evaluation (what a
tuning study's pruner judges, ``sweep.tuning``), and whenever ``EVERY_ROWS`` more rows or ``EVERY_SECONDS`` have
passed. Each write is atomic (``ResultsStore.write_live_metrics``:
a rename locally, one PUT on an object store), so a reader always sees a whole file holding a prefix of the run's
rows. A resumed run starts from the rows its checkpoint restored, so its live file continues where it was. Once the
run's final metrics and ledger row are written, the live file is dropped; the driver also drops live files of
runs it finds finished (a worker killed between the two). ``sweep status`` shows each run in flight's latest row
from it (``sweep.execute.status``); fits never read it.

Cost: one Parquet write of the rows so far every ``EVERY_ROWS`` rows (a run of 1,000 rows writes ~100 files of at
most 1,000 rows, each a few milliseconds) on the training thread; a failed write (a full disk, a store error)
prints one line and turns live writes off for the run: training goes on.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from sweep.planning.plan import RunSpec
from sweep.results.storage import ResultsStore

EVERY_ROWS = 10
"""Rewrite the live file after this many new rows ..."""
EVERY_SECONDS = 30.0
"""... or once this long has passed since the last write, whichever comes first."""


class LiveMetrics:
    """Writes one run's rows so far to its live file (module docstring); ``log_row`` is ``train_run``'s ``on_row``."""

    def __init__(self, store: ResultsStore, spec: RunSpec, every_rows: int = EVERY_ROWS, every_seconds: float = EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.store, self.spec = store, spec
        self.every_rows, self.every_seconds, self.clock = every_rows, every_seconds, clock
        self.rows: list[dict] = []
        self.written, self.written_at, self.enabled = 0, clock(), True

    def log_row(self, row: dict) -> None:
        self.rows.append(dict(row))
        due = (self.written == 0 or len(self.rows) - self.written >= self.every_rows or row.get("eval_loss") is not None
               or self.clock() - self.written_at >= self.every_seconds)  # fmt: skip
        if due:
            self.flush()

    def flush(self) -> None:
        """Write every row so far (nothing when there is nothing new, or after a failed write)."""
        if not self.enabled or len(self.rows) == self.written:
            return
        try:
            self.store.write_live_metrics(self.spec.sweep, self.spec.run_id, self.rows)
        except (OSError, ValueError) as error:
            self.enabled = False
            print(f"run {self.spec.run_id}: live metrics off for this run: {str(error).splitlines()[0] if str(error) else type(error).__name__}",
                  file=sys.stderr)  # fmt: skip
            return
        self.written, self.written_at = len(self.rows), self.clock()

    def clear(self) -> None:
        """Drop the live file: the run's final metrics are written."""
        try:
            self.store.clear_live_metrics(self.spec.sweep, self.spec.run_id)
        except OSError:
            pass  # a leftover live file is dropped by the next driver


def each(*hooks: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """One ``on_row`` calling every hook given (None ones left out), in order."""
    chosen = [hook for hook in hooks if hook is not None]

    def call(row: dict) -> None:
        for hook in chosen:
            hook(row)

    return call
