"""End to end on the shared embedded Ray: a sweep lands in Parquet, a rerun skips finished runs, new budgets add runs."""

import pytest

from sweep.config import parse_config
from sweep.execute.orchestrate import run_sweep
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def test_sweep_then_rerun_skips_then_extends(ray_session, tmp_path):
    config = parse_config(tiny_config(name="e2e"))
    first = run_sweep(config, str(tmp_path))
    assert first.statuses == {"completed": 4} and first.skipped_finished == 0
    store = ResultsStore(tmp_path)
    runs = store.read_runs("e2e")
    assert len(runs) == 4 and (runs["status"] == "completed").all() and runs["final_eval_loss"].notna().all()
    metrics = store.read_metrics("e2e")
    assert not metrics.duplicated(["run_id", "step"]).any()
    assert set(metrics["run_id"]) == set(runs["run_id"])
    stamps = dict(zip(runs["run_id"], runs["finished_at"]))

    again = run_sweep(config, str(tmp_path))
    assert again.skipped_finished == 4 and again.statuses == {}
    assert dict(zip(*store.read_runs("e2e")[["run_id", "finished_at"]].T.values)) == stamps

    bigger = parse_config(tiny_config(name="e2e", budgets=[2e9, 4e9, 8e9]))
    extended = run_sweep(bigger, str(tmp_path))
    assert extended.skipped_finished == 4 and extended.statuses == {"completed": 2}
    assert len(store.read_runs("e2e")) == 6
