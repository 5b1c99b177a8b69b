"""What ``sweep plan`` prints about a plan, as text: every run in a table whose columns fit their values, or, for a
plan of more than ``MAX_TABLE_RUNS`` runs, a summary by budget and size that fits a screen; and the plan's
warnings, each kind once with a count (the driver logs the same lines: ``repeats_data_warning``, ``grouped``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from sweep.config import SweepConfig
from sweep.planning.memory import run_device
from sweep.planning.plan import Plan, RunSpec
from sweep.planning.throughput import Throughput, throughput_sources
from sweep.results.storage import TRUNK_SCHEDULES

MAX_TABLE_RUNS = 40
"""Plans of more runs print a summary; ``sweep plan --runs`` prints the whole table."""
MAX_SUMMARY_ROWS = 40
"""A summary by (budget, size) of more rows is given by budget instead, and by budget of more rows is cut short."""
SHOWN_EXAMPLES = 3
"""Lines of a repeated kind (left out, planned once) printed as they are; more are counted, with this many shown."""


def plan_text(config: SweepConfig, plan: Plan, speeds: dict[str, Throughput], all_runs: bool = False) -> str:
    """The text of ``sweep plan``: each run (``all_runs``, or a plan of at most ``MAX_TABLE_RUNS``) or the summary,
    the time estimates' assumptions (``speeds``: ``sweep.planning.throughput.run_throughputs`` of the plan's runs),
    the totals, legends and warnings."""
    r, runs = config.resources, plan.runs
    seconds = {spec.run_id: speeds[spec.run_id].seconds(spec) for spec in runs}
    lines = []
    for choice in plan.size_choices:
        sizes = sorted({s.n_params_nonembedding for s in runs if s.flops_budget == choice.budget})
        lines.append(f"sizes of budget {choice.budget:.3g} ({', '.join(f'{n:,}' for n in sizes)}): {choice.reason}")
    lines += [f"not planned yet: {line}" for line in plan.pending]
    lines += [f"ladder: {line}" for line in plan.size_notes]
    lines.append(f"sweep {config.name}: {len(runs):,} runs ({config.flops_convention} FLOPs)")
    per_step = f"{r.assumed_seconds_per_step * 1e3:.3g} ms per step (resources.assumed_seconds_per_step)"
    lines += [f"times assume {source}, + {per_step}" for source in throughput_sources(speeds)]
    table = all_runs or len(runs) <= MAX_TABLE_RUNS
    lines += runs_table(runs, seconds) if table else plan_summary(runs, seconds)
    lines.append(f"total {plan.total_training_flops:.3g} FLOPs, about {duration_text(sum(seconds.values()))} of run time "
                 "(before parallelism)")
    if config.training.schedule != "cosine":
        lines.append(schedule_line(config.training.schedule, plan))
    if table:
        lines.append("N: non-embedding parameters; D: training tokens; C: FLOPs; est: estimated run time")
        lines.append("batch: tokens per optimizer step (all workers); micro: sequences x seq_len per forward/backward "
                     "pass on one worker; mem: estimated peak memory per worker")  # fmt: skip
    else:
        lines.append(f"{len(runs):,} runs summarised (more than {MAX_TABLE_RUNS}): every run with sweep plan --runs, or --json")
    if any(not s.micro_batch_tokens for s in runs):
        lines.append("micro auto: picked from the device's free memory when the run starts; mem: one pass of the worker's whole share")
    warning = gpu_memory_warning(runs, r.gpu_memory_gb)
    lines += [f"warning: {warning}"] if warning else []
    lines += grouped("left out", plan.skipped)
    lines += grouped("planned once", plan.duplicates)
    return "\n".join(lines)


def schedule_line(schedule: str, plan: Plan) -> str:
    """What a wsd or wsds plan trains against the same grid of cosine runs."""
    ratio = plan.total_training_flops / plan.cosine_training_flops if plan.cosine_training_flops else 0.0
    trains = ("a readout trains only its decay, from its trunk's state at its branch step" if schedule == "wsd"
              else "a readout is its trunk's state at the bottom of a decay and trains nothing")  # fmt: skip
    return (f"{schedule}: {len(plan.runs) - len(plan.readouts)} trunks and {len(plan.readouts)} readouts train "
            f"{plan.total_training_flops:.3g} FLOPs; the same grid of cosine runs: {plan.cosine_training_flops:.3g} "
            f"({ratio:.2f}x, {1 - ratio:.0%} saved). C is each readout's cost as a standalone run (what the fits read); "
            f"{trains}")  # fmt: skip


def runs_table(runs: list[RunSpec], seconds: dict[str, float]) -> list[str]:
    """One row per run, its header first; no cell holds a space, so a row splits back into its cells. A wsd or
    wsds plan adds ``role``: ``trunk``, or the readout's branch step (``@1626``)."""
    header = ["run_id", "budget", "L", "d", "h", "N", "D", "steps", "C", "lr", "batch", "workers", "est", "micro", "mem"]
    roles = any(s.schedule != "cosine" for s in runs)
    rows = []
    for s in runs:
        micro = f"{s.micro_batch_tokens // s.seq_len}x{s.seq_len}" if s.micro_batch_tokens else "auto"
        row = [s.run_id, f"{s.flops_budget:.3g}", str(s.n_layer), str(s.d_model), str(s.n_head), f"{s.n_params_nonembedding:,}",
               f"{s.tokens:,}", f"{s.steps:,}", f"{s.flops:.3g}", f"{s.lr:.2e}", f"{s.batch_tokens:,}", str(s.workers),
               duration_text(seconds[s.run_id]), micro, bytes_text(s.memory_estimate_bytes, sep="")]  # fmt: skip
        if roles:
            row.append("trunk" if s.schedule in TRUNK_SCHEDULES else f"@{s.branch_step}" if s.parent_run_id else "-")
        rows.append(row)
    return aligned(header + ["role"] * roles, rows, left={0, 13, 15})


def plan_summary(runs: list[RunSpec], seconds: dict[str, float], max_rows: int = MAX_SUMMARY_ROWS) -> list[str]:
    """The runs by (budget, size), or by budget with each column's range where that gives more than ``max_rows``
    rows; by budget past ``max_rows`` rows, the first and last halves with a count of those between."""
    by_size = len({(s.flops_budget, s.n_params_nonembedding) for s in runs}) <= max_rows
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in sorted(runs, key=lambda s: (s.flops_budget, s.n_params_nonembedding)):
        groups.setdefault((spec.flops_budget, spec.n_params_nonembedding) if by_size else (spec.flops_budget,), []).append(spec)
    header = ["budget", "N", "runs", "seeds", "D", "steps", "est/run", "est", "mem"]
    if not by_size:
        header.insert(1, "sizes")
    rows = []
    for key, group in groups.items():
        per_run = [seconds[s.run_id] for s in group]
        row = [f"{key[0]:.3g}", span([s.n_params_nonembedding for s in group], count_text), f"{len(group):,}",
               str(len({s.seed for s in group})), span([s.tokens for s in group], count_text),
               span([s.steps for s in group], count_text), span(per_run, duration_text), duration_text(sum(per_run)),
               bytes_text(max(s.memory_estimate_bytes for s in group), sep="")]  # fmt: skip
        if not by_size:
            row.insert(1, str(len({s.n_params_nonembedding for s in group})))
        rows.append(row)
    if len(rows) > max_rows:
        half = max_rows // 2
        between = ["...", f"({len(rows) - 2 * half} budgets more)"] + [""] * (len(header) - 2)
        rows = rows[:half] + [between] + rows[-half:]
    legend = "; N, D, steps, est/run: the range over the group's runs; est: their sum; mem: the largest per worker"
    return aligned(header, rows) + [("by budget and size" if by_size else "by budget") + legend]


def span(values: list[float], text: Callable[[float], str]) -> str:
    """``text`` of the smallest and largest of ``values`` as ``low-high``, or one value when they agree."""
    low, high = text(min(values)), text(max(values))
    return low if low == high else f"{low}-{high}"


def aligned(header: list[str], rows: list[list[str]], left: Iterable[int] = (0,)) -> list[str]:
    """``header`` and ``rows`` as lines, each column as wide as its widest cell, two spaces between columns; the
    columns in ``left`` aligned left, the others right."""
    left = set(left)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header)] + [line(row) for row in rows]


def grouped(tag: str, lines: list[str], shown: int = SHOWN_EXAMPLES) -> list[str]:
    """``tag: LINE`` for each distinct line of ``lines`` (``(N times)`` after one given more than once) while there are
    at most ``shown + 1``; past that one line with their count, then ``shown`` distinct ones indented and a pointer to
    the rest."""
    counts = Counter(lines)  # in first-seen order
    if len(counts) <= shown + 1:
        return [f"{tag}: {line}" + (f" ({n} times)" if n > 1 else "") for line, n in counts.items()]
    return ([f"{tag}: {len(lines):,} entries, for example:"] + [f"  {line}" for line in list(counts)[:shown]]
            + [f"  ... and {len(lines) - shown:,} more (sweep plan --json lists them)"])  # fmt: skip


def gpu_memory_warning(runs: list[RunSpec], gpu_memory_gb: float | None) -> str | None:
    """One line for the GPU runs estimated over ``resources.gpu_memory_gb`` (their count and the largest), or None."""
    if gpu_memory_gb is None:
        return None
    over = [s for s in runs if run_device(s) == "cuda" and s.memory_estimate_bytes > gpu_memory_gb * 2**30]
    if not over:
        return None
    s = max(over, key=lambda spec: spec.memory_estimate_bytes)
    run = f"run {s.run_id} ({s.n_layer}x{s.d_model}, micro {s.micro_batch_tokens} tokens)"
    if len(over) == 1:
        return f"{run} is estimated at {bytes_text(s.memory_estimate_bytes)}, over resources.gpu_memory_gb {gpu_memory_gb:g} GiB"
    return (f"{len(over):,} runs are estimated over resources.gpu_memory_gb {gpu_memory_gb:g} GiB, the largest "
            f"{run} at {bytes_text(s.memory_estimate_bytes)}")


def repeats_data_warning(runs: list[RunSpec], epochs: Callable[[RunSpec], float], corpus: str) -> str | None:
    """One line for the runs that read the corpus more than once (``epochs``: a run's passes over it, e.g.
    ``sweep.training.data.epochs_for``; ``corpus``: its description), naming the run that reads it most; None if
    none does."""
    passes = {spec.run_id: epochs(spec) for spec in runs}
    over = [spec for spec in runs if passes[spec.run_id] > 1.0]
    if not over:
        return None
    most = max(over, key=lambda spec: passes[spec.run_id])
    return (f"repeats data: {len(over):,} of {len(runs):,} runs read {corpus} more than once, up to "
            f"{passes[most.run_id]:,.2f} epochs (run {most.run_id}, N={most.n_params_nonembedding:,}, D={most.tokens:,})")


def duration_text(seconds: float) -> str:
    """A duration in one unit, without a space: ``0.4s``, ``38s``, ``12min``, ``5.2h``, ``29d``, ``4.2y``."""
    for unit, scale, above in (("y", 365.25 * 86400, 730 * 86400), ("d", 86400, 2 * 86400), ("h", 3600, 7200), ("min", 60, 120)):
        if seconds >= above:
            return f"{seconds / scale:.2g}{unit}" if seconds / scale < 10 else f"{seconds / scale:,.0f}{unit}"
    return f"{seconds:.2g}s" if seconds < 10 else f"{seconds:.0f}s"


def count_text(n: float) -> str:
    """A count in three significant figures with a suffix: ``980``, ``21.7M``, ``6.24B``, ``1.2T``."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= 0.9995 * scale:  # 999,600 is 1M, not 1e+03k
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}"


def bytes_text(n_bytes: int, sep: str = " ") -> str:
    """Bytes in binary units, three significant figures: ``2.31 GiB``, ``540 MiB`` (``sep`` between)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            value = n_bytes / scale
            return f"{value:.3g}{sep}{unit}" if value < 999.5 else f"{value:.0f}{sep}{unit}"
    return f"{n_bytes}{sep}B"
