"""Config validation: wrong or unknown keys are errors that name the key; the CLI exits 2 without a traceback."""

import subprocess
import sys

import pytest
import yaml

from sweep.config import ConfigError, load_config, parse_config
from tests.conftest import tiny_config


def test_valid_config_parses():
    config = parse_config(tiny_config())
    assert config.name == "tiny" and config.budgets == [2e9, 4e9]
    assert config.model.sizes == [3e3, 8e3]


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"training": {"batch_tokns": 256}}, "training.batch_tokns"),
        ({"budgets": [1e9, -1]}, "budgets.1"),
        ({"model": {"seq_len": "long"}}, "model.seq_len"),
        ({"flops_convention": "7N"}, "flops_convention"),
        ({"surprise": 1}, "surprise"),
        ({"data": {"source": "tokens"}}, "data.path"),
        ({"training": {"batch_tokens": 100}}, "training.batch_tokens"),
        ({"name": "has space"}, "name"),
    ],
)
def test_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(tiny_config(**overrides))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_cli_config_error_exits_2_naming_the_key(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_config(training={"learning_rate": 0.1})))
    result = subprocess.run([sys.executable, "-m", "sweep", "plan", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "training.learning_rate: unknown key" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_missing_token_file_exits_2(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_config(data={"source": "tokens", "path": str(tmp_path / "x.bin"), "vocab_size": 50})))
    result = subprocess.run([sys.executable, "-m", "sweep", "run", str(path)], capture_output=True, text=True)
    assert result.returncode == 2 and "data.path" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("text", ["٣٢", "1_000", " 7 ", "0x10", "३"])
def test_a_number_written_as_text_is_read_only_in_ascii_digits(text, tmp_path):
    """Python's float() reads Arabic-Indic or Devanagari digits, underscores and padding; a sweep file's number is
    what YAML itself writes (issue 22: '٣٢' was read as seq_len 32). Refused naming the key, the text escaped."""
    path = tmp_path / "sweep.yaml"
    path.write_text(f'name: t\nbudgets: [1.0e9]\nmodel: {{sizes: [3000], seq_len: "{text}"}}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"model.seq_len") as error:
        load_config(path)
    assert all(ord(c) < 128 for c in str(error.value))
