"""``sweep tune`` end to end on embedded Ray: trials are runs (ledger rows with study and trial, metrics, under
RESULTS/tune), the rule table and report are written, a rerun trains nothing, and a sweep uses the tuned rule."""

import json

import pytest
import yaml

from sweep.cli import main
from sweep.config import load_config, parse_config
from sweep.results.storage import ResultsStore
from sweep.tuning.driver import run_tune, tuning_root
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def tune_config(**tune) -> dict:
    return tiny_config(tune={"horizon": {"budget_flops": 2e9}, "n_trials": 3, "sampler": "random", "pruner": "none",
                             "space": {"lr": {"low": 1e-3, "high": 3e-2}}, "eval_points": 2, **tune})  # fmt: skip


def test_a_study_trains_its_trials_as_runs_then_fits_and_writes_the_rule(ray_session, tmp_path, capsys):
    config = parse_config(tune_config())
    result = run_tune(config, str(tmp_path), n_boot=200)
    assert result.outcome.states == {"COMPLETE": 6} and result.outcome.trained == 6
    store = ResultsStore(tuning_root(str(tmp_path)))
    ledger = store.read_runs("tiny-tune")
    assert len(ledger) == 6 and set(ledger["study"]) == {"tiny-tune"} and (ledger["status"] == "completed").all()
    assert sorted(ledger.groupby("n_params_nonembedding")["trial"].apply(sorted).tolist()) == [[0, 1, 2], [0, 1, 2]]
    assert ResultsStore(tmp_path).sweeps() == []  # the trials are not the sweep's runs: no fit of it sees them
    assert store.read_metrics("tiny-tune")["run_id"].nunique() == 6
    assert set(result.table["loss"].round(6)) == set(ledger["final_eval_loss"].round(6))
    table = json.loads(open(result.rule_file).read())
    assert table["kind"] == "sweep-tune-rule" and table["study"] == "tiny-tune" and len(table["sizes"]) == 2
    assert table["lr_rule"]["exponent"] == pytest.approx(result.fit.lr_rule.exponent)
    assert "Tuning study tiny-tune" in open(result.report_file).read()

    again = run_tune(config, str(tmp_path), n_boot=0)  # everything done: nothing trains, the rule is refitted
    assert again.outcome.trained == 0 and again.outcome.states == {"COMPLETE": 6}
    assert store.read_runs("tiny-tune")["finished_at"].equals(ledger["finished_at"])

    sweep_file = tmp_path / "sweep.yaml"  # a sweep sized by the rule: each run records its rate and the study
    sweep_file.write_text(yaml.safe_dump(tiny_config(training={"lr_rule": "tuned", "lr_tuned": {"study": "tiny-tune", "file": result.rule_file}})))
    assert main(["plan", str(sweep_file), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    law = result.fit.lr_rule
    for run in plan["runs"]:
        assert run["lr_study"] == "tiny-tune" and run["lr"] == pytest.approx(law.at(run["n_params_nonembedding"]))
    assert load_config(sweep_file).training.lr_tuned.study == "tiny-tune"


def test_sweep_tune_prints_each_size_and_the_rule(ray_session, tmp_path, capsys):
    config_file = tmp_path / "tune.yaml"
    config_file.write_text(yaml.safe_dump(tune_config(n_trials=2, sizes=[3e3])))
    assert main(["tune", str(config_file), "--results", str(tmp_path / "r"), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "study tiny-tune: 2 trials (2 complete)" in out and "rule table:" in out
    assert "a power law LR*(N) needs 2 or more" in out  # one size: no law, said
    assert main(["tune", str(config_file), "--results", str(tmp_path / "r"), "--bootstrap", "0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # done: nothing trains, the JSON alone on stdout
    assert data["trained"] == 0 and data["states"] == {"COMPLETE": 2} and len(data["trials"]) == 2
    assert data["rule"]["lr_rule"] is None and data["rule"]["sizes"][0]["trials"] == 2
