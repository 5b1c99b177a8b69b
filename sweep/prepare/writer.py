"""``sweep data prepare``: input files tokenized in parallel processes into ``.npy`` shards, with a validation split,
a progress line, resumption after a kill, and a manifest.

- Each input file is a unit: a worker process (``spawn``: the tokenizers' threads do not survive a fork) reads its
  documents (``sweep.prepare.sources``), prefixes each with the end-of-text id (as llm.c's and modded-nanogpt's
  preparation scripts do) and returns its tokens; the driver writes them, in input order, as shards of at most
  ``shard_tokens`` (``train-UUUUUU-KKK.npy``, ``val-UUUUUU-KKK.npy``; ``uint16`` where the vocabulary fits, else
  ``uint32``), each written to a temporary name and renamed, so a shard on disk is whole.
- Validation: a document goes to the validation split when a hash of (its file's SHA-256, its index) falls below
  ``val_fraction``, so the split is fixed by the data, not by the order of work; a file that is a single document
  gives the last ``val_fraction`` of its tokens instead.
- Resumption: ``progress.jsonl`` gets one line per finished unit (its source, hash and shards) after its shards are
  renamed into place; a rerun skips the units recorded whose shards are all there with their sizes, and redoes the
  rest. Its first line records the tokenizer's hash, the inputs and the options, and once a unit is finished a rerun
  with others is refused: one directory holds one dataset.
- ``manifest.json`` (written whole at the end): the shards (name, split, tokens, bytes, the SHA-256 of the whole
  file, largest id), vocabulary, dtype, end-of-text id, the tokenizer's file name and SHA-256, and each source's
  path, bytes and SHA-256. A sweep reads the shards with ``data.path: DIR/train-*.npy`` and ``data.val_path:
  DIR/val-*.npy``, takes each shard's hash and largest id from the manifest while its size agrees (reading no
  token) and records the tokenizer's hash with its runs (``sweep.training.provenance``).

Memory: a unit's tokens are held while its shards are written (4 bytes per token of the largest input file, per
worker in flight); split a very large file before preparing it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sweep.config import ConfigError
from sweep.prepare.sources import documents, expand_inputs
from sweep.prepare.tokenizer import Encoder, TokenizerFile, file_sha256

MANIFEST, PROGRESS = "manifest.json", "progress.jsonl"


@dataclass(frozen=True)
class PrepareOptions:
    shard_tokens: int = 100_000_000
    val_fraction: float = 0.005
    column: str = "text"

    def __post_init__(self) -> None:
        if self.shard_tokens < 1:
            raise ConfigError(f"--shard-tokens: give a positive number of tokens per shard, got {self.shard_tokens}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction: give a share in [0, 1), got {self.val_fraction}")


_ENCODER: Encoder | None = None


def _worker_encoder(spec: TokenizerFile) -> Encoder:
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = Encoder(spec)
    return _ENCODER


def is_validation(source_hash: str, index: int, fraction: float) -> bool:
    """Whether document ``index`` of the file hashed ``source_hash`` belongs to the validation split."""
    digest = hashlib.blake2b(f"{source_hash}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64


def tokenize_file(path: str, spec: TokenizerFile, options: PrepareOptions) -> tuple[np.ndarray, np.ndarray, int, str]:
    """One unit, in a worker: (train ids, validation ids, documents, the file's SHA-256)."""
    encoder = _worker_encoder(spec)
    source_hash = file_sha256(Path(path))
    train, val, count = [], [], 0
    for batch in documents(Path(path), options.column):
        for ids in encoder.encode(batch):
            (val if is_validation(source_hash, count, options.val_fraction) else train).append([encoder.eot_id, *ids])
            count += 1
    if count == 1 and options.val_fraction > 0:  # one document: its tail is the validation split
        tokens = (train or val)[0]
        cut = len(tokens) - round(options.val_fraction * len(tokens))
        train, val = [tokens[:cut]], [tokens[cut:]]
    flat = [np.fromiter((t for doc in part for t in doc), dtype=np.int64) for part in (train, val)]
    return flat[0], flat[1], count, source_hash


def _write_shards(out: Path, split: str, unit: int, tokens: np.ndarray, dtype: str, shard_tokens: int) -> list[dict]:
    files = []
    for k, start in enumerate(range(0, len(tokens), shard_tokens)):
        name = f"{split}-{unit:06d}-{k:03d}.npy"
        shard = tokens[start:start + shard_tokens].astype(dtype)
        temporary = out / f".{name}.tmp"
        with open(temporary, "wb") as handle:
            np.save(handle, shard)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(out / name)
        files.append({"name": name, "split": split, "tokens": int(len(shard)), "bytes": (out / name).stat().st_size,
                      "sha256": file_sha256(out / name), "max_id": int(shard.max())})  # fmt: skip
    return files


def _finished_units(out: Path, header: dict) -> dict[int, dict]:
    """The units ``progress.jsonl`` records whose shards are all in place; refuses a directory of another dataset."""
    path = out / PROGRESS
    if not path.exists():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if len(lines) <= 1:  # no unit finished: nothing to keep
        return {}
    if lines[0] != header:
        raise ConfigError(f"--out: {out} holds a dataset prepared with another tokenizer, inputs or options "
                          f"({PROGRESS}); give a new --out directory")  # fmt: skip
    done = {}
    for record in lines[1:]:
        if all((out / f["name"]).is_file() and (out / f["name"]).stat().st_size == f["bytes"] for f in record["files"]):
            done[record["unit"]] = record
    return done


def prepare(inputs: list[str], tokenizer: TokenizerFile, out: str | Path, options: PrepareOptions = PrepareOptions(),
            workers: int | None = None, stop_after: int | None = None) -> dict:  # fmt: skip
    """Tokenize ``inputs`` into ``out`` (module docstring); returns the manifest. ``stop_after``: return after that
    many units of this call (tests use it to stand for a kill)."""
    files = expand_inputs(inputs)
    encoder = Encoder(tokenizer)  # fails fast, here, on a bad tokenizer
    dtype = "uint16" if encoder.vocab_size <= 2**16 else "uint32"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_hash = file_sha256(Path(tokenizer.path))
    header = {"tokenizer_sha256": tokenizer_hash, "tiktoken_encoding": tokenizer.tiktoken_encoding, "eot_id": encoder.eot_id,
              "inputs": [str(p) for p in files], "options": asdict(options)}  # fmt: skip
    done = _finished_units(out, header)
    if not (out / PROGRESS).exists() or not done:
        (out / PROGRESS).write_text(json.dumps(header) + "\n")
        done = {}
    todo = [i for i in range(len(files)) if i not in done]
    progress = Progress(len(files), len(done))
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending = {}
        queue = list(todo)
        for finished, unit in enumerate(todo):
            while queue and len(pending) < 2 * workers:
                i = queue.pop(0)
                pending[i] = pool.submit(tokenize_file, str(files[i]), tokenizer, options)
            train, val, count, source_hash = pending.pop(unit).result()
            written = _write_shards(out, "train", unit, train, dtype, options.shard_tokens)
            written += _write_shards(out, "val", unit, val, dtype, options.shard_tokens)
            record = {"unit": unit, "source": str(files[unit]), "bytes": files[unit].stat().st_size, "sha256": source_hash,
                      "documents": count, "files": written}  # fmt: skip
            with open(out / PROGRESS, "a") as handle:
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            done[unit] = record
            progress.update(len(train) + len(val))
            if stop_after is not None and finished + 1 >= stop_after:
                for future in pending.values():
                    future.cancel()
                return {}
    manifest = {"format": "npy", "dtype": dtype, "vocab_size": encoder.vocab_size, "eot_id": encoder.eot_id,
                "tokenizer": {"file": Path(tokenizer.path).name, "sha256": tokenizer_hash, "tiktoken_encoding": tokenizer.tiktoken_encoding},
                "options": asdict(options),
                "sources": [{"path": done[i]["source"], "bytes": done[i]["bytes"], "sha256": done[i]["sha256"],
                             "documents": done[i]["documents"]} for i in range(len(files))],
                "files": [f for i in range(len(files)) for f in done[i]["files"]]}  # fmt: skip
    for split in ("train", "val"):
        manifest[f"{split}_tokens"] = sum(f["tokens"] for f in manifest["files"] if f["split"] == split)
    temporary = out / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1) + "\n")
    temporary.replace(out / MANIFEST)
    return manifest


class Progress:
    """One line on stderr per finished file (redrawn in place on a terminal): files, tokens, tokens/s."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done, self.tokens, self.began = total, done, 0, time.monotonic()

    def update(self, tokens: int) -> None:
        self.done, self.tokens = self.done + 1, self.tokens + tokens
        rate = self.tokens / max(1e-9, time.monotonic() - self.began)
        end = "\r" if sys.stderr.isatty() and self.done < self.total else "\n"
        print(f"prepare: {self.done}/{self.total} files, {self.tokens:,} tokens this run, {rate:,.0f} tokens/s", end=end, file=sys.stderr)
