"""Token files in an object store: ``data.path`` / ``data.val_path`` given as a URI are copied once per node.

A URI with a scheme ``pyarrow.fs`` opens (``s3://bucket/web/train-*.npy``, ``gs://``, ``hdfs://``, ``file://``)
names what a local path names (``sweep.training.shards``): a directory (a prefix: its ``.bin`` and ``.npy`` files),
one object, or a glob on the last path component (``*`` and ``[...]``; a ``?`` starts the URI's query). Before a
corpus is read (``load_corpus``: on the driver at plan time and at each run's start on its worker) those files, and
the ``manifest.json`` of ``sweep data prepare`` beside them, are copied into this node's cache::

    $SWEEP_CACHE/remote/<first 32 hex of the SHA-256 of the directory's URI without credentials>/
        source.txt          that URI, redacted (``sweep.results.uri``)
        files/NAME          the copies; ``localize`` returns this folder, a file in it or the glob over it
        records/NAME.json   what each copy was made from: size, remote modification time, its SHA-256, its mtime
        .lock               an ``flock`` held while the entry is checked and filled

The cache entry is the remote *directory*, so a training glob and a validation glob of one prefix share one copy and
the manifest beside them, which ``sweep.training.provenance`` then reads as it does beside local files. A copy is
reused, reading nothing remote but the listing, while the object's size and modification time are those recorded,
the local file is the one recorded (size, mtime), and its recorded SHA-256 is the manifest's where the manifest
lists the file at that size; anything else copies it again. Each copy streams into a temporary name, hashed on the
way, and is renamed into place only when its size is the listed one and its SHA-256 the manifest's (a mismatch is
refused: one ``ConfigError`` line naming the key and the file). Local files no longer in the remote directory are
dropped, so the local directory or glob names exactly the remote files. Every process on a node takes the entry's
``flock`` before looking, so concurrent runs wait for one copy instead of racing; the kernel drops the lock if its
holder dies, and the next holder removes the temporary files it left. One line per copying process goes to stderr
(files, bytes, seconds, host).

Errors (a URI pyarrow does not open, no such bucket or prefix, no file matched, access denied, a failed copy) are one
``ConfigError`` line naming the key, the URI shown redacted and pyarrow's message scrubbed of the URI's secrets.
Credentials come from each node's environment; ``sweep.config`` refuses them inside a sweep file's URI.

Hand-written where libraries exist: ``pyarrow.fs.copy_files`` copies but neither hashes nor checks what is already
there, and fsspec's caching filesystems would add s3fs/gcsfs beside pyarrow and check the store's own checksum (an
ETag), not the manifest's SHA-256; what is written here is that check, around pyarrow's reads.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from sweep.config import ConfigError, DataConfig, cache_dir
from sweep.results.uri import redact_uri, scrub
from sweep.training.atomic import write_atomic
from sweep.training.provenance import MANIFEST

SHARD_SUFFIXES = (".bin", ".npy")
"""What a directory is read for, as ``sweep.training.shards.resolve`` reads a local one."""
_GLOB_CHARACTERS = "*["
_CHUNK_BYTES = 8 << 20
_PARALLEL_COPIES = 8
"""Objects copied at once: each is a stream of requests, so a few in flight fill a node's link better than one."""


@dataclass(frozen=True)
class RemoteFile:
    """One object as the store lists it."""

    name: str
    path: str
    """The object's path in its filesystem (``bucket/web/train-000.npy``)."""
    size_bytes: int
    mtime_ns: int | None


@dataclass(frozen=True)
class Selection:
    """What a URI names: its directory, the objects to copy (the manifest too, when there is one), every file name
    the directory holds (the copies the cache may keep), and the URI's last part as read locally."""

    directory: str
    wanted: tuple[RemoteFile, ...]
    manifest: RemoteFile | None
    present: frozenset[str]
    local_name: str
    """``""`` for a directory, else the object's name or the glob."""


def is_uri(spec: str) -> bool:
    return "://" in spec


def localized(config: DataConfig) -> DataConfig:
    """``config`` with each object-store URI among ``path`` and ``val_path`` replaced by this node's copy."""
    if config.source != "tokens" or not any(is_uri(spec) for spec in (config.path, config.val_path) if spec):
        return config
    path = localize(config.path, "data.path")
    val_path = localize(config.val_path, "data.val_path") if config.val_path is not None else None
    return config.model_copy(update={"path": path, "val_path": val_path})


def localize(spec: str, key: str) -> str:
    """The local path (directory, file or glob) that reads what ``spec`` names; a URI's files copied into this
    node's cache first when not already there (module docstring). A local path is returned unchanged."""
    if not is_uri(spec):
        return spec
    filesystem, path = _open(spec, key)
    selection = _select(filesystem, path, spec, key)
    scheme, query = spec.partition("://")[0], redact_uri(spec).partition("?")[2]
    source = f"{scheme}://{selection.directory}" + (f"?{query}" if query else "")
    entry = cache_dir() / "remote" / hashlib.sha256(source.encode()).hexdigest()[:32]
    cache = NodeCache(filesystem, entry, key, spec)
    with cache.locked(source):
        copied, size_bytes, seconds = cache.sync(selection)
    if copied:
        print(f"sweep: {key}: copied {copied} file{'s' if copied > 1 else ''} ({_amount(size_bytes)}) from "
              f"{redact_uri(spec)} to {cache.files} in {seconds:.1f} s on {socket.gethostname()}", file=sys.stderr, flush=True)  # fmt: skip
    return str(cache.files / selection.local_name) if selection.local_name else str(cache.files)


def _open(spec: str, key: str) -> tuple[pafs.FileSystem, str]:
    try:
        filesystem, path = pafs.FileSystem.from_uri(spec)
    except (ValueError, OSError) as error:
        raise _error(key, spec, f"{redact_uri(spec)}: cannot open it", error) from None
    return filesystem, path.rstrip("/") or path


def _error(key: str, spec: str, what: str, error: BaseException) -> ConfigError:
    """One line: ``key: what (pyarrow's first line, scrubbed of the URI's secrets)``."""
    message = scrub(str(error).strip(), spec).splitlines()
    return ConfigError(f"{key}: {what} ({message[0] if message else type(error).__name__})")


def _select(filesystem: pafs.FileSystem, path: str, spec: str, key: str) -> Selection:
    """Which objects ``spec`` names (module docstring); ``ConfigError`` where it names none."""
    parent, _, name = path.rpartition("/")
    parent = parent or ("/" if path.startswith("/") else parent)
    shown = redact_uri(spec)
    if any(char in parent for char in _GLOB_CHARACTERS):
        raise ConfigError(f"{key}: {shown}: only the last part of an object-store URI may be a glob")
    if any(char in name for char in _GLOB_CHARACTERS):
        listing = _list(filesystem, parent, spec, key)
        hidden_too = name.startswith(".")
        wanted = [f for f in listing if fnmatch.fnmatchcase(f.name, name) and (hidden_too or not f.name.startswith("."))]
        if not wanted:
            raise ConfigError(f"{key}: no object matches {shown}")
        return _selection(parent, wanted, listing, name)
    try:
        info = filesystem.get_file_info(path)
    except OSError as error:
        raise _error(key, spec, f"cannot read {shown}", error) from None
    if info.type == pafs.FileType.File:
        listing = _list(filesystem, parent, spec, key)
        return _selection(parent, [f for f in listing if f.name == name], listing, name)
    if info.type != pafs.FileType.Directory:
        raise ConfigError(f"{key}: nothing at {shown} (no such object, prefix or bucket)")
    listing = _list(filesystem, path, spec, key)
    wanted = [f for f in listing if f.name.endswith(SHARD_SUFFIXES) and not f.name.startswith(".")]
    if not wanted:
        raise ConfigError(f"{key}: {shown} holds no .bin or .npy files (name others with a glob)")
    return _selection(path, wanted, listing, "")


def _list(filesystem: pafs.FileSystem, directory: str, spec: str, key: str) -> list[RemoteFile]:
    """The files directly in ``directory``, by name."""
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(directory, recursive=False))
    except OSError as error:
        raise _error(key, spec, f"cannot list {redact_uri(spec)}", error) from None
    files = [RemoteFile(i.base_name, i.path, i.size, i.mtime_ns) for i in infos if i.type == pafs.FileType.File]
    return sorted(files, key=lambda f: f.name)


def _selection(directory: str, wanted: list[RemoteFile], listing: list[RemoteFile], local_name: str) -> Selection:
    manifest = next((f for f in listing if f.name == MANIFEST), None)
    present = frozenset(f.name for f in listing)
    return Selection(directory, tuple(f for f in wanted if f.name != MANIFEST), manifest, present, local_name)


class NodeCache:
    """One remote directory's copy on this node (module docstring): ``files/``, ``records/`` and ``.lock``."""

    def __init__(self, filesystem: pafs.FileSystem, entry: Path, key: str, spec: str) -> None:
        self.filesystem, self.entry, self.key, self.spec = filesystem, entry, key, spec
        """``spec``: the URI asked for, whose secrets are scrubbed from every message."""
        self.files, self.records = entry / "files", entry / "records"

    @contextmanager
    def locked(self, source: str) -> Iterator[None]:
        """Hold the entry's ``flock`` (waiting for another process's copy); leftovers of a dead holder removed."""
        try:
            for folder in (self.files, self.records):
                folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.entry / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise ConfigError(f"{self.key}: cannot use the cache {self.entry}: {error.strerror or error}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"sweep: {self.key}: waiting for another process on this node copying {source}", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            for leftover in [*self.files.glob(".*.tmp"), *self.records.glob(".*.tmp")]:
                leftover.unlink(missing_ok=True)
            if not (self.entry / "source.txt").exists():
                write_atomic(self.entry / "source.txt", (source + "\n").encode())
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    def sync(self, selection: Selection) -> tuple[int, int, float]:
        """Make the copies current (module docstring); returns how many files were copied, their bytes, seconds."""
        started = time.monotonic()
        self._drop_absent(selection.present)
        stale = [] if selection.manifest is None or self._is_current(selection.manifest, None) else [selection.manifest]
        for remote in stale:
            self._copy(remote, None)
        listed = _manifest_hashes(self.files / MANIFEST) if selection.manifest else {}
        expected = {f.name: _listed_sha256(listed, f) for f in selection.wanted}
        todo = [f for f in selection.wanted if not self._is_current(f, expected[f.name])]
        with ThreadPoolExecutor(max_workers=max(1, min(_PARALLEL_COPIES, len(todo)))) as pool:
            list(pool.map(lambda remote: self._copy(remote, expected[remote.name]), todo))
        copied = stale + todo
        return len(copied), sum(f.size_bytes for f in copied), time.monotonic() - started

    def _drop_absent(self, present: frozenset[str]) -> None:
        """Remove copies (and their records) of files the remote directory no longer holds."""
        for local in self.files.iterdir():
            if not local.name.startswith(".") and local.name not in present:
                local.unlink(missing_ok=True)
                (self.records / f"{local.name}.json").unlink(missing_ok=True)

    def _is_current(self, remote: RemoteFile, sha256: str | None) -> bool:
        """The copy of ``remote`` is the one recorded, made from this version of it, with the expected hash."""
        try:
            record = json.loads((self.records / f"{remote.name}.json").read_text())
            local = (self.files / remote.name).stat()
        except (OSError, ValueError):
            return False
        return (isinstance(record, dict) and local.st_size == remote.size_bytes == record.get("size_bytes")
                and local.st_mtime_ns == record.get("local_mtime_ns")
                and (remote.mtime_ns is None or remote.mtime_ns == record.get("remote_mtime_ns"))
                and (sha256 is None or sha256 == record.get("sha256")))  # fmt: skip

    def _copy(self, remote: RemoteFile, sha256: str | None) -> None:
        """Copy ``remote`` into ``files/`` under a temporary name, check its size and hash, rename, record it."""
        shown = f"{self.spec.partition('://')[0]}://{remote.path}"
        target = self.files / remote.name
        (self.records / f"{remote.name}.json").unlink(missing_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.files, prefix=f".{remote.name}.", suffix=".tmp")
        os.close(fd)
        try:
            got, size_bytes = _copy_object(self.filesystem, remote.path, Path(temporary))
            if size_bytes != remote.size_bytes:
                raise ConfigError(f"{self.key}: {shown} changed while it was copied ({remote.size_bytes:,} bytes "
                                  f"listed, {size_bytes:,} read): run again")
            if sha256 is not None and got != sha256:
                target.unlink(missing_ok=True)  # nor is an older copy: the cache never holds what the manifest denies
                raise ConfigError(f"{self.key}: {shown} does not match its {MANIFEST}: SHA-256 {got[:16]}... where the "
                                  f"manifest says {sha256[:16]}... (not kept)")
            os.replace(temporary, target)
            record = {"size_bytes": size_bytes, "sha256": got, "remote_mtime_ns": remote.mtime_ns,
                      "local_mtime_ns": target.stat().st_mtime_ns}  # fmt: skip
            write_atomic(self.records / f"{remote.name}.json", (json.dumps(record) + "\n").encode())
        except OSError as error:
            raise _error(self.key, self.spec, f"cannot copy {shown} into {self.files}", error) from None
        finally:
            Path(temporary).unlink(missing_ok=True)


def _copy_object(filesystem: pafs.FileSystem, path: str, target: Path) -> tuple[str, int]:
    """Stream object ``path`` into ``target``: its SHA-256 (hex) and how many bytes were read."""
    digest, size_bytes = hashlib.sha256(), 0
    with filesystem.open_input_stream(path) as source, open(target, "wb") as out:
        while chunk := source.read(_CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
            size_bytes += len(chunk)
    return digest.hexdigest(), size_bytes


def _manifest_hashes(path: Path) -> dict[str, tuple[int, str]]:
    """The (bytes, SHA-256) a ``sweep data prepare`` manifest lists per file name; empty where it is not one."""
    try:
        entries = json.loads(path.read_text())["files"]
        return {e["name"]: (e["bytes"], e["sha256"]) for e in entries
                if isinstance(e.get("name"), str) and isinstance(e.get("bytes"), int) and isinstance(e.get("sha256"), str)}  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _listed_sha256(listed: dict[str, tuple[int, str]], remote: RemoteFile) -> str | None:
    """The manifest's SHA-256 of ``remote`` where it lists it at its size (a stale entry is not trusted, as
    ``sweep.training.provenance`` does not trust one)."""
    size_bytes, sha256 = listed.get(remote.name, (None, None))
    return sha256.lower() if size_bytes == remote.size_bytes else None


def _amount(size_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:,.2f} {unit}"
    return f"{size_bytes} bytes"
