"""Science check of ``training.schedule: wsd`` and ``wsds``: the same grid trained with cosine runs, with wsd trunks
and readouts and with wsds trunks, in one process, on embedded Ray; what each costs and what each fits.

Prints, per schedule: runs trained, training FLOPs (planned, and spent as the ledger records it), wall time of the
sweep, and the fitted exponents of every approach with their 95% bootstrap intervals; then the FLOPs ratio and the
check Hägele et al. (2024) make at scale: wsd's exponent a (Approach 2, N_opt ∝ C^a) inside cosine's interval and
cosine's inside wsd's, within ±0.03 of each other, at most 0.5x the FLOPs (and the same for wsds). One run of each
(minutes apiece), the order reversed on every other repeat (``--repeats 2`` runs cosine, wsd, wsds, wsds, wsd,
cosine).

The default grid is the demo's model ladder and training rules (``sweep/configs/demo.yaml``) over six budgets from
1e11 to 1e12 FLOPs: with the demo's three, one trunk serves only three readouts, and wsd trains 0.77x cosine's FLOPs
(``sweep plan`` says so); six bring it under 0.5x.

    python benchmarks/sweep_cost.py [--budgets 1e11 1.6e11 ...] [--sizes 7e3 2e4 ...] [--schedules cosine wsd wsds]
                                    [--bootstrap 1000] [--repeats 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402
import yaml  # noqa: E402

from sweep.api import fit  # noqa: E402
from sweep.cli import demo_config_path  # noqa: E402
from sweep.config import parse_config  # noqa: E402
from sweep.execute.orchestrate import prepare_plan, run_sweep  # noqa: E402
from sweep.results.storage import ResultsStore  # noqa: E402

BUDGETS = [1e11, 1.6e11, 2.5e11, 4e11, 6.3e11, 1e12]


def config_for(schedule: str, budgets: list[float], sizes: list[float] | None) -> dict:
    config = yaml.safe_load(demo_config_path().read_text())
    config.update(name=f"cost-{schedule}", budgets=budgets)
    config["training"]["schedule"] = schedule
    if sizes:
        config["model"]["sizes"] = sizes
    return config


def measure(schedule: str, budgets: list[float], sizes: list[float] | None, root: Path, n_boot: int) -> dict:
    config = parse_config(config_for(schedule, budgets, sizes))
    plan = prepare_plan(config)
    started = time.perf_counter()
    outcome = run_sweep(config, str(root))
    wall = time.perf_counter() - started
    ledger = ResultsStore(root).read_runs(config.name)
    summary = fit(str(root), sweep=config.name, n_boot=n_boot).summary
    return {"schedule": schedule, "runs": len(plan.runs), "statuses": outcome.statuses, "wall_seconds": wall,
            "planned_flops": plan.total_training_flops, "cosine_flops": plan.cosine_training_flops,
            "spent_flops": float(ledger["flops_spent"].sum()), "summary": summary}  # fmt: skip


def interval(part: dict | None, key: str) -> str:
    if not part or part.get(key) is None:
        return "-"
    lo, hi = (part.get("ci") or {}).get(key) or (None, None)
    return f"{part[key]:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{part[key]:.3f}"


def compare(cosine: dict, other: dict) -> None:
    """The FLOPs and wall ratios of ``other`` against ``cosine``, and the check on Approach 2's a."""
    name = other["schedule"]
    ratio = other["spent_flops"] / cosine["spent_flops"]
    a_cos, a_other = cosine["summary"]["approach2"], other["summary"]["approach2"]
    print(f"FLOPs {name} / cosine: {ratio:.3f} (planned {other['planned_flops'] / other['cosine_flops']:.3f}); "
          f"wall {name} / cosine: {other['wall_seconds'] / cosine['wall_seconds']:.3f}")
    if a_cos and a_other and a_cos.get("a") is not None and a_other.get("a") is not None and a_cos.get("ci") and a_other.get("ci"):
        inside = (a_cos["ci"]["a"][0] <= a_other["a"] <= a_cos["ci"]["a"][1]
                  and a_other["ci"]["a"][0] <= a_cos["a"] <= a_other["ci"]["a"][1])  # fmt: skip
        delta = a_other["a"] - a_cos["a"]
        verdict = "holds" if inside and abs(delta) <= 0.03 and ratio <= 0.5 else "does not hold"
        print(f"Approach 2: a({name}) - a(cosine) = {delta:+.3f}; each inside the other's interval: {inside}; "
              f"the check (within 0.03, each inside the other's interval, FLOPs <= 0.5x) {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=BUDGETS)
    parser.add_argument("--sizes", type=float, nargs="+", help="model.sizes (default: the demo's)")
    parser.add_argument("--schedules", nargs="+", default=["cosine", "wsd", "wsds"], choices=["cosine", "wsd", "wsds"])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", help="keep the results here (default: a temporary directory)")
    args = parser.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sweep-cost-"))
    ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=True, logging_level="ERROR")
    schedules = ["cosine"] + [s for s in dict.fromkeys(args.schedules) if s != "cosine"]
    order = [s for k in range(args.repeats) for s in (schedules if k % 2 == 0 else schedules[::-1])]
    results = [measure(schedule, args.budgets, args.sizes, base / f"{schedule}-{k}", args.bootstrap) for k, schedule in enumerate(order)]
    ray.shutdown()
    print(f"grid: {len(args.budgets)} budgets {args.budgets[0]:.3g}..{args.budgets[-1]:.3g} x "
          f"{'sizes ' + ' '.join(f'{n:.3g}' for n in args.sizes) if args.sizes else 'the demo ladder'}; "
          f"{os.cpu_count()} CPUs; {args.bootstrap} bootstrap resamples")
    print(f"{'schedule':<9}{'runs':>5}{'FLOPs trained':>15}{'wall s':>8}  {'Approach 1 a':<24}{'Approach 2 a':<24}{'Approach 3 a':<24}")
    for r in results:
        s = r["summary"]
        print(f"{r['schedule']:<9}{r['runs']:>5}{r['spent_flops']:>15.3g}{r['wall_seconds']:>8.1f}  "
              f"{interval(s['approach1'], 'a'):<24}{interval(s['approach2'], 'a'):<24}{interval(s['approach3'], 'a'):<24}")
    cosine = next(r for r in results if r["schedule"] == "cosine")
    for other in schedules[1:]:
        compare(cosine, next(r for r in results if r["schedule"] == other))
    print(f"results: {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
