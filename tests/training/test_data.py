"""Data: the offline corpus, token files through a memmap, deterministic batches, fingerprints, epoch warnings."""

import numpy as np
import pytest

from sweep.config import DataConfig
import torch

from sweep.training.data import FeistelPermutation, TokenStream, epochs_for, load_corpus, validation_batches


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


def window_numbers(inputs, seq_len):
    """For a stream over np.arange tokens, a row's first token is its window number times seq_len."""
    return (inputs[:, 0] // seq_len).tolist()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 64, 1000, 1009, 4096, 100_003])
def test_feistel_permutation_is_a_bijection(size):
    perm = FeistelPermutation(size, b"key")
    images = perm(np.arange(size))
    assert sorted(images.tolist()) == list(range(size))
    if size >= 64:
        assert (images != np.arange(size)).mean() > 0.9  # scrambled, not the identity
        assert not np.array_equal(images, FeistelPermutation(size, b"other")(np.arange(size)))


def test_batches_are_deterministic_shifted_targets_and_rows_read_a_share():
    tokens = np.arange(10_000, dtype=np.uint16)
    stream = TokenStream(tokens, batch_size=4, seq_len=16, seed=0)
    inputs, targets = stream.batch(3)
    assert inputs.shape == targets.shape == (4, 16) and inputs.dtype == torch.int64
    assert (targets[:, :-1] == inputs[:, 1:]).all() and (targets[:, -1] == inputs[:, -1] + 1).all()
    assert (inputs[:, 0] % 16 == 0).all()  # whole windows
    assert (inputs == TokenStream(tokens, 4, 16, seed=0).batch(3)[0]).all()  # a function of (seed, step) only
    share, share_targets = stream.rows(3, 1, 3)
    assert (share == inputs[1:3]).all() and (share_targets == targets[1:3]).all()


def test_consecutive_steps_are_not_each_others_continuation():
    tokens = np.arange(50_000, dtype=np.uint32)
    stream = TokenStream(tokens, batch_size=8, seq_len=16, seed=0)
    continued = sum(
        int(((stream.batch(step + 1)[0][:, 0] == stream.batch(step)[0][:, -1] + 1)).sum()) for step in range(50)
    )
    assert continued <= 2  # the old lanes continued every row (8 per step); random windows almost never do


def test_different_seeds_see_different_sequences():
    tokens = np.arange(200_000, dtype=np.uint32)
    first = TokenStream(tokens, batch_size=16, seq_len=16, seed=0)
    second = TokenStream(tokens, batch_size=16, seq_len=16, seed=1)
    seen = [set(), set()]
    for step in range(20):
        seen[0].update(window_numbers(first.batch(step)[0], 16))
        seen[1].update(window_numbers(second.batch(step)[0], 16))
    assert len(seen[0]) == len(seen[1]) == 320
    assert len(seen[0] & seen[1]) < 20  # 320 of 12,499 windows each: about 8 in common by chance


@pytest.mark.parametrize(
    ("n_tokens", "batch_size", "seq_len"),
    [
        (16 * 24 + 1, 4, 16),  # 24 windows, a multiple of the batch (the lanes re-read step 0 at the epoch's end)
        (16 * 23 + 1, 4, 16),  # 23 windows: steps straddle the epoch boundary
        (1_000, 3, 7),
    ],
)
def test_each_window_once_per_epoch_and_epochs_counted_exactly(n_tokens, batch_size, seq_len):
    tokens = np.arange(n_tokens, dtype=np.uint32)
    stream = TokenStream(tokens, batch_size, seq_len, seed=5)
    windows = stream.sequences_per_epoch
    assert windows == (n_tokens - 1) // seq_len
    steps = -(-3 * windows // batch_size)  # enough steps for three epochs
    read = [w for step in range(steps) for w in window_numbers(stream.batch(step)[0], seq_len)]
    for epoch in range(3):
        assert sorted(read[epoch * windows : (epoch + 1) * windows]) == list(range(windows))
    assert read[:windows] != read[windows : 2 * windows]  # each epoch in its own order
    boundary = -(-windows // batch_size)  # the first step with a row of epoch 1
    assert stream.epoch_of(boundary - 1) == 0 and stream.epochs_done(boundary - 1) < 1.0
    assert stream.epoch_of(boundary) == (boundary * batch_size) // windows
    assert stream.epochs_done(steps) == pytest.approx(steps * batch_size / windows)


def test_epoch_count_and_warning(tmp_path, capsys):
    from sweep.config import parse_config
    from sweep.execute.orchestrate import prepare_plan
    from tests.conftest import tiny_config

    path = write_tokens(tmp_path / "t.bin", 1_000)
    corpus = load_corpus(DataConfig(source="tokens", path=str(path), vocab_size=500, val_fraction=0.1))
    assert epochs_for(corpus, 1_800, seq_len=8) == pytest.approx(1_800 / (8 * 112))  # 112 windows of 8 in 900 tokens
    big = write_tokens(tmp_path / "big.bin", 40_000)
    prepare_plan(parse_config(tiny_config(data={"source": "tokens", "path": str(big), "vocab_size": 500})))
    assert "repeats data" in capsys.readouterr().err


def test_validation_batches_cover_requested_tokens():
    batches = validation_batches(np.arange(5_000, dtype=np.uint16), eval_tokens=1_024, batch_size=8, seq_len=32)
    assert sum(b[0].shape[0] for b in batches) * 32 == 1_024


def test_an_epoch_larger_than_one_permuted_block_still_reads_each_window_once():
    tokens = np.arange(70_001, dtype=np.uint32)  # 70,000 one-token windows: past the first block of 65,536
    stream = TokenStream(tokens, batch_size=1_000, seq_len=1, seed=3)
    read = np.concatenate([stream.batch(step)[0][:, 0].numpy() for step in range(70)])
    assert np.array_equal(np.sort(read), np.arange(70_000))
    assert np.array_equal(stream.rows(65, 500, 600)[0][:, 0].numpy(), read[65_500:65_600])  # straddles the block
