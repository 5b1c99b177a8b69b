"""The malformed-config corpus (``tests/configs/malformed/``, 155 files): each mistake exits 2 with one line that
names its key, never a traceback, through the same path a user takes (``sweep plan FILE``)."""

import json
from pathlib import Path

import pytest

from sweep.cli import main

CORPUS = Path(__file__).resolve().parent / "configs" / "malformed"
EXPECT = json.loads((CORPUS / "expect.json").read_text())


def test_the_corpus_is_large_and_indexed():
    assert len(EXPECT) >= 100 and sorted(EXPECT) == sorted(p.name for p in CORPUS.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_a_malformed_config_exits_2_with_one_line_naming_the_key(name, capsys):
    code = main(["plan", str(CORPUS / name)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (out, err)
    assert err.count("\n") == 1 and err.startswith("sweep: error: "), err
    assert EXPECT[name] in err, err
    assert "Traceback" not in err
    assert "hunter2" not in err and "abcdefgh12345678" not in err  # a tracking URI's credentials are never repeated


@pytest.mark.parametrize("edit", [
    "budgets: [1e27]\n", "model:\n  sizes: [1, 1e13]\n", "training:\n  seeds: [0, 9223372036854775807]\n  max_steps: 10000000000\n",
])
def test_values_just_inside_the_bounds_are_accepted(edit):
    from sweep.config import parse_config
    import yaml

    base = {"name": "edge", "budgets": [1e9], "model": {"sizes": [1e4]}}
    parse_config({**base, **yaml.safe_load(edit)})
