"""Nightly sweeps, provenance: each run records the code that trained it (the launching checkout's git commit, the
versions of torch, ray and this package), and a sweep name may hold ``{date}`` and ``{git_sha}`` so that a new
night, or new code, trains anew while a rerun of the same night stays idempotent."""

import pytest

import sweep.config
from sweep.config import ConfigError, parse_config
from sweep.results.storage import ResultsStore
from sweep.training.data import load_corpus
from sweep.training.worker import execute_run
from sweep.execute.orchestrate import prepare_plan
from sweep.versions import git_commit, package_version
from tests.conftest import tiny_config


def test_a_name_holds_the_night_and_the_commit(monkeypatch):
    monkeypatch.setenv("SWEEP_DATE", "2026-12-01")
    monkeypatch.setattr(sweep.config, "git_commit", lambda: "0123456789ab+dirty")
    first = parse_config(tiny_config(name="nightly-{date}-{git_sha}"))
    again = parse_config(tiny_config(name="nightly-{date}-{git_sha}"))
    assert first.name == again.name == "nightly-2026-12-01-0123456789ab-dirty"  # the same night: the same sweep
    monkeypatch.setenv("SWEEP_DATE", "2026-12-02")
    assert parse_config(tiny_config(name="nightly-{date}")).name == "nightly-2026-12-02"  # the next: another


@pytest.mark.parametrize("name, env, message", [
    ("n-{night}", None, r"name: \{night\} is not a placeholder"),
    ("n-{date", None, "name: an unmatched brace"),
    ("n-{date}", "last tuesday", "name: .*SWEEP_DATE 'last tuesday' is not a date"),
])  # fmt: skip
def test_a_bad_placeholder_names_the_key(monkeypatch, name, env, message):
    if env:
        monkeypatch.setenv("SWEEP_DATE", env)
    with pytest.raises(ConfigError, match=message):
        parse_config(tiny_config(name=name))


def test_git_sha_outside_a_checkout_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(sweep.config, "git_commit", lambda: None)
    with pytest.raises(ConfigError, match=r"name: \{git_sha\} needs this package to run from a git checkout"):
        parse_config(tiny_config(name="n-{git_sha}"))


def test_each_run_records_the_code_that_trained_it(tmp_path):
    config = parse_config(tiny_config(name="provenance", budgets=[2e9], model={"sizes": [3e3]}))
    load_corpus(config.data)
    (spec,) = prepare_plan(config).runs
    assert spec.code_commit == git_commit()
    assert execute_run(spec, str(tmp_path))["status"] == "completed"
    row = ResultsStore(tmp_path).read_run("provenance", spec.run_id)
    assert row["code_commit"] == git_commit()
    assert (row["torch_version"], row["ray_version"], row["sweep_version"]) == (
        package_version("torch"), package_version("ray"), package_version("scaling-sweep"))
