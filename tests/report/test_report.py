"""``sweep report``: one self-contained HTML page with every figure and the table of fitted numbers."""

import re

import numpy as np
import pandas as pd

from sweep.cli import main
from tests.fitting.test_isoflop import synthetic_sweep


def test_report_from_a_table_of_runs(tmp_path):
    runs, _, _ = synthetic_sweep(0.34, 0.30, budgets=np.logspace(18, 21, 4), points=7, span=0.6, noise=0.005)
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    assert main(["report", "--input", str(path), "--out", str(tmp_path / "out"), "--bootstrap", "30"]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    titles = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert titles == ["Iso-FLOP curves", "Compute-optimal parameters", "Compute-optimal tokens",
                      "Parametric fit against the data", "Residuals"]  # fmt: skip
    for quantity in ("approach1 a", "approach2 a", "approach3 alpha", "approach3 objective", "extrapolation"):
        assert quantity in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched from elsewhere
