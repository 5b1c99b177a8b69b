"""One training run: build the model, train it for the planned steps, and return its metrics and outcome.

AdamW (decoupled weight decay on matrices only; the fused kernel on CPU and CUDA), linear warm-up then cosine
decay to ``min_lr_ratio`` of the peak over exactly the run's own steps (Chinchilla's rule: a schedule longer than
the run overestimates its loss), global gradient-norm clipping, fixed batch size in tokens. CPU trains with the
run's CPU count as torch threads. Precision (fp32, or bf16 autocast on CPU and CUDA), TF32 matmuls, ``torch.compile``
and pinned-memory batch copies: ``sweep.training.precision``.

**Micro-batches (gradient accumulation).** A worker's share of a step is a contiguous block of rows of the global
batch (``TokenStream.rows``: rank r of W reads rows [r B/W, (r+1) B/W), and nothing else), cut into micro-batches
of ``micro_batch_tokens / seq_len`` sequences, each a forward and backward pass. Each micro-batch's mean loss is
scaled by its share of the worker's rows (m / (B/W)) before ``backward``, so the accumulated gradient is the mean
over the worker's rows, exactly the gradient of one pass up to float rounding; DDP averages it over workers and
all-reduces only on the last micro-batch (``no_sync`` on the others). ``training.micro_batch_tokens: auto``
(``spec.micro_batch_tokens == 0``) is resolved when the run starts: the largest micro-batch whose memory estimate
(``sweep.planning.memory``) fits the device's free memory (CUDA) or this worker's share of the host's (CPU).

**No per-step host sync.** Each step's loss (the sum of its scaled micro-batch losses) and gradient norm stay
on the device; ``clip_grad_norm_`` returns a tensor and clips without reading it. They reach the host once per
metrics row, as one stacked tensor (all-reduced once per row in DDP, not once per step), so a GPU never waits
for Python between rows. A metrics row is logged every ``log_every_steps`` steps, at every evaluation step and
at the last step; ``train_loss`` is the mean training loss of the steps since the previous row, ``lr`` the rate
of the row's step. Divergence is checked at each row from the same values (every step's loss is kept on the
device until then, so the first non-finite step is known exactly): a non-finite loss stops the run with
status ``diverged`` at most ``log_every_steps - 1`` steps after it happened (never an exception), and its last
row is that of the first non-finite step (the steps trained after it, on NaN weights, are not logged).
Evaluation reads its loss once per evaluation.

**Throughput.** ``RunOutcome.tokens_per_second`` is the run's tokens over its training seconds (evaluation,
checkpoints and start-up left out), summed over every invocation of a resumed run (the checkpoint carries both).

Given a ``CheckpointStore``, the run saves its whole state every ``checkpoint_every_steps`` steps (always just
after a logged row) and, when started again, resumes from the newest checkpoint: the data position is the step,
so the resumed run continues exactly where it stopped and its metrics hold each logged step once.

Data parallel (``Distributed`` with world_size > 1, set up by Ray Train's ``TorchTrainer``): the model is wrapped
in ``DistributedDataParallel``, and each rank trains on its block of the same global batch, so the averaged
gradient is the full batch's gradient and the loss curve matches a single worker's within float noise. Logged
losses are averaged over ranks; only rank 0 saves checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import ContextManager

import torch

from models.gpt import GPT
from sweep.config import DataConfig
from sweep.planning.plan import RunSpec
from sweep.training.checkpoint import CheckpointStore
from sweep.training.data import TokenStream, load_corpus, validation_batches
from sweep.training.precision import autocast_for, configure_matmuls, maybe_compile, resolve_precision, to_device


@dataclass
class RunOutcome:
    """What a run produced: its status, final numbers and metrics rows (plain dicts, ``sweep.results.storage`` schema)."""

    status: str
    """``completed``, ``diverged`` or ``pruned`` (a tuning trial stopped by ``stop``)."""
    metrics: list[dict] = field(default_factory=list)
    final_train_loss: float | None = None
    final_eval_loss: float | None = None
    device: str = "cpu"
    wall_seconds: float = 0.0
    error: str | None = None
    resumed_from_step: int = 0
    """The checkpoint step this invocation resumed from (0: trained from the start)."""
    first_step_at: datetime | None = None
    """When this invocation's first optimizer step began (after building the model and data): start-up cost."""
    tokens_per_second: float | None = None
    """Mean training throughput of the whole run (all workers), evaluation and checkpoint time left out."""
    model_flops_per_second: float | None = None
    """``tokens_per_second * spec.flops_per_token``: achieved model FLOP/s under the sweep's convention."""
    precision: str | None = None
    """The precision the run trained at (``fp32`` or ``bf16``), ``auto`` resolved."""
    micro_batch_tokens: int | None = None
    """Tokens per forward/backward pass per worker, as resolved when the run started."""
    steps_done: int = 0
    """Optimizer steps trained (all invocations): ``spec.steps`` when completed, up to the step the divergence was
    noticed when diverged; the ledger's ``steps_done`` and ``flops_spent`` come from it."""
    inherited_steps: int = 0
    """Of ``steps_done``, the steps a ``wsd`` readout took over from its trunk's branch point (not trained by it:
    ``flops_spent`` leaves them out)."""


def lr_factor(step: int, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Multiplier on the peak rate for 0-based ``step``: linear warm-up, then cosine to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def wsd_factor(step: int, steps: int, warmup_steps: int, decay_start: int, min_lr_ratio: float, shape: str) -> float:
    """Warmup-stable-decay (Hägele et al. 2024): linear warm-up, the peak rate until ``decay_start``, then a decay
    over the steps ``decay_start .. steps - 1`` that reaches ``min_lr_ratio`` at the last: linear, or ``1-sqrt``
    (1 - sqrt(progress)). A trunk (``decay_start`` = ``steps``) never decays."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start + 1) / max(1, steps - decay_start))
    fall = math.sqrt(progress) if shape == "1-sqrt" else progress
    return min_lr_ratio + (1.0 - min_lr_ratio) * (1.0 - fall)


def wsds_factor(step: int, warmup_steps: int, decay_starts: tuple[int, ...], decay_ends: tuple[int, ...],
                min_lr_ratio: float, shape: str) -> float:
    """WSD-S (OLMo's ladder; Wen et al. 2024): linear warm-up, then the peak rate but for each decay, which runs
    over the steps ``start .. end - 1`` to ``min_lr_ratio`` at the last (as ``wsd_factor``'s); after it, the
    peak again."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    for start, end in zip(decay_starts, decay_ends):
        if start <= step < end:
            return wsd_factor(step, end, 0, start, min_lr_ratio, shape)
    return 1.0


def schedule_for(spec: RunSpec) -> Callable[[int], float]:
    """The run's multiplier on its peak rate at each 0-based step (``spec.schedule``)."""
    if spec.schedule == "wsd-trunk":
        return lambda step: wsd_factor(step, spec.steps, spec.warmup_steps, spec.steps, spec.min_lr_ratio, "")
    if spec.schedule == "wsd":
        return lambda step: wsd_factor(step, spec.steps, spec.warmup_steps, spec.branch_step, spec.min_lr_ratio, spec.cooldown_shape)
    if spec.schedule in ("wsds", "wsds-trunk"):
        return lambda step: wsds_factor(step, spec.warmup_steps, spec.decay_starts, spec.decay_ends, spec.min_lr_ratio, spec.cooldown_shape)
    return lambda step: lr_factor(step, spec.steps, spec.warmup_steps, spec.min_lr_ratio)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel run (the defaults: a single process)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None
    """The device Ray Train assigned to this worker; None resolves ``spec.device``."""


def resolve_device(preference: str) -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _resolve_micro_batch_tokens(spec: RunSpec, device: torch.device, world_size: int) -> int:
    """Tokens per forward/backward pass on one worker. ``spec.micro_batch_tokens`` 0 (``auto``): the largest
    micro-batch whose memory estimate fits what this worker has (``sweep.planning.memory``; called before the model
    is built); otherwise the value, checked."""
    if spec.batch_size % world_size:
        raise ValueError(f"resources.workers_per_run: {world_size} workers cannot split {spec.batch_size} sequences evenly")
    worker_tokens = spec.batch_size // world_size * spec.seq_len
    if spec.micro_batch_tokens == 0:
        from sweep.planning.memory import available_bytes, micro_batch_tokens_for

        share = spec.gpus if device.type == "cuda" and 0 < spec.gpus < 1 else None
        return micro_batch_tokens_for(spec, available_bytes(device, share))
    if spec.micro_batch_tokens % spec.seq_len or worker_tokens % spec.micro_batch_tokens:
        raise ValueError(
            f"training.micro_batch_tokens {spec.micro_batch_tokens} must be a multiple of model.seq_len "
            f"{spec.seq_len} that divides the {worker_tokens} tokens each of {world_size} worker(s) trains per step"
        )
    return spec.micro_batch_tokens


def build_optimizer(model: GPT, spec: RunSpec, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on the Linear matrices only (not LayerNorm weights or embedding tables); the fused
    kernel (one kernel for every parameter; on CPU since PyTorch 2.4), which also never reads its step count back
    to the host."""
    decay = [p for name, p in model.named_parameters() if p.dim() == 2 and "embedding" not in name]
    no_decay = [p for name, p in model.named_parameters() if not (p.dim() == 2 and "embedding" not in name)]
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(spec.beta1, spec.beta2), fused=device.type in ("cpu", "cuda"))


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, autocast: Callable[[], ContextManager]) -> float:
    """Mean validation cross-entropy (nats/token) over the fixed validation batches (already on the device),
    accumulated on the device and read once."""
    model.eval()
    total, count = None, 0
    for inputs, targets in batches:
        with autocast():
            _, loss = model(inputs, targets)
        weighted = loss.double() * inputs.size(0)
        total = weighted if total is None else total + weighted
        count += inputs.size(0)
    model.train()
    return total.item() / count


@dataclass
class _Trainer:
    """Everything a run's step loop touches, built once by ``_build``."""

    model: torch.nn.Module
    step_model: torch.nn.Module
    """What the steps call: the model, or its DDP wrapper."""
    ddp: torch.nn.parallel.DistributedDataParallel | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stream: TokenStream
    val_batches: list
    device: torch.device
    precision: str
    autocast: Callable[[], ContextManager]
    micro_batch_tokens: int
    micro_slices: list[tuple[int, int]]
    """This worker's micro-batches: (start, stop) rows of the global batch."""


def _build(spec: RunSpec, dist: Distributed) -> _Trainer:
    device = dist.device or resolve_device(spec.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(spec.cpus)))
    precision = resolve_precision(spec.precision, device)
    configure_matmuls(precision, device)
    micro_tokens = _resolve_micro_batch_tokens(spec, device, dist.world_size)
    torch.manual_seed(spec.seed)
    corpus = load_corpus(DataConfig(**spec.data))
    if corpus.fingerprint != spec.data_fingerprint:
        raise RuntimeError(f"data fingerprint {corpus.fingerprint} differs from the planned {spec.data_fingerprint}")
    model = maybe_compile(GPT(spec.shape).to(device), spec.compile)
    optimizer = build_optimizer(model, spec, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_for(spec))
    ddp = None
    if dist.world_size > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    worker_rows, micro_rows = spec.batch_size // dist.world_size, micro_tokens // spec.seq_len
    first = dist.rank * worker_rows
    val = validation_batches(corpus.val, spec.eval_tokens, micro_rows, spec.seq_len)
    return _Trainer(
        model=model,
        step_model=ddp or model,
        ddp=ddp,
        optimizer=optimizer,
        scheduler=scheduler,
        stream=TokenStream(corpus.train, spec.batch_size, spec.seq_len, spec.seed),
        val_batches=[(to_device(x, device), to_device(y, device)) for x, y in val],
        device=device,
        precision=precision,
        autocast=autocast_for(precision, device),
        micro_batch_tokens=micro_tokens,
        micro_slices=[(start, start + micro_rows) for start in range(first, first + worker_rows, micro_rows)],
    )


def _train_step(trainer: _Trainer, step: int, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on this worker's rows of ``step``; returns its loss and gradient norm, on the device.

    Gradients accumulate over the micro-batches, each loss scaled by its share of the worker's rows; DDP
    all-reduces only during the last micro-batch's backward.
    """
    last = len(trainer.micro_slices) - 1
    total = None
    for i, (start, stop) in enumerate(trainer.micro_slices):
        inputs, targets = trainer.stream.rows(step, start, stop)
        inputs, targets = to_device(inputs, trainer.device), to_device(targets, trainer.device)
        with trainer.ddp.no_sync() if trainer.ddp is not None and i < last else contextlib.nullcontext():
            with trainer.autocast():
                _, loss = trainer.step_model(inputs, targets)
            if last:
                loss = loss / (last + 1)
            loss.backward()
        total = loss.detach() if total is None else total + loss.detach()
    grad_norm = torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), clip)  # a tensor: no host sync
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.scheduler.step()
    return total, grad_norm


@dataclass
class _Progress:
    """A run's progress, carried by its checkpoints."""

    step: int = 0
    metrics: list[dict] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    """Wall time of the invocations before this one."""
    train_seconds: float = 0.0
    """Seconds spent training (evaluation, checkpoints and start-up left out), all invocations so far."""
    train_tokens: int = 0
    """Tokens trained (all workers) in those seconds."""
    inherited_steps: int = 0
    """The steps a ``wsd`` readout took over from its trunk (its branch step), 0 for a run trained from step 0."""


def _state(trainer: _Trainer, progress: _Progress) -> dict:
    return {
        "step": progress.step,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "metrics": progress.metrics,
        "elapsed_seconds": progress.elapsed_seconds,
        "train_seconds": progress.train_seconds,
        "train_tokens": progress.train_tokens,
        "inherited_steps": progress.inherited_steps,
    }


def _restore(trainer: _Trainer, state: dict) -> _Progress:
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return _Progress(
        step=state["step"],
        metrics=list(state["metrics"]),
        elapsed_seconds=state["elapsed_seconds"],
        train_seconds=state.get("train_seconds", 0.0),
        train_tokens=state.get("train_tokens", 0),
        inherited_steps=state.get("inherited_steps", 0),
    )


@dataclass
class _Pending:
    """The steps since the last metrics row: losses and gradient norms still on the device, rates on the host."""

    first_step: int
    """0-based index of the first of these steps."""
    losses: list[torch.Tensor] = field(default_factory=list)
    grad_norms: list[torch.Tensor] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)


def _read_row(pending: _Pending, dist: Distributed) -> tuple[list[float], list[float]]:
    """The pending losses (averaged over ranks) and gradient norms on the host: one all-reduce and one transfer."""
    values = torch.stack(pending.losses + pending.grad_norms).float()
    if dist.world_size > 1:
        torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
        values /= dist.world_size
    host = values.tolist()  # the row's one device-to-host transfer (and the GPU's one wait)
    return host[: len(pending.losses)], host[len(pending.losses) :]


def _metrics_row(spec: RunSpec, pending: _Pending, losses: list[float], grad_norms: list[float]) -> tuple[dict, bool]:
    """The row for the pending steps, cut at the first non-finite loss (then also True: the run diverged)."""
    bad = next((i for i, loss in enumerate(losses) if not math.isfinite(loss)), None)
    kept = len(losses) if bad is None else bad + 1
    done = pending.first_step + kept
    row = {
        "step": done,
        "tokens": done * spec.batch_tokens,
        "flops": done * spec.batch_tokens * spec.flops_per_token,
        "train_loss": sum(losses[:kept]) / kept,
        "eval_loss": None,
        "lr": pending.lrs[kept - 1],
        "grad_norm": grad_norms[kept - 1],
    }
    return row, bad is not None


def _is_row_step(spec: RunSpec, done: int, eval_steps: set[int]) -> bool:
    return done % spec.log_every_steps == 0 or done in eval_steps or done == spec.steps


def _stop_requested(stop: Callable[[dict | None], str | None], row: dict | None, dist: Distributed) -> str | None:
    """Why the run should end now (``stop``'s answer for the row just logged, None before the first), agreed by
    every rank at the same row: in DDP one all-reduce of a flag, so no rank leaves the loop while another waits in
    the next step's all-reduce."""
    reason = stop(row)
    if dist.world_size > 1:
        flag = torch.tensor([1.0 if reason else 0.0], device=dist.device or "cpu")
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and not reason:
            reason = "stopped on another rank's request"
    return reason


def train_run(
    spec: RunSpec, checkpoints: CheckpointStore | None = None, dist: Distributed = Distributed(),
    on_row: Callable[[dict], None] | None = None, stop: Callable[[dict | None], str | None] | None = None,
) -> RunOutcome:  # fmt: skip
    """Train ``spec`` to its last step (or to divergence), resuming from its newest checkpoint if there is one.

    ``on_row`` (the live metrics file's and an experiment tracker's: ``sweep.training.live``,
    ``sweep.training.tracking``) is called with each metrics row as it is logged, after the rows a resumed run restored from its checkpoint; it must return at once.
    ``stop`` (a tuning trial's pruning signal, ``sweep.training.worker.stop_signal``) is asked after each metrics
    row and before resuming: a reason ends the run there with status ``pruned``, its rows so far kept as its
    metrics."""
    clock = time.perf_counter()
    trainer, progress = _resume(spec, dist, checkpoints)
    elapsed_before = progress.elapsed_seconds
    for row in progress.metrics if on_row else ():
        on_row(row)

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - clock

    device = trainer.device
    name = str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)
    outcome = RunOutcome(
        status="completed",
        metrics=progress.metrics,
        device=name if dist.world_size == 1 else f"{dist.world_size}x {name}",
        resumed_from_step=progress.step,
        precision=trainer.precision,
        micro_batch_tokens=trainer.micro_batch_tokens,
    )
    clip = spec.grad_clip if spec.grad_clip is not None else math.inf
    eval_steps = set(spec.eval_steps)
    pending, row_clock = _Pending(progress.step), time.perf_counter()
    outcome.first_step_at = datetime.now(timezone.utc)
    reason = _stop_requested(stop, None, dist) if stop and progress.step else None  # pruned while it was away
    for step in range(progress.step, spec.steps if reason is None else progress.step):
        pending.lrs.append(trainer.optimizer.param_groups[0]["lr"])
        loss, grad_norm = _train_step(trainer, step, clip)
        pending.losses.append(loss)
        pending.grad_norms.append(grad_norm)
        if not _is_row_step(spec, step + 1, eval_steps):
            continue
        row, diverged = _metrics_row(spec, pending, *_read_row(pending, dist))
        seconds, tokens = time.perf_counter() - row_clock, len(pending.losses) * spec.batch_tokens
        progress.train_seconds, progress.train_tokens = progress.train_seconds + seconds, progress.train_tokens + tokens
        row["tokens_per_second"] = tokens / max(seconds, 1e-9)  # training time only: measured before eval
        if row["step"] in eval_steps and not diverged:
            row["eval_loss"] = evaluate(trainer.model, trainer.val_batches, trainer.autocast)
        row["wall_seconds"] = elapsed()
        progress.metrics.append(row)
        if on_row:
            on_row(row)
        progress.step, pending = step + 1, _Pending(step + 1)
        if diverged or (row["eval_loss"] is not None and not math.isfinite(row["eval_loss"])):
            noticed = "" if row["step"] == step + 1 else f" (noticed at step {step + 1})"
            outcome.status, outcome.error = "diverged", f"non-finite loss at step {row['step']}{noticed}"
            break
        if stop and progress.step < spec.steps:
            reason = _stop_requested(stop, row, dist)
            if reason:
                break
        every = spec.checkpoint_every_steps
        if checkpoints and dist.rank == 0 and every and progress.step % every == 0 and progress.step < spec.steps:
            progress.elapsed_seconds = elapsed()
            checkpoints.save(spec.sweep, spec.run_id, progress.step, _state(trainer, progress))
        if checkpoints and dist.rank == 0 and progress.step in spec.branch_steps:  # a wsd trunk: a readout starts here
            progress.elapsed_seconds = elapsed()
            checkpoints.save_branch_point(spec.sweep, spec.run_id, progress.step, _state(trainer, progress))
        row_clock = time.perf_counter()
    if reason:
        outcome.status, outcome.error = "pruned", reason
    return _finish(outcome, spec, progress, elapsed())


def _resume(spec: RunSpec, dist: Distributed, checkpoints: CheckpointStore | None) -> tuple[_Trainer, _Progress]:
    """The run's trainer, restored from its newest checkpoint that loads and restores; one that loads but cannot be
    restored (a key missing, another model's shapes) is set aside like one that does not load, and the next older
    is tried, as is one whose step is not the one its name gives (``_check_step``). After a failed restore the
    trainer is built afresh, so step 0 starts from the seed's initial state."""
    trainer = _build(spec, dist)
    if checkpoints is None:
        return trainer, _Progress()
    for step, state in checkpoints.states(spec.sweep, spec.run_id):
        try:
            _check_step(spec, step, state)
            return trainer, _restore(trainer, state)
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as error:
            detail = " ".join(str(error).split())[:160]  # one line: torch's messages span several
            checkpoints.set_aside(spec.sweep, spec.run_id, step, f"cannot be restored: {type(error).__name__}: {detail}")
            trainer = _build(spec, dist)
    return _from_trunk(spec, dist, checkpoints, trainer)


def _from_trunk(spec: RunSpec, dist: Distributed, checkpoints: CheckpointStore, trainer: _Trainer) -> tuple[_Trainer, _Progress]:
    """A ``wsd`` readout without a checkpoint of its own starts from its trunk's state at its branch step (the
    same state a standalone run reaches there: ``sweep.planning.plan``); without that branch point, from step 0.
    A ``wsds`` readout branches at its own last step: it takes the trunk's state there and trains nothing."""
    if spec.parent_run_id is None:
        return trainer, _Progress()
    state = checkpoints.branch_point(spec.sweep, spec.parent_run_id, spec.branch_step)
    if state is None:
        return trainer, _Progress()
    try:
        _check_step(spec, spec.branch_step, state, at_end=spec.branch_step == spec.steps)
        progress = _restore(trainer, state)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as error:
        detail = " ".join(str(error).split())[:160]
        print(f"sweep: warning: run {spec.run_id}: its trunk's branch point at step {spec.branch_step} cannot be "
              f"restored ({type(error).__name__}: {detail}): training from step 0", file=sys.stderr, flush=True)
        return _build(spec, dist), _Progress()
    # The optimizer comes back with the trunk's rate for the next step: set the readout's own (its decay starts here).
    for group, base, factor in zip(trainer.optimizer.param_groups, trainer.scheduler.base_lrs, trainer.scheduler.lr_lambdas):
        group["lr"] = base * factor(spec.branch_step)
    trainer.scheduler._last_lr = [group["lr"] for group in trainer.optimizer.param_groups]
    # Its rows to the branch step are the trunk's; its time and throughput are its own.
    progress.inherited_steps, progress.elapsed_seconds, progress.train_seconds, progress.train_tokens = spec.branch_step, 0.0, 0.0, 0
    return trainer, progress


def _check_step(spec: RunSpec, step: int, state: dict, at_end: bool = False) -> None:
    """Raise ValueError unless the checkpoint named ``step`` holds that step, inside the run (or, ``at_end``, at
    its last step: a ``wsds`` readout's branch point), after its last logged row (``train_run`` saves only so): a
    file renamed or copied over another step would resume the data stream and the curve at the wrong place."""
    held, metrics = state.get("step"), state.get("metrics")
    if type(held) is not int or held != step or not 0 < held <= spec.steps - (not at_end):
        raise ValueError(f"holds step {held!r}, not the step {step} its name gives (a run of {spec.steps} steps)")
    if not isinstance(metrics, list) or not metrics or not isinstance(metrics[-1], dict) or metrics[-1].get("step") != held:
        raise ValueError(f"its metrics rows do not end at its step {held}")


def _finish(outcome: RunOutcome, spec: RunSpec, progress: _Progress, wall_seconds: float) -> RunOutcome:
    outcome.steps_done = progress.step
    outcome.inherited_steps = progress.inherited_steps
    metrics = progress.metrics
    outcome.final_train_loss = metrics[-1]["train_loss"] if metrics else None
    evals = [row["eval_loss"] for row in metrics if row["eval_loss"] is not None]
    outcome.final_eval_loss = evals[-1] if evals and outcome.status == "completed" else None
    outcome.wall_seconds = wall_seconds
    if progress.train_seconds > 0:
        outcome.tokens_per_second = progress.train_tokens / progress.train_seconds
        outcome.model_flops_per_second = outcome.tokens_per_second * spec.flops_per_token
    return outcome
