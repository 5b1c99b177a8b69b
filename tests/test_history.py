"""``sweep history PATTERN``: every sweep matching the pattern, in name order, with its frontier loss at one shared
budget and its exponents, each with an interval; a plot and JSON; a pattern that matches nothing is one line."""

import json
import subprocess
import sys

from tests.conftest import write_synthetic_results


def history(*args):
    return subprocess.run([sys.executable, "-m", "sweep", "history", *args], capture_output=True, text=True, timeout=180)


def test_history_reads_each_night_at_the_same_budget(tmp_path):
    for night in ("nightly-2026-12-03", "nightly-2026-12-01", "nightly-2026-12-02"):
        write_synthetic_results(tmp_path, sweep=night)
    write_synthetic_results(tmp_path, sweep="other", budgets=(1e9, 3e9))
    done = history("nightly-*", "--results", str(tmp_path), "--bootstrap", "50", "--out", str(tmp_path / "h"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [row["sweep"] for row in result["sweeps"]] == ["nightly-2026-12-01", "nightly-2026-12-02", "nightly-2026-12-03"]
    assert result["reference_flops"] == 1e10 and result["note"] is None
    for row in result["sweeps"]:
        assert row["runs"] == 15 and row["loss"] is not None and row["loss_ci"][0] <= row["loss"] <= row["loss_ci"][1]
        assert row["a_approach2"] is not None and row["a_approach3_ci"] is not None
    assert (tmp_path / "h" / "history.png").stat().st_size > 1000
    text = history("nightly-*", "--results", str(tmp_path), "--bootstrap", "20")
    assert text.returncode == 0 and "3 sweeps matching 'nightly-*'" in text.stdout and "nightly-2026-12-02" in text.stdout


def test_a_pattern_that_matches_nothing_is_one_line_and_exit_2(tmp_path):
    write_synthetic_results(tmp_path, sweep="other")
    done = history("nightly-*", "--results", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no sweep" in done.stderr and "other" in done.stderr and len(done.stderr.strip().splitlines()) == 1
