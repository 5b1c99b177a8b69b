"""Provenance that scales (``sweep.training.provenance``): each shard hashed once and cached, a manifest of ``sweep
data prepare`` standing for its shards while their sizes agree, the tokenizer's hash recorded beside the fingerprint
in the ledger and compared by ``sweep compare``, and a worker's check that reads no token once the cache is warm."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweep.config import ConfigError, DataConfig, parse_config
from sweep.training import provenance
from sweep.training.data import load_corpus
from sweep.training.provenance import scan_files
from sweep.training.shards import open_shards
from tests.conftest import tiny_config

NOW = datetime.now(timezone.utc)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEP_CACHE", str(tmp_path / "cache"))


def counting_reads(monkeypatch) -> list[str]:
    """The names of the files read for provenance from here on, in order."""
    reads, real = [], provenance.read_ids
    def counted(shard, digest):
        reads.append(shard.path.name)
        return real(shard, digest)

    monkeypatch.setattr(provenance, "read_ids", counted)
    return reads


def refusing_reads(monkeypatch) -> None:
    def refuse(shard, digest):
        raise AssertionError(f"{shard.path.name} was read")

    monkeypatch.setattr(provenance, "read_ids", refuse)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_everything(config: DataConfig) -> str:
    """The fingerprint from reading every file, trusting no manifest and no cache."""
    val = open_shards(config.val_path, config.dtype, "data.val_path") if config.val_path else []
    return scan_files(open_shards(config.path, config.dtype, "data.path"), val).fingerprint


def write_shards(folder, count: int, split: str = "train", length: int = 1_000, seed: int = 0) -> None:
    folder.mkdir(exist_ok=True)
    for k in range(count):
        tokens = np.random.default_rng(seed + k).integers(0, 300, length).astype(np.uint16)
        np.save(folder / f"{split}-{k:03d}.npy", tokens)


def tokens_config(folder, **more) -> DataConfig:
    return DataConfig(source="tokens", path=str(folder / "train-*.npy"), vocab_size=300, **more)


def test_the_fingerprint_is_the_documented_hash_and_one_changed_shard_of_many_is_read_alone(tmp_path, monkeypatch):
    folder = tmp_path / "shards"
    write_shards(folder, 20)
    write_shards(folder, 3, "val", seed=100)
    config = tokens_config(folder, val_path=str(folder / "val-*.npy"))
    reads = counting_reads(monkeypatch)
    first = load_corpus(config)
    files = [*sorted(folder.glob("train-*.npy")), *sorted(folder.glob("val-*.npy"))]
    lines = "".join(f"{p.name[:p.name.index('-')]} {p.stat().st_size} {sha256(p)}\n" for p in files)
    assert first.fingerprint == hashlib.sha256(lines.encode("ascii")).hexdigest()[:16]
    assert sorted(reads) == sorted(p.name for p in files)
    np.save(folder / "train-007.npy", np.arange(1_000, dtype=np.uint16) % 300)
    again = load_corpus(config)
    assert reads[len(files):] == ["train-007.npy"] and again.fingerprint != first.fingerprint
    assert again.fingerprint == read_everything(config)
    assert first.tokenizer_sha256 is None and again.tokenizer_sha256 is None  # no manifest: no tokenizer known


def test_one_file_and_one_pair_hash_as_they_always_did(tmp_path):
    folder = tmp_path / "pair"
    write_shards(folder, 1)
    write_shards(folder, 1, "val", seed=9)
    train, val = folder / "train-000.npy", folder / "val-000.npy"
    assert load_corpus(tokens_config(folder)).fingerprint == hashlib.sha256(train.read_bytes()).hexdigest()[:16]
    pair = load_corpus(tokens_config(folder, val_path=str(val)))
    assert pair.fingerprint == hashlib.sha256(train.read_bytes() + val.read_bytes()).hexdigest()[:16]


def test_a_worker_reloading_a_known_corpus_reads_no_token(tmp_path, monkeypatch):
    """A run's start loads the corpus again on its worker: with this machine's cache warm that is stat calls and small
    reads, for a set of shards as for a pair (hashed as one stream)."""
    folder = tmp_path / "shards"
    write_shards(folder, 5)
    write_shards(folder, 1, "val", seed=50)
    sets = [tokens_config(folder), tokens_config(folder, val_path=str(folder / "val-000.npy"))]
    solo = tmp_path / "solo"
    write_shards(solo, 1)
    sets.append(tokens_config(solo, val_path=str(folder / "val-000.npy")))  # a pair
    planned = [load_corpus(config).fingerprint for config in sets]
    refusing_reads(monkeypatch)
    assert [load_corpus(config).fingerprint for config in sets] == planned


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A directory ``sweep data prepare`` wrote (several training and validation shards, a manifest) with the BPE
    tokenizer it used, trained here offline."""
    from sweep.prepare.tokenizer import TokenizerFile
    from sweep.prepare.writer import PrepareOptions, prepare
    from tests.prepare.test_prepare import generated_documents, train_tokenizer

    root = tmp_path_factory.mktemp("prepared")
    texts = generated_documents(300, 0)
    train_tokenizer(texts, root / "tokenizer.json")
    (root / "a.txt").write_text("\n".join(texts[:150]))
    with open(root / "b.jsonl", "w") as handle:
        handle.writelines(json.dumps({"text": text}) + "\n" for text in texts[150:])
    manifest = prepare([str(root / "a.txt"), str(root / "b.jsonl")], TokenizerFile(str(root / "tokenizer.json")),
                       root / "data", PrepareOptions(shard_tokens=400, val_fraction=0.1), workers=1)  # fmt: skip
    splits = [entry["split"] for entry in manifest["files"]]
    assert splits.count("train") > 2 and splits.count("val") > 1
    return root / "data", manifest


def prepared_config(folder, vocab_size: int) -> DataConfig:
    return DataConfig(source="tokens", path=str(folder / "train-*.npy"), val_path=str(folder / "val-*.npy"),
                      vocab_size=vocab_size)  # fmt: skip


def test_a_manifest_stands_for_its_shards_and_gives_the_fingerprint_hashing_gives(prepared, tmp_path, monkeypatch):
    folder, manifest = prepared
    assert all(entry["max_id"] == int(np.load(folder / entry["name"]).max()) for entry in manifest["files"])
    assert all(entry["sha256"] == sha256(folder / entry["name"]) for entry in manifest["files"])
    config = prepared_config(folder, manifest["vocab_size"])
    real = provenance.read_ids
    refusing_reads(monkeypatch)  # an empty cache: only the manifest can say what the shards hold
    corpus = load_corpus(config)
    assert corpus.tokenizer_sha256 == manifest["tokenizer"]["sha256"]
    monkeypatch.setattr(provenance, "read_ids", real)
    plain = tmp_path / "plain"
    shutil.copytree(folder, plain)
    (plain / "manifest.json").unlink()
    bare = load_corpus(prepared_config(plain, manifest["vocab_size"]))  # every shard read
    assert bare.fingerprint == corpus.fingerprint and bare.tokenizer_sha256 is None
    assert read_everything(config) == corpus.fingerprint
    too_small = DataConfig(**{**config.model_dump(), "vocab_size": max(f["max_id"] for f in manifest["files"])})
    with pytest.raises(ConfigError, match="data.vocab_size: the token files hold id"):
        load_corpus(too_small)  # the manifest's largest ids are checked like read ones


def test_a_stale_manifest_is_not_trusted(prepared, tmp_path, monkeypatch):
    """A shard whose size no longer agrees with its manifest entry is read (its hash and ids are the file's, not the
    manifest's), and the tokenizer that wrote the set is no longer known."""
    source, manifest = prepared
    folder = tmp_path / "data"
    shutil.copytree(source, folder)
    changed = next(entry["name"] for entry in manifest["files"] if entry["split"] == "train")
    np.save(folder / changed, np.load(folder / changed)[:-3])
    reads = counting_reads(monkeypatch)
    corpus = load_corpus(prepared_config(folder, manifest["vocab_size"]))
    assert reads == [changed] and corpus.tokenizer_sha256 is None
    assert corpus.fingerprint == read_everything(prepared_config(folder, manifest["vocab_size"]))
    assert corpus.fingerprint != load_corpus(prepared_config(source, manifest["vocab_size"])).fingerprint


def test_the_tokenizers_hash_reaches_the_ledger_and_stays_out_of_run_ids(prepared, tmp_path):
    from sweep.execute.orchestrate import prepare_plan
    from sweep.fitting.inputs import fit_inputs_from_results
    from sweep.results.storage import RUNS_SCHEMA, ResultsStore
    from sweep.training.train import RunOutcome
    from sweep.training.worker import ledger_row

    folder, manifest = prepared
    data = prepared_config(folder, manifest["vocab_size"]).model_dump()
    spec = prepare_plan(parse_config(tiny_config(data=data))).runs[0]
    assert spec.tokenizer_sha256 == manifest["tokenizer"]["sha256"]
    assert replace(spec, tokenizer_sha256=None).run_id == spec.run_id
    row = ledger_row(spec, RunOutcome(status="completed", final_eval_loss=3.0), NOW, NOW, node=None)
    assert row["tokenizer_sha256"] == manifest["tokenizer"]["sha256"]
    store = ResultsStore(tmp_path / "results")
    store.write_run("tiny", row)
    assert store.read_runs("tiny")["tokenizer_sha256"].tolist() == [manifest["tokenizer"]["sha256"]]
    assert fit_inputs_from_results(store, "tiny").runs["tokenizer_sha256"].tolist() == [manifest["tokenizer"]["sha256"]]
    # a ledger file written before the column existed still reads, the column null
    older = RUNS_SCHEMA.remove(RUNS_SCHEMA.get_field_index("tokenizer_sha256"))
    old_row = {**row, "run_id": "0123456789abcdef"}
    del old_row["tokenizer_sha256"]
    (tmp_path / "results" / "runs" / "sweep=old").mkdir(parents=True, exist_ok=True)
    old_file = tmp_path / "results" / "runs" / "sweep=old" / "0123456789abcdef.parquet"
    pq.write_table(pa.Table.from_pylist([old_row], schema=older), old_file)
    both = store.read_runs()
    assert both.set_index("sweep")["tokenizer_sha256"].isna().to_dict() == {"old": True, "tiny": False}


def test_sweep_compare_says_when_two_sweeps_tokenizers_differ(capsys):
    from sweep.cli import _print_comparison
    from sweep.fitting.compare import compare
    from tests.fitting.test_compare import inputs, night

    a = night().assign(data_fingerprint="aaaa", tokenizer_sha256="1" * 64)
    b = night(seed=1).assign(data_fingerprint="bbbb", tokenizer_sha256="2" * 64)
    result = compare(inputs(a), inputs(b), n_boot=0) | {"a": "A", "b": "B"}
    assert result["tokenizer"] == {"a": ["1" * 64], "b": ["2" * 64], "same": False}
    _print_comparison(result)
    out = capsys.readouterr().out
    said = "tokenizer: the sweeps' token files were written by different tokenizers (SHA-256 1111111111111111 for A, "
    assert said + "2222222222222222 for B)" in out
    assert compare(inputs(a), inputs(a), n_boot=0)["tokenizer"]["same"] is True
    unknown = compare(inputs(a), inputs(b.assign(tokenizer_sha256=None)), n_boot=0)  # one side recorded none
    assert unknown["tokenizer"]["same"] is None
    _print_comparison(unknown | {"a": "A", "b": "B"})
    assert "tokenizer:" not in capsys.readouterr().out
