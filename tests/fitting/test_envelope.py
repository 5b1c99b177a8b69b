"""Approach 1: the envelope of final losses and its power laws."""

import numpy as np
import pandas as pd
import pytest

from sweep.fitting.envelope import fit_approach1, lower_envelope
from sweep.fitting.summary import fit_summary
from sweep.fitting.inputs import FitInputs
from tests.fitting.test_isoflop import synthetic_sweep


def with_flops(runs):
    return runs.assign(flops=6 * runs["n_params"] * runs["tokens"])


def test_envelope_takes_each_budgets_best_run_and_stays_monotone():
    runs = pd.DataFrame(
        {"budget": [1, 1, 2, 2, 3, 3], "n_params": [10, 20, 10, 20, 10, 20], "tokens": [5, 2, 9, 4, 15, 7],
         "loss": [3.0, 2.5, 2.2, 2.4, 2.3, 2.6]}
    ).pipe(with_flops)  # fmt: skip
    envelope = lower_envelope(runs)
    assert envelope["budget"].tolist() == [1, 2]  # budget 3's best (2.3) does not improve on budget 2's (2.2)
    assert envelope["loss"].tolist() == [2.5, 2.2] and envelope["n_params"].tolist() == [20, 10]


@pytest.mark.parametrize("alpha, beta", [(0.34, 0.34), (0.3, 0.4)])
def test_dense_ladder_recovers_exponent(alpha, beta):
    runs, a_true, b_true = synthetic_sweep(alpha, beta, budgets=np.logspace(18, 22, 9), points=61, span=0.6)
    result = fit_approach1(with_flops(runs))
    assert len(result.envelope) == 9
    assert result.a == pytest.approx(a_true, abs=0.03) and result.b == pytest.approx(b_true, abs=0.03)


def test_summary_reports_approach1_with_intervals():
    runs, _, _ = synthetic_sweep(0.34, 0.34, budgets=np.logspace(18, 21, 4), points=9, span=0.6, noise=0.005)
    summary = fit_summary(FitInputs(with_flops(runs), pd.DataFrame(columns=["run_id", "status", "error"])), n_boot=50)
    a1 = summary["approach1"]
    assert a1["a"] is not None and len(a1["envelope"]) >= 2
    lo, hi = a1["ci"]["a"]
    assert lo <= hi and "approach1" in summary["predictions"][0]
