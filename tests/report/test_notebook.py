"""The analysis notebook runs top to bottom (nbclient) against a small results directory."""

from pathlib import Path

import pytest

from sweep.cli import main
from tests.conftest import write_synthetic_results

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "analysis.ipynb"


def test_analysis_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    write_synthetic_results(tmp_path / "results")
    monkeypatch.setenv("SWEEP_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SWEEP_NAME", "synthetic")
    monkeypatch.setenv("SWEEP_FIGURE", str(tmp_path / "loss_vs_flops.png"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "Approach 3: alpha =" in outputs and "{'completed': 15}" in outputs
    assert (tmp_path / "loss_vs_flops.png").stat().st_size > 0


def test_report_from_a_results_directory_has_training_curves(tmp_path):
    write_synthetic_results(tmp_path / "results")
    args = ["report", "--results", str(tmp_path / "results"), "--sweep", "synthetic", "--out", str(tmp_path / "out"), "--bootstrap", "20"]
    assert main(args) == 0
    assert 'alt="Training curves by model size, and the envelope"' in (tmp_path / "out" / "report.html").read_text()
