"""The tune section and the tuned LR rule: mistakes name their key (exit 2 from the CLI), a rule table is read,
checked and used by the planner, and every run records the rate it resolved to and its study."""

import json
import subprocess
import sys

import pytest
import yaml

from sweep.config import ConfigError, load_config, parse_config
from sweep.planning.plan import plan_sweep
from tests.conftest import tiny_config

TUNE = {"horizon": {"budget_flops": 2e9}}


@pytest.mark.parametrize(
    "tune, key",
    [
        ({"horizon": {}}, "tune.horizon"),
        ({"horizon": {"budget_flops": 2e9, "tokens_per_param": 20}}, "tune.horizon"),
        ({**TUNE, "sizes": [5e3]}, "tune.sizes"),
        ({**TUNE, "sampler": "grid"}, "tune.sampler"),
        ({**TUNE, "pruner": "always"}, "tune.pruner"),
        ({**TUNE, "space": {"lr": {"low": 1e-2, "high": 1e-3}}}, "tune.space.lr"),
        ({**TUNE, "space": {"momentum": {"low": 0.1, "high": 0.2}}}, "tune.space.momentum"),
        ({**TUNE, "space": {"batch_tokens": [256, 300]}}, "tune.space.batch_tokens"),
        ({**TUNE, "n_trials": 0}, "tune.n_trials"),
        ({**TUNE, "study": "tiny"}, "tune.study"),
        ({**TUNE, "study": "../up"}, "tune.study"),
        ({**TUNE, "typo": 1}, "tune.typo"),
    ],
)
def test_tune_mistakes_name_the_key(tune, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(tiny_config(tune=tune))


def write_rule(path, study="tiny-tune", **law):
    path.write_text(json.dumps({"kind": "sweep-tune-rule", "study": study,
                                "lr_rule": {"coefficient": 0.01, "reference_params": 5e3, "exponent": -0.5, **law}}))


def test_a_tuned_rule_sizes_every_run_and_each_records_its_study(tmp_path):
    write_rule(tmp_path / "rule.json")
    config_file = tmp_path / "sweep.yaml"
    config_file.write_text(yaml.safe_dump(tiny_config(training={"lr_rule": "tuned", "lr_tuned": {"study": "tiny-tune", "file": "rule.json"}})))
    config = load_config(config_file)  # the file is read from the sweep file's directory
    plan = plan_sweep(config, 256, "f00d")
    for spec in plan.runs:
        assert spec.lr == pytest.approx(0.01 * (spec.n_params_nonembedding / 5e3) ** -0.5)
        assert spec.lr_rule == "tuned" and spec.lr_study == "tiny-tune"


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: None, "cannot read the rule table"),
        (lambda p: p.write_text("{not json"), "not JSON"),
        (lambda p: p.write_text(json.dumps({"kind": "other"})), "not a rule table"),
        (lambda p: write_rule(p, study="another"), "study 'another'"),
        (lambda p: write_rule(p, exponent="fast"), "lr_rule.exponent"),
        (lambda p: write_rule(p, coefficient=-1.0), "out of bounds"),
    ],
)
def test_a_bad_rule_table_is_one_line_naming_the_key_and_file(tmp_path, write, message):
    write(tmp_path / "rule.json")
    config_file = tmp_path / "sweep.yaml"
    config_file.write_text(yaml.safe_dump(tiny_config(training={"lr_rule": "tuned", "lr_tuned": {"study": "tiny-tune", "file": "rule.json"}})))
    result = subprocess.run([sys.executable, "-m", "sweep", "plan", str(config_file)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "training.lr_tuned" in result.stderr and message in result.stderr, result.stderr


def test_tuned_rule_keys_that_contradict_each_other(tmp_path):
    with pytest.raises(ConfigError, match=r"training\.lr_tuned: required"):
        parse_config(tiny_config(training={"lr_rule": "tuned"}))
    write_rule(tmp_path / "rule.json")
    with pytest.raises(ConfigError, match=r"training\.lr_tuned: only used"):
        parse_config(tiny_config(training={"lr_tuned": {"study": "tiny-tune", "file": str(tmp_path / "rule.json")}}))


def test_the_bundled_demo_rule_table_sizes_the_demo_as_documented(tmp_path):
    """sweep/configs/demo-lr.json, the demo study's table, read as demo.yaml's comment says to use it."""
    from sweep.cli import demo_config_path

    config = yaml.safe_load(demo_config_path().read_text())
    del config["training"]["lr_scale"]
    config["training"].update(lr_rule="tuned", lr_tuned={"study": "demo-lr", "file": "demo-lr.json"})
    tuned = parse_config(config, base_dir=demo_config_path().parent)
    table = json.loads((demo_config_path().parent / "demo-lr.json").read_text())
    assert tuned.training.lr_tuned.exponent == table["lr_rule"]["exponent"]
    lrs = {s.n_params_nonembedding: s.lr for s in plan_sweep(tuned, 256, "f00d").runs}
    rule = table["lr_rule"]
    assert len(lrs) >= 5
    for n, lr in lrs.items():  # the study's sizes were the previous demo ladder's; its law is read at any N
        assert lr == pytest.approx(rule["coefficient"] * (n / rule["reference_params"]) ** rule["exponent"])
    assert [size["n_params"] for size in table["sizes"]] == [7216, 40080, 174480]
