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

Batches (``TokenStream``): the training split is cut into ``batch_size`` equal lanes, and row ``b`` of step ``i``
reads the ``seq_len + 1`` tokens at ``lane_start[b] + i * seq_len``: contiguous text per row, rows far apart in the
corpus, every training token seen once per epoch, and the position fully given by the step (so resuming needs
nothing but the step). A run's seed rotates the lanes so seeds see different orders.
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


def epochs_for(corpus: Corpus, tokens: int) -> float:
    """How many passes over the training split a run of ``tokens`` makes."""
    return tokens / max(1, len(corpus.train))


class TokenStream:
    """Deterministic training batches addressed by step (lanes; see the module docstring)."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int) -> None:
        self.tokens, self.batch_size, self.seq_len = tokens, batch_size, seq_len
        self.lane_len = (len(tokens) - 1) // batch_size
        self.steps_per_epoch = self.lane_len // seq_len
        if self.steps_per_epoch < 1:
            raise ValueError(f"corpus of {len(tokens)} tokens is too small for batches of {batch_size} x {seq_len}")
        self.lane_starts = np.roll(np.arange(batch_size) * self.lane_len, seed % batch_size)
        self.shift = (seed // batch_size) * seq_len % max(1, self.lane_len - seq_len)

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets, each (batch_size, seq_len) int64, for optimizer step ``step`` (0-based)."""
        return self.rows(step, 0, self.batch_size)

    def rows(self, step: int, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``start:stop`` of ``batch(step)`` (a worker's or a micro-batch's share), reading only those rows."""
        offset = (self.shift + (step % self.steps_per_epoch) * self.seq_len) % (self.lane_len - self.seq_len)
        rows = np.stack([np.asarray(self.tokens[s + offset : s + offset + self.seq_len + 1]) for s in self.lane_starts[start:stop]])
        rows = torch.from_numpy(rows.astype(np.int64))
        return rows[:, :-1], rows[:, 1:]


def validation_batches(tokens: np.ndarray, eval_tokens: int, batch_size: int, seq_len: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed slice of the validation split as (inputs, targets) batches: the same for every run and evaluation."""
    n_seqs = max(1, min(eval_tokens // seq_len, (len(tokens) - 1) // seq_len))
    block = np.asarray(tokens[: n_seqs * seq_len + 1]).astype(np.int64)
    inputs = torch.from_numpy(block[:-1].reshape(n_seqs, seq_len))
    targets = torch.from_numpy(block[1:].reshape(n_seqs, seq_len))
    return [(inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, n_seqs, batch_size)]
