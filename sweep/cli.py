"""The ``sweep`` command line: a map from subcommand to function. Usage and config errors exit 2 with one line.

    sweep plan CONFIG [--json]                         show the planned runs without training
    sweep run CONFIG [--results DIR] [--cluster FILE] [--address ADDR]
                                                       train what the results directory lacks
    sweep status [--results DIR] [--json]              runs by status, FLOPs done of planned, runs in flight
    sweep fit [--results DIR] [--sweep NAME]           Approach 2 fit: table and iso-FLOP plot
    sweep demo [--results DIR]                         run the bundled demo sweep, then fit it

Exit status: 0 success (every planned run completed or diverged), 1 some runs failed after their retries,
2 config or usage error, 3 another sweep holds the results directory's lock.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from sweep.cluster import load_cluster
from sweep.config import ConfigError, SweepConfig, load_config
from sweep.lock import SweepLocked

DEFAULT_RESULTS = "results"


def demo_config_path() -> Path:
    return Path(str(resources.files("sweep") / "configs" / "demo.yaml"))


def _results_root(args: argparse.Namespace, config: SweepConfig | None = None) -> str:
    return args.results or (config.results if config and config.results else DEFAULT_RESULTS)


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the planned runs. Example: ``sweep plan sweep/configs/demo.yaml --json``."""
    from sweep.orchestrate import prepare_plan
    from sweep.plan import estimated_seconds

    config = load_config(args.config)
    plan = prepare_plan(config)
    r = config.resources
    seconds = {s.run_id: estimated_seconds(s, r.assumed_flops_per_second, r.assumed_seconds_per_step) for s in plan.runs}
    if args.json:
        rows = [{**asdict(s), "run_id": s.run_id, "estimated_seconds": seconds[s.run_id]} for s in plan.runs]
        json.dump({"sweep": config.name, "runs": rows, "skipped": plan.skipped}, sys.stdout, indent=2, default=list)
        print()
        return 0
    print(
        f"sweep {config.name}: {len(plan.runs)} runs ({config.flops_convention} FLOPs; times assume "
        f"{r.assumed_flops_per_second:.2g} FLOP/s per worker + {r.assumed_seconds_per_step * 1e3:.0f} ms per step)"
    )
    print(f"{'run_id':<17}{'budget':>9}{'L':>4}{'d':>6}{'h':>4}{'N (non-emb)':>13}{'D tokens':>13}{'steps':>7}{'C':>10}{'lr':>9}{'workers':>8}{'est s':>8}")
    for s in plan.runs:
        print(
            f"{s.run_id:<17}{s.flops_budget:>9.2g}{s.n_layer:>4}{s.d_model:>6}{s.n_head:>4}{s.n_params_nonembedding:>13,}"
            f"{s.tokens:>13,}{s.steps:>7}{s.flops:>10.3g}{s.lr:>9.2e}{s.workers:>8}{seconds[s.run_id]:>8.1f}"
        )
    print(f"total {sum(s.flops for s in plan.runs):.3g} FLOPs, about {sum(seconds.values()):.0f} s of run time (before parallelism)")
    for reason in plan.skipped:
        print(f"left out: {reason}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Train the runs the results lack. Example: ``sweep run my.yaml --results /shared/results --address auto``."""
    from sweep.orchestrate import run_sweep
    from sweep.progress import log

    config = load_config(args.config)
    root = _results_root(args, config)
    cluster = load_cluster(args.cluster)
    if args.address:
        cluster = cluster.model_copy(update={"address": args.address})
    outcome = run_sweep(config, root, cluster)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.statuses.items())) or "nothing to run"
    log(f"sweep {config.name} finished in {outcome.wall_seconds:.1f} s: {counts}; results in {Path(root).resolve() if '://' not in root else root}")
    return 1 if outcome.failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show each sweep's progress. Example: ``sweep status --results /shared/results --json``."""
    from sweep.status import sweep_status
    from sweep.storage import ResultsStore

    report = sweep_status(ResultsStore(_results_root(args)), args.sweep)
    if args.json:
        print(json.dumps(report, indent=2))
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
        )
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit Approach 2 to a results directory. Example: ``sweep fit --results results --sweep demo``."""
    from sweep.fitting import fit_approach2, fit_inputs_from_results
    from sweep.plots import plot_approach2
    from sweep.storage import ResultsStore

    root = _results_root(args)
    inputs = fit_inputs_from_results(ResultsStore(root), args.sweep, params=args.params)
    if inputs.runs.empty:
        raise ConfigError(f"no completed runs{' of sweep ' + args.sweep if args.sweep else ''} in {root}")
    result = fit_approach2(inputs.runs)
    print(f"Approach 2 (iso-FLOP parabolas) on {len(inputs.runs)} completed runs; N = {args.params} parameters")
    print(f"{'budget C':>10}{'runs':>6}{'N_opt':>12}{'D_opt':>14}{'loss_opt':>10}  note")
    for fit in result.budgets:
        if fit.interior:
            print(f"{fit.budget:>10.3g}{fit.n_runs:>6}{fit.n_opt:>12,.0f}{fit.d_opt:>14,.0f}{fit.loss_opt:>10.4f}")
        else:
            print(f"{fit.budget:>10.3g}{fit.n_runs:>6}{'-':>12}{'-':>14}{'-':>10}  excluded: {fit.note}")
    if result.n_opt is not None:
        print(f"N_opt = {result.n_opt.coefficient:.4g} * C^{result.a:.3f} (R^2 {result.n_opt.r_squared:.3f})")
        print(f"D_opt = {result.d_opt.coefficient:.4g} * C^{result.b:.3f} (R^2 {result.d_opt.r_squared:.3f})")
        print(f"a = {result.a:.3f}, b = {result.b:.3f}, a + b = {result.a + result.b:.3f}")
    else:
        print("fewer than 2 budgets have an interior minimum: no frontier fitted")
    for row in inputs.excluded.itertuples():
        print(f"not fitted: run {row.run_id} ({row.sweep}) is {row.status}")
    plot = plot_approach2(inputs.runs, result, args.plot or Path(root) / "plots" / f"isoflop-{args.sweep or 'all'}.png")
    print(f"plot: {plot.resolve()}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the bundled demo sweep on embedded Ray, then fit it. Example: ``sweep demo``."""
    args.config, args.cluster, args.address = demo_config_path(), None, None
    status = cmd_run(args)
    if status == 0:
        args.sweep, args.params, args.plot = load_config(args.config).name, "nonembedding", None
        status = cmd_fit(args)
        root = Path(_results_root(args)).resolve()
        print(f"Parquet results: {root / 'runs'} (ledger) and {root / 'metrics'} (per-step metrics)")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweep", description="Distributed scaling-law sweeps: plan, run, fit.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = commands.add_parser("plan", help="show the planned runs without training", description=cmd_plan.__doc__)
    plan.add_argument("config", help="sweep YAML file")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(handler=cmd_plan)

    run = commands.add_parser("run", help="train the runs the results lack", description=cmd_run.__doc__)
    run.add_argument("config", help="sweep YAML file")
    run.add_argument("--results", help=f"results directory or URI (default: the config's, else ./{DEFAULT_RESULTS})")
    run.add_argument("--cluster", help="cluster file (default: embedded Ray, as clusters/local.yaml)")
    run.add_argument("--address", help="Ray cluster to join: auto, ray://host:port or host:port (overrides --cluster)")
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser("status", help="runs by status, FLOPs done, runs in flight", description=cmd_status.__doc__)
    status.add_argument("--results", help=f"results directory or URI (default ./{DEFAULT_RESULTS})")
    status.add_argument("--sweep", help="only this sweep")
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.set_defaults(handler=cmd_status)

    fit = commands.add_parser("fit", help="fit the compute-optimal frontier (Approach 2)", description=cmd_fit.__doc__)
    fit.add_argument("--results", help=f"results directory or URI (default ./{DEFAULT_RESULTS})")
    fit.add_argument("--sweep", help="fit only this sweep (default: every sweep in the results)")
    fit.add_argument("--params", choices=("nonembedding", "total"), default="nonembedding", help="which parameter count is N")
    fit.add_argument("--plot", help="PNG path (default RESULTS/plots/isoflop-SWEEP.png)")
    fit.set_defaults(handler=cmd_fit)

    demo = commands.add_parser("demo", help="run the bundled demo sweep, then fit it", description=cmd_demo.__doc__)
    demo.add_argument("--results", help=f"results directory (default ./{DEFAULT_RESULTS})")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"sweep: error: {error}", file=sys.stderr)
        return 2
    except SweepLocked as error:
        print(f"sweep: {error}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
