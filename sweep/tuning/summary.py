"""What a tuning study found: its trials as one table, the rules fitted to them, and the rule table on disk.

The studies (Optuna's journal) say which trials belong to the study and how each ended; the ledger of the tuning
root says what each trial's run trained. ``trial_table`` joins the two on the trial's ``run_id`` attribute, so a
run left over from an earlier version of the sweep file is never mistaken for a trial. The rule table
(``RESULTS/tune/rules/STUDY.json``, ``sweep.tuning.rule.RuleFit.to_dict``) is plain JSON written atomically: what
``training.lr_rule: tuned`` reads (``sweep.config.read_tuned_rule``), and small enough to commit beside a sweep file.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import optuna
import pandas as pd

from sweep.results.storage import ResultsStore
from sweep.tuning.rule import RuleFit, fit_rules
from sweep.tuning.study import PARAMETERS

TRIAL_COLUMNS = ("n_params", "trial", "state", "status", "run_id", "lr", "batch_tokens", "warmup_fraction", "beta2",
                 "loss", "evaluations", "tokens", "steps", "wall_seconds")  # fmt: skip


def rule_path(store: ResultsStore, study: str) -> str:
    """Where the study's rule table goes: ``RESULTS/tune/rules/STUDY.json``."""
    return f"{store.base}/rules/{study}.json"


def trial_table(studies: list[optuna.Study], sizes: list[int], ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per trial of every size's study (``TRIAL_COLUMNS``): its state and values, and what its run trained
    (tokens, steps, seconds) from the ledger. ``loss``: the final eval loss of a completed trial, else NaN;
    ``evaluations``: the intermediate losses Optuna was told, by evaluation."""
    runs = ledger.set_index("run_id") if not ledger.empty else pd.DataFrame()
    rows = []
    for n, study in zip(sizes, studies):
        for trial in study.get_trials(deepcopy=False):
            run_id = trial.user_attrs.get("run_id")
            run = runs.loc[run_id] if run_id is not None and run_id in runs.index else None
            status = trial.user_attrs.get("status") or ("running" if trial.state.name == "RUNNING" else None)
            loss = trial.value if trial.state.name == "COMPLETE" and status == "completed" else float("nan")
            rows.append({
                "n_params": n, "trial": trial.number, "state": trial.state.name, "status": status, "run_id": run_id,
                **{key: trial.params.get(key) for key in PARAMETERS},
                "loss": loss, "evaluations": dict(sorted(trial.intermediate_values.items())),
                "tokens": None if run is None else run["tokens"], "steps": None if run is None else run["steps_done"],
                "wall_seconds": None if run is None else run["wall_seconds"],
            })  # fmt: skip
    return pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))


def fit_table(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> RuleFit:
    """The rules of ``sweep.tuning.rule`` fitted to ``trial_table``'s trials: completed ones are the points; diverged
    and pruned ones count as rates tried."""
    done = table[table["status"].isin(["completed", "diverged", "pruned"]) & table["lr"].notna()]
    trials = [
        {"n_params": row.n_params, "lr": row.lr, "loss": row.loss if row.status == "completed" else None, "status": row.status,
         "batch_tokens": None if pd.isna(row.batch_tokens) else int(row.batch_tokens)}
        for row in done.itertuples(index=False)
    ]  # fmt: skip
    return fit_rules(trials, n_boot=n_boot, seed=seed)


def write_rule(store: ResultsStore, study: str, fit: RuleFit, **context) -> str:
    """Write the rule table (module docstring) atomically; returns its path."""
    table = fit.to_dict(study, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), **context)
    path = rule_path(store, study)
    store.write_atomic(path, (json.dumps(table, indent=2, default=_plain) + "\n").encode("utf-8"))
    return path


def _plain(value):
    """numpy scalars as Python numbers (json knows no numpy types)."""
    return value.item() if hasattr(value, "item") else str(value)


def shown_interval(interval) -> str:
    """`` [lo, hi]`` to three figures, or nothing without an interval (the text and the report)."""
    return f" [{interval[0]:.3g}, {interval[1]:.3g}]" if interval else ""


def describe(config, result) -> tuple[str, dict]:
    """``sweep tune``'s text and JSON of a ``sweep.tuning.driver.TuneResult``: per size its trials and LR* with
    its interval, the rule, the files written and how to use the rule."""
    fit, outcome, table = result.fit, result.outcome, result.table
    lines = [f"study {config.study}: {len(table)} trials ({', '.join(f'{n} {s.lower()}' for s, n in sorted(outcome.states.items()))}); "
             f"{outcome.trained} trained by this driver, {outcome.told_from_ledger} told from the ledger; {outcome.wall_seconds:.1f} s"]
    lines.append(f"{'N':>12}{'trials':>8}{'diverged':>9}{'pruned':>8}{'best trial lr':>15}{'best loss':>11}  LR* [95%]")
    pruned = table[table["status"] == "pruned"].groupby("n_params").size().to_dict()
    for size in fit.sizes:
        how = "" if size.refined else "  (best trial)"
        lines.append(f"{size.n_params:>12,}{size.trials:>8}{size.diverged:>9}{pruned.get(size.n_params, 0):>8}{size.best_trial_lr:>15.3g}"
                     f"{size.best_loss:>11.4f}  {size.lr:.3g}{shown_interval(size.lr_interval)}{how}")
    law = fit.lr_rule
    if law is not None:
        lines.append(f"LR*(N) = {law.coefficient:.4g}{shown_interval(law.coefficient_interval)} * (N / {law.reference_params:.4g})^"
                     f"{law.exponent:.3f}{shown_interval(law.exponent_interval)}  (95% intervals, {fit.n_boot} bootstrap resamples)")
    if fit.batch_rule is not None:
        b = fit.batch_rule
        lines.append(f"batch*(N) = {b.coefficient:.4g} * (N / {b.reference_params:.4g})^{b.exponent:.3f}{shown_interval(b.exponent_interval)} tokens")
    lines += [f"warning: {w}" for w in fit.warnings]
    lines.append(f"rule table: {result.rule_file}")
    lines.append(f"report: {result.report_file}")
    if law is not None:
        lines.append(f"use it: training: {{lr_rule: tuned, lr_tuned: {{study: {config.study}, file: {result.rule_file}}}}}")
    data = {
        "study": config.study, "states": outcome.states, "trained": outcome.trained, "told_from_ledger": outcome.told_from_ledger,
        "wall_seconds": outcome.wall_seconds, "rule": fit.to_dict(config.study), "rule_file": result.rule_file,
        "report_file": result.report_file,
        "trials": json.loads(table.to_json(orient="records")),
    }  # fmt: skip
    return "\n".join(lines), data
