"""Training data: the offline default corpus, user token files, the train/validation split and its fingerprint.

Default corpus (``source: stdlib``): the running interpreter's standard-library ``.py`` sources (tests included,
``site-packages`` excluded), read as bytes, vocab 256. It is real text present on every machine with nothing
downloaded, about 31 M tokens on CPython 3.11 (so the demo never repeats data). Files are ordered by a hash of
their relative path (a fixed shuffle, so the held-out tail is a random sample of modules, not the end of the
alphabet) and joined with a NUL byte. The built corpus is cached as one ``uint8`` file under ``$SWEEP_CACHE`` (default
``~/.cache/scaling-sweep``); its SHA-256 is the fingerprint. Different CPython releases ship different sources, so
their fingerprints (and so run ids) differ, as they should.

User data (``source: tokens``): a nanoGPT-style flat file of token ids (``uint16`` or ``uint32``), read through
``numpy.memmap``; the validation split is ``val_path`` or the file's last ``val_fraction``.

Batches (``TokenStream``): i.i.d. sequences addressed by (seed, step). The training split is cut into
S = (len - 1) // seq_len non-overlapping *windows* of ``seq_len + 1`` tokens (window w starts at token
w * seq_len; inputs are its first seq_len tokens, targets its last seq_len, so neighbouring windows share one
token). Row ``b`` of step ``i`` is global sequence number g = i * batch_size + b, in epoch e = g // S at position
p = g % S, and reads window pi_{seed, e}(p), where pi_{seed, e} is a pseudo-random permutation of [0, S):

- every window is read exactly once per epoch and none twice (pi is a bijection); epochs are counted in
  sequences, so a step may straddle an epoch boundary and the epoch count is exact;
- each step's rows are an (almost) i.i.d. sample of the corpus, and consecutive steps are unrelated windows, not
  the continuation of each other's text;
- different seeds and different epochs see different orders;
- the data position is a pure function of (seed, step), so resuming needs nothing but the step (bitwise on CPU).

pi is a keyed Feistel network (Luby & Rackoff 1988: four or more rounds of a pseudo-random round function
give a pseudo-random permutation) on the smallest even-bit domain [0, 4^h) >= S, restricted to [0, S) by
cycle-walking (Black & Rogaway 2002, "Ciphers with arbitrary finite domains"): a value that lands outside
[0, S) is encrypted again until it lands inside, which keeps a bijection and takes fewer than 4 tries on
average since 4^h < 4S. Round keys come from BLAKE2b of (seed, epoch, round); the round function is the
SplitMix64 finaliser (Steele et al. 2014). Positions are permuted 65,536 at a time in one vectorised call and
cached, so memory stays O(1) whatever the corpus size (a materialised ``numpy.random.permutation`` of a
10^10-token corpus would not fit) and a step costs a slice plus the token reads.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sweep.config import DataConfig, cache_dir

STDLIB_VOCAB_SIZE = 256
_SEPARATOR = b"\x00"


@dataclass(frozen=True)
class Corpus:
    """A tokenised corpus split into training and validation arrays (memmaps, never copied whole)."""

    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    fingerprint: str
    """SHA-256 of the token files (hex, first 16 characters), recorded with every run."""
    description: str


def _stdlib_sources() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file()]
    return sorted(files, key=lambda p: hashlib.sha1(str(p.relative_to(root)).encode()).hexdigest())


def _atomic_write_bytes(path: Path, chunks) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_stdlib_corpus() -> Path:
    """Build (once per interpreter) and return the cached byte-level stdlib corpus file."""
    import sys

    path = cache_dir() / f"stdlib-{sys.implementation.cache_tag}-{sys.version_info.micro}.u8"
    if not path.exists():
        _atomic_write_bytes(path, (p.read_bytes() + _SEPARATOR for p in _stdlib_sources()))
    return path


def _file_digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _memmap(path: Path, dtype: str) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"token file not found: {path}")
    return np.memmap(path, dtype=dtype, mode="r")


def load_corpus(config: DataConfig) -> Corpus:
    """Open the corpus that ``config`` names; builds the stdlib corpus on first use."""
    if config.source == "stdlib":
        path = build_stdlib_corpus()
        tokens = _memmap(path, "uint8")
        split = len(tokens) - int(len(tokens) * config.val_fraction)
        return Corpus(tokens[:split], tokens[split:], STDLIB_VOCAB_SIZE, _file_digest(path), f"stdlib bytes ({path.name})")
    path = Path(config.path).expanduser()
    tokens = _memmap(path, config.dtype)
    if config.val_path is not None:
        val_path = Path(config.val_path).expanduser()
        train, val, digest = tokens, _memmap(val_path, config.dtype), _file_digest(path, val_path)
    else:
        split = len(tokens) - int(len(tokens) * config.val_fraction)
        train, val, digest = tokens[:split], tokens[split:], _file_digest(path)
    return Corpus(train, val, int(config.vocab_size), digest, f"token file {path.name}")


def epochs_for(corpus: Corpus, tokens: int, seq_len: int) -> float:
    """How many passes over the training windows (``TokenStream``) a run of ``tokens`` makes: exact."""
    return tokens / (seq_len * max(1, (len(corpus.train) - 1) // seq_len))


_ROUNDS = 6
_BLOCK = 1 << 16
"""Positions of an epoch permuted per vectorised call (and cached): one call serves thousands of steps."""
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective avalanche mix of uint64 values (vectorised; wraps modulo 2^64)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class FeistelPermutation:
    """A keyed pseudo-random permutation of [0, size): balanced Feistel rounds plus cycle-walking (module docstring)."""

    def __init__(self, size: int, key: bytes) -> None:
        if size < 1:
            raise ValueError(f"permutation size must be >= 1, got {size}")
        self.size = size
        self.half_bits = max(1, ((size - 1).bit_length() + 1) // 2)  # domain 4^half_bits >= size
        self.half_mask = np.uint64((1 << self.half_bits) - 1)
        digests = (hashlib.blake2b(key + bytes([r]), digest_size=8).digest() for r in range(_ROUNDS))
        self.round_keys = [np.uint64(int.from_bytes(d, "little")) for d in digests]

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        shift = np.uint64(self.half_bits)
        left, right = x >> shift, x & self.half_mask
        for key in self.round_keys:
            left, right = right, left ^ (_mix64(right ^ key) & self.half_mask)
        return (left << shift) | right

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """The images of ``positions`` (ints in [0, size)), as int64."""
        with np.errstate(over="ignore"):
            x = self._encrypt(np.asarray(positions, dtype=np.uint64))
            outside = x >= self.size
            while outside.any():  # cycle-walking: re-encrypt until the value lands in [0, size)
                x[outside] = self._encrypt(x[outside])
                outside = x >= self.size
        return x.astype(np.int64)


class TokenStream:
    """Deterministic i.i.d. training batches addressed by (seed, step) (see the module docstring)."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int) -> None:
        self.tokens, self.batch_size, self.seq_len, self.seed = tokens, batch_size, seq_len, seed
        self.sequences_per_epoch = (len(tokens) - 1) // seq_len
        if self.sequences_per_epoch < 1:
            raise ValueError(f"corpus of {len(tokens)} tokens is too small for one sequence of {seq_len}")
        self._window = np.arange(seq_len + 1, dtype=np.int64)  # token offsets inside a window
        self._blocks: dict[tuple[int, int], np.ndarray] = {}

    def _block(self, epoch: int, block: int) -> np.ndarray:
        """pi_{seed, epoch} of positions [block * _BLOCK, (block + 1) * _BLOCK), computed in one vectorised call."""
        if (epoch, block) not in self._blocks:
            if len(self._blocks) >= 4:  # steps move forward: keep the few blocks around the current step
                del self._blocks[min(self._blocks)]
            key = f"scaling-sweep/data/seed={self.seed}/epoch={epoch}".encode()
            stop = min(self.sequences_per_epoch, (block + 1) * _BLOCK)
            positions = np.arange(block * _BLOCK, stop, dtype=np.int64)
            self._blocks[(epoch, block)] = FeistelPermutation(self.sequences_per_epoch, key)(positions)
        return self._blocks[(epoch, block)]

    def epoch_of(self, step: int) -> int:
        """The epoch (0-based) of step ``step``'s first row."""
        return step * self.batch_size // self.sequences_per_epoch

    def epochs_done(self, steps: int) -> float:
        """Passes over the training windows after ``steps`` steps (exact: sequences read / windows)."""
        return steps * self.batch_size / self.sequences_per_epoch

    def windows(self, step: int, start: int, stop: int) -> np.ndarray:
        """Window numbers read by rows ``start:stop`` of step ``step``."""
        first, last = step * self.batch_size + start, step * self.batch_size + stop - 1
        (epoch, position), (last_epoch, last_position) = divmod(first, self.sequences_per_epoch), divmod(last, self.sequences_per_epoch)
        if epoch == last_epoch and position // _BLOCK == last_position // _BLOCK:  # the usual case: one slice
            offset = position % _BLOCK
            return self._block(epoch, position // _BLOCK)[offset : offset + stop - start]
        windows = []
        for sequence in range(first, last + 1):  # across an epoch or block boundary: row by row
            epoch, position = divmod(sequence, self.sequences_per_epoch)
            windows.append(self._block(epoch, position // _BLOCK)[position % _BLOCK])
        return np.array(windows, dtype=np.int64)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets, each (batch_size, seq_len) int64, for optimizer step ``step`` (0-based)."""
        return self.rows(step, 0, self.batch_size)

    def rows(self, step: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``start:stop`` of ``batch(step)`` (a worker's or a micro-batch's share), reading only those rows."""
        offsets = self.windows(step, start, stop)[:, None] * self.seq_len + self._window  # (rows, seq_len + 1)
        rows = torch.from_numpy(np.asarray(self.tokens[offsets]).astype(np.int64))
        return rows[:, :-1], rows[:, 1:]


def validation_batches(tokens: np.ndarray, eval_tokens: int, batch_size: int, seq_len: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed slice of the validation split as (inputs, targets) batches: the same for every run and evaluation."""
    n_seqs = max(1, min(eval_tokens // seq_len, (len(tokens) - 1) // seq_len))
    block = np.asarray(tokens[: n_seqs * seq_len + 1]).astype(np.int64)
    inputs = torch.from_numpy(block[:-1].reshape(n_seqs, seq_len))
    targets = torch.from_numpy(block[1:].reshape(n_seqs, seq_len))
    return [(inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, n_seqs, batch_size)]
