"""Live curves (issue 10): a running run's metrics are readable while it trains, as whole files holding a prefix
of its rows; dropped once its final metrics are written; a resumed run's continue; a damaged one is named, never
fatal (``tests/execute/test_live_status.py``: what ``sweep status`` shows of it)."""

import threading

import pytest

from sweep.results.storage import ResultsStore
from sweep.training.checkpoint import CheckpointStore
from sweep.training.live import LiveMetrics, each
from sweep.training.train import train_run
from sweep.training.worker import execute_run
from tests.training.test_resume import Interrupted, curve, spec, stop_after  # noqa: F401 - the fixture

ROW = {"tokens": 64, "flops": 1e6, "train_loss": 3.0, "eval_loss": None, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_second": 1e4, "wall_seconds": 1.0}


def rows(n, start=1):
    return [dict(ROW, step=s, tokens=64 * s, flops=1e6 * s) for s in range(start, start + n)]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def steps_on_disk(store, sweep="s"):
    return list(store.read_live_metrics(sweep)["step"])


def test_written_at_the_first_row_then_every_ten_rows_or_thirty_seconds(tmp_path, spec):
    store, clock = ResultsStore(tmp_path), Clock()
    live = LiveMetrics(store, spec, clock=clock)
    batch = rows(25)
    live.log_row(batch[0])
    assert steps_on_disk(store, spec.sweep) == [1]
    for row in batch[1:10]:
        live.log_row(row)
    assert steps_on_disk(store, spec.sweep) == [1]  # 9 new rows: not yet
    live.log_row(batch[10])
    assert steps_on_disk(store, spec.sweep) == list(range(1, 12))
    live.log_row(batch[11])
    clock.now = 31.0
    live.log_row(batch[12])  # 30 s since the last write
    assert steps_on_disk(store, spec.sweep) == list(range(1, 14))
    assert store.live_run_ids(spec.sweep) == [spec.run_id]
    live.clear()
    assert store.read_live_metrics(spec.sweep).empty and store.live_run_ids(spec.sweep) == []


def test_a_failed_write_says_so_once_and_training_goes_on(tmp_path, spec, capsys):
    store = ResultsStore(tmp_path)
    (tmp_path / "live").write_text("a file where the folder should be")
    live = LiveMetrics(store, spec)
    for row in rows(30):
        live.log_row(row)
    err = capsys.readouterr().err
    assert err.count("live metrics off for this run") == 1 and not live.enabled


def test_a_reader_always_sees_a_whole_prefix(tmp_path, spec):
    store = ResultsStore(tmp_path)
    warnings = []
    reader = ResultsStore(tmp_path, warn=warnings.append)
    batch, seen, done = rows(400), [], threading.Event()

    def read():
        while not done.is_set():
            steps = list(reader.read_live_metrics(spec.sweep)["step"])
            seen.append(steps)

    thread = threading.Thread(target=read)
    thread.start()
    live = LiveMetrics(store, spec, every_rows=1)
    for row in batch:
        live.log_row(row)
    done.set()
    thread.join()
    assert warnings == [] and len(seen) > 10
    assert all(steps == list(range(1, len(steps) + 1)) for steps in seen)  # a prefix, never a torn file


def test_a_training_run_is_readable_while_it_trains_and_dropped_when_recorded(tmp_path, spec):
    store = ResultsStore(tmp_path)
    observed = []

    def look(row):  # after the live writer saw the row: the file on disk is a prefix of the rows so far
        observed.append(steps_on_disk(store, spec.sweep))

    live = LiveMetrics(store, spec, every_rows=2)
    outcome = train_run(spec, on_row=each(live.log_row, look))
    steps = [row["step"] for row in outcome.metrics]
    assert observed[0] == steps[:1] and observed[-1] in (steps, steps[:-1])
    assert all(seen == steps[: len(seen)] for seen in observed)
    assert execute_run(spec, str(tmp_path))["status"] == "completed"  # records the run: the live file is dropped
    assert store.live_run_ids(spec.sweep) == [] and not store.read_metrics(spec.sweep).empty
    from sweep.execute.orchestrate import check_results

    store.write_live_metrics(spec.sweep, spec.run_id, outcome.metrics[:3])  # left by a worker killed after its commit
    assert spec.run_id in check_results(store, [spec], repair=False)
    assert store.live_run_ids(spec.sweep) == []  # the next driver drops it


def test_a_resumed_run_continues_its_live_file(tmp_path, spec, monkeypatch):
    store = ResultsStore(tmp_path)
    checkpoints = CheckpointStore(store)
    with monkeypatch.context() as patch:
        stop_after(patch, 25)
        with pytest.raises(Interrupted):
            train_run(spec, checkpoints, on_row=LiveMetrics(store, spec, every_rows=1).log_row)
    assert steps_on_disk(store, spec.sweep)[-1] == 25  # rows past the checkpoint (step 20) were written live
    first = []

    def look(row):
        if not first:
            first.append(steps_on_disk(store, spec.sweep))

    resumed = train_run(spec, checkpoints, on_row=each(LiveMetrics(store, spec, every_rows=1).log_row, look))
    assert first[0] == [5]  # the restored rows are written again from the start: the file restarts at the checkpoint's prefix
    assert steps_on_disk(store, spec.sweep) == [row["step"] for row in resumed.metrics]
