"""Results on an object store: a sweep writes its ledger, metrics and checkpoints straight to S3 (a local moto
server on the loopback interface), workers included; a rerun skips what is there."""

import pyarrow.fs as pafs
import pytest

from sweep.config import parse_config
from sweep.execute.orchestrate import run_sweep
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_results():
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    s3 = pafs.S3FileSystem(access_key="test", secret_key="test", endpoint_override=endpoint, scheme="http", region="us-east-1", allow_bucket_creation=True)
    s3.create_dir("sweeps")
    yield f"s3://test:test@sweeps/results?endpoint_override={endpoint}&scheme=http&region=us-east-1", s3
    server.stop()


def test_sweep_to_s3_then_rerun_skips(ray_session, s3_results):
    uri, s3 = s3_results
    config = parse_config(tiny_config(name="s3", budgets=[2e9], training={"checkpoint_every_steps": 10}))
    first = run_sweep(config, uri)
    assert first.statuses == {"completed": 2}
    store = ResultsStore(uri)
    assert store.fs.type_name == "s3"
    runs = store.read_runs("s3")
    assert len(runs) == 2 and (runs["status"] == "completed").all()
    assert not store.read_metrics("s3").duplicated(["run_id", "step"]).any()
    keys = [info.path for info in s3.get_file_info(pafs.FileSelector("sweeps/results", recursive=True)) if info.is_file]
    assert sum(k.startswith("sweeps/results/runs/sweep=s3/") for k in keys) == 2
    assert not any("/." in k for k in keys)  # no temporary objects: PUTs go straight to their keys
    assert not any(k.startswith("sweeps/results/checkpoints/") and k.endswith(".pt") for k in keys)  # cleared when done
    assert run_sweep(config, uri).skipped_finished == 2
