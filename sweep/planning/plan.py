"""Planning: turn a ``SweepConfig`` into the list of runs to train, each a frozen, plain-data ``RunSpec``.

This is the one place that computes a run's horizon from its budget::

    flops_per_token = models.accounting.flops_per_token(shape, config.flops_convention)
    steps  = round(budget / (flops_per_token * batch_tokens))      # at least training.min_steps, else left out
    tokens = steps * batch_tokens;  flops = tokens * flops_per_token  (within half a step of the budget)

with each run's own batch, which the per-size rules give (``sweep.planning.rules``: learning rate, batch,
warm-up, AdamW beta2). A run's ``run_id`` is a hash of everything that defines its result (shape, data
fingerprint, token count, optimiser settings, seed, evaluation points), so the same run planned by two sweeps or
two invocations has the same id, and any change that alters the result changes it.

A run id is planned once: repeated seeds or budgets, and budgets that round to the same steps, give the same run
(``planned_once``: the first entry is kept, the others named in ``Plan.duplicates``).

``training.schedule: wsd`` (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
Durations") plans, for each (size, seed), the runs of the cosine grid as *readouts* of one *trunk* (``as_wsd``)::

    s_i = the steps of budget i (as above),  b_i = round(s_i (1 - cooldown_fraction))   its branch step
    trunk:     warm-up, then the constant peak rate, for max_i b_i steps; saves its state at every b_i
    readout i: the trunk's state at b_i, then a decay over s_i - b_i steps (linear or 1 - sqrt) to min_lr_ratio

A readout is the run a standalone warm-up-stable-decay schedule to s_i would be, step for step (the data position
is the step, the trunk's constant part is every readout's), so its id, ``flops`` (s_i B f, what the fits need)
and curve (the trunk's rows to b_i, then its own) are those of that run; training it from the trunk costs only its
decay. ``RunSpec.training_flops`` is what a run itself trains (the trunk once, each readout its decay), and
``Plan.total_training_flops`` their sum, against ``Plan.cosine_training_flops`` for the same grid of cosine runs.
Every run of a (size, seed) shares the trunk's warm-up: as long as its longest readout's would be (``warmup_steps``
of its steps), at most half the shortest readout's constant part. Warm-up from the shortest readout instead (4
steps for the demo's largest model) cost that model's 1e12 readout 0.17 in loss (1.837 against 1.664).

``training.schedule: wsds`` (OLMo's WSD-S ladder; Wen et al. 2024) decays inside one continuous run instead
(``as_wsds``)::

    s_0 = 0,  b_i = s_i - round(cooldown_fraction (s_i - s_(i-1)))     decay i runs b_i .. s_i
    trunk:     warm-up, the peak rate, decay i from b_i to s_i, back to the peak, ...; saves its state at every s_i
    readout i: the trunk's state at s_i, read out (evaluated) there: it trains nothing itself

so the whole ladder costs one run to the longest horizon per (size, seed). A readout is the trunk up to s_i, so
its identity holds the decays behind it (``decay_starts``, ``decay_ends``) and it is not the run a standalone
schedule to s_i would be: its loss has the earlier decays (and returns to the peak) in it.

Each run's micro-batch is checked here, or picked to fit ``resources.gpu_memory_gb``, and its peak memory per
worker estimated (``sweep.planning.memory``); a GPU run that cannot fit one sequence is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property

import pandas as pd

from models.accounting import (
    flops_per_token,
    flops_per_token_6n,
    flops_per_token_6n_attention,
    flops_per_token_chinchilla,
    param_counts,
)
from models.gpt import GPTShape
from sweep.config import ConfigError, SweepConfig
from sweep.planning.auto_sizes import SizeChoice, centred_choice, finished, first_choice, recorded_choice
from sweep.planning.ladder import ladder_shape, model_shapes, size_notes
from sweep.planning.memory import GiB, MemoryDoesNotFit, estimate_for_run, micro_batch_tokens_for, run_device
from sweep.planning.rules import learning_rate  # noqa: F401  (moved to rules.py; still importable from here)
from sweep.planning.rules import size_rules, warmup_steps
from sweep.results.storage import TRUNK_SCHEDULES


def eval_steps(steps: int, eval_points: int) -> tuple[int, ...]:
    """Steps (1-based counts of completed steps) after which the validation loss is measured; the last is ``steps``."""
    return tuple(sorted({max(1, round(steps * k / eval_points)) for k in range(1, eval_points + 1)}))


@dataclass(frozen=True)
class RunSpec:
    """One training run, fully specified in plain data (travels to Ray workers, lands in Parquet)."""

    sweep: str
    flops_budget: float
    flops_convention: str
    n_layer: int
    d_model: int
    n_head: int
    seq_len: int
    vocab_size: int
    n_params: int
    n_params_nonembedding: int
    flops_per_token: float
    """Under ``flops_convention``; the other two conventions are recorded beside it."""
    flops_per_token_6n: float
    flops_per_token_6n_attention: float
    flops_per_token_chinchilla: float
    steps: int
    batch_tokens: int
    tokens: int
    flops: float
    """tokens * flops_per_token: the run's training FLOPs under ``flops_convention``."""
    lr: float
    warmup_steps: int
    min_lr_ratio: float
    weight_decay: float
    beta1: float
    beta2: float
    grad_clip: float | None
    seed: int
    log_every_steps: int
    eval_steps: tuple[int, ...]
    eval_tokens: int
    data: dict = field(hash=False)
    """``DataConfig`` as plain data, so the worker can open the same corpus."""
    data_fingerprint: str
    device: str = "auto"
    compile: bool = False
    checkpoint_every_steps: int = 0
    workers: int = 1
    """Data-parallel training processes (DDP through Ray Train when more than one)."""
    cpus: float = 1
    """CPUs per worker (and torch threads on CPU)."""
    gpus: float = 0
    """GPUs per worker."""
    precision: str = "auto"
    """``training.precision``: ``auto``, ``fp32`` or ``bf16`` (the run resolves ``auto`` by its device)."""
    micro_batch_tokens: int = 0
    """Tokens per forward/backward pass on one worker; 0: the run picks the largest that fits its device's memory."""
    lr_rule: str = "kaplan"
    """The rule that gave ``lr``: ``kaplan``, ``power`` or ``fixed``."""
    batch_rule: str = "fixed"
    """The rule that gave ``batch_tokens``: ``fixed`` or ``power``."""
    warmup_tokens: int = 0
    """Warm-up length in tokens (``warmup_steps * batch_tokens``)."""
    memory_estimate_bytes: int = 0
    """Estimated peak memory of one worker (``sweep.planning.memory``); 0: not estimated."""
    peak_flops: float | None = None
    """``resources.peak_flops``: one device's peak FLOP/s for MFU (None: looked up by device name)."""
    data_order: str = "shuffled-v1"
    """Which batch order ``sweep.training.data.TokenStream`` implements (part of the run's identity)."""
    schedule: str = "cosine"
    """The LR schedule: ``cosine``; ``wsd`` (a readout: constant after warm-up, then a decay from
    ``branch_step``); ``wsd-trunk`` (constant after warm-up to its last step); ``wsds-trunk`` (constant after
    warm-up but for its decays, ``decay_starts`` to ``decay_ends``); ``wsds`` (a readout of one: the trunk's state
    at its last step)."""
    branch_step: int = 0
    """``wsd``: the step the decay starts at (the readout's branch step on its trunk); 0 otherwise."""
    cooldown_shape: str = ""
    """``wsd``: ``linear`` or ``1-sqrt``; empty otherwise."""
    parent_run_id: str | None = None
    """``wsd``: the trunk whose state at ``branch_step`` the readout starts from (not part of its identity:
    trained from step 0 it is the same run)."""
    branch_steps: tuple[int, ...] = ()
    """``wsd-trunk``, ``wsds-trunk``: the steps it keeps its state at, one per readout."""
    decay_starts: tuple[int, ...] = ()
    """``wsds``, ``wsds-trunk``: the step each decay starts at (0-based, as ``branch_step``), one per readout to here."""
    decay_ends: tuple[int, ...] = ()
    """``wsds``, ``wsds-trunk``: the step each decay reaches ``min_lr_ratio`` of the peak at (a readout's steps)."""
    lr_study: str | None = None
    """The tuning study whose rule gave ``lr`` (``training.lr_rule: tuned``), else None."""
    study: str | None = None
    """A tuning trial's study (``sweep tune``), else None."""
    trial: int | None = None
    """A tuning trial's number in its size's Optuna study, else None."""
    size_reason: str | None = None
    """``model.sizes: auto``: why this budget got this size (``sweep.planning.auto_sizes``); None for a fixed ladder."""
    code_commit: str | None = None
    """The git commit (``+dirty`` with local changes) of the checkout that planned and launched the run
    (``sweep.versions``), None outside one; recorded, not part of the run's identity (a sweep name may hold it)."""
    tokenizer_sha256: str | None = None
    """The SHA-256 of the tokenizer that wrote the token files, from the manifest of ``sweep data prepare`` beside
    them (``sweep.training.provenance``), else None; recorded, not part of the run's identity (the data fingerprint
    already is: other ids give other token files)."""

    @property
    def shape(self) -> GPTShape:
        return GPTShape(self.n_layer, self.d_model, self.n_head, self.seq_len, self.vocab_size)

    @property
    def batch_size(self) -> int:
        return self.batch_tokens // self.seq_len

    @property
    def training_flops(self) -> float:
        """The FLOPs this run itself trains: a readout started from its trunk only its decay; others ``flops``."""
        if self.parent_run_id is None:
            return self.flops
        return (self.steps - self.branch_step) * self.batch_tokens * self.flops_per_token

    @property
    def training_steps(self) -> int:
        """The optimizer steps this run itself trains (a readout from its trunk: its decay's)."""
        return self.steps - (self.branch_step if self.parent_run_id is not None else 0)

    @cached_property
    def run_id(self) -> str:
        """16 hex characters of SHA-256 over the fields that define the result (not sweep, budget or device)."""
        identity = {k: v for k, v in asdict(self).items()
                    if k not in _NOT_IDENTITY and not (k in _IDENTITY_DEFAULTS and v == _IDENTITY_DEFAULTS[k])}  # fmt: skip
        canonical = json.dumps(identity, sort_keys=True, default=list)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_NOT_IDENTITY = frozenset(
    {
        "sweep", "flops_budget", "flops_convention", "flops_per_token", "flops", "device", "compile",
        "checkpoint_every_steps", "workers", "cpus", "gpus", "precision", "micro_batch_tokens", "lr_rule",
        "batch_rule", "warmup_tokens", "memory_estimate_bytes", "peak_flops", "lr_study", "study", "trial",
        "parent_run_id", "branch_steps", "size_reason", "code_commit", "tokenizer_sha256",
    }  # fmt: skip
)
_IDENTITY_DEFAULTS = {"schedule": "cosine", "branch_step": 0, "cooldown_shape": "", "decay_starts": (), "decay_ends": ()}
"""Fields added after runs were first recorded: left out of the id at these values, so a cosine run planned today
has the id it had before they existed."""
"""How and where a run trains does not change which run it is (DDP and gradient accumulation match one worker and
one pass within float noise; the rules are recorded through the values they resolved to)."""


def estimated_seconds(spec: RunSpec, flops_per_second: float, seconds_per_step: float) -> float:
    """A run's expected duration: its FLOPs at the assumed rate (shared by its workers) plus a fixed cost per step.

    The per-step term matters for tiny models, whose steps are dominated by launch and Python overhead.
    """
    return spec.training_flops / (flops_per_second * spec.workers) + spec.training_steps * seconds_per_step


@dataclass(frozen=True)
class Plan:
    runs: list[RunSpec]
    skipped: list[str]
    """Human-readable reasons for (budget, shape) pairs left out, e.g. too few steps."""
    duplicates: list[str] = field(default_factory=list)
    """Entries of the grid that are the same run as an earlier one (a repeated seed or budget, or two budgets that
    round to the same steps), planned once: one line each, for ``sweep plan`` and ``sweep run`` to show."""
    size_choices: list[SizeChoice] = field(default_factory=list)
    """``model.sizes: auto``: each planned budget's sizes and why."""
    pending: list[str] = field(default_factory=list)
    """``model.sizes: auto``: budgets not planned yet, one line each saying what they wait for."""
    size_notes: list[str] = field(default_factory=list)
    """Ladder targets missed by more than 10%, with why, and targets that snap onto one shape (``ladder.size_notes``)."""

    @property
    def readouts(self) -> list[RunSpec]:
        """The runs the fits read (every run but trunks)."""
        return [spec for spec in self.runs if spec.schedule not in TRUNK_SCHEDULES]

    @property
    def total_training_flops(self) -> float:
        """What the sweep trains (``RunSpec.training_flops`` summed: a trunk once, each readout its decay)."""
        return float(sum(spec.training_flops for spec in self.runs))

    @property
    def cosine_training_flops(self) -> float:
        """What the same grid costs as cosine runs, each trained from step 0."""
        return float(sum(spec.flops for spec in self.readouts))


def plan_sweep(config: SweepConfig, vocab_size: int, data_fingerprint: str, ledger: pd.DataFrame | None = None,
               recorded: dict | None = None) -> Plan:  # fmt: skip
    """Every (budget, shape, seed) run of the sweep, with its horizon; smallest budgets and models first. Under
    ``model.sizes: auto`` the sizes of each budget come from the choices ``recorded`` in the results, else from
    ``ledger`` (the sweep's rows; ``plan_auto``)."""
    if config.model.sizes == "auto":
        return plan_auto(config, vocab_size, data_fingerprint, pd.DataFrame() if ledger is None else ledger, recorded or {})
    shapes = model_shapes(config, vocab_size)
    runs, skipped = plan_budgets(config, [(budget, shapes, None) for budget in sorted(config.budgets)], vocab_size, data_fingerprint)
    return replace(finish_plan(config, runs, skipped), size_notes=size_notes(config, vocab_size))


def plan_auto(config: SweepConfig, vocab_size: int, data_fingerprint: str, ledger: pd.DataFrame, recorded: dict) -> Plan:
    """``model.sizes: auto`` (``sweep.planning.auto_sizes``): budget by budget, smallest first, the recorded choice,
    else the first ladder or sizes centred on the finished budgets' N_opt; the budgets that must wait for smaller
    ones to finish are listed in ``Plan.pending``. ``Plan.size_choices`` holds each planned budget's shapes."""
    auto, m = config.model.auto_sizes, config.model
    runs, skipped, choices, pending, done = [], [], [], [], {}
    for budget in sorted(config.budgets):
        choice = recorded_choice(recorded, budget)
        if choice is None and not choices and not pending:
            choice = first_choice(auto, budget)
        elif choice is None:
            waiting = [c.budget for c in choices if c.budget not in done]
            if waiting or pending:
                what = f"budget {waiting[0]:.3g} to finish" if waiting else "the smaller budgets above"
                pending.append(f"budget {budget:.3g}: its sizes are chosen once every smaller budget has finished (waits for {what})")
                continue
            choice = centred_choice(auto, budget, done)
            if isinstance(choice, str):
                pending.append(f"budget {budget:.3g}: {choice}")
                continue
        shapes = [GPTShape(layers, width, heads, m.seq_len, vocab_size) for layers, width, heads in choice.shapes] + [
            ladder_shape(m, size, vocab_size) for size in choice.targets
        ]  # fmt: skip
        shapes = sorted(dict.fromkeys(shapes), key=lambda s: param_counts(s).nonembedding)
        planned, left_out = plan_budgets(config, [(budget, shapes, choice.reason)], vocab_size, data_fingerprint)
        runs, skipped = runs + planned, skipped + left_out
        choices.append(replace(choice, targets=(), shapes=tuple((s.n_layer, s.d_model, s.n_head) for s in shapes)))
        rows = finished(ledger, [spec.run_id for spec in planned])
        if rows is not None:
            done[budget] = rows
    return replace(finish_plan(config, runs, skipped), size_choices=choices, pending=pending)


def finish_plan(config: SweepConfig, runs: list[RunSpec], skipped: list[str]) -> Plan:
    """Each run id once, then the schedule's trunks and readouts, then each run's memory."""
    t = config.training
    runs, duplicates = planned_once(runs)
    if t.schedule == "wsd":
        runs = as_wsd(runs, t.cooldown_fraction, t.cooldown_shape, t.eval_points)
    elif t.schedule == "wsds":
        runs = as_wsds(runs, t.cooldown_fraction, t.cooldown_shape, t.eval_points)
    runs = [with_memory(spec, config.resources.gpu_memory_gb) for spec in runs]
    return Plan(runs=runs, skipped=skipped, duplicates=duplicates)


def plan_budgets(config: SweepConfig, ladders: list[tuple[float, list[GPTShape], str | None]], vocab_size: int,
                 data_fingerprint: str) -> tuple[list[RunSpec], list[str]]:  # fmt: skip
    """The runs of each (budget, shapes, why those sizes) in ``ladders``, and a line for each (budget, shape) left
    out for too few steps."""
    t = config.training
    runs, skipped = [], []
    for budget, shapes, reason in ladders:
        for shape in shapes:
            counts = param_counts(shape)
            per_token = flops_per_token(shape, config.flops_convention)
            workers, cpus, gpus = config.resources.for_size(counts.nonembedding)
            rules = size_rules(t, counts.nonembedding, shape.seq_len, workers)
            steps = round(budget / (per_token * rules.batch_tokens))
            if steps > t.max_steps:
                raise ConfigError(
                    f"budgets: {budget:.3g} FLOPs buys {steps:,} steps of {shape.n_layer}x{shape.d_model} "
                    f"(N={counts.nonembedding:,}, {rules.batch_tokens:,} tokens per step), more than training.max_steps "
                    f"{t.max_steps:,}: raise training.max_steps if the sweep means it"
                )
            if steps < t.min_steps:
                skipped.append(
                    f"budget {budget:.3g} with {shape.n_layer}x{shape.d_model} (N={counts.nonembedding:,}): "
                    f"{steps} steps < training.min_steps {t.min_steps}"
                )
                continue
            warmup = warmup_steps(t, counts.nonembedding, steps, rules.batch_tokens)
            for seed in t.seeds:
                runs.append(
                    RunSpec(
                        sweep=config.name,
                        flops_budget=float(budget),
                        flops_convention=config.flops_convention,
                        n_layer=shape.n_layer,
                        d_model=shape.d_model,
                        n_head=shape.n_head,
                        seq_len=shape.seq_len,
                        vocab_size=vocab_size,
                        n_params=counts.total,
                        n_params_nonembedding=counts.nonembedding,
                        flops_per_token=per_token,
                        flops_per_token_6n=flops_per_token_6n(shape),
                        flops_per_token_6n_attention=flops_per_token_6n_attention(shape),
                        flops_per_token_chinchilla=flops_per_token_chinchilla(shape),
                        steps=steps,
                        batch_tokens=rules.batch_tokens,
                        tokens=steps * rules.batch_tokens,
                        flops=steps * rules.batch_tokens * per_token,
                        lr=rules.lr,
                        warmup_steps=warmup,
                        min_lr_ratio=t.min_lr_ratio,
                        weight_decay=t.weight_decay,
                        beta1=t.beta1,
                        beta2=rules.beta2,
                        grad_clip=t.grad_clip,
                        seed=seed,
                        log_every_steps=t.log_every_steps,
                        eval_steps=eval_steps(steps, t.eval_points),
                        eval_tokens=t.eval_tokens,
                        data=config.data.model_dump(),
                        data_fingerprint=data_fingerprint,
                        device=t.device,
                        compile=t.compile,
                        checkpoint_every_steps=t.checkpoint_every_steps,
                        workers=workers,
                        cpus=cpus,
                        gpus=gpus,
                        precision=t.precision,
                        micro_batch_tokens=0 if t.micro_batch_tokens == "auto" else t.micro_batch_tokens,
                        lr_rule=rules.lr_rule,
                        batch_rule=rules.batch_rule,
                        warmup_tokens=warmup * rules.batch_tokens,
                        peak_flops=config.resources.peak_flops,
                        lr_study=rules.lr_study,
                        size_reason=reason,
                    )
                )
    return runs, skipped


def trunk_groups(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """``runs`` by (shape, seed, batch), the runs one trunk serves, each group shortest first."""
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in runs:
        groups.setdefault((spec.shape, spec.seed, spec.batch_tokens), []).append(spec)
    return [sorted(group, key=lambda spec: spec.steps) for group in groups.values()]


def as_wsds(runs: list[RunSpec], cooldown_fraction: float, shape: str, eval_points: int) -> list[RunSpec]:
    """The cosine grid ``runs`` as one continuous ``wsds-trunk`` per (shape, seed, batch) with a decay before each
    readout, and the readouts (module docstring): a trunk first, then its readouts, shortest first."""
    planned = []
    for group in trunk_groups(runs):
        ends = [spec.steps for spec in group]
        starts = [end - max(1, round(cooldown_fraction * (end - before))) for before, end in zip([0] + ends, ends)]
        warmup = max(0, min(group[-1].warmup_steps, starts[0] // 2))
        last = group[-1]
        curve = set(eval_steps(last.steps, eval_points)) | set(ends)
        trunk = replace(last, schedule="wsds-trunk", cooldown_shape=shape, warmup_steps=warmup,
                        warmup_tokens=warmup * last.batch_tokens, eval_steps=tuple(sorted(curve)),
                        branch_steps=tuple(ends), decay_starts=tuple(starts), decay_ends=tuple(ends))  # fmt: skip
        planned.append(trunk)
        planned += [
            replace(spec, schedule="wsds", branch_step=spec.steps, cooldown_shape=shape, warmup_steps=warmup,
                    warmup_tokens=warmup * spec.batch_tokens, eval_steps=tuple(s for s in trunk.eval_steps if s <= spec.steps),
                    decay_starts=tuple(starts[: i + 1]), decay_ends=tuple(ends[: i + 1]), parent_run_id=trunk.run_id)
            for i, spec in enumerate(group)
        ]  # fmt: skip
    return planned


def as_wsd(runs: list[RunSpec], cooldown_fraction: float, shape: str, eval_points: int) -> list[RunSpec]:
    """The cosine grid ``runs`` as trunks and readouts (module docstring): per (shape, seed, batch), a trunk first,
    then its readouts, shortest first."""
    planned = []
    for group in trunk_groups(runs):
        branches = [max(1, round(spec.steps * (1 - cooldown_fraction))) for spec in group]
        warmup = max(0, min(group[-1].warmup_steps, branches[0] // 2))  # the longest readout's, at most half a trunk part
        readouts = [
            replace(spec, schedule="wsd", branch_step=branch, cooldown_shape=shape, warmup_steps=warmup,
                    warmup_tokens=warmup * spec.batch_tokens,
                    eval_steps=tuple(sorted({s for s in eval_steps(spec.steps, eval_points) if s > branch} | {spec.steps})))
            for spec, branch in zip(group, branches)
        ]  # fmt: skip
        last = group[-1]
        trunk_steps = max(branches)
        trunk = replace(last, schedule="wsd-trunk", steps=trunk_steps, tokens=trunk_steps * last.batch_tokens,
                        flops=trunk_steps * last.batch_tokens * last.flops_per_token, warmup_steps=warmup,
                        warmup_tokens=warmup * last.batch_tokens, eval_steps=tuple(sorted(set(branches))),
                        branch_steps=tuple(sorted(set(branches))))  # fmt: skip
        planned.append(trunk)
        planned += [replace(readout, parent_run_id=trunk.run_id) for readout in readouts]
    return planned


def planned_once(runs: list[RunSpec]) -> tuple[list[RunSpec], list[str]]:
    """``runs`` with each run id once (the first in plan order: smallest budget, then seed order), and a line for
    each entry dropped. Two entries with one run id would train the same run twice, in parallel, into the same
    files; the budget is not part of a run's identity, so two budgets that round to the same steps are one run."""
    first: dict[str, RunSpec] = {}
    duplicates = []
    for spec in runs:
        kept = first.setdefault(spec.run_id, spec)
        if kept is not spec:
            duplicates.append(
                f"budget {spec.flops_budget:.4g}, seed {spec.seed}, {spec.n_layer}x{spec.d_model} is the same run as "
                f"budget {kept.flops_budget:.4g}, seed {kept.seed} (run {spec.run_id}, {spec.steps} steps): planned once"
            )
    return list(first.values()), duplicates


def with_memory(spec: RunSpec, gpu_memory_gb: float | None) -> RunSpec:
    """``spec`` with its micro-batch checked (or, for a GPU run under ``auto`` with ``gpu_memory_gb``, chosen) and its
    peak memory estimated: at the micro-batch, or at one pass of the worker's whole share while ``auto`` waits for the
    run's device. Raises ``ConfigError`` for a micro-batch that does not split the worker's share, or a GPU run that
    cannot fit one sequence in ``gpu_memory_gb``."""
    share = spec.batch_tokens // spec.workers
    micro = spec.micro_batch_tokens
    if micro and (micro % spec.seq_len or share % micro):
        raise ConfigError(
            f"training.micro_batch_tokens ({micro}) must be a multiple of model.seq_len ({spec.seq_len}) dividing a "
            f"worker's share of the batch ({share} tokens) of run {spec.n_layer}x{spec.d_model} "
            f"(budget {spec.flops_budget:.3g})"
        )
    if gpu_memory_gb is not None and run_device(spec) == "cuda":
        try:
            fitted = micro_batch_tokens_for(spec, int(gpu_memory_gb * GiB))  # raises if one sequence does not fit
        except MemoryDoesNotFit as error:
            raise ConfigError(f"resources.gpu_memory_gb ({gpu_memory_gb:g}): {error}") from None
        micro = micro or fitted
    return replace(spec, micro_batch_tokens=micro, memory_estimate_bytes=estimate_for_run(spec, micro or share).total)
