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
