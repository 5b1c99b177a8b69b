"""``sweep compare A B``: a sweep whose losses are worse by a known shift is a regression (exit 4), one equal within
noise is not (exit 0); matched cells, frontier losses and exponents come with their intervals."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sweep.fitting.compare import compare, matched_cells
from sweep.fitting.inputs import FitInputs
from tests.fitting.test_envelope import fixed_ladder

SIZES, BUDGETS = np.logspace(8, 10, 7), np.logspace(18, 21, 5)


def night(shift=0.0, seed=0, noise=0.003) -> pd.DataFrame:
    runs, _, _ = fixed_ladder(0.34, 0.34, SIZES, BUDGETS, noise=noise, seed=seed)
    return runs.assign(loss=runs["loss"] + shift)


def inputs(runs) -> FitInputs:
    return FitInputs(runs, pd.DataFrame(columns=["run_id", "status", "error"]))


def test_a_known_shift_is_a_regression_and_noise_is_not():
    worse = compare(inputs(night()), inputs(night(shift=0.05, seed=1)), n_boot=100)
    assert worse["regression"] and worse["reasons"][0].startswith("frontier loss at C = 1e+21 is +0.0")
    assert worse["frontier"][0]["delta"] == pytest.approx(0.05, abs=0.01) and worse["frontier"][0]["outside_intervals"]
    assert worse["cells"]["matched"] == 35 and worse["cells"]["worse"] == 35
    assert worse["cells"]["mean_delta"] == pytest.approx(0.05, abs=0.01)
    same = compare(inputs(night()), inputs(night(seed=1)), n_boot=100)
    assert not same["regression"] and abs(same["frontier"][0]["delta"]) < 0.01
    lo, hi = same["cells"]["mean_delta_ci"]
    assert lo < 0 < hi


def test_cells_match_by_budget_and_size_only():
    a, b = night(), night().iloc[::2]
    cells = matched_cells(a, b)
    assert len(cells) == len(b) and (cells["delta"] == 0).all()


@pytest.mark.parametrize("shift, status", [(0.05, 4), (0.0, 0)])
def test_the_command_line_exits_4_on_a_regression(tmp_path, shift, status):
    night().to_csv(tmp_path / "a.csv", index=False)
    night(shift=shift, seed=1).to_csv(tmp_path / "b.csv", index=False)
    command = [sys.executable, "-m", "sweep", "compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--bootstrap", "100"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr
    assert ("verdict: REGRESSION" in done.stdout) == bool(status) and "Traceback" not in done.stderr + done.stdout
    as_json = subprocess.run(command + ["--json", "--out", str(tmp_path / "page")], capture_output=True, text=True, timeout=120)
    assert as_json.returncode == status and json.loads(as_json.stdout)["regression"] == bool(status)
    page = (tmp_path / "page" / "compare.html").read_text()
    assert ("Verdict: REGRESSION" in page) == bool(status) and "data:image/png;base64," in page


def test_a_sweep_that_is_not_there_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "sweep", "compare", "nope-a", "nope-b", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_sweeps_on_different_data_are_said_to_be(capsys):
    """Runs record their data's fingerprint; a comparison of sweeps whose fingerprints differ says so (the verdict
    still reads the losses), one of the same data says they match."""
    from sweep.cli import _print_comparison

    a, b = night().assign(data_fingerprint="aaaa"), night(seed=1).assign(data_fingerprint="bbbb")
    result = compare(inputs(a), inputs(b), n_boot=0) | {"a": "A", "b": "B"}
    assert result["data"] == {"a": ["aaaa"], "b": ["bbbb"], "same": False}
    _print_comparison(result)
    assert "data: the sweeps trained on different data (A's runs read aaaa, B's bbbb)" in capsys.readouterr().out
    assert compare(inputs(a), inputs(a), n_boot=0)["data"]["same"] is True
    assert compare(inputs(night()), inputs(night()), n_boot=0)["data"]["same"] is None  # tables that record none
