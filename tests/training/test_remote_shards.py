"""Token files named by an object-store URI (``sweep.training.remote``): copied once per node into the cache, checked
by size and SHA-256, read as the local directory is; every refusal one line naming the key, with no secret in it.
``file://`` URIs stand for the object store (pyarrow opens them as it opens ``s3://``)."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import numpy as np
import pyarrow.fs as pafs
import pytest

from sweep.config import ConfigError, DataConfig
from sweep.training import remote
from sweep.training.data import TokenStream, load_corpus, validation_batches
from sweep.training.remote import localize
from tests.training.test_shards import VOCAB, ids, write_llmc, write_npy

KEY, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEP_CACHE", str(tmp_path / "cache"))


def bucket(tmp_path):
    """A "bucket" prefix of three training shards (llm.c and .npy) and two validation shards."""
    folder = tmp_path / "bucket" / "web"
    folder.mkdir(parents=True)
    for k in range(3):
        write = write_llmc if k % 2 else write_npy
        write(folder / f"train-{k:03d}.{'bin' if k % 2 else 'npy'}", ids(3_000 + 500 * k, seed=k))
    for k in range(2):
        write_npy(folder / f"val-{k:03d}.npy", ids(1_000, seed=10 + k))
    return folder


def tokens(train: str, val: str | None = None) -> DataConfig:
    return DataConfig(source="tokens", path=train, val_path=val, vocab_size=VOCAB)


def counting_copies(monkeypatch) -> list[str]:
    """The objects copied from here on, by name."""
    copied, real = [], remote._copy_object
    def counted(filesystem, path, target):
        copied.append(path.rpartition("/")[2])
        return real(filesystem, path, target)

    monkeypatch.setattr(remote, "_copy_object", counted)
    return copied


def refusing_copies(monkeypatch) -> None:
    def refuse(filesystem, path, target):
        raise AssertionError(f"{path} was copied again")

    monkeypatch.setattr(remote, "_copy_object", refuse)


def one_line(error: pytest.ExceptionInfo, key: str) -> str:
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{key}: "), message
    return message


def test_a_uri_reads_as_its_local_directory_and_is_copied_once_per_node(tmp_path, monkeypatch, capsys):
    folder = bucket(tmp_path)
    local = load_corpus(tokens(str(folder / "train-*"), str(folder / "val-*")))
    copied = counting_copies(monkeypatch)
    uri = f"file://{folder}"
    first = load_corpus(tokens(f"{uri}/train-*", f"{uri}/val-*"))
    assert sorted(copied) == sorted(p.name for p in folder.iterdir())
    assert first.fingerprint == local.fingerprint and len(first.train) == len(local.train) and len(first.val) == len(local.val)
    for step in (0, 1, 7, 40):
        for ours, theirs in zip(TokenStream(first.train, 4, 16, seed=2).batch(step), TokenStream(local.train, 4, 16, seed=2).batch(step)):
            assert np.array_equal(ours.numpy(), theirs.numpy())
    for ours, theirs in zip(validation_batches(first.val, 160, 4, 16), validation_batches(local.val, 160, 4, 16)):
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(ours, theirs))
    lines = capsys.readouterr().err.splitlines()
    sizes = [sum(p.stat().st_size for p in folder.glob(f"{split}-*")) / 1e3 for split in ("train", "val")]
    assert [line.split(" from ")[0] for line in lines] == [f"sweep: data.path: copied 3 files ({sizes[0]:.2f} kB)",
                                                          f"sweep: data.val_path: copied 2 files ({sizes[1]:.2f} kB)"]
    assert lines[0].endswith(f" in {lines[0].split(' in ')[-1]}") and f"from file://{folder}/train-* to " in lines[0]
    refusing_copies(monkeypatch)  # a second run on this node: the listing only
    again = load_corpus(tokens(f"{uri}/train-*", f"{uri}/val-*"))
    assert again.fingerprint == local.fingerprint and capsys.readouterr().err == ""
    assert localize(f"{uri}/", "data.path") == localize(uri, "data.path")  # one cache entry per remote directory
    assert localize(str(folder), "data.path") == str(folder)  # a local path is left as it is


def test_a_changed_object_is_copied_again_and_a_deleted_one_dropped(tmp_path, monkeypatch):
    folder = bucket(tmp_path)
    uri = f"file://{folder}"
    local = localize(uri, "data.path")
    write_npy(folder / "train-002.npy", ids(4_321, seed=99))  # another size
    (folder / "train-000.npy").unlink()
    copied = counting_copies(monkeypatch)
    assert localize(uri, "data.path") == local
    assert copied == ["train-002.npy"]
    cache = sorted(p.name for p in (tmp_path / "cache").rglob("files/*"))
    assert cache == ["train-001.bin", "train-002.npy", "val-000.npy", "val-001.npy"]
    assert np.array_equal(np.load(f"{local}/train-002.npy"), ids(4_321, seed=99))
    next((tmp_path / "cache").rglob("files/val-000.npy")).write_bytes(b"x")
    assert localize(uri, "data.path") == local and copied == ["train-002.npy", "val-000.npy"]  # a local copy damaged


def manifest(folder, wrong: str | None = None) -> dict:
    """A manifest as ``sweep data prepare`` writes it (the parts read here), ``wrong``'s SHA-256 misstated."""
    files = []
    for path in sorted(folder.glob("*.npy")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        files.append({"name": path.name, "split": path.name.split("-")[0], "tokens": len(np.load(path)),
                      "bytes": path.stat().st_size, "sha256": "0" * 64 if path.name == wrong else digest,
                      "max_id": int(np.load(path).max())})  # fmt: skip
    record = {"format": "npy", "tokenizer": {"file": "tokenizer.json", "sha256": "ab" * 32}, "files": files}
    (folder / "manifest.json").write_text(json.dumps(record))
    return record


def test_copies_are_checked_against_the_manifest_and_it_is_copied_beside_them(tmp_path, monkeypatch):
    folder = bucket(tmp_path)
    (folder / "train-001.bin").unlink()
    manifest(folder)
    uri = f"file://{folder}"
    corpus = load_corpus(tokens(f"{uri}/train-*", f"{uri}/val-*"))
    assert corpus.tokenizer_sha256 == "ab" * 32  # the manifest beside the copies, read as provenance reads it locally
    manifest(folder, wrong="train-002.npy")  # the manifest now disagrees with the copy recorded: copied again, refused
    copied = counting_copies(monkeypatch)
    with pytest.raises(ConfigError) as refused:
        localize(f"{uri}/train-*", "data.path")
    message = one_line(refused, "data.path")
    assert f"file://{folder}/train-002.npy does not match its manifest.json" in message
    assert copied == ["manifest.json", "train-002.npy"]
    assert not list((tmp_path / "cache").rglob("files/train-002.npy")) and not list((tmp_path / "cache").rglob("*.tmp"))


@pytest.mark.parametrize(
    ("spec", "says"),
    [("{uri}/missing", "data.path: nothing at file://{folder}/missing (no such object, prefix or bucket)"),
     ("{uri}/test-*", "data.path: no object matches file://{folder}/test-*"),
     ("{uri}/sub", "data.path: file://{folder}/sub holds no .bin or .npy files (name others with a glob)"),
     ("{uri}/*/x.bin", "data.path: file://{folder}/*/x.bin: only the last part of an object-store URI may be a glob"),
     ("http://example.com/x.bin", "data.path: http://example.com/x.bin: cannot open it (Unrecognized filesystem")],
)  # fmt: skip
def test_a_uri_naming_nothing_is_one_line(tmp_path, spec, says):
    folder = bucket(tmp_path)
    (folder / "sub").mkdir()
    (folder / "sub" / "notes.txt").write_text("no tokens")
    with pytest.raises(ConfigError) as refused:
        load_corpus(tokens(spec.format(uri=f"file://{folder}")))
    assert one_line(refused, "data.path").startswith(says.format(folder=folder))


def test_concurrent_runs_on_one_node_copy_each_object_once(tmp_path, monkeypatch):
    folder = bucket(tmp_path)
    copied, real = [], remote._copy_object
    def slow(filesystem, path, target):
        time.sleep(0.05)  # long enough for the other threads to reach the lock
        copied.append(path)
        return real(filesystem, path, target)

    monkeypatch.setattr(remote, "_copy_object", slow)
    found: list[str] = []
    threads = [threading.Thread(target=lambda: found.append(localize(f"file://{folder}", "data.path"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found) == 4  # flock: separate open()s exclude each other, threads included
    assert sorted(copied) == sorted(str(p) for p in folder.iterdir())


def test_an_unreachable_store_is_one_line_without_its_secrets(monkeypatch):
    """A real ``S3FileSystem`` at a closed port (no network needed), retrying once so the test takes milliseconds."""
    def fast(spec, key):
        _, path = pafs.FileSystem.from_uri(spec)  # the URI parsed as it is in use, credentials and all
        retry = pafs.AwsStandardS3RetryStrategy(max_attempts=1)
        return pafs.S3FileSystem(access_key=KEY, secret_key=SECRET, endpoint_override="127.0.0.1:1", scheme="http",
                                 region="us-east-1", retry_strategy=retry), path  # fmt: skip

    monkeypatch.setattr(remote, "_open", fast)
    uri = f"s3://{KEY}:{SECRET.replace('/', '%2F')}@sweeps/web?endpoint_override=127.0.0.1:1&scheme=http"
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        localize(uri, "data.path")
    message = one_line(refused, "data.path")
    assert time.monotonic() - started < 5
    assert message.startswith("data.path: cannot read s3://***@sweeps/web?endpoint_override=127.0.0.1:1&scheme=http (")
    assert KEY not in message and "wJalrXUtnFEMI" not in message


def test_a_sweep_file_takes_a_uri_but_never_its_credentials():
    assert tokens("s3://sweeps/web/train-*.npy", "gs://sweeps/web/val-*.npy").path == "s3://sweeps/web/train-*.npy"
    for key, spec in (("path", f"s3://{KEY}:{SECRET}@sweeps/web"), ("val_path", "s3://sweeps/web?secret_key=x")):
        with pytest.raises(ValueError) as refused:
            DataConfig(source="tokens", vocab_size=VOCAB, **{"path": "s3://sweeps/web", key: spec})
        assert "holds credentials" in str(refused.value) and "AWS_ACCESS_KEY_ID" in str(refused.value)
        assert SECRET not in str(refused.value) and KEY not in str(refused.value)
