"""The documents of one input file of ``sweep data prepare``, by its suffix.

- ``.txt`` (or any other suffix): the file is one document, read as UTF-8 (undecodable bytes replaced).
- ``.jsonl`` / ``.json``: one JSON object per line; the document is its ``column`` field (default ``text``). A line
  that is not an object with that string field is an error naming the file and line.
- ``.parquet``: the ``column`` of every row, read a record batch at a time with pyarrow.

Inputs are files, directories (every file inside, recursively, sorted) or globs, expanded in the order given.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path

from sweep.config import ConfigError

BATCH_DOCUMENTS = 256
"""Documents handed to the tokenizer at once."""


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Every input file, in the order given (directories and globs sorted); an input that matches nothing is an error."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
        if not found:
            raise ConfigError(f"INPUT: {item} matches no file")
        files += found
    seen: dict[Path, None] = {}
    for path in files:
        seen.setdefault(path.resolve(), None)
    return list(seen)


def documents(path: Path, column: str) -> Iterator[list[str]]:
    """The documents of ``path`` in batches of ``BATCH_DOCUMENTS`` (module docstring)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _parquet(path, column)
    elif suffix in (".jsonl", ".json"):
        yield from _batched(_jsonl(path, column))
    else:
        yield [path.read_text(encoding="utf-8", errors="replace")]


def _batched(items: Iterator[str]) -> Iterator[list[str]]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH_DOCUMENTS:
            yield batch
            batch = []
    if batch:
        yield batch


def _jsonl(path: Path, column: str) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ConfigError(f"{path}:{number}: not a JSON line ({error.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get(column), str):
                raise ConfigError(f"{path}:{number}: no string field {column!r} (--column names the text field)")
            yield record[column]


def _parquet(path: Path, column: str) -> Iterator[list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise ConfigError(f"{path}: not a readable Parquet file ({error})") from None
    if column not in table.schema_arrow.names:
        raise ConfigError(f"{path}: no column {column!r} (has {', '.join(table.schema_arrow.names)}; --column names it)")
    for batch in table.iter_batches(batch_size=BATCH_DOCUMENTS, columns=[column]):
        yield [text for text in batch.column(0).to_pylist() if text]
