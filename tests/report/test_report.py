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


def test_report_sections_say_what_was_fitted_and_what_could_not_be(tmp_path):
    """Issue 10: reasons where something could not be fitted, the prediction and run tables, the ROI view (or why
    not), curves labelled by size, provenance."""
    from tests.conftest import write_synthetic_results

    root = tmp_path / "results"
    write_synthetic_results(root, budgets=(1e9,))  # one budget: Approaches 1 and 2 cannot fit
    out = tmp_path / "one"
    assert main(["report", "--results", str(root), "--out", str(out), "--bootstrap", "20"]) == 0
    page = (out / "report.html").read_text()
    assert "<h2>Warnings and what could not be fitted</h2>" in page
    assert "Approach 1: not fitted: Approach 1 needs runs at 2 or more budgets" in page
    assert "extrapolation: not fitted: the extrapolation check needs 3 or more budgets (has 1)" in page
    assert "<h2>Predictions</h2>" in page and "<h2>Runs</h2>" in page and page.count("<td>completed</td>") == 5
    assert "Not shown: give <code>--price-per-gpu-hour</code>" in page
    assert "<h2>Provenance</h2>" in page and "package pyarrow" in page and "package torch" in page and "data_fingerprints" not in page

    write_synthetic_results(root)  # three budgets
    out = tmp_path / "full"
    assert main(["report", "--results", str(root), "--out", str(out), "--bootstrap", "20", "--price-per-gpu-hour", "2",
                 "--peak-flops", "1e12", "--mfu", "0.5"]) == 0  # fmt: skip
    page = (out / "report.html").read_text()
    assert "<h2>What the spend buys</h2>" in page and "loss gained by doubling the spend" in page
    assert 'alt="Loss against cost"' in page and 'alt="Training curves by model size, and the envelope"' in page
    assert "None: every approach fitted" in page or "warning:" in page


def test_curves_are_labelled_by_model_size():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sweep.report.plots import draw_curves

    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "n_params": [1e3, 1e3, 4e3], "flops": [1e9, 3e9, 3e9], "loss": [3.0, 2.9, 2.8]})
    metrics = pd.DataFrame({"run_id": list("aabbcc"), "flops": [1e8, 1e9, 1e8, 3e9, 1e8, 3e9], "train_loss": [4, 3, 4, 2.9, 4, 2.8]})
    fig, ax = plt.subplots()
    draw_curves(ax, metrics, runs)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    plt.close(fig)
    assert labels == ["N = 1e+03", "N = 4e+03", "final eval loss of each run"]
