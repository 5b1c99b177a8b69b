"""Data: the offline corpus, token files through a memmap, i.i.d. batches addressed by (seed, step), fingerprints,
epoch counts and warnings."""

import numpy as np
import pytest
import torch
from scipy import stats

from sweep.config import DataConfig
from sweep.training.data import TokenStream, WindowPermutation, epochs_for, load_corpus, validation_batches


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


def epoch_windows(stream, epoch):
    """The windows read by sequences ``epoch * S`` to ``(epoch + 1) * S - 1``, in order, through ``window_ids``."""
    first, last = epoch * stream.windows, (epoch + 1) * stream.windows - 1
    per_step = [stream.window_ids(step) for step in range(first // stream.batch_size, last // stream.batch_size + 1)]
    return np.concatenate(per_step)[first % stream.batch_size :][: stream.windows]


def test_batches_are_a_function_of_seed_and_step():
    tokens = np.arange(20_000, dtype=np.uint16)
    stream, other = TokenStream(tokens, 6, 16, seed=3), TokenStream(tokens, 6, 16, seed=3)
    for step in (7, 0, 1_000, 5, 7):  # any order, as after a resume: the same batches
        inputs, targets = stream.batch(step)
        assert inputs.dtype == targets.dtype == torch.int64 and inputs.shape == targets.shape == (6, 16)
        assert torch.equal(inputs, other.batch(step)[0]) and torch.equal(targets, other.batch(step)[1])
    steps_per_epoch = stream.windows // 6 + 1
    for step in (0, 3, steps_per_epoch - 1):  # the last also straddles the epoch boundary
        inputs, targets = stream.batch(step)
        for start, stop in ((0, 6), (0, 1), (2, 5), (5, 6), (3, 3)):
            part = TokenStream(tokens, 6, 16, seed=3).rows(step, start, stop)  # a fresh stream, as on another worker
            assert torch.equal(part[0], inputs[start:stop]) and torch.equal(part[1], targets[start:stop])
    with pytest.raises(ValueError, match="outside a batch"):
        stream.rows(0, 4, 7)


def test_targets_are_inputs_shifted_and_windows_are_aligned():
    tokens = np.arange(10_000, dtype=np.uint16)
    stream = TokenStream(tokens, batch_size=4, seq_len=16, seed=0)
    assert stream.windows == 9_999 // 16
    for step in (0, 1, 300):
        inputs, targets = stream.batch(step)
        assert torch.equal(targets, inputs + 1)  # tokens are their own positions: targets are the next tokens
        assert (inputs[:, 0] % 16 == 0).all()
        assert torch.equal(inputs[:, 0] // 16, torch.from_numpy(stream.window_ids(step)))


def test_memmapped_token_file_reads_the_right_windows(tmp_path):
    path = tmp_path / "t.bin"
    data = np.random.default_rng(0).integers(0, 60_000, 5_000).astype(np.uint16)
    data.tofile(path)
    stream = TokenStream(np.memmap(path, dtype=np.uint16, mode="r"), batch_size=8, seq_len=32, seed=1)
    inputs, targets = stream.batch(2)
    for row, window in enumerate(stream.window_ids(2)):
        assert inputs[row].tolist() == data[window * 32 : window * 32 + 32].tolist()
        assert targets[row].tolist() == data[window * 32 + 1 : window * 32 + 33].tolist()


def test_different_seeds_read_different_windows():
    tokens = np.zeros(1_000_001, dtype=np.uint16)
    streams = [TokenStream(tokens, 4, 16, seed) for seed in range(4)]  # seeds 0..B-1 used to rotate the same lanes
    seen = [set(np.concatenate([s.window_ids(step) for step in range(50)]).tolist()) for s in streams]
    assert all(len(windows) == 200 for windows in seen)
    for i in range(4):
        for j in range(i + 1, 4):
            assert len(seen[i] & seen[j]) <= 5  # 200 random windows of 62,500 share 0.6 on average


@pytest.mark.parametrize(
    "n_tokens, batch_size, seq_len",
    [
        (161, 4, 8),  # S = 20, divisible by the batch; old lanes of 40 = 5 * seq_len: step 4 re-read step 0
        (1 + 23 * 8, 4, 8),  # S = 23, not divisible: batches straddle epochs
        (1 + 3 * 5 + 2, 4, 5),  # S = 3, smaller than a batch
        (1 + 1 * 5, 3, 5),  # S = 1
        (1 + 1_009 * 7, 16, 7),  # S = 1,009 (prime)
    ],
)
def test_every_window_is_read_once_per_epoch(n_tokens, batch_size, seq_len):
    tokens = np.arange(n_tokens, dtype=np.uint16)
    stream = TokenStream(tokens, batch_size, seq_len, seed=5)
    windows = (n_tokens - 1) // seq_len
    assert stream.windows == windows
    orders = [epoch_windows(stream, epoch) for epoch in range(3)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(windows))
    if windows >= 20:
        assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    # The same, read through the tokens of the batches rather than the window ids.
    steps = -(-windows // batch_size)
    firsts = torch.cat([stream.batch(step)[0][:, 0] for step in range(steps)])[:windows]
    assert sorted((firsts // seq_len).tolist()) == list(range(windows))


def test_the_last_step_of_an_epoch_does_not_reread_the_first():
    tokens = np.arange(1 + 4 * 8 * 5, dtype=np.uint16)  # lanes of 40 tokens = 5 sequences: the old order's bad case
    stream = TokenStream(tokens, 4, 8, seed=0)
    first = set(stream.window_ids(0).tolist())
    assert all(not first & set(stream.window_ids(step).tolist()) for step in range(1, 5))


def test_epochs_are_counted_exactly_in_sequences(tmp_path):
    stream = TokenStream(np.arange(1 + 10 * 4, dtype=np.uint16), batch_size=4, seq_len=4, seed=2)  # S = 10
    assert stream.windows == 10 and stream.steps_per_epoch == 2.5
    assert [stream.epoch_of(step) for step in range(6)] == [0, 0, 0, 1, 1, 2]
    assert stream.epochs_done(5) == 2.0 and stream.epochs_done(3) == 1.2
    # Step 2 holds sequences 8-11: rows 0-1 finish epoch 0, rows 2-3 start epoch 1.
    epoch0 = np.concatenate([stream.window_ids(0), stream.window_ids(1), stream.window_ids(2, 0, 2)])
    epoch1 = np.concatenate([stream.window_ids(2, 2, 4), stream.window_ids(3), stream.window_ids(4)])
    assert sorted(epoch0.tolist()) == sorted(epoch1.tolist()) == list(range(10))
    # epochs_for agrees with the stream it describes.
    path = write_tokens(tmp_path / "t.bin", 1_000)
    corpus = load_corpus(DataConfig(source="tokens", path=str(path), vocab_size=500, val_fraction=0.1))
    corpus_stream = TokenStream(corpus.train, 8, 16, seed=0)
    assert epochs_for(corpus, 7 * 8 * 16, 16) == pytest.approx(corpus_stream.epochs_done(7))


def test_consecutive_steps_are_not_contiguous_text():
    tokens = np.arange(2_000_001, dtype=np.uint32)
    stream = TokenStream(tokens, 16, 64, seed=0)
    continued = 0
    for step in range(200):
        ends = set((stream.batch(step)[0][:, -1] + 1).tolist())
        continued += sum(start in ends for start in stream.batch(step + 1)[0][:, 0].tolist())
    # The old lanes continued every row: 3,200. By chance, a row starts where one of 16 rows ended: 1.6 on average.
    assert continued <= 10
    adjacent = np.abs(np.diff(np.concatenate([stream.window_ids(step) for step in range(200)]))) == 1
    assert adjacent.sum() <= 3  # neighbours within and across batches: 3,199 pairs, 0.2 expected by chance


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 1_000, 1_009, 1_024, 65_537])
def test_permutation_is_a_bijection(n):
    for key in ((0, 0), (1, 0), (0, 1), (-3, 12)):
        out = WindowPermutation(n, key)(np.arange(n))
        assert out.dtype == np.int64 and sorted(out.tolist()) == list(range(n))
    assert WindowPermutation(n, (1, 2))(np.arange(n)[::-1]).tolist() == WindowPermutation(n, (1, 2))(np.arange(n)).tolist()[::-1]


def test_permutations_differ_across_seeds_and_epochs_and_look_random():
    n = (1 << 16) + 1
    base = WindowPermutation(n, (0, 0))(np.arange(n))
    for key in ((1, 0), (0, 1), (2, 5)):
        other = WindowPermutation(n, key)(np.arange(n))
        assert np.mean(base == other) < 0.001
        assert abs(stats.spearmanr(base, other).statistic) < 0.02
    for key in ((0, 0), (1, 0), (7, 3)):
        out = WindowPermutation(n, key)(np.arange(n))
        assert abs(stats.spearmanr(np.arange(n), out).statistic) < 0.02
        # Consecutive positions land in independent sixteenths of the range (a failing round function did not).
        pairs = np.bincount(out[:-1] * 16 // n * 16 + out[1:] * 16 // n, minlength=256).reshape(16, 16)
        assert stats.chi2_contingency(pairs).pvalue > 1e-4


def test_huge_corpora_need_no_memory_per_window():
    tokens = np.broadcast_to(np.uint16(7), (10**13,))  # 10^13 tokens that occupy two bytes
    stream = TokenStream(tokens, 512, 2_048, seed=11)
    assert stream.windows == (10**13 - 1) // 2_048
    ids = stream.window_ids(10**9)
    assert len(set(ids.tolist())) == 512 and ids.min() >= 0 and ids.max() < stream.windows
    inputs, targets = stream.batch(10**9)
    assert inputs.shape == (512, 2_048) and (inputs == 7).all() and (targets == 7).all()


def test_a_corpus_shorter_than_one_sequence_is_refused():
    with pytest.raises(ValueError, match="too small"):
        TokenStream(np.arange(16, dtype=np.uint16), 4, 16, seed=0)


def test_epoch_count_and_warning(tmp_path, capsys):
    from sweep.config import parse_config
    from sweep.execute.orchestrate import prepare_plan
    from tests.conftest import tiny_config

    path = write_tokens(tmp_path / "t.bin", 1_000)
    corpus = load_corpus(DataConfig(source="tokens", path=str(path), vocab_size=500, val_fraction=0.1))
    assert epochs_for(corpus, 2 * 899, 29) == pytest.approx(2.0)  # 899 = 31 windows of 29 tokens (+ 1 target)
    assert epochs_for(corpus, 1_800, 16) == pytest.approx(1_800 / (56 * 16))  # 56 windows; 3 tokens never read
    big = write_tokens(tmp_path / "big.bin", 40_000)
    prepare_plan(parse_config(tiny_config(data={"source": "tokens", "path": str(big), "vocab_size": 500})))
    assert "repeats data" in capsys.readouterr().err


def test_validation_batches_cover_requested_tokens():
    batches = validation_batches(np.arange(5_000, dtype=np.uint16), eval_tokens=1_024, batch_size=8, seq_len=32)
    assert sum(b[0].shape[0] for b in batches) * 32 == 1_024


def test_window_ids_follow_the_permutation_across_blocks_and_epochs():
    stream = TokenStream(np.zeros(1 + 40_000 * 2, dtype=np.uint8), batch_size=7, seq_len=2, seed=4)  # S = 40,000
    for step in (0, 2_340, 4_681, 5_714, 5_715, 11_428):  # straddling 2^14, 2 * 2^14, the end of epochs 0 and 1
        sequence = step * 7 + np.arange(7)
        expected = [WindowPermutation(40_000, (4, int(g) // 40_000))(np.array([g % 40_000]))[0] for g in sequence]
        assert stream.window_ids(step).tolist() == expected
