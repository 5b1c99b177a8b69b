"""The tuning report: one self-contained HTML page per study (``RESULTS/tune/report/STUDY.html``).

Sections: the fitted rule LR*(N) with its 95% interval and the lines that make a sweep use it; every size's
optimum (trials, diverged and pruned ones, the best trial's rate, LR* with its interval and why it is not refined
where it is not); warnings; figures: final loss against learning rate per size (each size's parabola near its best
and LR* marked; diverged trials drawn at the top, pruned ones at their last evaluation), LR* against N with the
power law and its bootstrap band, and Optuna's own matplotlib views of each size's study (the intermediate values
the pruner judged, and the optimisation history); then the table of every trial. Everything shown comes from
``sweep.tuning.summary`` and the studies: the page holds no analysis of its own.
"""

from __future__ import annotations

import html
import math
import warnings

import numpy as np
import optuna
import pandas as pd

from sweep.report.html import _figure, _html_table, _png
from sweep.tuning.rule import RuleFit, near_best
from sweep.tuning.summary import shown_interval as _interval


def loss_against_lr_figure(table: pd.DataFrame, fit: RuleFit) -> str:
    plt, fig, ax = _figure(7.0, 4.6)
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(1, table["n_params"].nunique())))
    finite = table["loss"][np.isfinite(table["loss"].astype(float))]
    top = float(finite.max()) * 1.02 if not finite.empty else 1.0
    optima = {size.n_params: size for size in fit.sizes}
    for colour, (n, rows) in zip(colours, table.groupby("n_params")):
        done = rows[rows["status"] == "completed"].sort_values("lr")
        ax.scatter(done["lr"], done["loss"], color=colour, label=f"N={n:,}", zorder=3)
        pruned = rows[rows["status"] == "pruned"]
        last = [max(e.items())[1] if e else np.nan for e in pruned["evaluations"]]
        ax.scatter(pruned["lr"], last, facecolors="none", edgecolors=colour, zorder=3)
        diverged = rows[rows["status"] == "diverged"]
        ax.scatter(diverged["lr"], [top] * len(diverged), marker="x", color=colour, zorder=3)
        if len(done) >= 3:
            x, y = np.log10(done["lr"].to_numpy()), done["loss"].to_numpy()
            near = near_best(x, y)  # the trials the fit's parabola goes through
            if len(np.unique(x[near])) >= 3:
                grid = np.linspace(x[near].min(), x[near].max(), 50)
                ax.plot(10**grid, np.polyval(np.polyfit(x[near], y[near], 2), grid), color=colour, lw=1)
        if n in optima:
            ax.axvline(optima[n].lr, color=colour, ls=":", lw=1)
    ax.set(xscale="log", xlabel="peak learning rate", ylabel="final eval loss",
           title="Loss against LR per size (hollow: pruned, at last evaluation; x: diverged)")  # fmt: skip
    ax.legend(fontsize=8)
    return _png(plt, fig)


def rule_figure(fit: RuleFit) -> str:
    plt, fig, ax = _figure()
    ns = np.array([s.n_params for s in fit.sizes], float)
    lrs = np.array([s.lr for s in fit.sizes])
    low = [s.lr - s.lr_interval[0] if s.lr_interval else 0 for s in fit.sizes]
    high = [s.lr_interval[1] - s.lr if s.lr_interval else 0 for s in fit.sizes]
    ax.errorbar(ns, lrs, yerr=[low, high], fmt="o", capsize=3, label="LR* per size (95% bootstrap)")
    law = fit.lr_rule
    if law is not None:
        grid = np.geomspace(ns.min() / 1.5, ns.max() * 1.5, 50)
        ax.plot(grid, law.at(grid), label=f"LR* = {law.coefficient:.3g} (N/{law.reference_params:.3g})^{law.exponent:.3f}")
        if law.exponent_interval and law.coefficient_interval:
            corners = [c * (grid / law.reference_params) ** k for c in law.coefficient_interval for k in law.exponent_interval]
            ax.fill_between(grid, np.min(corners, axis=0), np.max(corners, axis=0), alpha=0.15, label="95% interval of the law")
    ax.set(xscale="log", yscale="log", xlabel="N (non-embedding parameters)", ylabel="peak learning rate", title="Tuned rule")
    ax.legend(fontsize=8)
    return _png(plt, fig)


def optuna_figures(studies: list[optuna.Study]) -> list[tuple[str, str]]:
    """Optuna's own matplotlib views of each size's study: intermediate values and optimisation history."""
    import matplotlib.pyplot as plt

    from optuna.visualization import matplotlib as views

    figures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
        for study in studies:
            if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)):
                continue
            for title, view in (("intermediate values", views.plot_intermediate_values), ("optimisation history", views.plot_optimization_history)):
                ax = view(study)
                figures.append((f"{study.study_name}: {title} (Optuna)", _png(plt, ax.figure)))
    return figures


def sizes_table(fit: RuleFit, table: pd.DataFrame) -> str:
    pruned = table[table["status"] == "pruned"].groupby("n_params").size().to_dict()
    rows = [[f"{s.n_params:,}", str(s.trials), str(s.diverged), str(pruned.get(s.n_params, 0)), f"{s.best_trial_lr:.3g}",
             f"{s.best_loss:.4f}", f"{s.lr:.3g}{_interval(s.lr_interval)}", "parabola" if s.refined else html.escape(s.note or "best trial")]
            for s in fit.sizes]  # fmt: skip
    return _html_table(["N", "trials fitted", "diverged", "pruned", "best trial's LR", "best loss", "LR* [95%]", "LR* from"], rows)


def trials_table(table: pd.DataFrame) -> str:
    def number(value, spec=".4g"):
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:{spec}}"

    rows = [[f"{r.n_params:,}", str(r.trial), html.escape(str(r.status)), number(r.lr, ".3g"), number(r.batch_tokens, ".0f"),
             number(r.loss), str(len(r.evaluations)), number(r.wall_seconds, ".1f")] for r in table.itertuples(index=False)]  # fmt: skip
    return _html_table(["N", "trial", "status", "lr", "batch", "final eval loss", "evaluations told", "seconds"], rows)


def render(study: str, table: pd.DataFrame, fit: RuleFit, studies: list[optuna.Study], rule_file: str) -> str:
    """The report page (module docstring)."""
    law = fit.lr_rule
    if law is None:
        rule = "<p>No rule: " + html.escape("; ".join(w for w in fit.warnings if "power law" in w) or "too few sizes") + "</p>"
    else:
        rule = (f"<p>LR*(N) = {law.coefficient:.4g}{_interval(law.coefficient_interval)} &times; (N / {law.reference_params:.4g})"
                f"<sup>{law.exponent:.3f}{_interval(law.exponent_interval)}</sup> (95% intervals, {fit.n_boot} bootstrap resamples)</p>"
                f"<pre>training:\n  lr_rule: tuned\n  lr_tuned:\n    study: {html.escape(study)}\n    file: {html.escape(rule_file)}</pre>")  # fmt: skip
    if fit.batch_rule is not None:
        b = fit.batch_rule
        rule += f"<p>batch*(N) = {b.coefficient:.4g} &times; (N / {b.reference_params:.4g})<sup>{b.exponent:.3f}{_interval(b.exponent_interval)}</sup> tokens</p>"
    warned = "".join(f"<li>{html.escape(w)}</li>" for w in fit.warnings) or "<li>None.</li>"
    figures = [("Loss against learning rate", loss_against_lr_figure(table, fit))]
    if fit.sizes:
        figures.append(("LR* against N", rule_figure(fit)))
    figures += optuna_figures(studies)
    shown = "".join(f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">' for name, data in figures)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Tuning study {html.escape(study)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>Tuning study {html.escape(study)}</h1><p>{len(table)} trials over {table['n_params'].nunique()} sizes.</p>
<h2>Rule</h2>{rule}<h2>Sizes</h2>{sizes_table(fit, table)}<h2>Warnings</h2><ul>{warned}</ul>{shown}
<h2>Trials</h2>{trials_table(table)}</body></html>"""
