"""The CLI: every command has help; plan prints the runs (text and JSON)."""

import json
import subprocess
import sys

import pytest
import yaml

from sweep.cli import build_parser, main
from tests.conftest import tiny_config

COMMANDS = ["plan", "run", "status", "fit", "predict", "report", "demo", "doctor"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: sweep " + command in capsys.readouterr().out


def test_parser_knows_exactly_these_commands():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(subparsers.choices) == sorted(COMMANDS)


def test_usage_error_exits_2():
    result = subprocess.run([sys.executable, "-m", "sweep", "plan"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_plan_json(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_config()))
    assert main(["plan", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["sweep"] == "tiny" and len(plan["runs"]) == 4
    run = plan["runs"][0]
    for key in ("run_id", "n_layer", "d_model", "n_head", "n_params", "tokens", "flops", "estimated_seconds"):
        assert key in run
    assert main(["plan", str(path)]) == 0
    assert "total" in capsys.readouterr().out
