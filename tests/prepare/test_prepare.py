"""``sweep data prepare`` (``sweep.prepare``): a BPE tokenizer trained here, offline, on a generated corpus; its
text, JSONL and Parquet files prepared into shards whose tokens equal the tokenizer's own encoding, split, resumed
after a stand-in for a kill, refused with one line when the input or tokenizer is bad."""

import json

import numpy as np
import pandas as pd
import pytest

from sweep.cli import main
from sweep.prepare.tokenizer import Encoder, TokenizerFile
from sweep.prepare.writer import PrepareOptions, prepare

WORDS = "the model loss falls as compute grows and data and parameters scale together in a law".split()


def generated_documents(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(5, 60)))) + "." for _ in range(count)]


def train_tokenizer(texts: list[str], path) -> None:
    """A byte-level BPE tokenizer of at most 300 ids trained offline on ``texts``, saved as tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<unk>"]))
    tokenizer.save(str(path))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tokenizer.json (BPE trained on the corpus, at most 300 ids) and one input of each kind."""
    root = tmp_path_factory.mktemp("corpus")
    texts = generated_documents(400, 0)
    train_tokenizer(texts, root / "tokenizer.json")
    inputs = root / "inputs"
    inputs.mkdir()
    (inputs / "a.txt").write_text(" ".join(texts[:50]))
    with open(inputs / "b.jsonl", "w") as handle:
        for text in texts[50:250]:
            handle.write(json.dumps({"text": text, "id": 1}) + "\n")
    pd.DataFrame({"body": texts[250:]}).to_parquet(inputs / "c.parquet")
    return root, texts


def test_shards_hold_the_tokenizers_own_encoding_with_a_validation_split_and_a_manifest(corpus, tmp_path):
    root, texts = corpus
    spec = TokenizerFile(str(root / "tokenizer.json"))
    out = tmp_path / "data"
    options = PrepareOptions(shard_tokens=500, val_fraction=0.1, column="text")
    manifest = prepare([str(root / "inputs" / "a.txt"), str(root / "inputs" / "b.jsonl")], spec, out, options, workers=2)
    encoder = Encoder(spec)
    files = {f["name"]: f for f in manifest["files"]}
    tokens = {split: np.concatenate([np.load(out / n) for n in sorted(files) if files[n]["split"] == split]) for split in ("train", "val")}
    assert all(np.load(out / n).dtype == np.uint16 and len(np.load(out / n)) <= 500 for n in files)
    # every document (prefixed by end-of-text) lands whole in exactly one split, in order
    expected = [encoder.eot_id, *encoder.encode([" ".join(texts[:50])])[0]]
    jsonl = [[encoder.eot_id, *ids] for ids in encoder.encode(texts[50:250])]
    total = len(expected) + sum(map(len, jsonl))
    assert manifest["train_tokens"] + manifest["val_tokens"] == total == len(tokens["train"]) + len(tokens["val"])
    assert 0.03 < manifest["val_tokens"] / total < 0.2  # ~10% of the documents, and the text file's tail
    assert manifest["vocab_size"] == encoder.vocab_size and manifest["eot_id"] == encoder.eot_id and len(manifest["sources"]) == 2
    assert manifest["tokenizer"]["sha256"] and all(s["sha256"] for s in manifest["sources"])
    assert (out / "manifest.json").exists()
    from sweep.config import DataConfig
    from sweep.training.data import load_corpus

    corpus = load_corpus(DataConfig(source="tokens", path=str(out / "train-*.npy"), val_path=str(out / "val-*.npy"),
                                    vocab_size=manifest["vocab_size"]))  # what the CLI tells the user to write
    assert len(corpus.train) == manifest["train_tokens"] and len(corpus.val) == manifest["val_tokens"]


def test_a_rerun_after_a_kill_resumes_and_gives_the_same_shards(corpus, tmp_path):
    root, _ = corpus
    spec, options = TokenizerFile(str(root / "tokenizer.json")), PrepareOptions(shard_tokens=700, val_fraction=0.05, column="body")
    inputs = [str(root / "inputs" / "c.parquet"), str(root / "inputs" / "a.txt")]
    whole = prepare(inputs, spec, tmp_path / "whole", options, workers=1)
    assert prepare(inputs, spec, tmp_path / "cut", options, workers=1, stop_after=1) == {}  # killed after one file
    assert not (tmp_path / "cut" / "manifest.json").exists()
    resumed = prepare(inputs, spec, tmp_path / "cut", options, workers=1)
    assert [(f["name"], f["sha256"]) for f in resumed["files"]] == [(f["name"], f["sha256"]) for f in whole["files"]]
    with pytest.raises(Exception, match="another tokenizer, inputs or options"):
        prepare(inputs, spec, tmp_path / "cut", PrepareOptions(shard_tokens=99, column="body"), workers=1)


def test_the_cli_prepares_and_refuses_bad_input_with_one_line(corpus, tmp_path, capsys):
    root, _ = corpus
    tokenizer = str(root / "tokenizer.json")
    assert main(["data", "prepare", str(root / "inputs" / "b.jsonl"), "--tokenizer", tokenizer, "--out", str(tmp_path / "d"),
                 "--workers", "1"]) == 0  # fmt: skip
    assert "val_path:" in capsys.readouterr().out
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"body": 3}\n')
    cases = [
        ([str(tmp_path / "bad.jsonl")], f"{tmp_path / 'bad.jsonl'}:2: no string field 'text'"),
        ([str(tmp_path / "nothing-*.txt")], "matches no file"),
        ([str(root / "inputs" / "c.parquet"), "--column", "text"], "no column 'text' (has body"),
        ([str(root / "inputs" / "a.txt"), "--eot-token", "<|nope|>"], "--eot-token: '<|nope|>' is not in the vocabulary"),
    ]
    for extra, message in cases:
        code = main(["data", "prepare", *extra[:1], "--tokenizer", tokenizer, "--out", str(tmp_path / "e"), "--workers", "1", *extra[1:]])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (extra, err)
    (tmp_path / "not-a-tokenizer.json").write_text("{}")
    assert main(["data", "prepare", str(root / "inputs" / "a.txt"), "--tokenizer", str(tmp_path / "not-a-tokenizer.json"),
                 "--out", str(tmp_path / "f")]) == 2  # fmt: skip
    assert "is not a Hugging Face tokenizers JSON file" in capsys.readouterr().err


def test_a_tiktoken_ranks_file_encodes_as_tiktoken_does(tmp_path):
    """A ranks file of a small byte-level vocabulary under cl100k_base's pattern: the same ids as tiktoken's Encoding
    built from the same parts."""
    import base64

    import tiktoken
    from tiktoken_ext import openai_public

    ranks = {bytes([b]): b for b in range(256)} | {b"th": 256, b"the": 257, b" the": 258}
    path = tmp_path / "small.tiktoken"
    path.write_text("".join(f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in ranks.items()))
    encoder = Encoder(TokenizerFile(str(path), "cl100k_base", "<|endoftext|>"))
    reference = tiktoken.Encoding("ref", pat_str=encoder._encoding._pat_str, mergeable_ranks=ranks,
                                  special_tokens={"<|endoftext|>": 100257})  # fmt: skip
    assert encoder.encode(["the theory"]) == [reference.encode_ordinary("the theory")]
    assert encoder._encoding._pat_str != openai_public.r50k_pat_str  # cl100k_base's own pattern, not GPT-2's
    assert encoder.eot_id == 100257


def test_a_sweep_trains_on_embedded_ray_from_the_shards_it_prepares(corpus, tmp_path, ray_session):
    """Issue 30's end to end: JSONL tokenized by ``sweep data prepare``, then a sweep on the ``data:`` section it
    prints trains from those shards, each run recording the data's fingerprint and the manifest's tokenizer hash."""
    from sweep.config import parse_config
    from sweep.execute.orchestrate import run_sweep
    from sweep.results.storage import ResultsStore
    from tests.conftest import tiny_config

    root, _ = corpus
    with open(tmp_path / "web.jsonl", "w") as handle:
        for text in generated_documents(3000, 1):
            handle.write(json.dumps({"text": text}) + "\n")
    spec = TokenizerFile(str(root / "tokenizer.json"))
    out = tmp_path / "data"
    manifest = prepare([str(tmp_path / "web.jsonl")], spec, out, PrepareOptions(shard_tokens=20_000, val_fraction=0.05), workers=1)
    assert sum(f["split"] == "train" for f in manifest["files"]) >= 3
    section = {"source": "tokens", "path": str(out / "train-*.npy"), "val_path": str(out / "val-*.npy"), "vocab_size": manifest["vocab_size"]}
    config = parse_config(tiny_config(name="prepared", budgets=[2e9], model={"sizes": [3e3]}, data=section))
    assert run_sweep(config, str(tmp_path / "results")).statuses == {"completed": 1}
    runs = ResultsStore(tmp_path / "results").read_runs("prepared")
    assert runs["final_eval_loss"].notna().all()
    assert list(runs["tokenizer_sha256"]) == [manifest["tokenizer"]["sha256"]]
