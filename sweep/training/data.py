"""Training data: the offline default corpus, user token files, the train/validation split and its fingerprint.

Default corpus (``source: stdlib``): the running interpreter's standard-library ``.py`` sources (tests included,
``site-packages`` excluded), read as bytes, vocab 256. It is real text present on every machine with nothing
downloaded, about 31 M tokens on CPython 3.11 (so the demo never repeats data). Files are ordered by a hash of
their relative path (a fixed shuffle, so the held-out tail is a random sample of modules, not the end of the
alphabet) and joined with a NUL byte. The built corpus is cached as one ``uint8`` file under ``$SWEEP_CACHE`` (default
``~/.cache/scaling-sweep``); its SHA-256 is the fingerprint (computed once per machine, ``provenance.scan``).
Different CPython releases ship different sources, so their fingerprints (and so run ids) differ, as they should.

User data (``source: tokens``): ``path`` and ``val_path`` each name a file, a directory or a glob of token files,
raw nanoGPT-style flat files (ids of ``data.dtype``), llm.c / modded-nanogpt shards or ``.npy`` arrays, told apart
per file and read through memmaps (``sweep.training.shards``). One file is read exactly as before. The validation
split is ``val_path``, or the last ``val_fraction`` of the training tokens in file order (the tail of the last file,
reaching into the ones before it when the fraction is larger). Token files are checked before use (``load_corpus``,
``check_corpus_holds``; at plan time, so ``sweep plan`` and ``sweep run`` exit 2 with one line naming the key and
the file): a file that is missing, empty, of none of the formats or damaged (cut mid-id, a header that disagrees
with its size), a file in both sets, an id not below ``data.vocab_size`` or negative (found in the pass that computes
the fingerprint), a training split shorter than one batch, a validation split shorter than one sequence. The
fingerprint covers every file's bytes in name order, training then validation, each file hashed once per machine
or taken from the manifest ``sweep data prepare`` wrote beside it; the tokenizer's SHA-256 comes from that manifest
and is recorded beside it (``sweep.training.provenance``).

Batches (``TokenStream``): the training split is cut into ``S = (len(train) - 1) // seq_len`` non-overlapping windows
of ``seq_len + 1`` tokens (window ``w`` is ``train[w * seq_len : (w + 1) * seq_len + 1]``: the inputs and their
next-token targets, so consecutive windows share one token and the last ``(len(train) - 1) % seq_len`` tokens are never
read). A split of several files is cut file by file, so no window straddles two files: ``S`` is the sum of the files'
counts and the windows are numbered through the files in order (``shards.TokenShards``), so the permutation below
draws from every file in proportion to its length. Row ``r`` of step ``i`` is the run's sequence number
``g = i * batch_size + r``; it falls in epoch ``e = g // S`` at position ``p = g % S`` and reads window
``pi_{seed,e}(p)``, where ``pi_{seed,e}`` is a pseudo-random permutation of ``[0, S)`` keyed by the run's seed and the
epoch. So every window is read exactly once per epoch, epochs are counted in sequences (``i * batch_size / S``
epochs after ``i`` steps; a batch may straddle two epochs), each epoch and each seed has its own order (seeds see
different data, not a rotation of the same batches), consecutive steps are unrelated text, and a step's batch is a
pure function of (seed, step): resuming needs nothing but the step.

The permutation is never materialised (a corpus of 10^10 tokens has 5·10^6 to 10^9 windows): ``pi`` is a 6-round keyed
Feistel network on ``k``-bit integers, the smallest ``k >= 2`` with ``S <= 2^k`` (Luby & Rackoff, "How to construct
pseudorandom permutations from pseudorandom functions", SIAM J. Comput. 17(2), 1988), unbalanced when ``k`` is odd
(halves of ``ceil(k/2)`` and ``floor(k/2)`` bits whose roles alternate; Schneier & Kelsey, "Unbalanced Feistel
networks and block cipher design", FSE 1996). A Feistel network is a bijection whatever its round function; here round
``j`` hashes the right half ``R`` as ``h = (R xor a_j) * m_j``, ``h ^= h >> 32``, ``h *= c``, ``h ^= h >> 29`` (mod
2^64; a keyed multiply-shift hash, Dietzfelbinger et al., J. Algorithms 25(1), 1997, followed by the xorshift-multiply
steps and constant ``c`` of MurmurHash3's 64-bit finaliser, Appleby 2011) and xors its top bits into the left half.
The keys ``a_j`` and odd ``m_j`` come from ``numpy.random.SeedSequence((seed, epoch))``. Values that land in
``[S, 2^k)`` are enciphered again until they fall in ``[0, S)`` ("cycle walking", Black & Rogaway, "Ciphers with
arbitrary finite domains", CT-RSA 2002), which restricts a permutation of ``[0, 2^k)`` to one of ``[0, S)``; as
``S > 2^(k-1)`` (for ``S > 2``), a value is enciphered fewer than two times on average. It is a shuffle for
statistical purposes, not a cipher: with 4 rounds of the bare multiply-shift hash, chi-squared tests of
(``pi(p)``, ``pi(p + 1)``) pairs failed for some keys; this construction passed 300 such tests (lags 1, 2 and 16,
position against window, 20 keys, ``S`` of 777, 2^20 and 3·10^6 + 1) with uniformly distributed p-values.
``TokenStream`` evaluates an epoch's order ``2^14`` positions at a time (0.6 to 1.3 ms) and keeps the last four
blocks: O(1) memory whatever ``S``; the windows of a 16-row batch cost about 2 us on average, of a 512-row batch 25 us.
"""

from __future__ import annotations

import hashlib
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sweep.config import TOKEN_IDS, ConfigError, DataConfig, cache_dir
from sweep.training.atomic import write_atomic
from sweep.training.provenance import scan
from sweep.training.remote import localized
from sweep.training.shards import Shard, TokenShards, describe, open_shards

VALIDATION_NAME = re.compile(r"(^|[_\-.])val(id|idation)?($|[_\-.0-9])", re.IGNORECASE)
"""A file stem that names a validation split (``val.bin``, ``val-000000-000.npy``, ``fineweb_val_000000.bin``)."""

STDLIB_VOCAB_SIZE = 256
_SEPARATOR = b"\x00"
Tokens = np.ndarray | TokenShards
"""A corpus split: one file's memmap (or any flat array), or the pieces of several files (``sweep.training.shards``)."""


@dataclass(frozen=True)
class Corpus:
    """A tokenised corpus split into training and validation sets (memmaps, never copied whole)."""

    train: Tokens
    val: Tokens
    vocab_size: int
    fingerprint: str
    """SHA-256 of the token files (hex, first 16 characters, ``sweep.training.provenance``), recorded with every run."""
    description: str
    """The corpus in words (``token file train.bin``, ``12 token files (llm.c) from data/train_*.bin``)."""
    tokenizer_sha256: str | None = None
    """The tokenizer's SHA-256 from the manifest of ``sweep data prepare`` beside the files, else None."""


def _stdlib_sources() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file()]
    return sorted(files, key=lambda p: hashlib.sha1(str(p.relative_to(root)).encode()).hexdigest())


def build_stdlib_corpus() -> Path:
    """Build (once per interpreter) and return the cached byte-level stdlib corpus file."""
    import sys

    path = cache_dir() / f"stdlib-{sys.implementation.cache_tag}-{sys.version_info.micro}.u8"
    if not path.exists():
        write_atomic(path, (p.read_bytes() + _SEPARATOR for p in _stdlib_sources()))
    return path


def _tokens(shards: list[Shard]) -> Tokens:
    """One file's ids as its memmap (as a flat file always was), several files' as ``TokenShards``."""
    return shards[0].open() if len(shards) == 1 else TokenShards.of_files(shards)


def load_corpus(config: DataConfig) -> Corpus:
    """Open the corpus that ``config`` names; builds the stdlib corpus on first use. The token files are checked
    first (``ConfigError`` naming the key and the file: missing, empty, of no format read, cut mid-id, in both sets,
    or holding an id not below ``data.vocab_size``), the ids in the pass that fingerprints them; once a file is
    known (cached on this machine, or listed in its manifest) this costs a stat and a small read per file."""
    if config.source == "stdlib":
        path = build_stdlib_corpus()
        tokens = np.memmap(path, dtype="uint8", mode="r")
        split = len(tokens) - int(len(tokens) * config.val_fraction)
        fingerprint = scan([Shard(path, "raw", "uint8", 0, len(tokens))]).fingerprint  # cached, as token files' are
        return Corpus(tokens[:split], tokens[split:], STDLIB_VOCAB_SIZE, fingerprint, f"stdlib bytes ({path.name})")
    config = localized(config)  # object-store URIs: this node's copy of their files (sweep.training.remote)
    train_files = open_shards(config.path, config.dtype, "data.path")
    val_files = open_shards(config.val_path, config.dtype, "data.val_path") if config.val_path is not None else []
    shared = {shard.path.resolve() for shard in train_files} & {shard.path.resolve() for shard in val_files}
    if shared:
        raise ConfigError(f"data.val_path: {min(shared)} is also a training file (data.path {config.path})")
    if config.val_path is None and Path(config.path).expanduser().is_dir():
        named = [shard.path.name for shard in train_files if VALIDATION_NAME.search(shard.path.stem)]
        if named:
            raise ConfigError(f"data.path: the directory {config.path} holds {named[0]}, a validation file by its name, "
                              "which would be trained on: give data.val_path (a glob of those files) and name the "
                              "training files with a glob (e.g. DIR/train*)")  # fmt: skip
    raw = next((shard for shard in (*train_files, *val_files) if shard.format == "raw"), None)
    if raw is not None and config.vocab_size > (holds := TOKEN_IDS[config.dtype]):
        raise ConfigError(f"data.dtype: raw token files of {config.dtype} hold ids below {holds:,}, not data.vocab_size "
                          f"{config.vocab_size:,} ({raw.path}; llm.c and .npy files carry their own dtype)")
    found = scan(train_files, val_files)
    if found.largest >= config.vocab_size:
        raise ConfigError(f"data.vocab_size: the token files hold id {found.largest:,}, not below data.vocab_size "
                          f"{config.vocab_size:,} ({found.largest_in})")
    if found.smallest < 0:
        key = "data.val_path" if found.smallest_in in {shard.path for shard in val_files} else "data.path"
        raise ConfigError(f"{key}: {found.smallest_in} holds id {found.smallest:,}; token ids are never negative")
    train = _tokens(train_files)
    if val_files:
        val = _tokens(val_files)
    else:  # the last val_fraction of the tokens, in file order: the tail of the last file (or files)
        split = len(train) - int(len(train) * config.val_fraction)
        train, val = train.split(split) if isinstance(train, TokenShards) else (train[:split], train[split:])
    return Corpus(train, val, int(config.vocab_size), found.fingerprint, describe(train_files, config.path),
                  found.tokenizer_sha256)


def check_corpus_holds(corpus: Corpus, config: DataConfig, batch_size: int, seq_len: int) -> None:
    """``ConfigError`` naming the key unless the training split holds one batch of ``batch_size`` sequences of
    ``seq_len + 1`` tokens and the validation split at least one such sequence."""
    train_key = "data.path"
    val_key = "data.val_path" if config.val_path is not None else "data.val_fraction"
    if TokenShards.of(corpus.train).windows(seq_len) < batch_size:
        raise ConfigError(f"{train_key}: the training split ({len(corpus.train):,} tokens of {corpus.description}) "
                          f"holds fewer than one batch: {batch_size} sequences of {seq_len} + 1 tokens")
    if TokenShards.of(corpus.val).windows(seq_len) < 1:
        files = " in one file" if isinstance(corpus.val, TokenShards) and len(corpus.val.pieces) > 1 else ""
        raise ConfigError(f"{val_key}: the validation split ({len(corpus.val):,} tokens of {corpus.description}) "
                          f"holds less than one sequence of {seq_len} + 1 tokens{files}")


def epochs_for(corpus: Corpus, tokens: int, seq_len: int) -> float:
    """How many passes over the training split a run of ``tokens`` training tokens makes in ``seq_len`` windows.

    Exact for ``TokenStream``: a run reads ``tokens / seq_len`` windows of the split's ``S`` (``(len - 1) // seq_len``
    for one file, summed over the files of a sharded split).
    """
    return tokens / (max(1, TokenShards.of(corpus.train).windows(seq_len)) * seq_len)


_FEISTEL_ROUNDS = 6
_FMIX_MULTIPLIER = np.uint64(0xC4CEB9FE1A85EC53)
"""The second multiplier of MurmurHash3's 64-bit finaliser (fmix64)."""
_SHIFT_32, _SHIFT_29 = np.uint64(32), np.uint64(29)
_CHUNK = 1 << 14
"""Positions of an epoch's permutation that ``TokenStream`` evaluates at once and keeps (128 KiB of int64 each)."""
READ_AHEAD = 4
"""Steps whose rows ``TokenStream.rows`` reads in one gather, kept in the files' own dtype (batches of 512 x 1,025
uint16 ids: 4.2 MB for 4 steps). A gather from several files costs a few microseconds per file its windows fall in,
which 4 steps share; 8 steps' block, out of the processor's cache, slowed the single file's batches by 10%
(``benchmarks/shard_read.py``, ``docs/token-data.md``)."""


class WindowPermutation:
    """A keyed pseudo-random permutation of ``[0, n)``, evaluated pointwise in O(1) memory (see the module docstring).

    ``WindowPermutation(n, key)(p)`` maps an array of positions in ``[0, n)`` to distinct windows in ``[0, n)`` (int64).
    """

    def __init__(self, n: int, key: tuple[int, ...]) -> None:
        if n < 1:
            raise ValueError(f"a permutation needs a domain of at least one element, not {n}")
        self.n = n
        bits = max(2, (n - 1).bit_length())
        left_bits, right_bits = bits - bits // 2, bits // 2
        entropy = [abs(k) * 2 + (k < 0) for k in key]  # SeedSequence takes non-negative integers only
        state = np.random.SeedSequence(entropy).generate_state(2 * _FEISTEL_ROUNDS, np.uint64)
        self.rounds = []
        """Per round: (right-half width and mask, hash shift, left-half width, xor key, odd multiplier), as uint64."""
        for xor_key, multiplier in zip(state[:_FEISTEL_ROUNDS], state[_FEISTEL_ROUNDS:] | np.uint64(1)):
            mask = np.uint64((1 << right_bits) - 1)
            self.rounds.append((np.uint64(right_bits), mask, np.uint64(64 - left_bits), np.uint64(left_bits), xor_key, multiplier))
            left_bits, right_bits = right_bits, left_bits  # the halves swap roles every round

    def _encipher(self, x: np.ndarray) -> np.ndarray:
        """One pass of the Feistel network over ``[0, 2^k)`` (uint64 in, uint64 out)."""
        for right_bits, right_mask, hash_shift, left_bits, xor_key, multiplier in self.rounds:
            left, right = x >> right_bits, x & right_mask
            mixed = (right ^ xor_key) * multiplier  # F(right): a keyed multiply-xorshift hash, its top left_bits bits
            mixed ^= mixed >> _SHIFT_32
            mixed *= _FMIX_MULTIPLIER
            mixed ^= mixed >> _SHIFT_29
            x = (right << left_bits) | (left ^ (mixed >> hash_shift))
        return x

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        x = self._encipher(np.asarray(positions, dtype=np.uint64))
        outside = np.flatnonzero(x >= self.n)
        while outside.size:  # cycle walking: re-encipher until the value is back in [0, n)
            x[outside] = self._encipher(x[outside])
            outside = outside[x[outside] >= self.n]
        return x.astype(np.int64)


class TokenStream:
    """Deterministic training batches addressed by (seed, step): windows in a per-epoch keyed permutation."""

    def __init__(self, tokens: Tokens, batch_size: int, seq_len: int, seed: int) -> None:
        self.tokens, self.batch_size, self.seq_len, self.seed = tokens, batch_size, seq_len, seed
        self._shards = TokenShards.of(tokens)
        self.windows = self._shards.windows(seq_len)
        """``S``: the number of ``seq_len + 1``-token windows in the training split, the sequences of one epoch."""
        if self.windows < 1:
            raise ValueError(f"corpus of {len(tokens)} tokens is too small for sequences of {seq_len} tokens")
        self.steps_per_epoch = self.windows / batch_size
        """Optimizer steps per epoch, not necessarily whole: epochs are counted in sequences."""
        self._chunks: dict[tuple[int, int], np.ndarray] = {}
        self._ahead: dict[tuple[int, int], tuple[int, np.ndarray]] = {}
        """Per row range (a worker's or micro-batch's share): the block of ``READ_AHEAD`` steps read, and its rows."""

    def epoch_of(self, step: int) -> int:
        """The epoch (0-based) of the first sequence of ``step``; its last may be in the next (see ``epochs_done``)."""
        return step * self.batch_size // self.windows

    def epochs_done(self, steps: int) -> float:
        """Exact passes over the training split after ``steps`` optimizer steps."""
        return steps * self.batch_size / self.windows

    def _chunk(self, epoch: int, index: int) -> np.ndarray:
        """Windows at positions ``[index * _CHUNK, (index + 1) * _CHUNK)`` of ``epoch``'s order (the last few kept)."""
        key = (epoch, index)
        if key not in self._chunks:
            if len(self._chunks) >= 4:
                del self._chunks[next(iter(self._chunks))]
            start = index * _CHUNK
            positions = np.arange(start, min(start + _CHUNK, self.windows), dtype=np.int64)
            self._chunks[key] = WindowPermutation(self.windows, (self.seed, epoch))(positions)
        return self._chunks[key]

    def window_ids(self, step: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The windows (int64, in ``[0, S)``) that rows ``start:stop`` of ``batch(step)`` read."""
        stop = self.batch_size if stop is None else stop
        if not 0 <= start <= stop <= self.batch_size:
            raise ValueError(f"rows {start}:{stop} are outside a batch of {self.batch_size}")
        windows = np.empty(stop - start, dtype=np.int64)
        done, first = 0, step * self.batch_size + start
        while done < len(windows):  # one pass unless the rows straddle an epoch or a chunk
            epoch, position = divmod(first + done, self.windows)
            index, offset = divmod(position, _CHUNK)
            chunk = self._chunk(epoch, index)[offset:]
            take = min(len(windows) - done, len(chunk))
            windows[done : done + take] = chunk[:take]
            done += take
        return windows

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets, each (batch_size, seq_len) int64, for optimizer step ``step`` (0-based)."""
        return self.rows(step, 0, self.batch_size)

    def rows(self, step: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``start:stop`` of ``batch(step)`` (a worker's or a micro-batch's share), reading only those rows: of
        this step and the next ones in its block of ``READ_AHEAD`` steps, read in one gather and kept per row range."""
        block, count = step // READ_AHEAD, stop - start
        kept = self._ahead.get((start, stop))
        if kept is None or kept[0] != block:
            first = block * READ_AHEAD
            ids = np.concatenate([self.window_ids(s, start, stop) for s in range(first, first + READ_AHEAD)])
            kept = self._ahead[(start, stop)] = (block, self._shards.read_windows(ids, self.seq_len, widen=False))
        at = (step - block * READ_AHEAD) * count
        rows = torch.from_numpy(kept[1][at : at + count].astype(np.int64))
        return rows[:, :-1], rows[:, 1:]


def validation_batches(tokens: Tokens, eval_tokens: int, batch_size: int, seq_len: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed slice of the validation split as (inputs, targets) batches: the same for every run and evaluation.
    Its first ``eval_tokens / seq_len`` windows in order (which for one file is its first ``eval_tokens + 1`` ids)."""
    shards = TokenShards.of(tokens)
    n_seqs = max(1, min(eval_tokens // seq_len, shards.windows(seq_len)))
    rows = torch.from_numpy(shards.read_windows(np.arange(n_seqs), seq_len))
    inputs, targets = rows[:, :-1].contiguous(), rows[:, 1:].contiguous()
    return [(inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, n_seqs, batch_size)]
