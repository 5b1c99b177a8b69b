"""The ``sweep`` command line: a map from subcommand to function. Usage and config errors exit 2 with one line.

    sweep plan CONFIG [--runs] [--json [PATH.json]]    show the planned runs without training
    sweep run CONFIG [--results DIR] [--cluster FILE] [--address ADDR] [--verbose] [--repair]
                                                       train what the results directory lacks
    sweep tune CONFIG [--results DIR] [--cluster FILE] [--address ADDR] [--json [PATH.json]]
                                                       per-size Optuna studies (trials are runs), the rule LR*(N)
    sweep status [--results DIR] [--config FILE] [--json]   runs by status, FLOPs done of planned, in flight, damage
    sweep fit [--results DIR [--sweep NAME | --config FILE] | --input FILE] [--json [PATH.json]] [--out DIR]
                                                       Approaches 1-3, intervals, plot
    sweep predict --flops C | --gpu-hours H --peak-flops P [--mfu M] [--price-per-gpu-hour USD]
                                                       N_opt, D_opt, loss per approach; what the spend buys
    sweep compare A B | --last PATTERN [B] [--results DIR] [--out DIR]
                                                       did B regress against A? exit 4 if so, else 0
    sweep history PATTERN [--results DIR] [--out DIR]  frontier loss and exponents across matching sweeps
    sweep report [--results DIR | --input FILE] --out DIR   self-contained HTML report with every plot
    sweep demo [--results DIR]                         run the bundled demo sweep, then fit it
    sweep doctor [--peak-flops P] [--verbose]          check this machine trains as a sweep will (GPU, bf16, compile, DDP)

Exit status: 0 success (every planned run completed or diverged), 1 some runs failed after their retries,
2 config or usage error (a run no node can ever hold included), 3 another sweep holds the results directory's
lock, 5 cannot connect to the Ray cluster, 130 stopped by SIGINT and 143 by SIGTERM (runs in flight recorded as
interrupted, checkpoints kept: rerun the same command to resume them).
``plan``, ``status``, ``fit`` and ``predict`` take ``--json`` alone (JSON on stdout instead of text) or
``--json PATH.json`` (written there, the text printed too); ``sweep --version`` prints the version.
The sweep's own lines go to stderr; Ray's logs go to a file whose path ``sweep run`` prints (``--verbose``: the
terminal).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from sweep.execute.cluster import ClusterUnreachable, load_cluster
from sweep.config import ConfigError, SweepConfig, check_name, load_config
from sweep.execute.lock import SweepLocked
from sweep.execute.stop import SweepStopped
from sweep.results.uri import redact_uri, secrets_of

DEFAULT_RESULTS = "results"
LAW_FAMILIES = ("chinchilla", "farseer", "kaplan", "data_constrained")
"""``--law``'s families (``sweep.fitting.laws.FAMILIES``, named here so the parser needs no scipy)."""


def demo_config_path() -> Path:
    return Path(str(resources.files("sweep") / "configs" / "demo.yaml"))


def _results_root(args: argparse.Namespace, config: SweepConfig | None = None) -> str:
    return args.results or (config.results if config and config.results else DEFAULT_RESULTS)


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the planned runs: every run, or a summary by budget and size for a plan of more than 40 (``--runs``:
    every run). Example: ``sweep plan sweep/configs/demo.yaml --json``."""
    from sweep.execute.orchestrate import prepare_plan
    from sweep.planning.summary import plan_text
    from sweep.planning.throughput import run_throughputs, throughput_sources
    from sweep.results.storage import ResultsStore

    config = load_config(args.config)
    plan = prepare_plan(config, ResultsStore(_results_root(args, config)) if config.model.sizes == "auto" else None)
    speeds = run_throughputs(config.resources, plan.runs)
    rows = [{**asdict(s), "run_id": s.run_id, "estimated_seconds": speeds[s.run_id].seconds(s)} for s in plan.runs]
    totals = {"total_training_flops": plan.total_training_flops, "cosine_training_flops": plan.cosine_training_flops}
    sizes = [{"budget": c.budget, "reason": c.reason, "n_params": sorted({s.n_params_nonembedding for s in plan.runs if s.flops_budget == c.budget})}
             for c in plan.size_choices]  # fmt: skip
    if _json_output(args, {"sweep": config.name, "schedule": config.training.schedule, "runs": rows, "skipped": plan.skipped,
                           "duplicates": plan.duplicates, **totals, "sizes": sizes, "pending": plan.pending,
                           "throughput": throughput_sources(speeds)}):  # fmt: skip
        return 0
    print(plan_text(config, plan, speeds, all_runs=args.runs))
    return 0


def _ray_log_file(root: str) -> Path:
    """Where Ray's logs go: RESULTS/logs/ray-TIME.log, or ./logs/ for an object-store root (Ray writes local files)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return (Path("logs") if "://" in root else Path(root) / "logs") / f"ray-{stamp}.log"


def cmd_run(args: argparse.Namespace) -> int:
    """Train the runs the results lack. Example: ``sweep run my.yaml --results /shared/results --address auto``."""
    from sweep.execute.orchestrate import run_sweep
    from sweep.execute.progress import log

    config = load_config(args.config)
    root = _results_root(args, config)
    if args.results and secrets_of(args.results):
        log("warning: --results carries credentials, which other users see in `ps` and Ray records as this job's "
            "entrypoint; prefer AWS_* environment variables or a profile, or the sweep file's results key")
    outcome = run_sweep(config, root, _cluster(args, root), repair=args.repair)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.statuses.items())) or "nothing to run"
    log(f"sweep {config.name} finished in {outcome.wall_seconds:.1f} s: {counts}; results in {redact_uri(root) if '://' in root else Path(root).resolve()}")
    return 1 if outcome.failed else 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune each size's learning rate (and what tune.space adds) with Optuna, each trial a run on Ray, then fit
    LR*(N) with bootstrap intervals. A killed ``sweep tune`` resumes: rerun it. Example:
    ``sweep tune sweep/configs/tune-demo.yaml --results results``."""
    from sweep.tuning.driver import run_tune
    from sweep.tuning.summary import describe

    config = load_config(args.config)
    root = _results_root(args, config)
    result = run_tune(config, root, _cluster(args, root), n_boot=args.bootstrap)
    text, data = describe(config, result)
    if not _json_output(args, data):
        print(text)
    return 0


def _cluster(args: argparse.Namespace, root: str):
    """The cluster of ``run`` and ``tune``: the file, ``--address`` over it, ``--verbose``, Ray's log file."""
    cluster = load_cluster(args.cluster)
    if args.address:
        cluster = cluster.model_copy(update={"address": args.address})
    if args.verbose:
        cluster = cluster.model_copy(update={"verbose": True})
    if not cluster.log_file:
        cluster = cluster.model_copy(update={"log_file": str(_ray_log_file(root))})
    return cluster


def _throughput_text(entry: dict) -> str:
    """``; 1.2e+05 tokens/s, MFU 38%`` (means over the completed runs that recorded them), or nothing if unknown."""
    parts = []
    if entry["tokens_per_second_mean"] is not None:
        parts.append(f"{entry['tokens_per_second_mean']:.3g} tokens/s")
    if entry["mfu_mean"] is not None:
        parts.append(f"MFU {entry['mfu_mean']:.1%}")
    return "; " + ", ".join(parts) + " (mean of completed runs)" if parts else ""


def cmd_status(args: argparse.Namespace) -> int:
    """Show each sweep's progress. Example: ``sweep status --results /shared/results --json``."""
    from sweep.execute.status import sweep_status
    from sweep.results.storage import ResultsStore

    config, planned = _current_plan(args)
    report = sweep_status(ResultsStore(_results_root(args, config)), args.sweep, planned=planned)
    if _json_output(args, report):
        return 0
    holder = report["running"]
    print(f"driver: pid {holder['pid']} on {holder['host']} since {holder['started_at']}" if holder else "driver: none running")
    for entry in report["sweeps"]:
        counts = ", ".join(f"{n} {status}" for status, n in entry["counts"].items())
        share = entry["flops_done"] / entry["flops_planned"] if entry["flops_planned"] else 0.0
        print(
            f"{entry['sweep']}: {counts}; {entry['pending_runs']} of {entry['planned_runs']} planned still to run; "
            f"FLOPs {entry['flops_done']:.3g} of {entry['flops_planned']:.3g} ({share:.0%}); "
            f"{len(entry['in_flight'])} in flight" + (f"; {len(entry['interrupted'])} interrupted" if entry["interrupted"] else "")
            + (f"; {entry['runs_outside_plan']} stale (not in the current plan)" if entry["runs_outside_plan"] else "")
            + _throughput_text(entry)
        )
        for run_id in entry["in_flight"]:
            row = entry["live"].get(run_id)
            if row is None:
                print(f"  in flight: {run_id} (no metrics row yet)")
                continue
            evaluation = f", eval loss {row['eval_loss']:.4f}" if row["eval_loss"] is not None else ""
            done = f" ({row['done']:.0%} of its FLOPs)" if row["done"] is not None else ""
            speed = f", {row['tokens_per_second']:.3g} tokens/s" if row["tokens_per_second"] is not None else ""
            loss = f"{row['train_loss']:.4f}" if row["train_loss"] is not None else "not finite"
            print(f"  in flight: {run_id} at step {row['step']}{done}: train loss {loss}{evaluation}{speed}")
        for shown, (run_id, why) in enumerate(sorted(entry.get("waiting", {}).items(), key=lambda item: item[1])):
            if shown == 10:
                print(f"  ... {len(entry['waiting']) - 10} more waiting on their trunks")
                break
            print(f"  waiting: {run_id} ({why})")
        if entry["seconds_left"] is not None and entry["in_flight"]:
            speed = f", runs taking {entry['speed_vs_plan']:.2g}x their planned time" if entry["speed_vs_plan"] else ""
            print(f"  time left: about {entry['seconds_left'] / 60:.1f} min (the driver's estimate{speed})")
        for run_id, reason in entry["lacking_metrics"].items():
            print(f"  finished run {run_id} lacks its metrics ({reason}): `sweep run CONFIG --repair` trains it again")
    for warning in report["warnings"]:
        print(f"sweep: warning: {warning}", file=sys.stderr)
    for damaged in report["damaged"]:
        print(f"damaged: {damaged['path']}: {damaged['reason']} (skipped; the next `sweep run` sets it aside)")
    for entry in report["quarantined"]:
        print(f"set aside: {entry['path']} (was {entry['original']}, {entry['set_aside_at']}): {entry['reason']}")
    return 0


def _with_interval(value: float | None, interval: list[float] | None, spec: str = ".4g") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}" + (f" [{interval[0]:{spec}}, {interval[1]:{spec}}]" if interval else "")


def _estimate(part: dict | None, key: str, value: float | None, spec: str = ".4g", why: bool = True) -> str:
    """An approach's estimate (``key``: ``a``, ``n_opt@C``, ...) with its interval, or with why it shows none: an
    interval not bounded by the data (``unbounded``, fitting/bounded.py) or a line with none (``no_interval``);
    ``why=False`` for a table's narrow cell, the warnings below it saying why."""
    part = part or {}
    unbounded, interval = (part.get("unbounded") or {}).get(key), (part.get("ci") or {}).get(key)
    if value is not None and unbounded:
        return f"{value:{spec}} (interval unbounded{': ' + unbounded if why else ''})"
    if value is not None and interval is None and part.get("no_interval"):
        return f"{value:{spec}} (no interval{': ' + part['no_interval'] if why else ''})"
    return _with_interval(value, interval, spec)


def _print_summary(summary: dict, params: str) -> None:
    from sweep.fitting.compute import describe_convention

    a1, a2, a3 = summary["approach1"], summary["approach2"], summary["approach3"]
    print(f"{summary['n_runs']} runs fitted; N = {params}; 95% intervals from {summary['bootstrap']['samples']} bootstrap resamples "
          "(Approach 1: Student-t)")
    print(f"FLOP convention: {describe_convention(summary['flops_convention'])}")
    for row in summary["excluded"]:
        print(f"not fitted: run {row['run_id']} ({row['status']})")
    spread = summary.get("replicates")
    if spread:
        print(f"replicates: {spread['points']} (budget, N) points with several seeds ({spread['runs']} runs); seed-to-seed "
              f"loss sd median {spread['loss_sd_median']:.4f} ({spread['relative_sd_median']:.2%}), max {spread['loss_sd_max']:.4f}")
    if a1.get("method") == "crossings":
        print(f"\nApproach 1 (envelope of the sizes' loss-against-FLOPs curves: {len(a1['envelope'])} points where one size "
              "overtakes another; Student-t intervals of its lines)")
    else:
        print(f"\nApproach 1 (envelope of final losses: {len(a1['envelope'])} runs, edge minima left out; the argmin of the "
              "same iso-FLOP data Approach 2 fits, not an independent check; Student-t intervals of its lines)")
    if a1.get("note"):
        print(f"note: {a1['note']}")
    if a1["a"] is None:
        print(f"no frontier fitted: {summary['not_fitted']['approach1']}")
    else:
        print(f"a = {_estimate(a1, 'a', a1['a'], '.3f')}, b = {_estimate(a1, 'b', a1['b'], '.3f')}")
    minimum = a2.get("minimum") or {}
    print(f"\nApproach 2 (iso-FLOP minima: {minimum.get('description', 'parabola in log N')}; percentile bootstrap intervals)")
    print(f"{'budget C':>10}{'runs':>6}{'N_opt':>11}{'D_opt':>11}{'loss_opt':>10}  note")
    for fit in a2["budgets"]:
        if fit["interior"]:
            kept = f"  {fit['edge']} size: kept (--include-edges)" if fit.get("edge") else ""
            print(f"{fit['flops']:>10.3g}{fit['n_runs']:>6}{fit['n_opt']:>11.4g}{fit['d_opt']:>11.4g}{fit['loss_opt']:>10.4f}{kept}")
        else:
            print(f"{fit['flops']:>10.3g}{fit['n_runs']:>6}{'-':>11}{'-':>11}{'-':>10}  excluded: {fit['note']}")
    ci = a2.get("ci", {})
    if a2["a"] is None:
        print(f"no frontier fitted: {summary['not_fitted']['approach2']}")
    else:
        print(f"a = {_with_interval(a2['a'], ci.get('a'), '.3f')}  (N_opt ∝ C^a)")
        print(f"b = {_with_interval(a2['b'], ci.get('b'), '.3f')}  (D_opt ∝ C^b)")
    if a3 is not None:
        ci = a3["ci"]
        print("\nApproach 3 (L = E + A/N^alpha + B/D^beta, Huber delta 1e-3 on log loss)")
        for key, spec in (("E", ".4f"), ("A", ".4g"), ("B", ".4g"), ("alpha", ".4f"), ("beta", ".4f"), ("a", ".3f"), ("b", ".3f")):
            print(f"{key:>6} = {_with_interval(a3[key], ci.get(key), spec)}")
        print(f"objective = {a3['objective']:.8f}")
    if a3 is None:
        print(f"\nApproach 3: not fitted: {summary['not_fitted']['approach3']}")
    _print_laws(summary)
    check = summary.get("extrapolation")
    if not check and "extrapolation" in summary["not_fitted"]:
        print(f"\nExtrapolation check: not made: {summary['not_fitted']['extrapolation']}")
    if check:
        print(f"\nExtrapolation check: refit without the largest budget ({check['held_out_flops']:.3g}), predict it")
        observed_n = f"{check['observed_n_opt']:.3g}" if check["observed_n_opt"] else "no interior minimum"
        print(f"  observed: best loss {check['observed_best_loss']:.4f}, N_opt {observed_n}")
        if check["approach2"]:
            print(f"  approach2: N_opt {check['approach2']['n_opt']:.3g}")
        if check["approach3"]:
            a3 = check["approach3"]
            print(f"  approach3: N_opt {a3['n_opt']:.3g}, loss {a3['loss']:.4f} (error {a3['loss_error']:+.4f})")
    _print_predictions(summary)
    for warning in summary["warnings"]:
        print(f"\nwarning: {warning}")


def _print_predictions(summary: dict) -> None:
    """Each approach's N_opt, D_opt (and loss) at each predicted budget with intervals, then the chosen law's."""
    for entry in summary["predictions"]:
        c = entry["flops"]
        print(f"\nAt C = {c:.3g} FLOPs:")
        for name in ("approach1", "approach2", "approach3"):
            if name not in entry:
                continue
            ci = summary[name].get("ci", {})
            parts = [f"N_opt {_estimate(summary[name], f'n_opt@{c:.3g}', entry[name]['n_opt'], '.3g')}",
                     f"D_opt {_estimate(summary[name], f'd_opt@{c:.3g}', entry[name]['d_opt'], '.3g')}"]  # fmt: skip
            if "loss" in entry[name]:
                parts.append(f"loss {_with_interval(entry[name]['loss'], ci.get(f'loss@{c:.3g}'), '.4f')}")
            print(f"  {name}: " + ", ".join(parts))
        if "law" in entry:
            law, ci = entry["law"], summary["laws"]["law"]["ci"]
            print(f"  law ({law['name']}): N_opt {_with_interval(law['n_opt'], ci.get(f'n_opt@{c:.3g}'), '.3g')}, D_opt "
                  f"{_with_interval(law['d_opt'], ci.get(f'd_opt@{c:.3g}'), '.3g')}, loss "
                  f"{_with_interval(law['loss'], ci.get(f'loss@{c:.3g}'), '.4f')}, a {_with_interval(law['a'], ci.get(f'a@{c:.3g}'), '.3f')}")


def _print_laws(summary: dict) -> None:
    """Each law family's held-out error and the chosen law (``sweep.fitting.selection``)."""
    laws = summary.get("laws")
    if not laws:
        return
    folds = ", ".join(f"{f['name']} ({f['held_out_runs']} runs)" for f in laws["folds"]) or "none"
    print(f"\nLaw families (refitted without the held-out runs, scored by mean |relative error| on them; held out: {folds})")
    for family in laws["families"]:
        mark = "*" if family["name"] == laws["chosen"] else " "
        if family["held_out_error"] is not None:
            detail = (f"held-out error {family['held_out_error']:.2%} (bias {family['held_out_bias']:+.2%}), objective "
                      f"{family['objective']:.6g}, {_fit_range(family)}")  # fmt: skip
        elif family["skipped"]:
            detail = f"skipped: {family['skipped']}"
        else:
            detail = f"not scored (no fold to hold out), objective {family['objective']:.6g}"
        print(f" {mark}{family['name']:<17}{detail}")
    law = laws.get("law")
    if law is None:
        print(f"no law chosen: {laws.get('not_fitted')}")
        return
    ci = law["ci"]
    values = ", ".join(f"{k} = {_with_interval(v, ci.get(k), '.4g')}" for k, v in law["parameters"].items())
    print(f"chosen ({laws['chosen_by']}): {law['name']}, L = {law['formula']}: {values} ({law['samples']} resamples, "
          f"{_fit_range(law)})")


def _fit_range(entry: dict) -> str:
    """The budgets a law family was fitted to (``sweep.fitting.selection``: the fit range chosen by held-out error)."""
    smallest = entry.get("smallest_budget_fitted")
    return f"fitted to {entry.get('fitted_runs')} runs of budgets from {smallest:.3g}" if smallest is not None else "fitted to every run"


def _fit_inputs(args: argparse.Namespace):
    """The runs to fit: ``--input FILE`` or the results directory (``--sweep`` to pick one), minus dropped runs."""
    from sweep.api import inputs_in_scope, scope
    from sweep.fitting.inputs import drop_highest_loss, fit_inputs_from_file

    if args.input:
        try:
            inputs, source = fit_inputs_from_file(args.input, args.flops_convention), args.input
        except (OSError, ValueError) as error:  # TableError names the file and column; OSError: e.g. permissions
            raise ConfigError(f"--input: {error}") from None
    else:
        where = scope(args.results, args.sweep, args.config)
        source = args.results = where.store.root  # the config's root, for the plot and report too
        args.sweep = where.sweep
        inputs = inputs_in_scope(where, params=args.params, include_stale=args.include_stale)
    inputs = drop_highest_loss(inputs, args.drop_highest_loss)
    if inputs.runs.empty:
        raise ConfigError(f"no completed runs{' of sweep ' + args.sweep if args.sweep else ''} in {redact_uri(source)}")
    return inputs


def _current_plan(args: argparse.Namespace) -> tuple[SweepConfig | None, dict[str, float] | None]:
    """With ``--config FILE``: the sweep file and its current plan (``{run_id: flops}``), and ``args.sweep`` set to
    its name (a different ``--sweep`` is an error; ``sweep.api.scope``); without: ``(None, None)``."""
    if not getattr(args, "config", None):
        return None, None
    from sweep.api import scope

    where = scope(args.results, args.sweep, args.config)
    args.sweep = where.sweep
    return load_config(args.config), where.planned


def _fitted_what(args: argparse.Namespace) -> str:
    """What the output fits, for its first line: the sweep and its results root, or the input file."""
    return f"input {args.input}" if args.input else f"sweep {args.sweep} in {redact_uri(_results_root(args))}"


REGRESSION_EXIT = 4
"""``sweep compare``'s exit status when B regressed against A (for cron and systemd: 0 none, 2 a usage error)."""


def _compared_inputs(what: str, results: str | None, args: argparse.Namespace):
    """The fit table of one side of ``sweep compare``: a CSV or Parquet file if ``what`` is one, else a sweep name
    in ``results``."""
    from sweep.api import inputs_in_scope, scope
    from sweep.fitting.inputs import fit_inputs_from_file

    if Path(what).is_file() and what.endswith((".yaml", ".yml")):
        raise ConfigError(f"{what}: a sweep file is read as B only (sweep compare --last PATTERN {what})")
    if Path(what).is_file():
        try:
            return fit_inputs_from_file(what, args.flops_convention)
        except (OSError, ValueError) as error:
            raise ConfigError(f"{what}: {error}") from None
    inputs = inputs_in_scope(scope(results, check_name(what, "sweep"), None), params=args.params)
    if inputs.runs.empty:
        raise ConfigError(f"sweep {what}: no completed runs in {redact_uri(results or DEFAULT_RESULTS)}")
    return inputs


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare sweep B with sweep A (names in the results, or CSV/Parquet tables of runs): matched (budget, N) loss
    deltas, the frontier's loss at reference budgets and the exponents with 95% intervals, and a verdict. Exits 4
    when B regressed (worse by more than --threshold and outside the intervals), 0 otherwise.

    Example: ``sweep compare nightly-2026-12-01 nightly-2026-12-02 --results results``.
    """
    from sweep.fitting.compare import compare
    from sweep.results.storage import ResultsStore

    if not (len(args.sweeps) in (0, 1) if args.last else len(args.sweeps) == 2):
        raise ConfigError("give A and B, or --last PATTERN and optionally B (default: the newest sweep matching PATTERN)")
    store = ResultsStore(args.results or DEFAULT_RESULTS)
    if args.last and not args.sweeps:
        matching = matching_sweeps(store, args.last)
        if not matching:
            raise ConfigError(f"--last: no sweep matching {args.last!r} in {redact_uri(args.results or DEFAULT_RESULTS)}")
        args.sweeps = [matching[-1]]
    b_name, b_results = args.sweeps[-1], args.results_b or args.results
    if b_name.endswith((".yaml", ".yml")) and Path(b_name).is_file():  # the nightly sweep file: tonight's name
        config = load_config(b_name)
        b_name, b_results = config.name, b_results or config.results
        args.results = args.results or config.results
    a_name = args.sweeps[0] if not args.last else last_good(store, args.last, b_name)
    if a_name is None:
        print(f"{b_name}: no earlier sweep matching {args.last!r} to compare with (the first night): no regression")
        return 0
    a = _compared_inputs(a_name, args.results, args)
    b = _compared_inputs(b_name, b_results, args)
    result = compare(a, b, args.reference_flops, args.threshold, args.bootstrap, args.seed) | {"a": a_name, "b": b_name}
    if not Path(b_name).is_file():  # a sweep: its verdict is kept for the next night's --last
        ResultsStore(b_results or DEFAULT_RESULTS).write_comparison(b_name, {
            "against": a_name, "regression": result["regression"], "reasons": result["reasons"],
            "at": datetime.now(timezone.utc).isoformat()})  # fmt: skip
    if args.out:
        from sweep.report.html import write_comparison

        result["page"] = str(write_comparison(result, args.out))
    if not _json_output(args, result):
        _print_comparison(result)
        if args.out:
            print(f"page: {result['page']}")
    if result["regression"]:
        line = f"{b_name} regressed against {a_name}: {result['reasons'][-1]}"
        print(f"sweep: regression: {line}", file=sys.stderr)
        if args.on_regression:
            _run_hook(args.on_regression, line)
    return REGRESSION_EXIT if result["regression"] else 0


def matching_sweeps(store, pattern: str) -> list[str]:
    """The sweeps of ``store`` whose names match the glob ``pattern``, in name order (``nightly-{date}``: by night)."""
    from fnmatch import fnmatchcase

    return [name for name in store.sweeps() if fnmatchcase(name, pattern)]


def last_good(store, pattern: str, tonight: str) -> str | None:
    """The latest sweep before ``tonight`` (name order) matching ``pattern`` that has completed runs and no recorded
    regression (a night never compared, such as the first, counts as good)."""
    for name in reversed([n for n in matching_sweeps(store, pattern) if n < tonight]):
        verdict = store.comparison(name)
        if (verdict is None or not verdict.get("regression")) and (store.read_runs(name)["status"] == "completed").any():
            return name
    return None


def _run_hook(command: str, line: str) -> None:
    """``--on-regression CMD``: run CMD (split like a shell would, not through one) with the regression's line in
    ``SWEEP_REGRESSION``; its failure is one warning line, the exit status stays 4."""
    import os
    import shlex
    import subprocess

    try:
        done = subprocess.run(shlex.split(command), env={**os.environ, "SWEEP_REGRESSION": line}, timeout=300)
        if done.returncode:
            print(f"sweep: warning: --on-regression {command!r} exited {done.returncode}", file=sys.stderr)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        print(f"sweep: warning: --on-regression {command!r} did not run ({type(error).__name__}: {error})", file=sys.stderr)


def _print_comparison(result: dict) -> None:
    cells = result["cells"]
    print(f"B = {result['b']} against A = {result['a']}")
    if cells["matched"]:
        noise = ", ".join(f"{side} {cells[f'noise_{side}']:.4f}" for side in ("a", "b") if cells[f"noise_{side}"] is not None)
        print(f"matched (budget, N) cells: {cells['matched']}, B worse in {cells['worse']}; mean loss delta B - A "
              f"{_with_interval(cells['mean_delta'], cells['mean_delta_ci'], '+.4f')}"
              + (f"; seed-to-seed sd {noise}" if noise else "; no replicates to measure the noise"))
    else:
        print("matched (budget, N) cells: none (the sweeps share no budget and size)")
    for entry in result["frontier"]:
        a, b = entry["a"], entry["b"]
        if a["loss"] is None or b["loss"] is None:
            print(f"frontier loss at C = {entry['flops']:.3g}: Approach 3 did not fit both sweeps")
            continue
        print(f"frontier loss at C = {entry['flops']:.3g} (Approach 3): A {_with_interval(a['loss'], a['ci'], '.4f')}, "
              f"B {_with_interval(b['loss'], b['ci'], '.4f')}, delta {entry['delta']:+.4f}")
    for approach, sides in result["exponents"].items():
        shown = ", ".join(f"{side.upper()} {_with_interval(sides[side]['a'], sides[side]['ci'], '.3f')}" for side in ("a", "b"))
        print(f"exponent a ({approach.replace('approach', 'Approach ')}): {shown}")
    data = result.get("data") or {}
    if data.get("same") is False:
        print(f"data: the sweeps trained on different data (A's runs read {', '.join(data['a'])}, B's {', '.join(data['b'])}): "
              "a loss difference mixes the data's effect with the code's")
    tokenizer = result.get("tokenizer") or {}
    if tokenizer.get("same") is False:
        shown = {side: ", ".join(value[:16] for value in tokenizer[side]) for side in ("a", "b")}
        print(f"tokenizer: the sweeps' token files were written by different tokenizers (SHA-256 {shown['a']} for A, "
              f"{shown['b']} for B): their losses per token are not comparable")
    for reason in result["reasons"]:
        print(reason)
    print(f"verdict: {'REGRESSION' if result['regression'] else 'no regression'} (threshold {result['threshold']:g})")


def cmd_history(args: argparse.Namespace) -> int:
    """The trend of the frontier loss at a reference budget and of the exponents, across every sweep in the results
    whose name matches a pattern (``nightly-*``), in name order: a table, a plot (``--out DIR``) and ``--json``.

    Example: ``sweep history 'nightly-*' --results results --out history/``.
    """
    from sweep.api import inputs_in_scope, scope
    from sweep.fitting.history import history_rows, reference_budget
    from sweep.report.plots import plot_history
    from sweep.results.storage import ResultsStore

    store = ResultsStore(args.results or DEFAULT_RESULTS)
    tables = {}
    for name in matching_sweeps(store, args.pattern):
        inputs = inputs_in_scope(scope(args.results, name, None), params=args.params)
        if not inputs.runs.empty:
            tables[name] = inputs
    if not tables:
        raise ConfigError(f"pattern: no sweep in {store.shown} matching {args.pattern!r} has completed runs"
                          + (f" (sweeps there: {', '.join(store.sweeps()[:10])})" if store.sweeps() else ""))
    reference, note = (args.reference_flops, None) if args.reference_flops else reference_budget(tables)
    rows = history_rows(tables, {name: store.read_runs(name) for name in tables}, reference, args.bootstrap, args.seed)
    plot = plot_history(rows, reference, Path(args.out) / "history.png") if args.out else None
    if _json_output(args, {"pattern": args.pattern, "reference_flops": reference, "note": note, "sweeps": rows,
                           "plot": str(plot) if plot else None}):  # fmt: skip
        return 0
    print(f"{len(rows)} sweeps matching {args.pattern!r}; frontier loss (Approach 3) at C = {reference:.3g}; 95% intervals "
          f"from {args.bootstrap} bootstrap resamples")
    if note:
        print(f"note: {note}")
    print(f"{'sweep':<28}{'runs':>5}  {'loss':<28}{'a (Approach 2)':<26}{'a (Approach 3)':<26}code")
    for row in rows:
        print(f"{row['sweep']:<28}{row['runs']:>5}  {_with_interval(row['loss'], row['loss_ci'], '.4f'):<28}"
              f"{_with_interval(row['a_approach2'], row['a_approach2_ci'], '.3f'):<26}"
              f"{_with_interval(row['a_approach3'], row['a_approach3_ci'], '.3f'):<26}{', '.join(row['code_commits']) or '-'}")
    if plot:
        print(f"plot: {plot}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """What N and D for a budget, and what loss, by each approach with 95% intervals; with a price, what the spend
    buys (loss against dollars, the loss a doubling gains); or the loss of any model and token count.

    Example: ``sweep predict --flops 1e21`` or ``sweep predict --gpu-hours 5000 --peak-flops 989e12 --mfu 0.4
    --price-per-gpu-hour 2.5`` or ``sweep predict --n-params 1e9 --tokens 2e10 --json``.
    """
    from sweep.fitting.compute import describe_convention
    from sweep.fitting.roi import SPEND_MULTIPLES, roi_rows
    from sweep.fitting.summary import fit_summary

    if args.n_params is not None or args.tokens is not None:
        return _predict_point(args)
    pricing = _pricing(args)
    if args.flops is None:
        if None in (args.gpu_hours, args.peak_flops):
            raise ConfigError("give --flops, or --gpu-hours with --peak-flops (and --mfu), or --n-params with --tokens")
        args.flops = args.gpu_hours * 3600.0 * args.peak_flops * args.mfu
    if not (0 < args.flops < float("inf")):
        raise ConfigError(f"--flops: the budget must be a positive number of FLOPs, got {args.flops!r}")
    c = args.flops
    around = [c * m for m in SPEND_MULTIPLES if m != 1.0] if pricing else []
    inputs = _fit_inputs(args)
    summary = fit_summary(inputs, n_boot=args.bootstrap, seed=args.seed, predict_flops=[c, *around], minimum=_minimum_rule(args),
                          law=_law(args))  # fmt: skip
    prediction = summary["predictions"][0]
    roi = sorted(roi_rows(summary, pricing), key=lambda row: row["flops"]) if pricing else None
    extra = {key: summary[key] for key in ("n_runs", "flops_convention", "not_fitted", "warnings")}
    if args.inference_tokens is not None:
        extra["inference"] = _inference(args, inputs, pricing)
    if _json_output(args, prediction | extra | ({"roi": roi, "pricing": _pricing_dict(pricing)} if pricing else {})):
        return 0
    print(f"Budget C = {c:.4g} FLOPs ({_fitted_what(args)}: {summary['n_runs']} runs fitted; 95% intervals from "
          f"{args.bootstrap} bootstrap resamples; Approach 1: Student-t)")
    print(f"FLOP convention: {describe_convention(summary['flops_convention'])}")
    print(f"{'approach':<12}{'N_opt':>34}{'D_opt':>34}{'tokens/param':>14}{'loss':>30}")
    for name, label in (("approach1", "1 envelope"), ("approach2", "2 iso-FLOP"), ("approach3", "3 L(N,D)")):
        if name not in prediction:
            print(f"{label:<12}  not fitted: {summary['not_fitted'].get(name, 'not enough data')}")
            continue
        ci, p = summary[name].get("ci", {}), prediction[name]
        loss = _with_interval(p.get("loss"), ci.get(f"loss@{c:.3g}"), ".4f") if "loss" in p else "-"
        print(
            f"{label:<12}{_estimate(summary[name], f'n_opt@{c:.3g}', p['n_opt'], '.3g', why=False):>34}"
            f"{_estimate(summary[name], f'd_opt@{c:.3g}', p['d_opt'], '.3g', why=False):>34}{p['d_opt'] / p['n_opt']:>14.1f}{loss:>30}"
        )
    if "law" in prediction:
        law, ci = prediction["law"], summary["laws"]["law"]["ci"]
        print(f"{'law':<12}{_with_interval(law['n_opt'], ci.get(f'n_opt@{c:.3g}'), '.3g'):>34}"
              f"{_with_interval(law['d_opt'], ci.get(f'd_opt@{c:.3g}'), '.3g'):>34}{law['d_opt'] / law['n_opt']:>14.1f}"
              f"{_with_interval(law['loss'], ci.get(f'loss@{c:.3g}'), '.4f'):>30}  ({law['name']}, {summary['laws']['chosen_by']})")
    if pricing:
        _print_roi(roi, pricing, summary)
    if args.inference_tokens is not None:
        _print_inference(extra["inference"], pricing)
    for warning in summary["warnings"]:
        print(f"warning: {warning}")
    return 0


def _inference(args: argparse.Namespace, inputs, pricing) -> dict:
    """``--inference-tokens``: the compute-optimal model of ``--flops`` against the model that reaches its loss with
    the fewest training plus inference FLOPs (``sweep.fitting.inference``), by Approach 3's law; dollars with a price."""
    from sweep.fitting.inference import inference_plan
    from sweep.fitting.summary import NEEDS, parametric_or_none

    if not (0 <= args.inference_tokens < float("inf")):
        raise ConfigError(f"--inference-tokens: give the tokens the model will serve (0 or more), got {args.inference_tokens!r}")
    fit = parametric_or_none(inputs.runs, inputs.compute())
    if fit is None:
        return {"not_fitted": NEEDS["approach3"]}
    plan = inference_plan(fit, args.flops, args.inference_tokens)
    if pricing:
        for key in ("compute_optimal", "inference_optimal"):
            plan[key]["total_dollars"] = pricing.dollars(plan[key]["total_flops"])
    return plan | {"interval": "none yet: point estimates of Approach 3's fitted law"}


def _print_inference(plan: dict, pricing) -> None:
    if "not_fitted" in plan:
        print(f"\nWith inference: not fitted: {plan['not_fitted']}")
        return
    print(f"\nWith {plan['inference_tokens']:.3g} tokens of inference (Sardana & Frankle 2023; Approach 3's law, point "
          f"estimates without intervals yet), reaching loss {plan['target_loss']:.4f}:")
    print(f"{'':<18}{'N':>11}{'D':>11}{'tokens/param':>14}{'training':>11}{'inference':>11}{'total FLOPs':>13}"
          + (f"{'total cost':>12}" if pricing else ""))
    for key, label in (("compute_optimal", "compute-optimal"), ("inference_optimal", "inference-optimal")):
        row = plan[key]
        cost = f"{row['total_dollars']:>12,.0f}" if pricing else ""
        print(f"{label:<18}{row['n_params']:>11.3g}{row['tokens']:>11.3g}{row['tokens_per_param']:>14.1f}"
              f"{row['training_flops']:>11.3g}{row['inference_flops']:>11.3g}{row['total_flops']:>13.3g}{cost}")
    print(f"the inference-optimal model saves {plan['total_saved']:.1%} of the total FLOPs")


def _pricing(args: argparse.Namespace):
    """``Pricing`` from ``--price-per-gpu-hour``, ``--peak-flops`` and ``--mfu``; None without a price."""
    from sweep.fitting.roi import Pricing

    if args.price_per_gpu_hour is None:
        return None
    if args.peak_flops is None:
        raise ConfigError("--price-per-gpu-hour needs --peak-flops (one GPU's dense peak FLOP/s, e.g. 989e12 for an H100 in bf16)")
    try:
        return Pricing(args.price_per_gpu_hour, args.peak_flops, args.mfu)
    except ValueError as error:
        raise ConfigError(f"--{str(error).split()[0].replace('_', '-')}: {error}") from None


def _pricing_dict(pricing) -> dict:
    return {"price_per_gpu_hour": pricing.price_per_gpu_hour, "peak_flops": pricing.peak_flops, "mfu": pricing.mfu}


def _print_roi(rows: list[dict], pricing, summary: dict) -> None:
    """Loss against spend around the budget asked for, and what a doubling of each spend gains."""
    print(f"\nWhat the spend buys (Approach 3's compute-optimal loss; {pricing.price_per_gpu_hour:g} per GPU-hour, "
          f"peak {pricing.peak_flops:.3g} FLOP/s, MFU {pricing.mfu:.0%})")
    if not rows:
        print(f"  not available: {summary['not_fitted'].get('approach3', 'Approach 3 is not fitted')}")
        return
    print(f"{'C (FLOPs)':>12}{'GPU-hours':>12}{'cost':>12}{'loss':>28}{'gain per doubling':>30}")
    for row in rows:
        print(f"{row['flops']:>12.3g}{row['gpu_hours']:>12.4g}{row['dollars']:>12,.0f}"
              f"{_with_interval(row['loss'], row['loss_ci'], '.4f'):>28}{_with_interval(row['gain'], row['gain_ci'], '.4f'):>30}")


def _predict_point(args: argparse.Namespace) -> int:
    """``sweep predict --n-params N --tokens D``: the chosen law's loss there, its interval and a new run's."""
    from sweep.fitting.point import loss_at

    for flag, value in (("--n-params", args.n_params), ("--tokens", args.tokens)):
        if value is None or not (0 < value < float("inf")):
            raise ConfigError(f"{flag}: give a positive number with --n-params and --tokens together, got {value!r}")
    result = loss_at(_fit_inputs(args), args.n_params, args.tokens, n_boot=args.bootstrap, seed=args.seed, law=_law(args))
    if _json_output(args, result):
        return 0
    print(f"N = {args.n_params:.4g} parameters, D = {args.tokens:.4g} tokens (C = {result['flops']:.4g} FLOPs; "
          f"{_fitted_what(args)}: {result['n_runs']} runs fitted)")
    if result["loss"] is None:
        print(f"loss: not fitted: {result['not_fitted']}")
        return 0
    ci, run = result["ci"], result["prediction_interval"]
    print(f"loss ({result['law']['name']} law, {result['law']['chosen_by']}; the law's mean): {_with_interval(result['loss'], ci, '.4f')}"
          + ("" if ci else " (no interval: --bootstrap 0)"))
    if run:
        print(f"a new run's loss: [{run[0]:.4f}, {run[1]:.4f}] (95%, with the runs' scatter about the law, "
              f"{result['residual_scatter']:.2%} in log loss)")
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit the scaling laws (Approaches 1-3, bootstrap intervals). Example: ``sweep fit --sweep demo --json``."""
    from sweep.fitting.isoflop import fit_approach2
    from sweep.fitting.summary import fit_summary
    from sweep.report.plots import plot_approach2

    inputs, rule = _fit_inputs(args), _minimum_rule(args)
    summary = fit_summary(inputs, n_boot=args.bootstrap, seed=args.seed, predict_flops=args.predict_flops, minimum=rule, law=_law(args))
    if _json_output(args, summary):
        plot = _fit_plot_path(args)
        if plot:
            plot_approach2(inputs.runs, fit_approach2(inputs.runs, rule), plot)
        return 0
    print(f"Fitting {_fitted_what(args)}")
    _print_summary(summary, "the table's n_params" if args.input else f"{args.params} parameters")
    plot = _fit_plot_path(args)
    if plot:
        print(f"plot: {plot_approach2(inputs.runs, fit_approach2(inputs.runs, rule), plot).resolve()}")
    else:
        print("plot: not written (with --input, give --out DIR or --json PATH.json to place it)")
    return 0


def _fit_plot_path(args: argparse.Namespace) -> Path | None:
    """Where ``fit`` draws its iso-FLOP plot: ``--plot``; else ``--out``; else, for a local results directory,
    RESULTS/plots; for ``--input``, beside ``--json PATH.json``, else nowhere (never into the working directory
    unasked); for an object-store root, ./plots (a URI is no local path)."""
    name = f"isoflop-{args.sweep or (Path(args.input).stem if args.input else 'all')}.png"
    if args.plot:
        return Path(args.plot)
    if args.out:
        return Path(args.out) / name
    if args.input:
        return Path(args.json).parent / name if args.json and args.json != "-" else None
    root = _results_root(args)
    return (Path("plots") if "://" in root else Path(root) / "plots") / name


def cmd_report(args: argparse.Namespace) -> int:
    """Write a self-contained HTML report of the fits. Example: ``sweep report --results results --out report/``
    (``--price-per-gpu-hour 2.5 --peak-flops 989e12`` adds what the spend buys)."""
    from sweep.report.html import write_report
    from sweep.report.provenance import provenance
    from sweep.results.storage import ResultsStore

    inputs = _fit_inputs(args)
    metrics = ledger = None
    if not args.input:
        store = ResultsStore(_results_root(args))
        metrics = store.read_metrics(args.sweep)
        metrics = metrics[metrics["run_id"].isin(set(inputs.runs["run_id"]))]
        ledger = store.read_runs(args.sweep)
    _measured_defaults(args, ledger)
    title = f"Scaling-law report: {args.sweep or args.input or redact_uri(_results_root(args))}"
    source = args.input or redact_uri(_results_root(args))
    path = write_report(inputs, args.out, metrics=metrics, title=title, n_boot=args.bootstrap, seed=args.seed, ledger=ledger,
                        pricing=_pricing(args), provenance=provenance(args.config, ledger, source),
                        minimum=_minimum_rule(args), law=_law(args))  # fmt: skip
    print(f"report: {path.resolve()}")
    return 0


def _measured_defaults(args: argparse.Namespace, ledger) -> None:
    """``--peak-flops`` and ``--mfu`` not given: what the sweep's completed runs recorded (their device's peak, their
    mean MFU), else an MFU of 0.4."""
    done = ledger[ledger["status"] == "completed"] if ledger is not None and "peak_flops" in ledger else None
    if args.peak_flops is None and done is not None and done["peak_flops"].notna().any():
        args.peak_flops = float(done["peak_flops"].median())
    if args.mfu is None:
        measured = done["mfu"].dropna() if done is not None and "mfu" in done else []
        args.mfu = float(measured.mean()) if len(measured) else 0.4


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the bundled demo sweep on embedded Ray, then fit it. Example: ``sweep demo``."""
    args.config, args.cluster, args.address, args.verbose, args.repair = demo_config_path(), None, None, False, False
    status = cmd_run(args)
    if status == 0:
        args.sweep, args.params, args.plot, args.input = load_config(args.config).name, "nonembedding", None, None
        args.json, args.bootstrap, args.seed, args.predict_flops, args.drop_highest_loss = None, 1000, 0, None, 0
        args.include_stale, args.out, args.flops_convention = False, None, "6ND"
        args.price_per_gpu_hour, args.peak_flops, args.mfu = None, None, None
        args.minimum, args.window, args.include_edges, args.law = "akima", 7, False, "auto"  # sweep fit's defaults
        status = cmd_fit(args)
        root = Path(_results_root(args)).resolve()
        args.out = root / "report"
        cmd_report(args)
        print(f"Parquet results: {root / 'runs'} (ledger) and {root / 'metrics'} (per-step metrics)")
    return status


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check that this machine trains as a sweep will: its devices, then a few steps of a small GPT with bf16,
    torch.compile, fused AdamW and (two or more GPUs) NCCL DDP, or the CPU path; one line per check with tokens/s
    and MFU. Exit 1 naming any failed check. Example: ``sweep doctor``."""
    from sweep.training.doctor import run_doctor

    return run_doctor(peak=args.peak_flops, verbose=args.verbose)


def _add_fit_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", help=f"results directory or URI (default ./{DEFAULT_RESULTS})")
    parser.add_argument("--input", help="fit a CSV or Parquet table of runs instead (n_params, tokens or flops, loss[, budget])")
    parser.add_argument("--flops-convention", choices=("6ND", "table"), default="6ND",
                        help="with --input: how its compute splits into N and D: C = 6ND, or each row's flops / tokens "
                             "(a results directory always uses its runs' own FLOPs per token)")
    parser.add_argument("--sweep", help="the sweep to fit (default: the only one in the results; with several, name one)")
    parser.add_argument("--params", choices=("nonembedding", "total"), default="nonembedding", help="which parameter count is N")
    parser.add_argument("--drop-highest-loss", type=int, default=0, help="leave out this many highest-loss runs (Epoch used 5)")
    parser.add_argument("--config", help="the sweep file: fit its sweep (and results root), only the runs its current plan holds")
    parser.add_argument("--include-stale", action="store_true", help="with --config: also fit runs no longer in its plan")
    parser.add_argument("--minimum", choices=("akima", "spline", "parabola"), default="akima",
                        help="how Approach 2 reads each budget's minimum: an Akima spline of loss in log N (default), a "
                             "smoothing spline (penalty by GCV), or a parabola through the --window sizes nearest the best "
                             "(docs/fit-accuracy.md measures each)")
    parser.add_argument("--window", type=int, default=7, help="with --minimum parabola: sizes fitted, centred on the best "
                        "(0: every size; default 7)")
    parser.add_argument("--include-edges", action="store_true", help="fit Approaches 1 and 2 through budgets whose "
                        "lowest loss is at an end of their ladder too (flagged; left out by default)")
    parser.add_argument("--law", choices=("auto", *LAW_FAMILIES), default="auto",
                        help="the law family to predict with: auto (default) takes the one with the lowest error on the "
                             "held-out largest budget and largest size; the others name one (sweep/fitting/laws.py)")


def _law(args: argparse.Namespace) -> str | None:
    """``--law``: None for auto."""
    law = getattr(args, "law", "auto")
    return None if law == "auto" else law


def _minimum_rule(args: argparse.Namespace):
    """Approach 2's ``MinimumRule`` from ``--minimum``, ``--window`` and ``--include-edges``."""
    from sweep.fitting.isoflop import MinimumRule

    try:
        return MinimumRule(args.minimum, args.window or None, args.include_edges)
    except ValueError as error:
        raise ConfigError(f"--window: {error}") from None


def cmd_data_prepare(args: argparse.Namespace) -> int:
    """Tokenize text, JSONL or Parquet into .npy shards a sweep trains on, in parallel processes, with a validation
    split and a manifest; a rerun after a kill resumes. Example: ``sweep data prepare corpus/*.jsonl --tokenizer
    tokenizer.json --out data/corpus`` then, in the sweep file, ``data: {source: tokens, path: data/corpus/train-*.npy,
    val_path: data/corpus/val-*.npy, vocab_size: V}``."""
    from sweep.prepare.tokenizer import TokenizerFile
    from sweep.prepare.writer import PrepareOptions, prepare

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers: give 1 or more processes, got {args.workers}")
    options = PrepareOptions(shard_tokens=args.shard_tokens, val_fraction=args.val_fraction, column=args.column)
    tokenizer = TokenizerFile(args.tokenizer, args.tiktoken_encoding, args.eot_token)
    manifest = prepare(args.inputs, tokenizer, args.out, options, workers=args.workers)
    shards = len(manifest["files"])
    print(f"{args.out}: {manifest['train_tokens']:,} training and {manifest['val_tokens']:,} validation tokens in {shards} "
          f"shards ({manifest['dtype']}, vocabulary {manifest['vocab_size']:,}); manifest: {Path(args.out) / 'manifest.json'}")
    dtype = f", dtype: {manifest['dtype']}" if manifest["dtype"] != "uint16" else ""  # data.dtype bounds vocab_size
    print(f"sweep file: data: {{source: tokens, path: {args.out}/train-*.npy, val_path: {args.out}/val-*.npy, "
          f"vocab_size: {manifest['vocab_size']}{dtype}}}")
    return 0


def _version() -> str:
    """The installed package's version (``scaling-sweep``), or ``unknown`` when run from a bare checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scaling-sweep")
    except PackageNotFoundError:
        return "unknown"


def _add_cluster_args(parser: argparse.ArgumentParser, results_help: str) -> None:
    """The options of the commands that train (``run``, ``tune``): where results go and which Ray to use."""
    parser.add_argument("--results", help=results_help)
    parser.add_argument("--cluster", help="cluster file (default: embedded Ray, as clusters/local.yaml)")
    parser.add_argument("--address", help="Ray cluster to join: auto, ray://host:port or host:port (overrides --cluster)")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own logs on the terminal (default: in a file)")


def _add_json(parser: argparse.ArgumentParser, what: str) -> None:
    """One ``--json`` for every command: bare (or ``-``) prints JSON instead of text; ``PATH.json`` writes it there
    and prints the text as well."""
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH.json",
                        help=f"{what} as JSON: on stdout instead of text (bare --json or '-'), or written to PATH.json")


def _json_output(args: argparse.Namespace, data: dict) -> bool:
    """Honour ``--json``: True when JSON went to stdout (print nothing else); a ``PATH.json`` is written (atomically)
    and its path printed on stderr. A path not ending in ``.json`` is refused, so ``--json CONFIG.yaml`` (a
    positional taken for the path) never overwrites a file."""
    if not args.json:
        return False
    if args.json == "-":
        print(json.dumps(data, indent=2, default=list))
        return True
    path = Path(args.json)
    if path.suffix != ".json":
        raise ConfigError(f"--json: {args.json!r} is not a .json path (bare --json prints to stdout; a path must end in .json)")
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(data, indent=2, default=list))
    except OSError as error:
        raise ConfigError(f"--json: cannot write {path}: {error.strerror or error}") from None
    temporary.replace(path)
    print(f"JSON: {path.resolve()}", file=sys.stderr)
    return False


def _plain(doc: str | None) -> str | None:
    """A docstring as help text: ``code`` shown as code."""
    return doc and re.sub(r"``([^`]+)``", r"\1", doc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweep", description="Distributed scaling-law sweeps: plan, run, fit.")
    parser.add_argument("--version", action="version", version=f"sweep {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = commands.add_parser("plan", help="show the planned runs without training", description=_plain(cmd_plan.__doc__))
    plan.add_argument("config", help="sweep YAML file")
    plan.add_argument("--results", help=f"results directory or URI that model.sizes auto reads (default: the config's, else ./{DEFAULT_RESULTS})")
    plan.add_argument("--runs", action="store_true", help="every run, also for a plan of more than 40 (default: a summary by budget and size)")
    _add_json(plan, "the plan")
    plan.set_defaults(handler=cmd_plan)

    run = commands.add_parser("run", help="train the runs the results lack", description=_plain(cmd_run.__doc__))
    run.add_argument("config", help="sweep YAML file")
    _add_cluster_args(run, f"results directory or URI (default: the config's, else ./{DEFAULT_RESULTS})")
    run.add_argument("--repair", action="store_true",
                     help="also train again the finished runs whose metrics are missing or cut short (sweep status lists them)")
    run.set_defaults(handler=cmd_run)

    tune = commands.add_parser("tune", help="tune LR per size with Optuna, fit the rule LR*(N)", description=_plain(cmd_tune.__doc__))
    tune.add_argument("config", help="sweep YAML file with a tune section")
    _add_cluster_args(tune, f"results directory or URI; trials go to RESULTS/tune (default: the config's, else ./{DEFAULT_RESULTS})")
    tune.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the rule's intervals (default 1000)")
    _add_json(tune, "the study's result")
    tune.set_defaults(handler=cmd_tune)

    data = commands.add_parser("data", help="prepare token datasets (sweep data prepare)", description="Token datasets for data.path.")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    prepare = data_commands.add_parser("prepare", help="tokenize text, JSONL or Parquet into .npy shards",
                                       description=_plain(cmd_data_prepare.__doc__))  # fmt: skip
    prepare.add_argument("inputs", nargs="+", metavar="INPUT", help="files, directories or globs: .txt (a document each), "
                         ".jsonl (one object a line), .parquet")
    prepare.add_argument("--tokenizer", required=True, help="a Hugging Face tokenizers JSON file, or a tiktoken ranks file "
                         "with --tiktoken-encoding")
    prepare.add_argument("--tiktoken-encoding", help="with a tiktoken ranks file: which encoding it is (r50k_base, "
                         "p50k_base, cl100k_base, o200k_base)")
    prepare.add_argument("--eot-token", help="the token that separates documents (default: the first of <|endoftext|>, "
                         "<|end_of_text|>, </s>, <eos> the vocabulary has)")
    prepare.add_argument("--out", required=True, help="the dataset directory (a rerun resumes it)")
    prepare.add_argument("--column", default="text", help="the text field of .jsonl and .parquet inputs (default text)")
    prepare.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard, at most (default 1e8)")
    prepare.add_argument("--val-fraction", type=float, default=0.005, help="share of documents held out for validation "
                         "(default 0.005)")
    prepare.add_argument("--workers", type=int, help="tokenizing processes (default: one per CPU)")
    prepare.set_defaults(handler=cmd_data_prepare)

    status = commands.add_parser("status", help="runs by status, FLOPs done, runs in flight", description=_plain(cmd_status.__doc__))
    status.add_argument("--results", help=f"results directory or URI (default ./{DEFAULT_RESULTS})")
    status.add_argument("--sweep", help="only this sweep")
    status.add_argument("--config", help="the sweep file: its sweep, counted against its current plan (stale runs apart)")
    _add_json(status, "the report")
    status.set_defaults(handler=cmd_status)

    fit = commands.add_parser("fit", help="fit the scaling laws (Approaches 1-3) with intervals", description=_plain(cmd_fit.__doc__))
    _add_fit_inputs(fit)
    _add_json(fit, "the fit summary")
    fit.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (0: none; default 1000)")
    fit.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    fit.add_argument("--predict-flops", type=float, nargs="+", help="budgets to predict N_opt, D_opt and loss at (default: the largest)")
    fit.add_argument("--out", help="directory for the plot (default RESULTS/plots; with --input: beside --json PATH.json, else none)")
    fit.add_argument("--plot", help="PNG path of the iso-FLOP plot (overrides --out)")
    fit.set_defaults(handler=cmd_fit)

    comparing = commands.add_parser("compare", help="compare sweep B with sweep A; exit 4 on a regression", description=_plain(cmd_compare.__doc__))
    comparing.add_argument("sweeps", nargs="*", metavar="A B", help="sweep A (the reference) and sweep B (the one judged): "
                           "sweep names in --results (B in --results-b if elsewhere) or CSV/Parquet tables of runs; with "
                           "--last, B alone (default: the newest sweep matching PATTERN), which may be the sweep file")
    comparing.add_argument("--last", metavar="PATTERN", help="A is the latest earlier sweep matching PATTERN (e.g. 'nightly-*') "
                           "without a recorded regression")
    comparing.add_argument("--out", help="write the comparison as a self-contained page, DIR/compare.html")
    comparing.add_argument("--on-regression", metavar="CMD", help="on a regression, run CMD (the line in $SWEEP_REGRESSION)")
    comparing.add_argument("--results", help=f"results directory or URI of A (and of B; default ./{DEFAULT_RESULTS})")
    comparing.add_argument("--results-b", help="results directory or URI of B, when it lies elsewhere")
    comparing.add_argument("--reference-flops", type=float, nargs="+", help="budgets to compare the frontier at (default: the largest both hold)")
    comparing.add_argument("--threshold", type=float, default=0.01, help="loss by which B must be worse to regress (default 0.01)")
    comparing.add_argument("--flops-convention", choices=("6ND", "table"), default="6ND", help="for tables: as in sweep fit --input")
    comparing.add_argument("--params", choices=("nonembedding", "total"), default="nonembedding", help="which parameter count is N")
    comparing.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    comparing.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    _add_json(comparing, "the comparison")
    comparing.set_defaults(handler=cmd_compare)

    history = commands.add_parser("history", help="frontier loss and exponents across sweeps matching a pattern", description=_plain(cmd_history.__doc__))
    history.add_argument("pattern", help="sweep names to read, a glob such as 'nightly-*' (quote it in a shell)")
    history.add_argument("--results", help=f"results directory or URI (default ./{DEFAULT_RESULTS})")
    history.add_argument("--reference-flops", type=float, help="the budget to read the frontier loss at (default: the largest all hold)")
    history.add_argument("--params", choices=("nonembedding", "total"), default="nonembedding", help="which parameter count is N")
    history.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples per sweep (default 200)")
    history.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    history.add_argument("--out", help="write the plot history.png here")
    _add_json(history, "the history")
    history.set_defaults(handler=cmd_history)

    predict = commands.add_parser("predict", help="N_opt, D_opt and loss for a budget, per approach", description=_plain(cmd_predict.__doc__))
    predict.add_argument("--flops", type=float, help="training compute budget C in FLOPs")
    predict.add_argument("--gpu-hours", type=float, help="or: GPU-hours to spend (with --peak-flops, --mfu)")
    predict.add_argument("--peak-flops", type=float, help="peak FLOP/s of one GPU (e.g. 989e12 for an H100, dense bf16)")
    predict.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation to assume (default 0.4)")
    predict.add_argument("--inference-tokens", type=float, help="with --flops: the tokens the model will serve; adds the "
                         "model that reaches the same loss with the fewest training plus inference FLOPs (Sardana & Frankle)")
    predict.add_argument("--n-params", type=float, help="or: the loss of a model of this many parameters (with --tokens)")
    predict.add_argument("--tokens", type=float, help="trained on this many tokens (with --n-params; compute-optimal or not)")
    predict.add_argument("--price-per-gpu-hour", type=float,
                         help="with --peak-flops: show loss against spend and the loss a doubling of spend gains")
    _add_fit_inputs(predict)
    predict.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    predict.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    _add_json(predict, "the prediction")
    predict.set_defaults(handler=cmd_predict)

    report = commands.add_parser("report", help="write a self-contained HTML report of the fits", description=_plain(cmd_report.__doc__))
    _add_fit_inputs(report)
    report.add_argument("--out", required=True, help="directory for report.html")
    report.add_argument("--price-per-gpu-hour", type=float, help="add what the spend buys: loss against cost, the gain per doubling")
    report.add_argument("--peak-flops", type=float, help="one GPU's dense peak FLOP/s (default: what the runs recorded)")
    report.add_argument("--mfu", type=float, help="model FLOPs utilisation (default: the runs' measured mean, else 0.4)")
    report.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    report.set_defaults(handler=cmd_report)

    demo = commands.add_parser("demo", help="run the bundled demo sweep, then fit it", description=_plain(cmd_demo.__doc__))
    demo.add_argument("--results", help=f"results directory (default ./{DEFAULT_RESULTS})")
    demo.set_defaults(handler=cmd_demo)

    doctor = commands.add_parser("doctor", help="check this machine trains as a sweep will (devices, bf16, compile, DDP)",
                                 description=_plain(cmd_doctor.__doc__))  # fmt: skip
    doctor.add_argument("--peak-flops", type=float, help="one device's peak FLOP/s for MFU (default: the table of known GPUs)")
    doctor.add_argument("--verbose", action="store_true", help="print the traceback of a failed check")
    doctor.set_defaults(handler=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "sweep", None) is not None:
            check_name(args.sweep, "--sweep")  # it becomes part of paths (the Hive folder, the plot's name)
        return args.handler(args)
    except ConfigError as error:
        print(f"sweep: error: {error}", file=sys.stderr)
        return 2
    except SweepLocked as error:
        print(f"sweep: {error}", file=sys.stderr)
        return 3
    except ClusterUnreachable as error:
        print(f"sweep: error: {error}", file=sys.stderr)
        return 5
    except SweepStopped as stop:
        print(stop, file=sys.stderr)
        return stop.exit_code


if __name__ == "__main__":
    sys.exit(main())
