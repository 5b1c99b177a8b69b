"""Credentials in a results URI are never shown: redaction, scrubbing, and the boto3 options an s3:// root implies."""

import pytest

from sweep.results.storage import ResultsRootError, ResultsStore
from sweep.results.uri import redact_uri, s3_client_options, scrub, secrets_of

KEY, SECRET = "AKIASWEEPTEST", "s3cr3t-SWEEP-do-not-leak"


@pytest.mark.parametrize(
    "root, shown",
    [
        (f"s3://{KEY}:{SECRET}@sweeps/results?endpoint_override=127.0.0.1:9000&scheme=http",
         "s3://***@sweeps/results?endpoint_override=127.0.0.1:9000&scheme=http"),
        (f"s3://{KEY}:abc/def+ghi@sweeps/r", "s3://***@sweeps/r"),  # an unencoded '/' in a secret
        (f"s3://{KEY}:ab?cd@sweeps/r?region=eu-west-1", "s3://***@sweeps/r?region=eu-west-1"),  # and a '?'
        (f"s3://sweeps/r?access_key={KEY}&secret_key={SECRET}&session_token=FQoGZXIvYXdz99&region=r",
         "s3://sweeps/r?access_key=***&secret_key=***&session_token=***&region=r"),
        ("gs://b/r?my_api_KEY=1&Password=2&credentials_file=3&x=4", "gs://b/r?my_api_KEY=***&Password=***&credentials_file=***&x=4"),
        ("s3://bucket/results", "s3://bucket/results"),
        ("/data/results", "/data/results"),
        ("results", "results"),
    ],
)  # fmt: skip
def test_redact_uri(root, shown):
    assert redact_uri(root) == shown
    for secret in secrets_of(root):
        assert secret not in redact_uri(root).replace("***", "")


def test_scrub_removes_the_root_and_each_long_secret_raw_or_decoded():
    root = f"s3://{KEY}:s3cr3t%2FSWEEP-do-not-leak@sweeps/results"
    text = f"OSError at {root}: signing with s3cr3t/SWEEP-do-not-leak (raw s3cr3t%2FSWEEP-do-not-leak) for {KEY} failed"
    cleaned = scrub(text, root)
    assert "s3cr3t" not in cleaned and KEY not in cleaned
    assert "s3://***@sweeps/results" in cleaned and "failed" in cleaned
    assert scrub("tests of test:test", "s3://test:test@b/r") == "tests of ***"  # short values only as a whole
    assert scrub("nothing", "/local/root") == "nothing"


def test_s3_client_options_from_userinfo_or_query():
    options = s3_client_options(f"s3://{KEY}:s3cr3t%2Fx@sweeps/r?endpoint_override=127.0.0.1:9000&scheme=http&region=us-east-1")
    assert options == {"aws_access_key_id": KEY, "aws_secret_access_key": "s3cr3t/x", "region_name": "us-east-1",
                       "endpoint_url": "http://127.0.0.1:9000"}  # fmt: skip
    options = s3_client_options(f"s3://sweeps/r?access_key={KEY}&secret_key=s&session_token=t")
    assert options == {"aws_access_key_id": KEY, "aws_secret_access_key": "s", "aws_session_token": "t"}
    assert s3_client_options("s3://sweeps/r?endpoint_override=minio:9000") == {"endpoint_url": "https://minio:9000"}
    assert s3_client_options("s3://sweeps/r") == {}  # boto3's own chain: environment variables, profiles, roles


def test_a_root_that_cannot_be_opened_is_named_redacted():
    with pytest.raises(ResultsRootError) as raised:
        ResultsStore(f"s3://{KEY}:{SECRET}@sweeps/results?no_such_option=1")
    message = str(raised.value)
    assert "s3://***@sweeps/results?no_such_option=1" in message and SECRET not in message and KEY not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_ledger_errors_are_scrubbed_of_the_roots_secrets(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    store.root = f"s3://{KEY}:{SECRET}@sweeps/results"  # as if the store were that root; writes go to tmp_path
    store.write_run("s", {"run_id": "r1", "status": "failed", "error": f"OSError: {store.root} refused {SECRET}"})
    error = store.read_runs("s")["error"][0]
    assert SECRET not in error and KEY not in error and "s3://***@sweeps/results" in error
