"""``sweep report``: one self-contained HTML page (figures embedded as PNG data) with what a researcher checks.

Sections, in order: what was fitted (runs, FLOP convention, intervals); warnings and what could not be fitted,
each with its reason; the fitted numbers; predictions at the largest budget and 10x it; what the spend buys (the
ROI view, given a price per GPU-hour, ``sweep.fitting.roi``); the figures; the table of every run (N, D, C,
status, loss, tokens/s); throughput; provenance (``sweep.report.provenance``).

Figures: iso-FLOP curves with their parabolas (Approach 2); the frontier N_opt(C) and D_opt(C) of every approach
with 95% bootstrap bands; Approach 3's surface against the data (its iso-FLOP curves L(N, C/f(N)) over the runs,
f the runs' FLOPs per token, ``sweep.fitting.compute``);
residuals of Approach 3 in log loss; loss against dollars with its band (given a price); and, from a results
directory, every run's training curve against FLOPs, coloured and labelled by model size, with the envelope of
final losses (Approach 1). Then the table of fitted numbers with intervals and the extrapolation
check, and, from a results directory's ledger, a throughput table: mean tokens/s, model FLOP/s (the sweep's own
FLOPs per token) and MFU of the completed runs of each model size on each device and precision. Everything shown
comes from ``fit_summary``, the runs table and the ledger: the page holds no analysis of its own.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.fitting.compute import describe_convention
from sweep.fitting.envelope import fit_approach1
from sweep.fitting.inputs import FitInputs
from sweep.fitting.isoflop import MinimumRule, fit_approach2
from sweep.fitting.parametric import ParametricFit
from sweep.fitting.roi import Pricing, roi_rows
from sweep.fitting.summary import fit_summary
from sweep.report.plots import APPROACH_COLOURS, draw_curves, draw_frontier, draw_isoflop



def _figure(width: float = 6.4, height: float = 4.4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height))


def _png(plt, fig) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def isoflop_figure(runs: pd.DataFrame, minimum: MinimumRule = MinimumRule()) -> str:
    plt, fig, ax = _figure()
    draw_isoflop(ax, runs, fit_approach2(runs, minimum))
    return _png(plt, fig)


def frontier_figure(summary: dict, grid: list[float], quantity: str) -> str:
    """N_opt (``quantity="n_opt"``) or D_opt against C for each approach, with its bootstrap band."""
    plt, fig, ax = _figure()
    draw_frontier(ax, summary, grid, quantity)
    return _png(plt, fig)


def surface_figure(runs: pd.DataFrame, fit: ParametricFit) -> str:
    plt, fig, ax = _figure()
    budgets = sorted(runs["budget"].unique())
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(1, len(budgets))))
    for colour, budget in zip(colours, budgets):
        group = runs[runs["budget"] == budget]
        ax.scatter(group["n_params"], group["loss"], color=colour, s=14)
        n = np.logspace(np.log10(group["n_params"].min()) - 0.2, np.log10(group["n_params"].max()) + 0.2, 80)
        ax.plot(n, fit.loss(n, fit.compute.tokens(budget, n)), color=colour, lw=1)
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss", title=f"Approach 3: L(N, C/f(N)) against the runs (f: {fit.compute.name})")
    return _png(plt, fig)


def residual_figure(runs: pd.DataFrame, fit: ParametricFit) -> str:
    plt, fig, ax = _figure(6.4, 3.6)
    residual = np.log(runs["loss"]) - np.log(fit.loss(runs["n_params"], runs["tokens"]))
    points = ax.scatter(runs["n_params"], residual, c=np.log10(runs["budget"]), s=14, cmap="viridis")
    fig.colorbar(points, ax=ax, label="log10 C")
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xscale="log", xlabel="parameters N", ylabel="log loss - log fit", title="Approach 3 residuals")
    return _png(plt, fig)


def curves_figure(metrics: pd.DataFrame, runs: pd.DataFrame) -> str:
    plt, fig, ax = _figure(7.5, 4.6)
    approach1 = fit_approach1(runs)
    label = "envelope: where one size overtakes the next" if approach1.method == "crossings" else "envelope of final losses"
    envelope = approach1.envelope
    ax.plot(envelope["flops"], envelope["loss"], color=APPROACH_COLOURS["approach1"], marker="o", lw=2, label=label)
    draw_curves(ax, metrics, runs)
    return _png(plt, fig)


def roi_figure(summary: dict, pricing: Pricing) -> str:
    """Approach 3's compute-optimal loss against dollars, with its 95% band."""
    plt, fig, ax = _figure(6.4, 4.0)
    rows = roi_rows(summary, pricing)
    dollars = [r["dollars"] for r in rows]
    ax.plot(dollars, [r["loss"] for r in rows], color=APPROACH_COLOURS["approach3"], marker="o", ms=3)
    if all(r["loss_ci"] for r in rows):
        ax.fill_between(dollars, [r["loss_ci"][0] for r in rows], [r["loss_ci"][1] for r in rows], color=APPROACH_COLOURS["approach3"], alpha=0.15)
    ax.set(xscale="log", xlabel=f"cost ({pricing.price_per_gpu_hour:g} per GPU-hour, MFU {pricing.mfu:.0%})",
           ylabel="compute-optimal loss", title="What the spend buys (Approach 3, 95% band)")  # fmt: skip
    return _png(plt, fig)


def _value(value, interval=None) -> str:
    if value is None:
        return "-"
    text = f"{value:.4g}"
    return text + (f" [{interval[0]:.4g}, {interval[1]:.4g}]" if interval else "")


def _table(summary: dict) -> str:
    rows = []
    for name in ("approach1", "approach2"):
        part = summary[name] or {}
        ci = part.get("ci", {})
        rows += [(f"{name} {key}", _value(part.get(key), ci.get(key))) for key in ("a", "b")]
    if summary["approach3"]:
        ci = summary["approach3"]["ci"]
        rows += [(f"approach3 {key}", _value(summary["approach3"][key], ci.get(key))) for key in ("E", "A", "B", "alpha", "beta", "a", "b")]
        rows.append(("approach3 objective (summed Huber)", f"{summary['approach3']['objective']:.8g}"))
    check = summary.get("extrapolation")
    if check and check.get("approach3"):
        rows.append((f"extrapolation to {check['held_out_flops']:.3g}: loss observed / predicted",
                     f"{check['observed_best_loss']:.4f} / {check['approach3']['loss']:.4f}"))  # fmt: skip
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table><tr><th>quantity</th><th>value [95% interval]</th></tr>{body}</table>"


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def problems_section(summary: dict) -> str:
    """Every warning, every approach or check that could not be fitted with its reason, and the runs left out."""
    items = [f"{name.replace('approach', 'Approach ')}: not fitted: {why}" for name, why in summary["not_fitted"].items()]
    items += [f"warning: {warning}" for warning in summary["warnings"]]
    items += [f"run {r['run_id']} not fitted ({r['status']}{': ' + str(r['error']) if r.get('error') else ''})" for r in summary["excluded"]]
    if not items:
        return "<h2>Warnings and what could not be fitted</h2><p>None: every approach fitted, no warning.</p>"
    return "<h2>Warnings and what could not be fitted</h2><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def laws_section(summary: dict) -> str:
    """Each law family's error on the held-out runs (``sweep.fitting.selection``), the chosen one marked."""
    laws = summary.get("laws")
    if not laws:
        return ""
    folds = ", ".join(f"{f['name']} ({f['held_out_runs']} runs)" for f in laws["folds"]) or "none"
    rows = []
    for family in laws["families"]:
        error = family["held_out_error"]
        rows.append([family["name"] + (" (chosen)" if family["name"] == laws["chosen"] else ""), family["formula"],
                     "-" if error is None else f"{error:.2%}", "-" if family["held_out_bias"] is None else f"{family['held_out_bias']:+.2%}",
                     ", ".join(f"{k}: {v:.2%}" for k, v in family["folds"].items()) or "-",
                     "-" if family.get("smallest_budget_fitted") is None else f"{family['smallest_budget_fitted']:.3g} ({family['fitted_runs']} runs)",
                     family["skipped"] or ""])  # fmt: skip
    chosen = f"chosen: {laws['chosen'] or 'none'} ({laws['chosen_by']})"
    return (f"<h2>Law families</h2><p>Each form refitted without the held-out runs and scored on them: mean |relative "
            f"error| of their loss; each fitted over the range of budgets (all, or without the smallest quarter or half) "
            f"that predicts them best. Held out: {html.escape(folds)}; {html.escape(chosen)}.</p>"
            + _html_table(["family", "L(N, D)", "held-out error", "bias", "per fold", "fitted from budget", "skipped"], rows))


def predictions_table(summary: dict, budgets: list[float]) -> str:
    """N_opt, D_opt (and loss) per approach at each of ``budgets``, with intervals; a reason where none."""
    rows = []
    for c in budgets:
        entry = next(e for e in summary["predictions"] if e["flops"] == c)
        for name in ("approach1", "approach2", "approach3"):
            if name not in entry:
                rows.append([f"{c:.3g}", name.replace("approach", "Approach "), "-", "-", summary["not_fitted"].get(name, "not fitted")])
                continue
            ci, p = (summary[name] or {}).get("ci", {}), entry[name]
            ci = {k: v for k, v in ci.items() if k not in (summary[name] or {}).get("unbounded", {})}  # fitting/bounded.py
            loss = _value(p.get("loss"), ci.get(f"loss@{c:.3g}")) if "loss" in p else "- (Approaches 1-2 predict no loss)"
            rows.append([f"{c:.3g}", name.replace("approach", "Approach "), _value(p["n_opt"], ci.get(f"n_opt@{c:.3g}")),
                         _value(p["d_opt"], ci.get(f"d_opt@{c:.3g}")), loss])  # fmt: skip
        if "law" in entry:
            ci, p = ((summary.get("laws") or {}).get("law") or {}).get("ci", {}), entry["law"]
            rows.append([f"{c:.3g}", f"chosen law ({p['name']})", _value(p["n_opt"], ci.get(f"n_opt@{c:.3g}")),
                         _value(p["d_opt"], ci.get(f"d_opt@{c:.3g}")), _value(p["loss"], ci.get(f"loss@{c:.3g}"))])  # fmt: skip
    return "<h2>Predictions</h2>" + _html_table(["C (FLOPs)", "approach", "N_opt [95%]", "D_opt [95%]", "loss [95%]"], rows)


def _money(amount: float) -> str:
    return f"{amount:,.0f}" if amount >= 100 else f"{amount:.3g}"


def roi_section(summary: dict, pricing: Pricing | None, budgets: list[float]) -> tuple[str, list[tuple[str, str]]]:
    """The ROI table at ``budgets`` and its figure, or the reason there is none."""
    if pricing is None:
        return ("<h2>What the spend buys</h2><p>Not shown: give <code>--price-per-gpu-hour</code> and "
                "<code>--peak-flops</code> (and <code>--mfu</code>) to see loss against dollars.</p>", [])  # fmt: skip
    if summary["approach3"] is None:
        return f"<h2>What the spend buys</h2><p>Not shown: {html.escape(summary['not_fitted']['approach3'])}.</p>", []
    rows = [r for r in roi_rows(summary, pricing) if r["flops"] in budgets]
    table = _html_table(["C (FLOPs)", "GPU-hours", "cost", "loss [95%]", "loss gained by doubling the spend [95%]"],
                        [[f"{r['flops']:.3g}", f"{r['gpu_hours']:.4g}", _money(r["dollars"]), _value(r["loss"], r["loss_ci"]),
                          _value(r["gain"], r["gain_ci"])] for r in rows])  # fmt: skip
    note = (f"<p>At {pricing.price_per_gpu_hour:g} per GPU-hour, one GPU's peak {pricing.peak_flops:.3g} FLOP/s and MFU "
            f"{pricing.mfu:.0%}; loss is Approach 3's compute-optimal loss (<code>sweep/fitting/roi.py</code>).</p>")
    return "<h2>What the spend buys</h2>" + note + table, [("Loss against cost", roi_figure(summary, pricing))]


def runs_table(ledger: pd.DataFrame | None, runs: pd.DataFrame) -> str:
    """Every run: N, D, C, status, final loss, tokens/s (from the ledger; from the fitted table for ``--input``)."""
    if ledger is not None and not ledger.empty:
        frame = ledger.sort_values(["flops_budget", "n_params_nonembedding", "seed"])
        rows = [[r.run_id, f"{r.n_params_nonembedding:,}", f"{r.tokens:,}", f"{r.flops:.3g}", r.status,
                 "-" if pd.isna(r.final_eval_loss) else f"{r.final_eval_loss:.4f}",
                 "-" if pd.isna(getattr(r, "tokens_per_second", float("nan"))) else f"{r.tokens_per_second:.3g}"]
                for r in frame.itertuples()]  # fmt: skip
        return "<h2>Runs</h2>" + _html_table(["run", "N (non-emb)", "D tokens", "C FLOPs", "status", "final eval loss", "tokens/s"], rows)
    rows = [[str(i), f"{r.n_params:.4g}", f"{r.tokens:.4g}", f"{r.flops:.3g}", "fitted", f"{r.loss:.4f}", "-"]
            for i, r in runs.sort_values(["budget", "n_params"]).iterrows()]  # fmt: skip
    return "<h2>Runs</h2>" + _html_table(["row", "N", "D tokens", "C FLOPs", "status", "loss", "tokens/s"], rows)


def provenance_section(record: dict | None) -> str:
    if not record:
        return ""
    rows = [[key, ", ".join(value) if isinstance(value, list) else str(value)]
            for key, value in record.items() if key not in ("packages", "config")]  # fmt: skip
    if "config" in record:
        rows.insert(0, ["config", f"{record['config']['path']} (sha256 {record['config']['sha256'][:16]}...)"])
    rows += [[f"package {name}", version] for name, version in record.get("packages", {}).items()]
    return "<h2>Provenance</h2>" + _html_table(["what", "value"], rows)


THROUGHPUT_KEYS = ["n_params_nonembedding", "n_layer", "d_model", "device", "precision"]


def throughput_table(ledger: pd.DataFrame) -> str:
    """HTML table of mean tokens/s, model FLOP/s and MFU per model size, device and precision (completed runs
    that recorded a throughput; ``sweep.results.storage``), or "" when none did."""
    if "tokens_per_second" not in ledger:
        return ""
    runs = ledger[(ledger["status"] == "completed") & ledger["tokens_per_second"].notna()].copy()
    if runs.empty:
        return ""
    runs[["device", "precision"]] = runs[["device", "precision"]].fillna("?")
    groups = runs.groupby(THROUGHPUT_KEYS, sort=True, dropna=False).agg(
        runs=("run_id", "size"), tokens_per_second=("tokens_per_second", "mean"),
        model_flops_per_second=("model_flops_per_second", "mean"), mfu=("mfu", "mean"),
    )  # fmt: skip

    def number(value, spec: str) -> str:
        return "-" if pd.isna(value) else f"{value:{spec}}"

    head = "".join(f"<th>{h}</th>" for h in ("N (non-emb)", "L x d", "device", "precision", "runs", "tokens/s", "model FLOP/s", "MFU"))
    body = "".join(
        f"<tr><td>{number(g.n_params_nonembedding, ',.0f')}</td><td>{number(g.n_layer, '.0f')} x {number(g.d_model, '.0f')}</td>"
        f"<td>{html.escape(str(g.device))}</td>"
        f"<td>{html.escape(str(g.precision))}</td><td>{g.runs}</td><td>{number(g.tokens_per_second, '.3g')}</td>"
        f"<td>{number(g.model_flops_per_second, '.3g')}</td><td>{number(g.mfu, '.1%')}</td></tr>"
        for g in groups.reset_index().itertuples()
    )
    note = ("<p>Means over completed runs. Model FLOP/s = tokens/s &times; the sweep's FLOPs per token (its "
            "<code>flops_convention</code>); MFU = model FLOP/s / (workers &times; one device's dense peak at the "
            "run's precision), shown only where the peak is known.</p>")  # fmt: skip
    return f"<h2>Throughput</h2>{note}<table><tr>{head}</tr>{body}</table>"


def write_report(inputs: FitInputs, out_dir: str | Path, metrics: pd.DataFrame | None = None, title: str = "Scaling-law report",
                 n_boot: int = 1000, seed: int = 0, ledger: pd.DataFrame | None = None, pricing: Pricing | None = None,
                 provenance: dict | None = None, minimum: MinimumRule = MinimumRule(), law: str | None = None) -> Path:  # fmt: skip
    """Fit, draw and write ``OUT/report.html``; returns its path. ``ledger`` (the results' runs) adds the run and
    throughput tables, ``pricing`` the ROI view, ``provenance`` (``sweep.report.provenance``) its section;
    ``minimum``: how Approach 2 reads each budget's minimum; ``law``: the law family to predict with (None: the one
    that extrapolates best)."""
    runs = inputs.runs
    largest = float(runs["budget"].max())
    shown = [largest, 10.0 * largest]
    grid = sorted(set(np.logspace(np.log10(runs["budget"].min()), np.log10(largest) + 1.0, 12).tolist()) | set(shown))
    summary = fit_summary(inputs, n_boot=n_boot, seed=seed, predict_flops=grid, minimum=minimum, law=law)
    figures = [("Iso-FLOP curves", isoflop_figure(runs, minimum)), ("Compute-optimal parameters", frontier_figure(summary, grid, "n_opt")),
               ("Compute-optimal tokens", frontier_figure(summary, grid, "d_opt"))]  # fmt: skip
    if summary["approach3"]:
        a3 = summary["approach3"]
        fit = ParametricFit(a3["E"], a3["A"], a3["B"], a3["alpha"], a3["beta"], a3["objective"], summary["n_runs"], inputs.compute())
        figures += [("Parametric fit against the data", surface_figure(runs, fit)), ("Residuals", residual_figure(runs, fit))]
    if metrics is not None and not metrics.empty and "flops" in runs:
        figures.append(("Training curves by model size, and the envelope", curves_figure(metrics, runs)))
    roi, roi_figures = roi_section(summary, pricing, shown)
    figures += roi_figures
    throughput = throughput_table(ledger) if ledger is not None else ""
    sections = "".join(f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">' for name, data in figures)
    methods = "; ".join(f"{name.replace('approach', 'Approach ')}: {summary[name]['interval_method']}" for name in ("approach1", "approach2", "approach3")
                        if summary[name] and summary[name].get("interval_method"))  # fmt: skip
    body = f"""<p>{summary['n_runs']} runs fitted; FLOP convention: {html.escape(describe_convention(summary['flops_convention']))};
95% intervals from {n_boot} bootstrap resamples (seed {seed}). {html.escape(methods)}.</p>
{problems_section(summary)}<h2>Fitted numbers</h2>{_table(summary)}{laws_section(summary)}{predictions_table(summary, shown)}{roi}{sections}
{runs_table(ledger, runs)}{throughput}{provenance_section(provenance)}"""
    return write_page(out_dir, "report.html", title, body)


def write_page(out_dir: str | Path, name: str, title: str, body: str) -> Path:
    """A self-contained HTML page ``out_dir/name`` (the report's style), written whole or not at all."""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}img{{max-width:100%}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    temporary = out / f".{name}.tmp"
    temporary.write_text(page)
    temporary.replace(path)
    return path


def comparison_figure(result: dict) -> str:
    """Each matched cell's loss delta B - A against N, one colour per budget, with the threshold marked."""
    plt, fig, ax = _figure(7.5, 4.4)
    cells = pd.DataFrame(result["cells"]["table"])
    if not cells.empty:
        points = ax.scatter(cells["n_params"], cells["delta"], c=np.log10(cells["budget"]), cmap="viridis", s=24)
        fig.colorbar(points, ax=ax, label="log10 C")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.axhline(result["threshold"], color="tab:red", lw=0.8, ls="--", label=f"threshold {result['threshold']:g}")
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss B - A", title=f"{result['b']} against {result['a']}")
    ax.legend(fontsize=8)
    return _png(plt, fig)


def write_comparison(result: dict, out_dir: str | Path) -> Path:
    """``sweep compare --out DIR``: ``DIR/compare.html``, the verdict, the frontier and exponent tables and the
    matched cells' deltas, self-contained."""
    verdict = "REGRESSION" if result["regression"] else "no regression"
    frontier = [[f"{e['flops']:.3g}", _value(e["a"]["loss"], e["a"]["ci"]), _value(e["b"]["loss"], e["b"]["ci"]),
                 "-" if e.get("delta") is None else f"{e['delta']:+.4f}"] for e in result["frontier"]]  # fmt: skip
    exponents = [[name.replace("approach", "Approach "), _value(sides["a"]["a"], sides["a"]["ci"]), _value(sides["b"]["a"], sides["b"]["ci"])]
                 for name, sides in result["exponents"].items()]  # fmt: skip
    cells = result["cells"]
    summary = (f"{cells['matched']} matched (budget, N) cells, B worse in {cells['worse']}; mean delta "
               f"{_value(cells['mean_delta'], cells['mean_delta_ci'])}")  # fmt: skip
    body = f"""<p><b>Verdict: {verdict}</b> (threshold {result['threshold']:g}).
{"".join(f"<br>{html.escape(reason)}" for reason in result["reasons"])}</p><p>{html.escape(summary)}</p>
<h2>Frontier loss (Approach 3)</h2>{_html_table(["budget C", "A", "B", "B - A"], frontier)}
<h2>Exponent a</h2>{_html_table(["approach", "A", "B"], exponents)}
<h2>Matched cells</h2><img alt="loss deltas" src="data:image/png;base64,{comparison_figure(result)}">"""
    return write_page(out_dir, "compare.html", f"{result['b']} against {result['a']}", body)
