"""The public notebook API (``sweep.api``, re-exported from ``sweep``): scope, load, fit, predict, plot."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

import sweep
import sweep.api
from sweep.config import ConfigError
from tests.conftest import tiny_config, write_synthetic_results


def test_the_api_is_public():
    for name in ("Fit", "fit", "load_runs", "load_metrics", "predict", "plot_isoflop", "plot_curves", "plot_frontier"):
        assert name in sweep.__all__ and name in sweep.api.__all__ and getattr(sweep, name).__doc__


def test_one_sweep_at_a_time(tmp_path):
    root = tmp_path / "results"
    write_synthetic_results(root, sweep="alpha")
    assert set(sweep.load_runs(root)["sweep"]) == {"alpha"} and len(sweep.load_metrics(root)) == 150
    write_synthetic_results(root, sweep="beta", budgets=(2e9,))
    with pytest.raises(ConfigError, match=r"2 sweeps \(alpha, beta\)"):
        sweep.load_runs(root)
    assert len(sweep.load_runs(root, sweep="beta")) == 5 and set(sweep.load_metrics(root, sweep="beta")["sweep"]) == {"beta"}


def test_a_sweep_file_gives_its_results_and_leaves_stale_runs_out(tmp_path):
    root = tmp_path / "results"
    write_synthetic_results(root, sweep="tiny")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(name="tiny", results=str(root))))
    assert len(sweep.load_runs(config=path)) == 0  # none of the synthetic runs is in the file's plan: all stale
    assert len(sweep.load_runs(config=path, include_stale=True)) == 15
    with pytest.raises(ConfigError, match="not the sweep of"):
        sweep.load_runs(config=path, sweep="other")


def test_fit_predict_and_plot_a_full_sweep(tmp_path):
    root = tmp_path / "results"
    write_synthetic_results(root)
    fit = sweep.fit(root, n_boot=20)
    assert fit.not_fitted == {} and fit.summary["n_runs"] == 15
    table = fit.table()
    assert {"approach1", "approach2", "approach3"} <= set(table["approach"]) and (table["lo"] <= table["hi"]).all()
    predictions = sweep.predict(fit, [1e10, 1e11])
    assert list(predictions["flops"]) == [1e10] * 3 + [1e11] * 3
    row = predictions[(predictions["approach"] == "approach3") & (predictions["flops"] == 1e10)].iloc[0]
    assert row["n_opt_lo"] < row["n_opt"] < row["n_opt_hi"] and row["loss_lo"] < row["loss"] < row["loss_hi"]
    runs, metrics = sweep.load_runs(root), sweep.load_metrics(root)
    for figure in (sweep.plot_isoflop(fit), sweep.plot_frontier(fit), sweep.plot_curves(metrics, runs)):
        assert isinstance(figure, Figure) and figure.axes
    labels = [t.get_text() for t in sweep.plot_curves(metrics, runs).axes[0].get_legend().get_texts()]
    assert labels[:5] == ["N = 2e+03", "N = 5e+03", "N = 1.2e+04", "N = 3e+04", "N = 8e+04"]


def test_a_one_budget_sweep_says_what_it_cannot_fit_and_never_raises(tmp_path):
    root = tmp_path / "results"
    write_synthetic_results(root, budgets=(1e9,))
    fit = sweep.fit(root, n_boot=10)
    assert set(fit.not_fitted) == {"approach1", "approach2", "extrapolation"}
    predictions = sweep.predict(fit, 1e10)
    assert predictions.set_index("approach").loc["approach1", "note"].startswith("Approach 1 needs runs at 2 or more budgets")
    assert not np.isnan(predictions.set_index("approach").loc["approach3", "n_opt"])
    figure = sweep.plot_frontier(fit)
    assert "not fitted: Approach 1, Approach 2" in figure.texts[0].get_text()
    assert isinstance(sweep.plot_isoflop(fit), Figure)


def test_fit_a_dataframe_or_a_table_file(tmp_path):
    rows = []
    for c in (1e18, 1e19, 1e20):
        for n in np.logspace(np.log10(0.1 * (c / 6) ** 0.5) - 0.6, np.log10(0.1 * (c / 6) ** 0.5) + 0.6, 7):
            d = c / (6 * n)
            rows.append({"n_params": n, "tokens": d, "loss": 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28, "budget": c})
    frame = pd.DataFrame(rows)
    from_frame = sweep.fit(frame, n_boot=0)
    frame.to_csv(tmp_path / "runs.csv", index=False)
    from_file = sweep.fit(tmp_path / "runs.csv", n_boot=0)
    assert from_frame.summary["approach3"]["alpha"] == pytest.approx(0.34, rel=1e-3)
    assert from_file.summary["approach3"]["alpha"] == pytest.approx(from_frame.summary["approach3"]["alpha"], rel=1e-9)
    with pytest.raises(ValueError, match="missing column"):
        sweep.fit(frame.drop(columns=["loss"]))
