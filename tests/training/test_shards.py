"""Sharded token datasets: raw, llm.c and .npy files named by a file, a directory or a glob; windows that never
straddle files, drawn in proportion to each file's length, a pure function of (seed, step); one line per bad file."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import yaml

from sweep.cli import main
from sweep.config import ConfigError, DataConfig
from sweep.training import shards as shards_module
from sweep.training.data import TokenStream, epochs_for, load_corpus, validation_batches
from sweep.training.shards import TokenShards, detect, resolve
from tests.conftest import tiny_config
from tests.training.test_token_files import refused_plan

VOCAB = 50_304


def ids(n: int, seed: int = 0, vocab: int = VOCAB) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, n).astype(np.uint16)


def write_raw(path, tokens, dtype="uint16"):
    np.asarray(tokens).astype(dtype).tofile(path)
    return path


def write_llmc(path, tokens, magic=20240520, version=1, count=None, dtype="<u2"):
    header = np.zeros(256, dtype="<i4")
    header[:3] = magic, version, len(tokens) if count is None else count
    path.write_bytes(header.tobytes() + np.asarray(tokens).astype(dtype).tobytes())
    return path


def write_npy(path, tokens):
    np.save(path, np.asarray(tokens))
    return path


def data(path, **more) -> DataConfig:
    return DataConfig(source="tokens", path=str(path), vocab_size=VOCAB, **more)


@pytest.mark.parametrize(
    ("name", "write", "fmt"),
    [("a.bin", write_raw, "raw"), ("b.bin", write_llmc, "llm.c"), ("c.npy", write_npy, "npy"),
     ("d.bin", lambda p, t: write_llmc(p, t, 20240801, 7, dtype="<u4"), "llm.c"),
     ("e.npy", lambda p, t: write_npy(p, t.astype(">i4")), "npy")],
)  # fmt: skip
def test_each_format_is_detected_by_its_bytes_and_read_whole(tmp_path, name, write, fmt):
    tokens = ids(5_000)
    shard = detect(write(tmp_path / name, tokens), "uint16", "data.path")
    assert shard.format == fmt and shard.tokens == 5_000
    assert np.array_equal(shard.open(), tokens)
    corpus = load_corpus(data(tmp_path / name, val_fraction=0.1))
    assert np.array_equal(np.concatenate([corpus.train, corpus.val]), tokens) and len(corpus.val) == 500
    assert corpus.fingerprint == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()[:16]


def mixed_directory(tmp_path):
    """Three shards of three formats, written out of name order, beside a hidden file, a manifest and a
    subdirectory, which a directory does not read."""
    folder = tmp_path / "shards"
    folder.mkdir()
    write_raw(folder / "part-2.bin", ids(3_000, seed=2))
    write_npy(folder / "part-0.npy", ids(4_000, seed=0))
    write_llmc(folder / "part-1.bin", ids(2_000, seed=1))
    (folder / ".part-3.npy.tmp").write_bytes(b"half a shard")
    (folder / "manifest.json").write_text('{"files": []}\n')  # 14 bytes: whole uint16 "ids" below the vocabulary
    (folder / "sub").mkdir()
    return folder


def test_a_directory_and_a_glob_read_the_same_shards_in_name_order(tmp_path):
    folder = mixed_directory(tmp_path)
    assert [p.name for p in resolve(str(folder), "data.path")] == ["part-0.npy", "part-1.bin", "part-2.bin"]
    assert resolve(str(folder / "part-*"), "data.path") == resolve(str(folder), "data.path")
    by_folder, by_glob = load_corpus(data(folder)), load_corpus(data(folder / "part-*"))
    assert by_folder.fingerprint == by_glob.fingerprint
    assert "3 token files (llm.c, npy, raw)" in by_folder.description
    everything = np.concatenate([ids(4_000, seed=0), ids(2_000, seed=1), ids(3_000, seed=2)])
    joined = TokenShards.of(by_folder.train), TokenShards.of(by_folder.val)
    assert np.array_equal(np.concatenate([part.piece(k) for part in joined for k in range(len(part.pieces))]), everything)


def test_a_single_raw_file_gives_the_batches_and_fingerprint_it_always_did(tmp_path):
    path = write_raw(tmp_path / "train.bin", ids(20_001))
    corpus = load_corpus(data(path, val_fraction=0.05))
    assert isinstance(corpus.train, np.memmap) and corpus.description == "token file train.bin"
    assert corpus.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    flat = np.fromfile(path, dtype=np.uint16)
    split = len(flat) - int(len(flat) * 0.05)
    stream, reference = TokenStream(corpus.train, 6, 32, seed=3), TokenStream(flat[:split], 6, 32, seed=3)
    for step in (0, 1, 97, 98, 500):  # an epoch is 593 windows, 98.8 steps
        inputs, targets = stream.batch(step)
        windows = np.stack([flat[w * 32 : w * 32 + 33] for w in reference.window_ids(step)]).astype(np.int64)
        assert np.array_equal(inputs.numpy(), windows[:, :-1]) and np.array_equal(targets.numpy(), windows[:, 1:])
    block = flat[split:][: 10 * 32 + 1].astype(np.int64)  # validation: the first eval_tokens + 1 ids, as before
    (inputs, targets), *_ = validation_batches(corpus.val, 320, 10, 32)
    assert np.array_equal(inputs.numpy(), block[:-1].reshape(10, 32)) and np.array_equal(targets.numpy(), block[1:].reshape(10, 32))


SEQ = 8
LENGTHS = [1 + 7 * SEQ, 1 + 3 * SEQ + 5, 2 * SEQ, SEQ]
"""Shards of 7, 3, 1 and 0 windows of SEQ + 1 tokens: a tail of 5 never read, a shard too short for one window."""


def numbered_shards(tmp_path) -> TokenShards:
    """``LENGTHS`` as raw shards whose ids are their positions in the concatenation (so a row says where it is)."""
    position, files = 0, []
    for k, n in enumerate(LENGTHS):
        files.append(detect(write_raw(tmp_path / f"s{k}.bin", np.arange(position, position + n)), "uint16", "data.path"))
        position += n
    return TokenShards.of_files(files)


def test_windows_never_straddle_shards_and_each_is_read_once_per_epoch(tmp_path):
    shards = numbered_shards(tmp_path)
    stream = TokenStream(shards, batch_size=3, seq_len=SEQ, seed=1)
    assert stream.windows == 11 and list(shards.window_starts(SEQ)) == [0, 7, 10, 11, 11]
    starts = np.cumsum([0] + LENGTHS)
    expected = {tuple(range(s + w * SEQ, s + w * SEQ + SEQ + 1)) for s, n in zip(starts, LENGTHS) for w in range((n - 1) // SEQ)}
    for epoch in range(3):
        rows = []
        for step in range(epoch * 11 // 3, (epoch + 1) * 11 // 3 + 1):
            inputs, targets = stream.batch(step)
            assert np.array_equal(inputs[:, 1:].numpy(), targets[:, :-1].numpy())
            rows += [tuple(i) + (int(t[-1]),) for i, t in zip(inputs.tolist(), targets.tolist())]
        first = epoch * 11 - epoch * 11 // 3 * 3  # the epoch's first sequence within its first step
        assert set(rows[first : first + 11]) == expected and len(set(rows[first : first + 11])) == 11


def test_shards_are_sampled_in_proportion_to_their_length(tmp_path):
    files = []
    for k, windows in enumerate([1_000, 3_000, 6_000]):  # shard k holds only id k
        files.append(detect(write_raw(tmp_path / f"s{k}.bin", np.full(1 + windows * 4, k)), "uint16", "data.path"))
    stream = TokenStream(TokenShards.of_files(files), batch_size=50, seq_len=4, seed=0)
    drawn = np.concatenate([stream.batch(step)[0][:, 0].numpy() for step in range(40)])  # 2,000 of 10,000 windows
    counts, share = np.bincount(drawn, minlength=3), np.array([0.1, 0.3, 0.6])
    spread = np.sqrt(2_000 * share * (1 - share) * (10_000 - 2_000) / (10_000 - 1))  # without replacement
    assert np.all(np.abs(counts - 2_000 * share) < 5 * spread), counts


def test_batches_are_a_pure_function_of_seed_and_step_and_resume_exactly(tmp_path):
    folder = mixed_directory(tmp_path)
    first, second = load_corpus(data(folder)), load_corpus(data(folder / "part-*"))
    straight = TokenStream(first.train, 4, 16, seed=7)
    uninterrupted = [straight.batch(step) for step in range(300)]  # 554 windows: 1,200 sequences are 2.2 epochs
    resumed = TokenStream(second.train, 4, 16, seed=7)  # a fresh process resuming at step 150
    for step in range(150, 300):
        assert all(a.equal(b) for a, b in zip(resumed.batch(step), uninterrupted[step]))
    other = TokenStream(first.train, 4, 16, seed=8)
    assert not all(other.batch(step)[0].equal(uninterrupted[step][0]) for step in range(5))
    assert epochs_for(first, 300 * 4 * 16, 16) == pytest.approx(straight.epochs_done(300))


def test_rows_read_ahead_are_the_rows_of_their_step_for_every_share_of_a_batch(tmp_path):
    """``TokenStream.rows`` reads ``READ_AHEAD`` steps in one gather per row range (a DDP rank's share, a
    micro-batch): interleaved shares, steps across block boundaries and a restart mid-block read exactly the
    windows of their step, in the files' ids widened to int64."""
    from sweep.training.data import READ_AHEAD

    corpus = load_corpus(data(mixed_directory(tmp_path)))
    stream, fresh = TokenStream(corpus.train, 6, 16, seed=3), TokenStream(corpus.train, 6, 16, seed=3)
    shards = TokenShards.of(corpus.train)
    for step in [0, 1, READ_AHEAD - 1, READ_AHEAD, 3 * READ_AHEAD + 5, 2]:
        for start, stop in [(0, 2), (2, 6), (0, 6)]:
            inputs, targets = stream.rows(step, start, stop)
            direct = shards.read_windows(stream.window_ids(step, start, stop), 16)
            assert inputs.dtype == torch.int64 and np.array_equal(inputs.numpy(), direct[:, :-1])
            assert np.array_equal(targets.numpy(), direct[:, 1:])
    assert fresh.rows(READ_AHEAD + 3, 2, 6)[0].equal(stream.rows(READ_AHEAD + 3, 2, 6)[0])


def test_without_val_path_the_tail_of_the_last_shards_is_held_out(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    tokens = [ids(1_000, seed=0), ids(300, seed=1), ids(200, seed=2)]
    for k, part in enumerate(tokens):
        write_npy(folder / f"p{k}.npy", part)
    corpus = load_corpus(data(folder, val_fraction=0.2))  # 300 of 1,500: shard 2 and the last 100 of shard 1
    assert len(corpus.train) == 1_200 and len(corpus.val) == 300
    assert [(stop - start) for _, start, stop in corpus.val.pieces] == [100, 200]
    assert np.array_equal(np.concatenate([corpus.val.piece(0), corpus.val.piece(1)]), np.concatenate([tokens[1][200:], tokens[2]]))
    (inputs, _), *rest = validation_batches(corpus.val, 10 * 60, 8, 60)  # windows never straddle: 1 + 3 of 60 + 1
    assert not rest and inputs.shape == (4, 60)
    assert np.array_equal(inputs[0].numpy(), tokens[1][200:260]) and np.array_equal(inputs[3].numpy(), tokens[2][120:180])
    val = tmp_path / "val"
    val.mkdir()
    write_llmc(val / "v0.bin", ids(400, seed=5))
    write_llmc(val / "v1.bin", ids(100, seed=6))
    separate = load_corpus(data(folder, val_path=str(val / "v*.bin")))
    assert len(separate.train) == 1_500 and len(separate.val) == 500


def test_the_fingerprint_covers_every_shard_their_order_and_their_boundaries(tmp_path):
    tokens = ids(6_000)
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, cut in ((one, 2_000), (two, 3_000)):  # the same bytes, cut in two places
        folder.mkdir()
        write_raw(folder / "a.bin", tokens[:cut])
        write_raw(folder / "b.bin", tokens[cut:])
    base = load_corpus(data(one)).fingerprint
    assert load_corpus(data(two)).fingerprint != base
    (one / "b.bin").rename(one / "0.bin")  # the same files in another order
    assert load_corpus(data(one)).fingerprint != base
    (one / "0.bin").rename(one / "b.bin")
    assert load_corpus(data(one)).fingerprint == base
    write_raw(one / "b.bin", np.concatenate([tokens[2_000:-1], [7]]))
    assert load_corpus(data(one)).fingerprint != base


def test_ids_are_checked_in_every_shard_naming_the_file(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    write_llmc(folder / "a.bin", ids(1_000))
    write_npy(folder / "c.npy", np.concatenate([ids(1_000), [VOCAB + 3]]).astype(np.int32))
    with pytest.raises(ConfigError, match=r"data.vocab_size: the token files hold id 50,307.*c\.npy"):
        load_corpus(data(folder))
    write_npy(folder / "c.npy", np.concatenate([ids(1_000), [-2]]).astype(np.int32))
    with pytest.raises(ConfigError, match=r"data.path: .*c\.npy holds id -2"):
        load_corpus(data(folder))


def test_many_shards_keep_few_files_open(tmp_path, monkeypatch):
    monkeypatch.setattr(shards_module, "_OPEN_GRIDS", 16)
    files = [detect(write_raw(tmp_path / f"s{k:03d}.bin", np.full(1 + 4 * 3, k)), "uint16", "k") for k in range(200)]
    stream = TokenStream(TokenShards.of_files(files), batch_size=100, seq_len=4, seed=0)  # 600 windows
    seen = np.concatenate([stream.batch(step)[0][:, 0].numpy() for step in range(6)])
    assert np.array_equal(np.bincount(seen), np.full(200, 3))
    assert len(stream._shards._grids) == 16


def bad_case(tmp_path, how: str) -> tuple[dict, str, str]:
    """(data section, key the line must name, file or text it must name) for one bad shard in a good directory."""
    folder = tmp_path / "parts"
    folder.mkdir()
    write_llmc(folder / "a.bin", ids(100_000))
    bad = folder / "b.bin"
    section = {"source": "tokens", "path": str(folder), "vocab_size": VOCAB}
    if how == "a .npy of floats":
        write_npy(bad := folder / "b.npy", np.zeros(1_000, dtype=np.float32))
    elif how == "a 2-D .npy":
        write_npy(bad := folder / "b.npy", ids(1_000).reshape(10, 100))
    elif how == "a .npy of objects":
        np.save(bad := folder / "b.npy", np.array([1, "x"], dtype=object), allow_pickle=True)
    elif how == "a truncated .npy":
        write_npy(bad := folder / "b.npy", ids(1_000))
        bad.write_bytes(bad.read_bytes()[:-10])
    elif how == "a .npy header of garbage":
        (bad := folder / "b.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': <u2 ,}   \n" + bytes(100))
    elif how == "a raw file named .npy":
        write_raw(bad := folder / "b.npy", ids(1_000))
    elif how == "an llm.c version unknown":
        write_llmc(bad, ids(1_000), version=2)
    elif how == "an llm.c count over the file":
        write_llmc(bad, ids(1_000), count=1_001)
    elif how == "an llm.c header cut short":
        bad.write_bytes(np.array([20240520, 1, 5], dtype="<i4").tobytes())
    elif how == "a raw file cut mid-id":
        bad.write_bytes(ids(1_000).tobytes()[:-1])
    elif how == "an empty file":
        bad.write_bytes(b"")
    elif how == "a validation shard also in training":
        write_raw(bad, ids(1_000))
        return {**section, "val_path": str(folder / "b.*")}, "data.val_path", "b.bin"
    elif how == "a glob matching nothing":
        return {**section, "path": str(folder / "x-*.bin")}, "data.path", "x-*.bin"
    elif how == "an empty directory":
        (tmp_path / "none").mkdir()
        return {**section, "val_path": str(tmp_path / "none")}, "data.val_path", "none"
    else:
        raise AssertionError(how)
    return section, "data.path", bad.name


BAD = ["a .npy of floats", "a 2-D .npy", "a .npy of objects", "a truncated .npy", "a .npy header of garbage",
       "a raw file named .npy", "an llm.c version unknown", "an llm.c count over the file", "an llm.c header cut short",
       "a raw file cut mid-id", "an empty file", "a validation shard also in training", "a glob matching nothing",
       "an empty directory"]  # fmt: skip
FORMAT_REFUSALS = BAD[:10]
"""The cases where the file is none of the formats: the line lists those read."""


@pytest.mark.parametrize("how", BAD)
def test_a_bad_shard_is_one_line_naming_it_and_exit_2(tmp_path, capsys, how):
    section, key, name = bad_case(tmp_path, how)
    err = refused_plan(tmp_path, capsys, section, key, name)
    assert ("formats read: raw token files" in err) == (how in FORMAT_REFUSALS), err


def test_sweep_plan_reads_a_directory_of_llmc_shards(tmp_path, capsys):
    folder = tmp_path / "fineweb"
    folder.mkdir()
    for k in range(3):
        write_llmc(folder / f"fineweb_train_{k:06d}.bin", ids(250_000, seed=k))
    config = tmp_path / "sweep.yaml"
    section = {"source": "tokens", "path": str(folder), "vocab_size": VOCAB}
    config.write_text(yaml.safe_dump(tiny_config(budgets=[2e11, 4e11], model={"sizes": [1.2e6, 2e6]}, data=section)))
    assert main(["plan", str(config)]) == 0
    assert "4 runs" in capsys.readouterr().out


def test_a_run_on_llmc_shards_killed_and_resumed_trains_the_curve_of_one_never_stopped(tmp_path, monkeypatch):
    from sweep.config import parse_config
    from sweep.planning.plan import plan_sweep
    from sweep.results.storage import ResultsStore
    from sweep.training.checkpoint import CheckpointStore
    from sweep.training.train import train_run
    from tests.training.test_resume import Interrupted, curve, stop_after

    folder = tmp_path / "llmc"
    folder.mkdir()
    for k, n in enumerate([30_000, 12_000, 20_000]):
        write_llmc(folder / f"train_{k:06d}.bin", ids(n, seed=k, vocab=500))
    section = {"source": "tokens", "path": str(folder), "vocab_size": 500}
    config = parse_config(tiny_config(budgets=[2e9], model={"sizes": [3e3]}, training={"checkpoint_every_steps": 5}, data=section))
    corpus = load_corpus(config.data)
    (spec,) = plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs
    assert spec.steps > 12
    reference = train_run(spec)
    checkpoints = CheckpointStore(ResultsStore(tmp_path / "results"))
    with monkeypatch.context() as patch:
        stop_after(patch, 12)
        with pytest.raises(Interrupted):
            train_run(spec, checkpoints)
    assert checkpoints.latest(spec.sweep, spec.run_id)["step"] == 10
    assert curve(train_run(spec, checkpoints).metrics) == curve(reference.metrics)


@pytest.mark.slow
def test_a_sweep_trains_on_embedded_ray_from_npy_shards(ray_session, tmp_path):
    from sweep.config import parse_config
    from sweep.execute.orchestrate import run_sweep
    from sweep.results.storage import ResultsStore

    folder = tmp_path / "olmo"
    folder.mkdir()
    for k, n in enumerate([60_000, 25_000, 40_000]):
        write_npy(folder / f"part-{k:05d}.npy", ids(n, seed=k, vocab=500).astype(np.uint32))
    section = {"source": "tokens", "path": str(folder), "vocab_size": 500}
    config = parse_config(tiny_config(name="shards", budgets=[2e9], model={"sizes": [3e3]}, data=section))
    outcome = run_sweep(config, str(tmp_path / "results"))
    assert outcome.statuses == {"completed": 1}
    runs = ResultsStore(tmp_path / "results").read_runs("shards")
    assert list(runs["data_fingerprint"]) == [load_corpus(config.data).fingerprint]
    assert runs["final_eval_loss"].notna().all()


def test_a_directory_holding_validation_files_needs_val_path(tmp_path):
    """A prepared directory (train-*.npy beside val-*.npy) or a nanoGPT one (train.bin beside val.bin) named as
    data.path alone would train on its validation files: refused, naming the file and what to give."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("train-000000-000.npy", "val-000000-000.npy"):
        np.save(folder / name, np.arange(5000, dtype=np.uint16) % 300)
    with pytest.raises(ConfigError, match="holds val-000000-000.npy, a validation file by its name"):
        load_corpus(DataConfig(source="tokens", path=str(folder), vocab_size=300))
    corpus = load_corpus(DataConfig(source="tokens", path=str(folder / "train-*.npy"), val_path=str(folder / "val-*.npy"), vocab_size=300))
    assert len(corpus.val) == 5000


def test_a_second_scan_reads_no_token_and_a_changed_file_is_read_again(tmp_path, monkeypatch):
    """Each file's hash and id range are cached by its path, size and modification time: a second plan or run start
    on the machine reads nothing, a rewritten file alone is read again, a damaged cache entry is ignored."""
    from sweep.training import provenance

    monkeypatch.setenv("SWEEP_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "parts"
    folder.mkdir()
    for k in range(3):
        np.save(folder / f"train-{k}.npy", (np.arange(4000) * (k + 1) % 300).astype(np.uint16))
    passes = []
    real = provenance.read_ids
    monkeypatch.setattr(provenance, "read_ids", lambda shard, h: passes.append(shard.path.name) or real(shard, h))
    config = DataConfig(source="tokens", path=str(folder / "train-*.npy"), vocab_size=300)
    first = load_corpus(config)
    assert load_corpus(config).fingerprint == first.fingerprint and len(passes) == 3
    np.save(folder / "train-1.npy", (np.arange(4000) * 7 % 300).astype(np.uint16))
    assert load_corpus(config).fingerprint != first.fingerprint and passes[3:] == ["train-1.npy"]
    for entry in (tmp_path / "cache" / "digests").iterdir():
        entry.write_text("{not json")
    load_corpus(config)
    assert len(passes) == 7


def test_a_large_vocabulary_needs_no_dtype_for_files_that_carry_their_own(tmp_path):
    """A Llama-3 vocabulary (128,256 ids) in uint32 .npy shards: data.dtype, which only raw files use, may stay at
    its default uint16; a raw file of uint16 ids under that vocabulary is refused naming data.dtype."""
    folder = tmp_path / "llama"
    folder.mkdir()
    np.save(folder / "train-000.npy", np.arange(128_000, 128_256 + 0, dtype=np.uint32).repeat(40))
    corpus = load_corpus(DataConfig(source="tokens", path=str(folder), vocab_size=128_256))
    assert corpus.vocab_size == 128_256 and len(corpus.train) + len(corpus.val) == 256 * 40
    write_raw(tmp_path / "raw.bin", np.arange(2_000) % 500)
    with pytest.raises(ConfigError, match=r"data.dtype: raw token files of uint16 hold ids below 65,536"):
        load_corpus(DataConfig(source="tokens", path=str(tmp_path / "raw.bin"), vocab_size=128_256))
