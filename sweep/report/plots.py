"""Figures of ``sweep fit``: the iso-FLOP curves with their parabolas and the compute-optimal frontier (PNG via
matplotlib's Agg). ``draw_isoflop``, ``draw_frontier`` and ``draw_curves`` are shared with the HTML report (``sweep.report.html``) and
the notebook API (``sweep.api``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sweep.fitting.isoflop import Approach2Result


def draw_isoflop(ax, runs: pd.DataFrame, result: Approach2Result) -> None:
    """Loss against N per budget, each budget's fitted curve (its Akima spline or parabola; dotted where it has no
    usable minimum) and minimum."""
    import matplotlib.pyplot as plt

    colours = plt.cm.viridis(np.linspace(0.0, 0.9, max(1, len(result.budgets))))
    for colour, fit in zip(colours, result.budgets):
        group = runs[runs["budget"] == fit.budget]
        ax.scatter(group["n_params"], group["loss"], color=colour, s=16, label=f"C = {fit.budget:.2g}")
        x = np.linspace(np.log10(group["n_params"].min()), np.log10(group["n_params"].max()), 100)
        curve = fit.curve(x)
        if curve is not None:
            ax.plot(10**x, curve, color=colour, lw=1, ls="-" if fit.interior else ":")
        if fit.interior:
            ax.scatter([fit.n_opt], [fit.loss_opt], color=colour, marker="*", s=120, edgecolor="black", zorder=3)
    ax.set(xscale="log", xlabel="parameters N", ylabel="final loss", title=f"Iso-FLOP curves (Approach 2), {len(result.budgets)} budgets")
    if len(result.budgets) <= 10:
        ax.legend(fontsize=8)


APPROACH_COLOURS = {"approach1": "tab:green", "approach2": "tab:blue", "approach3": "tab:red"}


def draw_frontier(ax, summary: dict, grid: list[float], quantity: str) -> None:
    """N_opt (``quantity="n_opt"``) or D_opt against C for each approach of a fit summary predicted at ``grid``,
    with its 95% band (none where an interval is not bounded by the data: fitting/bounded.py), the chosen law's
    where it is not Chinchilla's form (Approach 3's), and Approach 2's per-budget minima."""
    for name, colour in APPROACH_COLOURS.items():
        entries = [p[name] for p in summary["predictions"] if name in p]
        if len(entries) != len(grid):
            continue
        ax.plot(grid, [e[quantity] for e in entries], color=colour, label=name.replace("approach", "Approach "))
        ci = (summary[name] or {}).get("ci", {})
        unbounded = (summary[name] or {}).get("unbounded") or {}
        bands = [None if f"{quantity}@{c:.3g}" in unbounded else ci.get(f"{quantity}@{c:.3g}") for c in grid]
        if all(bands):
            ax.fill_between(grid, [b[0] for b in bands], [b[1] for b in bands], color=colour, alpha=0.15)
    laws = summary.get("laws") or {}
    entries = [p["law"] for p in summary["predictions"] if "law" in p]
    if laws.get("law") and laws["law"]["name"] != "chinchilla" and len(entries) == len(grid):  # Chinchilla's is Approach 3
        ax.plot(grid, [e[quantity] for e in entries], color="black", ls="--", label=f"chosen law ({laws['law']['name']})")
        bands = [laws["law"]["ci"].get(f"{quantity}@{c:.3g}") for c in grid]
        if all(bands):
            ax.fill_between(grid, [b[0] for b in bands], [b[1] for b in bands], color="black", alpha=0.08)
    points = [(f["flops"], f[quantity]) for f in summary["approach2"]["budgets"] if f["interior"]]
    if points:
        ax.scatter(*zip(*points), color=APPROACH_COLOURS["approach2"], s=20, zorder=3, label="per-budget minima (Approach 2)")
    label = "N_opt (parameters)" if quantity == "n_opt" else "D_opt (tokens)"
    ax.set(xscale="log", yscale="log", xlabel="training FLOPs C", ylabel=label, title=f"{label} against compute, 95% bands")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def draw_curves(ax, metrics: pd.DataFrame, runs: pd.DataFrame) -> None:
    """Each run's training loss against FLOPs, coloured by model size (one legend entry per size, N shown), with
    every run's final evaluation loss as a black dot."""
    import matplotlib.pyplot as plt

    sizes = runs.set_index("run_id")["n_params"] if "run_id" in runs else pd.Series(dtype=float)
    distinct = sorted(sizes.unique())
    colours = dict(zip(distinct, plt.cm.plasma(np.linspace(0.0, 0.85, max(1, len(distinct))))))
    labelled = set()
    curves = dict(list(metrics.groupby("run_id")))
    for run_id in sorted(curves, key=lambda r: (sizes.get(r, np.inf), r)):  # legend from the smallest size up
        curve, n = curves[run_id], sizes.get(run_id)
        colour = colours.get(n, "grey")
        label = f"N = {n:.3g}" if n is not None and n not in labelled else None
        labelled.add(n)
        ax.plot(curve["flops"], curve["train_loss"], color=colour, lw=0.8, alpha=0.8, label=label)
    ax.scatter(runs["flops"], runs["loss"], color="black", s=8, zorder=3, label="final eval loss of each run")
    ax.set(xscale="log", xlabel="training FLOPs", ylabel="train loss", title="Training curves against FLOPs, by model size")
    ax.legend(fontsize=7, ncol=2)


def save_figure(plt, fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` whole or not at all (a temporary name, then a rename) and close it."""
    fig.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(temporary, dpi=120)
    plt.close(fig)
    temporary.replace(path)
    return path


def plot_approach2(runs: pd.DataFrame, result: Approach2Result, path: str | Path) -> Path:
    """Left: loss against N per budget with parabolas and minima. Right: N_opt and D_opt against C with power laws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (iso, frontier) = plt.subplots(1, 2, figsize=(12, 4.8))
    draw_isoflop(iso, runs, result)

    usable = [f for f in result.budgets if f.interior]
    if usable:
        flops = np.array([f.budget for f in usable])
        frontier.scatter(flops, [f.n_opt for f in usable], color="tab:blue", label="N_opt per budget")
        frontier.scatter(flops, [f.d_opt for f in usable], color="tab:orange", label="D_opt per budget")
    if result.n_opt is not None and result.d_opt is not None:
        span = np.logspace(np.log10(flops.min()) - 0.3, np.log10(flops.max()) + 0.3, 50)
        frontier.plot(span, result.n_opt(span), color="tab:blue", label=f"N_opt ∝ C^{result.a:.3f}")
        frontier.plot(span, result.d_opt(span), color="tab:orange", label=f"D_opt ∝ C^{result.b:.3f}")
    frontier.set(xscale="log", yscale="log", xlabel="training FLOPs C", ylabel="parameters / tokens", title="Compute-optimal frontier")
    frontier.legend(fontsize=8)
    return save_figure(plt, fig, path)


def plot_history(rows: list[dict], reference: float, path: str | Path) -> Path:
    """The frontier loss at ``reference`` (with its interval) and Approach 2's and 3's exponents, sweep by sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (loss, exponent) = plt.subplots(1, 2, figsize=(12, 4.4))
    x = np.arange(len(rows))
    for ax, keys in ((loss, (("loss", "loss_ci", "tab:red", "Approach 3 frontier loss"),)),
                     (exponent, (("a_approach2", "a_approach2_ci", "tab:blue", "a, Approach 2"),
                                 ("a_approach3", "a_approach3_ci", "tab:red", "a, Approach 3")))):  # fmt: skip
        for key, ci, colour, label in keys:
            values = np.array([np.nan if row[key] is None else row[key] for row in rows], dtype=float)
            low = np.array([v - row[ci][0] if row[ci] else 0.0 for v, row in zip(values, rows)])
            high = np.array([row[ci][1] - v if row[ci] else 0.0 for v, row in zip(values, rows)])
            ax.errorbar(x, values, yerr=np.vstack([np.nan_to_num(low), np.nan_to_num(high)]), color=colour, marker="o", capsize=3, label=label)
        ax.set_xticks(x, [row["sweep"] for row in rows], rotation=30, ha="right", fontsize=8)
        ax.legend(fontsize=8)
    loss.set(ylabel=f"loss at C = {reference:.3g}", title="Frontier loss by sweep")
    exponent.set(ylabel="a (N_opt ∝ C^a)", title="Exponents by sweep")
    return save_figure(plt, fig, path)
