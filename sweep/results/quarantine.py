"""Quarantine: damaged files of a results root are moved aside with their reason, never deleted, never fatal.

A file that cannot be read as what its place says it is (a ledger file that is not a one-row Parquet table of
``RUNS_SCHEMA`` for the run its name gives, a metrics file of another schema, a checkpoint ``torch.load`` refuses)
is moved, by whoever may write that place, to::

    RESULTS/quarantine/<its path under RESULTS>.<UTC time>            the file, byte for byte
    RESULTS/quarantine/<its path under RESULTS>.<UTC time>.reason.json  {"original", "reason", "set_aside_at"}

so nothing is lost (a person can inspect or restore it), no reader of ``runs/`` or ``metrics/`` meets it again,
and ``sweep status`` can list what was set aside and why. Who moves: the driver holding the results lock (ledger
and metrics files, before it schedules anything) and a worker holding a run's claim (that run's checkpoints).
Read-only commands (``status``, ``fit``, ``report``, a notebook) never move anything: they skip a damaged file
and name it in one line (``sweep.results.storage``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow.fs as pafs

QUARANTINE_DIR = "quarantine"
_REASON_SUFFIX = ".reason.json"


@dataclass(frozen=True)
class DamagedFile:
    """A file of the results root that could not be read as what its place says it is."""

    path: str
    """Its full path on the store's filesystem (``ResultsStore.base`` + ``/`` + the path under the root)."""
    reason: str
    """One line: what is wrong with it (e.g. ``not a Parquet file``, ``column flops is string, not double``)."""
    kind: str = "damaged"
    """``damaged``: its content is wrong (set aside by its sweep's driver); ``stray``: it lies outside any sweep's
    folder (set aside by any driver); ``unreadable``: the store failed to read it (permissions, a network error):
    named and skipped, never set aside, since the file itself may be good."""


def set_aside(fs: pafs.FileSystem, base: str, damaged: DamagedFile) -> str:
    """Move ``damaged.path`` (under ``base``) into ``base/quarantine/`` with a reason file beside it; return the
    new path. A file already gone (set aside by someone else meanwhile) is not an error: returns ``""``."""
    relative = damaged.path.removeprefix(base.rstrip("/") + "/")
    stamp = datetime.now(timezone.utc)
    target = f"{base}/{QUARANTINE_DIR}/{relative}.{stamp.strftime('%Y%m%dT%H%M%S%fZ')}"
    fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
    try:
        fs.move(damaged.path, target)
    except FileNotFoundError:
        return ""
    note = {"original": relative, "reason": damaged.reason, "set_aside_at": stamp.isoformat(timespec="seconds")}
    with fs.open_output_stream(target + _REASON_SUFFIX) as out:
        out.write(json.dumps(note).encode())
    return target


def quarantined(fs: pafs.FileSystem, base: str) -> list[dict]:
    """What has been set aside under ``base``, oldest first: ``{"path", "original", "reason", "set_aside_at"}``
    (``path`` under the root). A reason file that cannot be read still lists its file, with the reason unknown."""
    selector = pafs.FileSelector(f"{base}/{QUARANTINE_DIR}", recursive=True, allow_not_found=True)
    entries = []
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.File or not info.path.endswith(_REASON_SUFFIX):
            continue
        path = info.path.removesuffix(_REASON_SUFFIX)
        try:
            with fs.open_input_stream(info.path) as handle:
                note = json.loads(handle.read())
            entry = {"original": str(note["original"]), "reason": str(note["reason"]), "set_aside_at": str(note["set_aside_at"])}
        except (OSError, ValueError, KeyError, TypeError):
            entry = {"original": None, "reason": "unknown (its reason file is unreadable)", "set_aside_at": None}
        entries.append({"path": path.removeprefix(base.rstrip("/") + "/"), **entry})
    return sorted(entries, key=lambda e: (e["set_aside_at"] or "", e["path"]))
