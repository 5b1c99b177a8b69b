"""``sweep status`` shows each run in flight's latest live row (``sweep.training.live``) and the driver's time left,
which learns the measured speed of the runs it completes (issue 10)."""

import io
import json

import pytest

from sweep.execute.progress import Progress
from sweep.execute.status import sweep_status
from sweep.results.storage import ResultsStore
from tests.training.test_live import rows


def test_status_shows_the_latest_row_of_each_run_in_flight_and_the_eta(tmp_path, capsys):
    from sweep.cli import main
    from sweep.execute.lock import results_lock

    store = ResultsStore(tmp_path)
    batch = rows(12)
    batch[9]["eval_loss"] = 2.9
    store.write_live_metrics("s", "r1", batch)
    store.write_live_metrics("s", "r2", rows(3))  # in no driver's flight: left out
    (tmp_path / "live" / "sweep=s" / "r3.parquet").write_bytes(b"not parquet")  # damaged: named, never fatal
    with results_lock(store, sweep="s") as holder:
        class Spec:
            def __init__(self, run_id, flops):
                self.run_id, self.flops, self.training_flops = run_id, flops, flops
                self.training_steps, self.batch_tokens = 10, 1000

        planned = [Spec("r1", 2.4e7), Spec("r3", 1e9), Spec("r4", 1e9)]
        progress = Progress(store, "s", planned, planned, {"r1": 10.0, "r3": 10.0, "r4": 10.0}, holder, stream=io.StringIO())
        progress.in_flight = {"r1": 0.0, "r3": 0.0}
        progress._write_status(force=True)
        report = sweep_status(ResultsStore(tmp_path))
        (entry,) = report["sweeps"]
        assert entry["live"] == {"r1": {"step": 12, "train_loss": 3.0, "eval_loss": 2.9, "tokens_per_second": 1e4, "flops": 1.2e7, "done": 0.5}}
        assert entry["seconds_left"] is not None and any("r3.parquet" in d["path"] for d in report["damaged"])
        assert main(["status", "--results", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "in flight: r1 at step 12 (50% of its FLOPs): train loss 3.0000, eval loss 2.9000, 1e+04 tokens/s" in out
        assert "in flight: r3 (no metrics row yet)" in out and "time left: about" in out


def test_the_eta_learns_the_measured_speed(tmp_path):
    class Spec:
        def __init__(self, run_id):
            self.run_id, self.flops, self.training_flops, self.workers = run_id, 1e9, 1e9, 1
            self.flops_budget, self.n_params_nonembedding, self.n_layer, self.d_model, self.tokens, self.seed = 1e9, 1000, 1, 16, 100, 0
            self.training_steps, self.batch_tokens = 10, 10

    store = ResultsStore(tmp_path)
    planned = [Spec(r) for r in ("a", "b", "c", "d")]
    progress = Progress(store, "s", planned, planned, {r.run_id: 10.0 for r in planned}, {}, stream=io.StringIO())
    assert progress.speed_vs_plan is None and progress.seconds_left() == pytest.approx(40.0)
    progress.run_finished(planned[0], {"status": "completed", "wall_seconds": 30.0, "flops_spent": 1e9})
    assert progress.speed_vs_plan == pytest.approx(3.0)
    assert progress.seconds_left() == pytest.approx(90.0)  # three runs of 10 s planned, taking 3x
    progress._write_status(force=True)  # (written at most once a second otherwise)
    status = json.loads((tmp_path / "progress" / "sweep=s.json").read_text())
    assert status["speed_vs_plan"] == pytest.approx(3.0)
