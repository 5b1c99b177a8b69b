"""The nightly flow: each night's sweep is compared with the last good night (``sweep compare --last``); a night
worse by a known shift is a regression (one line on stderr, exit 4, the --on-regression hook run, the verdict
recorded), and the night after it is compared with the last good one, not with the regressed one."""

import json
import subprocess
import sys

from sweep.results.storage import ResultsStore
from tests.conftest import write_synthetic_results


def compare_last(root, tonight, *extra):
    """The recipes' command (B: the newest night); ``tonight`` is what it must pick."""
    command = [sys.executable, "-m", "sweep", "compare", "--last", "nightly-*", "--results", str(root),
               "--bootstrap", "100", *extra]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def test_three_nights_a_regression_is_caught_and_the_next_night_is_read_against_the_last_good(tmp_path):
    root, hook_log = tmp_path / "results", tmp_path / "hook.txt"
    write_synthetic_results(root, sweep="nightly-2026-12-01", code_commit="aaaaaaaaaaaa")
    first = compare_last(root, "nightly-2026-12-01")
    assert first.returncode == 0 and "the first night" in first.stdout

    write_synthetic_results(root, sweep="nightly-2026-12-02", shift=0.3, seed=1, code_commit="bbbbbbbbbbbb")
    hook = f"{sys.executable} -c \"import os; open({str(hook_log)!r}, 'w').write(os.environ['SWEEP_REGRESSION'])\""
    second = compare_last(root, "nightly-2026-12-02", "--on-regression", hook)
    assert second.returncode == 4, second.stderr
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith("sweep: regression: nightly-2026-12-02 regressed against nightly-2026-12-01: frontier loss")
    assert hook_log.read_text() in line and "Traceback" not in second.stdout + second.stderr
    verdict = ResultsStore(root).comparison("nightly-2026-12-02")
    assert verdict["regression"] and verdict["against"] == "nightly-2026-12-01"

    write_synthetic_results(root, sweep="nightly-2026-12-03", seed=2, code_commit="cccccccccccc")
    third = compare_last(root, "nightly-2026-12-03", "--json")
    assert third.returncode == 0, third.stderr
    result = json.loads(third.stdout)
    assert result["a"] == "nightly-2026-12-01" and not result["regression"]  # not the regressed night
    assert third.stderr == ""  # cron mails stderr: a good night sends nothing


def test_three_real_nights_on_a_fake_clock_with_changing_commits(ray_session, tmp_path, monkeypatch):
    """The sweep file named ``nightly-{date}``, trained three nights (``SWEEP_DATE``) by three commits: three sweeps,
    each run recording its night's commit, a rerun of a night training nothing, and the recipe's comparison of the
    newest night against the one before (deterministic training: no regression)."""
    import sweep.execute.orchestrate as orchestrate
    from sweep.config import parse_config
    from sweep.execute.orchestrate import run_sweep
    from tests.conftest import tiny_config

    root = tmp_path / "results"
    for night, commit in (("2026-12-01", "aaaaaaaaaaaa"), ("2026-12-02", "bbbbbbbbbbbb"), ("2026-12-03", "cccccccccccc")):
        monkeypatch.setenv("SWEEP_DATE", night)
        monkeypatch.setattr(orchestrate, "git_commit", lambda commit=commit: commit)
        config = parse_config(tiny_config(name="nightly-{date}", budgets=[2e9, 4e9], model={"sizes": [3e3, 8e3, 2e4]}))
        assert config.name == f"nightly-{night}"
        assert run_sweep(config, str(root)).statuses == {"completed": 6}
        assert run_sweep(config, str(root)).skipped_finished == 6  # the same night again: nothing to train
        assert set(ResultsStore(root).read_runs(config.name)["code_commit"]) == {commit}
    assert ResultsStore(root).sweeps() == ["nightly-2026-12-01", "nightly-2026-12-02", "nightly-2026-12-03"]
    done = compare_last(root, "nightly-2026-12-03", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["a"], result["b"]) == ("nightly-2026-12-02", "nightly-2026-12-03") and not result["regression"]
    assert result["cells"]["matched"] == 6 and result["cells"]["mean_delta"] == 0.0
