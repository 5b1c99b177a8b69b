"""The tokenizer ``sweep data prepare`` encodes with, loaded from a file the user gives (nothing fetched at run time).

Two kinds, each read by its own library (``pip install 'scaling-sweep[data]'``):

- a Hugging Face ``tokenizers`` JSON file (``tokenizer.json``: GPT-2, Llama 3, OLMo and most published tokenizers
  ship one), read by ``tokenizers.Tokenizer.from_file``, encoded without added special tokens;
- a tiktoken BPE ranks file (``cl100k_base.tiktoken`` and the like) with ``--tiktoken-encoding NAME`` naming which
  OpenAI encoding it is, whose split pattern and special tokens come from tiktoken's own definitions
  (``tiktoken_ext.openai_public``), with the ranks read from the file instead of downloaded.

Documents are separated by the end-of-text token: ``--eot-token`` names it, else the first of ``EOT_NAMES`` the
vocabulary has. The file's SHA-256 goes in the manifest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sweep.config import ConfigError

EOT_NAMES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eos|>", "[SEP]")
"""End-of-text tokens looked for, in order, when ``--eot-token`` is not given."""
TIKTOKEN_ENCODINGS = ("r50k_base", "p50k_base", "cl100k_base", "o200k_base")


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TokenizerFile:
    """What a worker process needs to load the tokenizer itself (a path, not a live object)."""

    path: str
    tiktoken_encoding: str | None = None
    eot_token: str | None = None


class Encoder:
    """A loaded tokenizer: ``encode(texts)`` -> lists of ids, ``vocab_size``, ``eot_id``."""

    def __init__(self, spec: TokenizerFile) -> None:
        path = Path(spec.path)
        if not path.is_file():
            raise ConfigError(f"--tokenizer: {path} is not a file")
        if spec.tiktoken_encoding:
            self._encoding = _tiktoken(path, spec.tiktoken_encoding)
            self.vocab_size = self._encoding.n_vocab
            specials = self._encoding._special_tokens  # name -> id
            self._encode = lambda texts: self._encoding.encode_ordinary_batch(texts)
        else:
            tokenizers = _import("tokenizers")
            try:
                self._tokenizer = tokenizers.Tokenizer.from_file(str(path))
            except Exception as error:  # noqa: BLE001 - tokenizers raises a bare Exception for a file it cannot parse
                raise ConfigError(f"--tokenizer: {path} is not a Hugging Face tokenizers JSON file ({error}); give a "
                                  "tiktoken ranks file with --tiktoken-encoding NAME instead") from None  # fmt: skip
            self.vocab_size = self._tokenizer.get_vocab_size(with_added_tokens=True)
            specials = self._tokenizer.get_vocab(with_added_tokens=True)
            self._encode = lambda texts: [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]
        self.eot_id = _eot(specials, spec.eot_token, path)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self._encode(texts)


def _import(name: str):
    try:
        return __import__(name)
    except ImportError:
        raise ConfigError(f"sweep data prepare needs the {name} package: pip install 'scaling-sweep[data]'") from None


def _tiktoken(path: Path, encoding: str):
    """tiktoken's own definition of ``encoding`` (pattern, special tokens) with its ranks read from ``path``."""
    if encoding not in TIKTOKEN_ENCODINGS:
        raise ConfigError(f"--tiktoken-encoding: {encoding!r} is not one of {', '.join(TIKTOKEN_ENCODINGS)}")
    tiktoken = _import("tiktoken")
    from tiktoken import load as tiktoken_load
    from tiktoken_ext import openai_public

    try:
        ranks = tiktoken_load.load_tiktoken_bpe(str(path))
    except (ValueError, OSError) as error:  # base64 (binascii.Error) or line-format errors of a file that is not one
        raise ConfigError(f"--tokenizer: {path} is not a tiktoken ranks file ({error})") from None
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *args, **kwargs: ranks  # the definition asks for its URL: give the file
    try:
        definition = getattr(openai_public, encoding)()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**definition)


def _eot(vocabulary: dict, name: str | None, path: Path) -> int:
    if name is not None:
        if name not in vocabulary:
            raise ConfigError(f"--eot-token: {name!r} is not in the vocabulary of {path}")
        return int(vocabulary[name])
    for candidate in EOT_NAMES:
        if candidate in vocabulary:
            return int(vocabulary[candidate])
    raise ConfigError(f"--tokenizer: {path} has none of the end-of-text tokens {', '.join(EOT_NAMES)}: name the one that "
                      "separates documents with --eot-token")  # fmt: skip
