"""DDP through Ray Train: a 2-worker gloo run on CPU gives the 1-worker loss curve of the same global batch.

Tolerance: each worker trains on half the rows of the same global batch and DDP averages the gradients, so the
two runs compute the same update up to the order of float32 additions (the all-reduce sums two partial
gradients instead of one). That moves losses by about 1e-6 relative; we allow 1e-4, far below any real
difference (one step of training changes the loss by about 1e-2 here).
"""

import numpy as np
import pytest

from sweep.config import parse_config
from sweep.execute.orchestrate import run_sweep
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def test_two_worker_ddp_matches_one_worker(ray_session, tmp_path):
    def config(name, workers):
        return parse_config(tiny_config(name=name, budgets=[3e9], model={"sizes": [8e3]}, resources={"workers_per_run": workers}))

    assert run_sweep(config("single", 1), str(tmp_path)).statuses == {"completed": 1}
    assert run_sweep(config("ddp", 2), str(tmp_path)).statuses == {"completed": 1}
    store = ResultsStore(tmp_path)
    runs = store.read_runs().set_index("sweep")
    assert runs.loc["ddp", "device"] == "2x cpu" and runs.loc["single", "device"] == "cpu"
    assert runs.loc["ddp", "run_id"] == runs.loc["single", "run_id"]  # how a run trains does not change its id
    metrics = store.read_metrics()
    single, ddp = (metrics[metrics["sweep"] == s].set_index("step") for s in ("single", "ddp"))
    assert list(single.index) == list(ddp.index)
    np.testing.assert_allclose(ddp["train_loss"], single["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(ddp["eval_loss"].dropna(), single["eval_loss"].dropna(), rtol=1e-4)
    assert runs.loc["ddp", "final_eval_loss"] == pytest.approx(runs.loc["single", "final_eval_loss"], rel=1e-4)
