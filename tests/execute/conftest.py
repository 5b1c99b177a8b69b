"""A local S3 server for the object-store tests: moto's ``ThreadedMotoServer`` on 127.0.0.1 (it accepts any
credentials and honours S3's conditional writes), one per test session, a fresh bucket per test."""

from __future__ import annotations

import logging
import uuid

import pytest


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
