"""The analysis notebook runs top to bottom (nbclient) on the public API, on a full sweep and on a one-budget
sweep, with its figures shown inline; and the report from a results directory has training curves."""

from pathlib import Path

import pytest

from sweep.cli import main
from tests.conftest import write_synthetic_results

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "analysis.ipynb"


def run_notebook(tmp_path, monkeypatch, budgets) -> tuple[str, int]:
    """Execute the notebook on a synthetic results directory; (its text outputs, its inline PNG figures)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    write_synthetic_results(tmp_path / "results", budgets=budgets)
    monkeypatch.setenv("SWEEP_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("SWEEP_NAME", raising=False)  # the only sweep there
    monkeypatch.setenv("SWEEP_BOOTSTRAP", "20")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert not list(tmp_path.glob("*.png"))  # shown inline, not saved
    return text, figures


def test_analysis_notebook_on_a_full_sweep(tmp_path, monkeypatch):
    text, figures = run_notebook(tmp_path, monkeypatch, budgets=(1e9, 3e9, 1e10))
    assert "synthetic {'completed': 15}" in text and "approach3" in text and "not fitted" not in text
    assert figures == 3  # curves, iso-FLOP, frontier (one figure, two panels)


def test_analysis_notebook_on_a_one_budget_sweep(tmp_path, monkeypatch):
    text, figures = run_notebook(tmp_path, monkeypatch, budgets=(1e9,))
    assert "approach1: not fitted: Approach 1 needs runs at 2 or more budgets" in text
    assert "approach2: not fitted: Approach 2 needs 2 or more budgets" in text
    assert figures == 3


def test_report_from_a_results_directory_has_training_curves(tmp_path):
    write_synthetic_results(tmp_path / "results")
    args = ["report", "--results", str(tmp_path / "results"), "--sweep", "synthetic", "--out", str(tmp_path / "out"), "--bootstrap", "20"]
    assert main(args) == 0
    assert 'alt="Training curves by model size, and the envelope"' in (tmp_path / "out" / "report.html").read_text()
