"""Token files are checked when a sweep is planned: each mistake exits 2 with one line naming the key and the file."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from sweep.cli import main
from tests.conftest import tiny_config

VOCAB = 50


def _tokens(path, n: int, dtype: str = "uint16", top: int = VOCAB - 1):
    np.random.default_rng(0).integers(0, top + 1, n).astype(dtype).tofile(path)
    return path


def _case(tmp_path, how: str) -> tuple[dict, str, str]:
    """(data section, key the error must name, text it must contain) for one mistake."""
    good = _tokens(tmp_path / "good.bin", 200_000)
    data = {"source": "tokens", "path": str(good), "vocab_size": VOCAB}
    if how == "missing":
        return {**data, "path": str(tmp_path / "nope.bin")}, "data.path", "nope.bin"
    if how == "a directory":
        (tmp_path / "dir.bin").mkdir()
        return {**data, "path": str(tmp_path / "dir.bin")}, "data.path", "dir.bin"
    if how == "empty":
        (tmp_path / "empty.bin").write_bytes(b"")
        return {**data, "path": str(tmp_path / "empty.bin")}, "data.path", "empty.bin"
    if how == "odd length for uint16":
        (tmp_path / "odd.bin").write_bytes(good.read_bytes()[:-1])
        return {**data, "path": str(tmp_path / "odd.bin")}, "data.path", "odd.bin"
    if how == "uint32 length for a uint16 file":
        (tmp_path / "six.bin").write_bytes(b"\x01\x00" * 3)
        return {**data, "path": str(tmp_path / "six.bin"), "dtype": "uint32"}, "data.path", "six.bin"
    if how == "an id past the vocabulary":
        big = _tokens(tmp_path / "big.bin", 200_000, top=VOCAB)
        return {**data, "path": str(big)}, "data.vocab_size", "id 50"
    if how == "a validation id past the vocabulary":
        val = _tokens(tmp_path / "val.bin", 10_000, top=VOCAB + 7)
        return {**data, "val_path": str(val)}, "data.vocab_size", "id 57"
    if how == "ten tokens":
        return {**data, "path": str(_tokens(tmp_path / "ten.bin", 10))}, "data.path", "fewer than one batch"
    if how == "a validation split too small":
        return {**data, "path": str(_tokens(tmp_path / "small.bin", 3_000)), "val_fraction": 0.001}, "data.val_fraction", "less than one sequence"
    if how == "a missing validation file":
        return {**data, "val_path": str(tmp_path / "noval.bin")}, "data.val_path", "noval.bin"
    if how == "a validation file cut mid-id":
        (tmp_path / "cut.bin").write_bytes(b"\x01\x00\x02")
        return {**data, "val_path": str(tmp_path / "cut.bin")}, "data.val_path", "cut.bin"
    if how == "a tiny validation file":
        return {**data, "val_path": str(_tokens(tmp_path / "tiny.bin", 5))}, "data.val_path", "less than one sequence"
    raise AssertionError(how)


CASES = ["missing", "a directory", "empty", "odd length for uint16", "uint32 length for a uint16 file",
         "an id past the vocabulary", "a validation id past the vocabulary", "ten tokens", "a validation split too small",
         "a missing validation file", "a validation file cut mid-id", "a tiny validation file"]  # fmt: skip


def refused_plan(tmp_path, capsys, data: dict, *named: str) -> str:
    """``sweep plan`` of the tiny sweep on ``data``: exit 2, one line on stderr naming each of ``named``; the line."""
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data=data)))
    code = main(["plan", str(config)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("sweep: error: "), err
    assert all(text in err for text in named) and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("how", CASES)
def test_a_bad_token_file_exits_2_naming_the_key_and_the_file(tmp_path, capsys, how):
    data, key, text = _case(tmp_path, how)
    refused_plan(tmp_path, capsys, data, key, text)


def test_a_good_token_file_plans(tmp_path, capsys):
    good = _tokens(tmp_path / "good.bin", 200_000)
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data={"source": "tokens", "path": str(good), "vocab_size": VOCAB})))
    assert main(["plan", str(config)]) == 0
    assert "4 runs" in capsys.readouterr().out


def test_the_scan_finds_the_largest_id_and_hashes_like_before(tmp_path):
    import hashlib

    from sweep.training.provenance import scan_files
    from sweep.training.shards import detect

    path = _tokens(tmp_path / "t.bin", 100_000, dtype="uint32", top=70_000)
    found = scan_files([detect(path, "uint32", "data.path")])
    assert found.largest == int(np.fromfile(path, dtype="uint32").max())
    assert found.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
