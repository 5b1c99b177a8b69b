"""Token shards: ``data.path`` and ``data.val_path`` as one file, a directory or a glob of token files, read by memmap.

Which files: a file; a directory's ``.bin`` and ``.npy`` files (not its subdirectories, nor names starting with
``.`` such as temporary files being written, nor a manifest, a ``meta.pkl`` or a ``prepare.py`` beside the shards,
which a raw reader would take for ids); or a glob (``data/fineweb_train_*.bin``, its matches that are files: any
name). They are read in the order of their paths' names. A training and a validation set sharing a file are refused.
Their fingerprint, range of ids and tokenizer (each file hashed once and cached): ``sweep.training.provenance``.

Formats, told apart by a file's first bytes, never by its name alone:

- llm.c / modded-nanogpt shards (llm.c's ``dev/data/data_common.py``): a header of 256 little-endian int32 values,
  ``header[0]`` the magic, ``header[1]`` the version, ``header[2]`` the token count, then the tokens: magic 20240520
  version 1 is uint16 ids (GPT-2), magic 20240801 version 7 uint32 ids (Llama 3). The file must hold exactly the
  header and that many ids. (A raw uint16 file starting with ids 54,600, 308 would look like a header; no vocabulary
  of at most 54,600 ids can write it.)
- NumPy ``.npy`` arrays (magic ``\\x93NUMPY``, OLMo's format): one-dimensional, of an integer dtype (negative ids are
  refused); opened with ``numpy.load(mmap_mode="r")``, never with pickles allowed.
- raw flat files (nanoGPT's ``train.bin``): anything else, ids of ``data.dtype``, a whole number of them.

Anything else (a file named ``.npy`` without the magic, a ``.npy`` of floats or of two dimensions, an llm.c magic
with another version or a count its size disagrees with, an empty file, a raw file cut mid-id) is one
``ConfigError`` line naming the key, the file and the formats read.

Windows never straddle files: the training split is a list of pieces (the files, the last one or more cut where the
validation tail starts, ``sweep.training.data``); piece ``k`` of ``n_k`` tokens holds ``S_k = (n_k - 1) // seq_len``
windows of ``seq_len + 1`` tokens, and the split's windows are numbered ``[0, sum S_k)`` in file order. Window ``w``
is found in its piece by a binary search of the cumulative counts (``numpy.searchsorted``): memory grows with the
number of files, never with the number of windows, and a split of one piece has exactly a flat array's windows.
Files are mapped when first read and the last ``_OPEN_GRIDS`` kept (1,024, or a quarter of the process's open-file
limit if lower: each map holds a file descriptor), so a corpus of 10^4 shards stays within that limit. A read groups
its windows by file, one gather per file they fall in (a few microseconds each); ``TokenStream`` reads several steps
at once to share that cost (``benchmarks/shard_read.py``: 100 shards 1.4x a single file's batch time, 10 shards
1.2-1.3x, ``docs/token-data.md``).
"""

from __future__ import annotations

import glob
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweep.config import ConfigError

FORMATS = ("formats read: raw token files of data.dtype (nanoGPT), llm.c / modded-nanogpt shards (a 256 x int32 "
           "header, magic 20240520 or 20240801), NumPy .npy 1-D integer arrays")
"""Appended to every refusal of a file, so the line says what would have been accepted."""
_LLMC_HEADER_BYTES = 256 * 4
_LLMC_DTYPES = {(20240520, 1): "<u2", (20240801, 7): "<u4"}
"""(magic, version) to the ids' dtype, as llm.c's ``HEADERS_INFO`` has them."""
_NPY_MAGIC = b"\x93NUMPY"
_SHARD_SUFFIXES = (".bin", ".npy")
"""The files a directory is read for (any name through a glob)."""


def _open_limit() -> int:
    """How many files a split keeps mapped: 1,024 or a quarter of the soft open-file limit, whichever is lower."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 256
    return 1024 if soft == resource.RLIM_INFINITY else max(16, min(1024, soft // 4))


_OPEN_GRIDS = _open_limit()


@dataclass(frozen=True)
class Shard:
    """One token file: its format, the dtype of its ids, the bytes before the first id, and how many ids it holds."""

    path: Path
    format: str
    """``raw``, ``llm.c`` or ``npy``."""
    dtype: str
    """A NumPy dtype string (``uint16``, ``<u2``, ``>i4``)."""
    offset: int
    tokens: int

    def open(self) -> np.ndarray:
        """The file's ids as a read-only memmap (nothing is read until indexed)."""
        if self.format == "npy":
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=(self.tokens,))


def _refuse(key: str, what: str) -> ConfigError:
    return ConfigError(f"{key}: {what} ({FORMATS})")


def resolve(spec: str, key: str) -> list[Path]:
    """The files ``spec`` names (a file, a directory or a glob), sorted by name; ``ConfigError`` naming ``key``."""
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix in _SHARD_SUFFIXES and not p.name.startswith(".")
                        and p.is_file()), key=str)  # fmt: skip
        if not files:
            raise ConfigError(f"{key}: the directory {path} holds no .bin or .npy files (name others with a glob)")
        return files
    if path.exists():
        if not path.is_file():
            raise ConfigError(f"{key}: {path} is not a file")
        return [path]
    if any(char in str(path) for char in "*?["):
        files = sorted((Path(p) for p in glob.glob(str(path)) if Path(p).is_file()), key=str)
        if not files:
            raise ConfigError(f"{key}: no token file matches {path}")
        return files
    raise ConfigError(f"{key}: token file not found: {path}")


def detect(path: Path, dtype: str, key: str) -> Shard:
    """``path`` read as one of the formats (module docstring) by its first bytes; ``dtype``: a raw file's ids."""
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{key}: {path} is not readable")
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(_LLMC_HEADER_BYTES)
    except OSError as error:
        raise ConfigError(f"{key}: cannot read {path}: {error.strerror or error}") from None
    if size == 0:
        raise ConfigError(f"{key}: token file {path} is empty")
    if head.startswith(_NPY_MAGIC):
        return _npy(path, size, key)
    if path.suffix == ".npy":
        raise _refuse(key, f"{path} is named .npy but has no NumPy header")
    magic = int.from_bytes(head[:4], "little") if len(head) >= 4 else None
    if magic in {m for m, _ in _LLMC_DTYPES}:
        return _llmc(path, size, head, key)
    width = np.dtype(dtype).itemsize
    if size % width:
        raise _refuse(key, f"token file {path} has {size:,} bytes, not a whole number of {dtype} ids ({width} bytes "
                           f"each): is data.dtype right?")
    return Shard(path, "raw", dtype, 0, size // width)


def _llmc(path: Path, size: int, head: bytes, key: str) -> Shard:
    if len(head) < _LLMC_HEADER_BYTES:
        raise _refuse(key, f"{path} starts like an llm.c shard but is shorter ({size:,} bytes) than its 1,024-byte header")
    magic, version, count = (int(v) for v in np.frombuffer(head, dtype="<i4")[:3])
    if (magic, version) not in _LLMC_DTYPES:
        known = ", ".join(f"{v} with magic {m}" for m, v in _LLMC_DTYPES)
        raise _refuse(key, f"{path} is an llm.c shard of version {version} (magic {magic}); versions read: {known}")
    dtype = _LLMC_DTYPES[(magic, version)]
    expected = _LLMC_HEADER_BYTES + count * np.dtype(dtype).itemsize
    if count < 1 or size != expected:
        raise _refuse(key, f"{path}: its llm.c header says {count:,} tokens ({expected:,} bytes with the header), "
                           f"but the file has {size:,} bytes")
    return Shard(path, "llm.c", dtype, _LLMC_HEADER_BYTES, count)


def _npy(path: Path, size: int, key: str) -> Shard:
    """A ``.npy`` file checked from its header alone (nothing unpickled, nothing mapped yet)."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(handle)
            offset = handle.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as error:
        first = str(error).splitlines()[0] if str(error) else repr(error)
        raise _refuse(key, f"{path} has a damaged .npy header: {first}") from None
    if dtype.hasobject:
        raise _refuse(key, f"{path} is a .npy array of Python objects (never unpickled)")
    if len(shape) != 1 or dtype.kind not in "iu":
        raise _refuse(key, f"{path} is a .npy array of {dtype} with shape {shape}, not a 1-D array of integer ids")
    if shape[0] == 0:
        raise ConfigError(f"{key}: token file {path} is empty")
    expected = offset + shape[0] * dtype.itemsize
    if size != expected:
        raise _refuse(key, f"{path}: its .npy header says {shape[0]:,} ids ({expected:,} bytes with the header), "
                           f"but the file has {size:,} bytes")
    return Shard(path, "npy", dtype.str, offset, shape[0])


def open_shards(spec: str, dtype: str, key: str) -> list[Shard]:
    """The shards ``spec`` names, each checked (``resolve``, ``detect``)."""
    return [detect(path, dtype, key) for path in resolve(spec, key)]


def describe(shards: Sequence[Shard], spec: str) -> str:
    """A corpus set in words: ``token file train.bin``, or ``12 token files (llm.c) from data/fineweb_train_*.bin``."""
    if len(shards) == 1:
        return f"token file {shards[0].path.name}"
    formats = ", ".join(sorted({shard.format for shard in shards}))
    return f"{len(shards):,} token files ({formats}) from {spec}"


class TokenShards:
    """A corpus split read from several files as one: an ordered list of pieces ``(source, start, stop)``, each a
    file (``Shard``) or an array and the range of its ids taken; ``len()`` counts its tokens.

    Windows of ``seq_len + 1`` tokens never straddle pieces (module docstring). ``TokenShards.of(array)`` is a split
    of one piece, whose windows are exactly the flat array's.
    """

    def __init__(self, pieces: Sequence[tuple[Shard | np.ndarray, int, int]]) -> None:
        self.pieces = tuple((source, start, stop) for source, start, stop in pieces if stop > start)
        self._starts: dict[int, np.ndarray] = {}
        self._grids: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    @classmethod
    def of(cls, tokens: np.ndarray | TokenShards) -> TokenShards:
        """``tokens`` as a split: itself, or a flat array as one piece."""
        return tokens if isinstance(tokens, TokenShards) else cls([(tokens, 0, len(tokens))])

    @classmethod
    def of_files(cls, shards: Sequence[Shard]) -> TokenShards:
        return cls([(shard, 0, shard.tokens) for shard in shards])

    def __len__(self) -> int:
        return sum(stop - start for _, start, stop in self.pieces)

    def split(self, at: int) -> tuple[TokenShards, TokenShards]:
        """The first ``at`` tokens and the rest, cut inside the piece that holds token ``at``."""
        head, tail, done = [], [], 0
        for source, start, stop in self.pieces:
            cut = min(max(at - done, 0), stop - start)
            head.append((source, start, start + cut))
            tail.append((source, start + cut, stop))
            done += stop - start
        return TokenShards(head), TokenShards(tail)

    def piece(self, k: int) -> np.ndarray:
        """Piece ``k``'s ids (a memmap slice: nothing read until indexed)."""
        source, start, stop = self.pieces[k]
        return (source.open() if isinstance(source, Shard) else source)[start:stop]

    def window_starts(self, seq_len: int) -> np.ndarray:
        """``[W_0 = 0, W_1, ..., W_K]``: piece ``k`` holds the split's windows ``[W_k, W_{k+1})`` (int64)."""
        if seq_len not in self._starts:
            counts = [max(0, (stop - start - 1) // seq_len) for _, start, stop in self.pieces]
            self._starts[seq_len] = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        return self._starts[seq_len]

    def windows(self, seq_len: int) -> int:
        """``S``: how many windows of ``seq_len + 1`` tokens the split holds."""
        return int(self.window_starts(seq_len)[-1])

    def _grid(self, k: int, seq_len: int) -> np.ndarray:
        """Piece ``k`` as a strided (windows, seq_len + 1) view, no copy; the last ``_OPEN_GRIDS`` kept open."""
        key = (k, seq_len)
        if key in self._grids:
            self._grids.move_to_end(key)
            return self._grids[key]
        tokens = np.asarray(self.piece(k))
        stride, count = tokens.strides[0], max(0, (len(tokens) - 1) // seq_len)
        grid = np.lib.stride_tricks.as_strided(tokens, (count, seq_len + 1), (seq_len * stride, stride), writeable=False)
        self._grids[key] = grid
        if len(self._grids) > _OPEN_GRIDS:
            self._grids.popitem(last=False)
        return grid

    def read_windows(self, ids: np.ndarray, seq_len: int, widen: bool = True) -> np.ndarray:
        """Windows ``ids`` (in ``[0, S)``) as rows of ``seq_len + 1`` ids, reading only those rows: int64, or with
        ``widen=False`` the files' own dtype (their common one where files differ)."""
        ids = np.asarray(ids, dtype=np.int64)
        starts = self.window_starts(seq_len)
        if ids.size and (ids.min() < 0 or ids.max() >= starts[-1]):
            raise IndexError(f"windows {ids.min()}..{ids.max()} are outside [0, {starts[-1]})")
        if len(self.pieces) == 1:
            rows = self._grid(0, seq_len)[ids]
            return rows.astype(np.int64) if widen else rows
        # Windows grouped by piece (a stable sort), each group gathered from its file and written to its rows: one
        # read per piece the windows fall in, in the files' own dtype or widened to int64 in the same pass.
        pieces = np.searchsorted(starts, ids, side="right") - 1
        order = np.argsort(pieces, kind="stable")
        sorted_pieces = pieces[order]
        local = ids[order] - starts[sorted_pieces]
        firsts = np.flatnonzero(np.r_[True, sorted_pieces[1:] != sorted_pieces[:-1]]) if ids.size else np.empty(0, int)
        grids = [self._grid(int(k), seq_len) for k in sorted_pieces[firsts]]
        common = np.result_type(*grids) if grids else np.dtype(np.int64)  # uint64 with int64 would be float64
        rows = np.empty((len(ids), seq_len + 1), dtype=np.int64 if widen or common.kind not in "iu" else common)
        for grid, lo, hi in zip(grids, firsts.tolist(), [*firsts[1:].tolist(), len(ids)]):
            rows[order[lo:hi]] = grid[local[lo:hi]]
        return rows
