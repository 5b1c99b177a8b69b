"""Data: the offline corpus, token files through a memmap, deterministic batches, fingerprints, epoch warnings."""

import numpy as np
import pytest

from sweep.config import DataConfig
from sweep.training.data import TokenStream, epochs_for, load_corpus, validation_batches


def write_tokens(path, n, dtype="uint16", vocab=500, seed=0):
    np.random.default_rng(seed).integers(0, vocab, n).astype(dtype).tofile(path)
    return path


def test_stdlib_corpus_is_large_real_text_and_stable():
    corpus = load_corpus(DataConfig())
    assert corpus.vocab_size == 256
    assert len(corpus.train) + len(corpus.val) >= 20_000_000
    assert len(corpus.val) > 100_000
    assert b"def " in bytes(corpus.train[:200_000])
    assert load_corpus(DataConfig()).fingerprint == corpus.fingerprint


def test_token_file_split_and_fingerprint(tmp_path):
    path = write_tokens(tmp_path / "train.bin", 10_000)
    corpus = load_corpus(DataConfig(source="tokens", path=str(path), vocab_size=500, val_fraction=0.1))
    assert len(corpus.train) == 9_000 and len(corpus.val) == 1_000
    assert corpus.train.dtype == np.uint16 and int(corpus.train.max()) < 500
    write_tokens(path, 10_000, seed=1)
    assert load_corpus(DataConfig(source="tokens", path=str(path), vocab_size=500)).fingerprint != corpus.fingerprint


def test_separate_validation_file(tmp_path):
    train = write_tokens(tmp_path / "train.bin", 5_000, dtype="uint32")
    val = write_tokens(tmp_path / "val.bin", 700, dtype="uint32", seed=2)
    config = DataConfig(source="tokens", path=str(train), val_path=str(val), dtype="uint32", vocab_size=500)
    corpus = load_corpus(config)
    assert len(corpus.train) == 5_000 and len(corpus.val) == 700


def test_batches_are_deterministic_shifted_targets():
    tokens = np.arange(10_000, dtype=np.uint16)
    stream = TokenStream(tokens, batch_size=4, seq_len=16, seed=0)
    inputs, targets = stream.batch(3)
    assert inputs.shape == targets.shape == (4, 16)
    assert (targets[:, :-1] == inputs[:, 1:]).all()
    assert (inputs == TokenStream(tokens, 4, 16, seed=0).batch(3)[0]).all()
    assert not (inputs == TokenStream(tokens, 4, 16, seed=1).batch(3)[0]).all()
    # Consecutive steps continue each row's text: no token of an epoch is read twice.
    assert (stream.batch(4)[0][:, 0] == inputs[:, -1] + 1).all()


def test_epoch_count_and_warning(tmp_path, capsys):
    from sweep.config import parse_config
    from sweep.execute.orchestrate import prepare_plan
    from tests.conftest import tiny_config

    path = write_tokens(tmp_path / "t.bin", 1_000)
    corpus = load_corpus(DataConfig(source="tokens", path=str(path), vocab_size=500, val_fraction=0.1))
    assert epochs_for(corpus, 1_800) == pytest.approx(2.0)
    big = write_tokens(tmp_path / "big.bin", 40_000)
    prepare_plan(parse_config(tiny_config(data={"source": "tokens", "path": str(big), "vocab_size": 500})))
    assert "repeats data" in capsys.readouterr().err


def test_validation_batches_cover_requested_tokens():
    batches = validation_batches(np.arange(5_000, dtype=np.uint16), eval_tokens=1_024, batch_size=8, seq_len=32)
    assert sum(b[0].shape[0] for b in batches) * 32 == 1_024
