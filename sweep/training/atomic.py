"""Whole-file writes that a reader never sees half done: the bytes go to a temporary file beside the target
(``.NAME.XXXXXXXX.tmp``, hidden, so directory readers skip it) and are renamed over it; on any failure the temporary
file is removed. For this node's caches (the stdlib corpus, token-file digests, object-store copies' records)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, chunks: bytes | Iterable[bytes]) -> None:
    """Write ``chunks`` (bytes, or an iterable of them written in turn) to ``path`` atomically, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in [chunks] if isinstance(chunks, bytes) else chunks:
                out.write(chunk)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
