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


def test_report_from_results_has_a_throughput_table(tmp_path):
    """Each size's mean tokens/s, model FLOP/s and MFU over its completed runs, from the ledger."""
    from sweep.report.html import throughput_table
    from sweep.results.storage import ResultsStore
    from tests.conftest import write_synthetic_results

    root = tmp_path / "results"
    write_synthetic_results(root)
    store = ResultsStore(root)
    for run_id in store.read_runs()["run_id"]:
        row = store.read_run("synthetic", run_id)
        n = row["n_params_nonembedding"]
        rate = 1e9 / n  # smaller models run faster
        store.write_run("synthetic", {**row, "n_layer": 2, "d_model": 64, "device": "NVIDIA H100 80GB HBM3", "precision": "bf16",
                                      "tokens_per_second": rate, "model_flops_per_second": rate * 6 * n, "mfu": 0.25 + 1e-7 * n})  # fmt: skip
    assert main(["report", "--results", str(root), "--out", str(tmp_path / "out"), "--bootstrap", "20"]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Throughput</h2>" in page and "NVIDIA H100 80GB HBM3" in page
    assert "<td>2,000</td><td>2 x 64</td><td>NVIDIA H100 80GB HBM3</td><td>bf16</td><td>3</td><td>5e+05</td><td>6e+09</td><td>25.0%</td>" in page

    ledger = store.read_runs()
    assert throughput_table(ledger.assign(tokens_per_second=None)) == ""  # no run recorded one: no section
    assert throughput_table(ledger.drop(columns=["tokens_per_second"])) == ""
    unknown_peak = throughput_table(ledger.assign(mfu=None))
    assert "<td>6e+09</td><td>-</td>" in unknown_peak and "<td>80,000</td>" in unknown_peak
