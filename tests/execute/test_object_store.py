"""Results on an object store: a sweep writes its ledger, metrics and checkpoints straight to S3 (a local moto
server on the loopback interface), workers included; a rerun skips what is there."""

import pyarrow.fs as pafs
import pytest

from sweep.config import parse_config
from sweep.execute.orchestrate import run_sweep
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config
from tests.conftest import s3_root

pytestmark = pytest.mark.slow


@pytest.fixture
def s3_results(s3_endpoint, s3_bucket):
    bucket, s3 = s3_bucket
    return s3_root(s3_endpoint, bucket), s3, bucket


def test_sweep_to_s3_then_rerun_skips(ray_session, s3_results):
    uri, s3, bucket = s3_results
    config = parse_config(tiny_config(name="s3", budgets=[2e9], training={"checkpoint_every_steps": 10}))
    first = run_sweep(config, uri)
    assert first.statuses == {"completed": 2}
    store = ResultsStore(uri)
    assert store.fs.type_name == "s3"
    runs = store.read_runs("s3")
    assert len(runs) == 2 and (runs["status"] == "completed").all()
    assert not store.read_metrics("s3").duplicated(["run_id", "step"]).any()
    keys = [info.path for info in s3.get_file_info(pafs.FileSelector(f"{bucket}/results", recursive=True)) if info.is_file]
    assert sum(k.startswith(f"{bucket}/results/runs/sweep=s3/") for k in keys) == 2
    assert not any("/." in k for k in keys)  # no temporary objects: PUTs go straight to their keys
    assert not any(k.startswith(f"{bucket}/results/checkpoints/") and k.endswith(".pt") for k in keys)  # cleared when done
    assert run_sweep(config, uri).skipped_finished == 2
