"""Shared fixtures: one embedded Ray instance per test session, tiny sweep configs, isolated caches."""

from __future__ import annotations

import logging
import os
import uuid

import pytest

# The tests' own Ray instances (the shared session below, subprocess drivers) run without token authentication, so
# the suite needs no token on the machine; `sweep run` itself keeps it on (tests/execute/test_connect.py and
# test_quiet.py check joins with a token and an embedded sweep's output).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def ray_session():
    """One Ray instance for every test that needs it (starting Ray costs seconds)."""
    import ray

    # address="local": our own Ray, even while a `ray start` cluster (another test's, anyone's) is recorded on the
    # machine as the one a plain ray.init() joins. The dashboard: Ray Train queries its state API.
    ray.init(address="local", num_cpus=2, include_dashboard=True, logging_level="ERROR")
    yield ray
    ray.shutdown()


def tiny_config(name: str = "tiny", **overrides) -> dict:
    """A sweep of two tiny models at two small budgets: seconds per run on one CPU."""
    config = {
        "name": name,
        "budgets": [2e9, 4e9],
        "model": {"sizes": [3e3, 8e3], "seq_len": 32, "head_dim": 8, "aspect_ratio": 16},
        "training": {"batch_tokens": 256, "eval_points": 2, "eval_tokens": 2048, "min_steps": 5, "log_every_steps": 5},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key] = {**config.get(key, {}), **value}
        else:
            config[key] = value
    return config


def write_synthetic_results(root, sweep: str = "synthetic", budgets=(1e9, 3e9, 1e10), sizes=(2e3, 5e3, 1.2e4, 3e4, 8e4),
                            shift: float = 0.0, seed: int = 0, code_commit: str | None = None) -> None:  # fmt: skip
    """A results directory as ``sweep run`` writes it, for runs drawn from L = 1.7 + 400/N^0.34 + 410/D^0.3 (plus
    ``shift``) with 0.5% noise, each with a short loss curve: a fixture for the notebook and the report, no training
    needed."""
    from datetime import datetime, timezone

    import numpy as np

    from sweep.results.storage import ResultsStore

    rng, store, now = np.random.default_rng(seed), ResultsStore(root), datetime.now(timezone.utc)
    for budget in budgets:
        for n in sizes:
            d = budget / (6 * n)
            loss = (1.7 + 400 / n**0.34 + 410 / d**0.3) * (1 + 0.005 * rng.standard_normal()) + shift
            run_id = f"{int(budget):d}-{int(n):d}"
            steps = np.linspace(0.1, 1.0, 10)
            store.write_metrics(sweep, run_id, [
                {"step": i + 1, "tokens": int(d * f), "flops": budget * f, "train_loss": loss + 2.0 * (1 - f) ** 2,
                 "eval_loss": loss if i == 9 else None, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_second": 1e4, "wall_seconds": f}
                for i, f in enumerate(steps)
            ])  # fmt: skip
            store.write_run(sweep, {
                "run_id": run_id, "status": "completed", "n_params": int(n * 1.2), "n_params_nonembedding": int(n),
                "tokens": int(d), "flops": budget, "flops_budget": budget, "final_eval_loss": loss, "final_train_loss": loss,
                "started_at": now, "finished_at": now, "code_commit": code_commit,
            })  # fmt: skip


# A local S3 server for the object-store tests: moto's ThreadedMotoServer on 127.0.0.1 (it accepts any credentials
# and honours S3's conditional writes), one per test session, a fresh bucket per test.
@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    server_module = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


def s3_root(endpoint: str, bucket: str, path: str = "results", userinfo: str = "test:test") -> str:
    """A pyarrow results URI on the local server (credentials in the userinfo, as users may write them)."""
    return f"s3://{userinfo}@{bucket}/{path}?endpoint_override={endpoint}&scheme=http&region=us-east-1"


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the local server; yields ``(name, pyarrow S3FileSystem)``."""
    import pyarrow.fs as pafs

    s3 = pafs.S3FileSystem(access_key="test", secret_key="test", endpoint_override=s3_endpoint, scheme="http",
                           region="us-east-1", allow_bucket_creation=True)  # fmt: skip
    name = f"sweeps-{uuid.uuid4().hex[:12]}"
    s3.create_dir(name)
    yield name, s3
