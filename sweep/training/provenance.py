"""Provenance of a corpus: the fingerprint of its token files, their range of ids, and the tokenizer that wrote them.

The fingerprint (recorded with every run, part of its id) is the first 16 hex characters of a SHA-256:

- one file: over its bytes, headers included;
- one training file and one validation file: over the training file's bytes followed by the validation file's;
- any other set: over the ASCII text of one line per file, the training files then the validation files, each in
  the order they are read, ``f"{split} {size} {sha256}\\n"``: ``split`` is ``train`` or ``val``, ``size`` the file's
  bytes in decimal, ``sha256`` the SHA-256 of its bytes (64 lowercase hex digits).

The first two are what the fingerprint has always been (results roots resume on them); the third needs each file's
own hash only, so changing one shard of 1,000 reads that shard alone. Each file's hash and extreme ids come from
the first of:

1. the ``manifest.json`` that ``sweep data prepare`` wrote beside it, when it lists the file by name with the size
   and token count the file has now, its SHA-256 and its largest id (``max_id``): nothing is read. A size that
   disagrees means the file is read (a stale manifest is never trusted);
2. this machine's cache, one JSON per file under ``$SWEEP_CACHE/digests``, keyed by the file's absolute path, size,
   modification time in nanoseconds (as make and rsync decide a file is unchanged), format, dtype and header;
3. one pass over the file (``read_ids``), whose result is cached.

So a plan, or a run's start on a worker, costs a stat and a small read per file once the files are known, where a
200 GB corpus costs over 3 minutes a pass at 1 GB/s. A pair (one training, one validation file) is hashed as one
stream, so its manifest cannot stand for it: the pass is cached for the pair as a whole (``$SWEEP_CACHE/scans``,
under both files' keys). A damaged cache entry is ignored and rewritten; a read-only cache costs a pass next time.

The tokenizer's SHA-256 (``tokenizer_sha256``, recorded beside the fingerprint, never part of a run's id) is the
one the manifests beside the files name, when every file is listed there with its size and token count and they
all name one tokenizer; else None (files ``sweep data prepare`` did not write, the stdlib corpus).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from sweep.config import cache_dir
from sweep.training.atomic import write_atomic
from sweep.training.shards import Shard

MANIFEST = "manifest.json"
"""The manifest ``sweep data prepare`` writes beside its shards (``sweep.prepare.writer.MANIFEST``)."""
_READ_BYTES = 1 << 24


@dataclass(frozen=True)
class Scan:
    """A corpus's provenance: the fingerprint, the extreme ids with a file holding each, and the tokenizer's hash."""

    fingerprint: str
    largest: int
    largest_in: Path | None
    smallest: int
    """The smallest id, or 0 when none is negative."""
    smallest_in: Path | None
    tokenizer_sha256: str | None = None
    """The tokenizer's SHA-256 from the manifests of ``sweep data prepare`` beside the files, else None."""


@dataclass(frozen=True)
class FileDigest:
    """One file's SHA-256 (64 hex digits), size, largest id and smallest id (0 when none is negative)."""

    sha256: str
    size_bytes: int
    largest: int
    smallest: int


@dataclass(frozen=True)
class Listing:
    """A file as the manifest beside it lists it, its name, size and token count agreeing with the file's."""

    sha256: str | None
    max_id: int | None
    tokenizer_sha256: str | None


def scan(train: Sequence[Shard], val: Sequence[Shard] = ()) -> Scan:
    """The provenance of ``train`` then ``val`` (module docstring), reading only the files that neither a manifest
    beside them nor this machine's cache vouches for."""
    shards = (*train, *val)
    stats = [shard.path.stat() for shard in shards]
    manifests: dict[Path, dict | None] = {}
    listings = [_listing(shard, info.st_size, manifests) for shard, info in zip(shards, stats)]
    tokenizers = {listing.tokenizer_sha256 if listing else None for listing in listings}
    tokenizer = tokenizers.pop() if len(tokenizers) == 1 else None
    if len(train) == 1 and len(val) == 1:
        found = _cached_pair(train[0], val[0], stats)
    else:
        found = _combine(train, val, [_digest(s, info, listing) for s, info, listing in zip(shards, stats, listings)])
    return replace(found, tokenizer_sha256=tokenizer)


def scan_files(train: Sequence[Shard], val: Sequence[Shard] = ()) -> Scan:
    """``scan`` reading every file, trusting no manifest and no cache (no tokenizer: that comes from manifests)."""
    if len(train) == 1 and len(val) == 1:
        return _scan_pair(train[0], val[0])
    return _combine(train, val, [hash_file(shard) for shard in (*train, *val)])


def read_ids(shard: Shard, digest) -> tuple[int, int]:
    """One pass over ``shard`` in 16 MiB reads, its bytes (header included) fed to ``digest``: its largest id and its
    smallest (0 when none is negative). Every read of token bytes for provenance goes through here."""
    width = np.dtype(shard.dtype).itemsize
    largest, smallest = -1, 0
    with open(shard.path, "rb") as handle:
        digest.update(handle.read(shard.offset))
        left = shard.tokens * width
        while left and (chunk := handle.read(min(left, _READ_BYTES // width * width))):
            digest.update(chunk)
            ids = np.frombuffer(chunk, dtype=shard.dtype)
            largest = max(largest, int(ids.max()))
            if ids.dtype.kind == "i":
                smallest = min(smallest, int(ids.min()))
            left -= len(chunk)
    return largest, smallest


def hash_file(shard: Shard) -> FileDigest:
    """``shard``'s digest from one pass over it."""
    digest = hashlib.sha256()
    largest, smallest = read_ids(shard, digest)
    size_bytes = shard.offset + shard.tokens * np.dtype(shard.dtype).itemsize
    return FileDigest(digest.hexdigest(), size_bytes, largest, smallest)


def _combine(train: Sequence[Shard], val: Sequence[Shard], digests: list[FileDigest]) -> Scan:
    """The fingerprint of one file, or of any set but a pair, from the files' digests (module docstring)."""
    if len(digests) == 1:
        fingerprint = digests[0].sha256[:16]
    else:
        splits = ["train"] * len(train) + ["val"] * len(val)
        lines = "".join(f"{split} {d.size_bytes} {d.sha256}\n" for split, d in zip(splits, digests))
        fingerprint = hashlib.sha256(lines.encode("ascii")).hexdigest()[:16]
    return Scan(fingerprint, *_extremes([(s.path, d.largest, d.smallest) for s, d in zip((*train, *val), digests)]))


def _extremes(found: list[tuple[Path, int, int]]) -> tuple[int, Path | None, int, Path | None]:
    """The largest id and the first file holding it; the smallest (0 when none is negative) and the first holding it."""
    largest, largest_in, smallest, smallest_in = -1, None, 0, None
    for path, top, bottom in found:
        if top > largest:
            largest, largest_in = top, path
        if bottom < smallest:
            smallest, smallest_in = bottom, path
    return largest, largest_in, smallest, smallest_in


def _scan_pair(train: Shard, val: Shard) -> Scan:
    """One training and one validation file hashed as one stream, as the fingerprint of a pair always was."""
    digest = hashlib.sha256()
    found = [(shard.path, *read_ids(shard, digest)) for shard in (train, val)]
    return Scan(digest.hexdigest()[:16], *_extremes(found))


def _identity(shard: Shard, info: os.stat_result) -> list:
    """What a file's cache entry is keyed by: its absolute path, size, modification time (ns) and how it is read."""
    where = str(shard.path.resolve())
    return [where, info.st_size, info.st_mtime_ns, shard.format, shard.dtype, shard.offset, shard.tokens]


def _cached_pair(train: Shard, val: Shard, stats: list[os.stat_result]) -> Scan:
    """``_scan_pair`` once per pair of files on this machine (``$SWEEP_CACHE/scans``, keyed as before)."""
    identity = [[_identity(train, stats[0])], [_identity(val, stats[1])]]  # as the key of any set of files was
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
    path = cache_dir() / "scans" / f"{key}.json"
    try:
        record = json.loads(path.read_text())
        return Scan(str(record["fingerprint"]), int(record["largest"]), _path_or_none(record["largest_in"]),
                    int(record["smallest"]), _path_or_none(record["smallest_in"]))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = _scan_pair(train, val)
    _write_json(path, {"fingerprint": found.fingerprint, "largest": found.largest,
                       "largest_in": _str_or_none(found.largest_in), "smallest": found.smallest,
                       "smallest_in": _str_or_none(found.smallest_in)})  # fmt: skip
    return found


def _digest(shard: Shard, info: os.stat_result, listing: Listing | None) -> FileDigest:
    """``shard``'s digest from the manifest beside it, else this machine's cache, else one pass (module docstring)."""
    if listing and listing.sha256 and listing.max_id is not None and np.dtype(shard.dtype).kind == "u":
        return FileDigest(listing.sha256, info.st_size, listing.max_id, 0)
    key = hashlib.sha256(json.dumps(_identity(shard, info)).encode()).hexdigest()
    path = cache_dir() / "digests" / f"{key}.json"
    try:
        record = json.loads(path.read_text())
        cached = FileDigest(str(record["sha256"]), int(record["size_bytes"]), int(record["largest"]),
                            int(record["smallest"]))  # fmt: skip
        if _is_sha256(cached.sha256) and cached.size_bytes == info.st_size:
            return cached
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = hash_file(shard)
    _write_json(path, asdict(found))
    return found


def _listing(shard: Shard, size_bytes: int, manifests: dict[Path, dict | None]) -> Listing | None:
    """How the manifest beside ``shard`` lists it, if it does with the file's size and token count (``manifests``:
    the manifests read so far, by directory)."""
    directory = shard.path.parent
    if directory not in manifests:
        manifests[directory] = _read_manifest(directory / MANIFEST)
    manifest = manifests[directory]
    entry = manifest["files"].get(shard.path.name) if manifest else None
    if not entry or not _is_count(entry.get("bytes"), size_bytes) or not _is_count(entry.get("tokens"), shard.tokens):
        return None
    max_id = entry.get("max_id")
    return Listing(entry["sha256"] if _is_sha256(entry.get("sha256")) else None,
                   max_id if _is_count(max_id) else None, manifest["tokenizer"])  # fmt: skip


def _read_manifest(path: Path) -> dict | None:
    """A manifest's file entries by name and its tokenizer's SHA-256; None where there is none or it is not one."""
    try:
        record = json.loads(path.read_text())
        entries = [entry for entry in record["files"] if isinstance(entry, dict) and isinstance(entry.get("name"), str)]
        files = {entry["name"]: entry for entry in entries}
        tokenizer = (record.get("tokenizer") or {}).get("sha256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return {"files": files, "tokenizer": tokenizer if _is_sha256(tokenizer) else None}


def _is_count(value, expected: int | None = None) -> bool:
    """``value`` is a non-negative integer (not a bool), equal to ``expected`` when given."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return ok and (expected is None or value == expected)


def _is_sha256(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _write_json(path: Path, record: dict) -> None:
    try:
        write_atomic(path, json.dumps(record).encode())
    except OSError:  # a read-only cache costs a pass next time, never the run
        pass


def _path_or_none(text: str | None) -> Path | None:
    return None if text is None else Path(text)


def _str_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)
