"""One training run: build the model, train it for the planned steps, and return its metrics and outcome.

AdamW (decoupled weight decay on matrices only), linear warm-up then cosine decay to ``min_lr_ratio`` of the peak
over exactly the run's own steps (Chinchilla's rule: a schedule longer than the run overestimates its loss),
global gradient-norm clipping, fixed batch size in tokens. CPU trains in float32 with the run's CPU count as torch
threads; CUDA trains under bf16 autocast with fused AdamW and, if asked, ``torch.compile``.

A metrics row is logged every ``log_every_steps`` steps, at every evaluation step and at the last step;
``train_loss`` is the mean training loss of the steps since the previous row. A non-finite loss stops the run
with status ``diverged`` (its rows up to that step are kept), never an exception.

Given a ``CheckpointStore``, the run saves its whole state every ``checkpoint_every_steps`` steps (always just
after a logged row) and, when started again, resumes from the newest checkpoint: the data position is the step,
so the resumed run continues exactly where it stopped and its metrics hold each logged step once.

Data parallel (``Distributed`` with world_size > 1, set up by Ray Train's ``TorchTrainer``): the model is wrapped
in ``DistributedDataParallel`` and rank r trains on rows r, r + W, ... of the same global batch, so the averaged
gradient is the full batch's gradient and the loss curve matches a single worker's within float noise. Logged
losses are averaged over ranks; only rank 0 saves checkpoints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import torch

from models.gpt import GPT
from sweep.training.checkpoint import CheckpointStore
from sweep.config import DataConfig
from sweep.training.data import TokenStream, load_corpus, validation_batches
from sweep.planning.plan import RunSpec


@dataclass
class RunOutcome:
    """What a run produced: its status, final numbers and metrics rows (plain dicts, ``sweep.results.storage`` schema)."""

    status: str
    """``completed`` or ``diverged``."""
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


def lr_factor(step: int, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Multiplier on the peak rate for 0-based ``step``: linear warm-up, then cosine to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


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


def build_optimizer(model: GPT, spec: RunSpec, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on the Linear matrices only (not LayerNorm weights or embedding tables)."""
    decay = [p for name, p in model.named_parameters() if p.dim() == 2 and "embedding" not in name]
    no_decay = [p for name, p in model.named_parameters() if not (p.dim() == 2 and "embedding" not in name)]
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(spec.beta1, spec.beta2), fused=device.type == "cuda")


@torch.no_grad()
def evaluate(model: GPT, batches, device: torch.device, autocast) -> float:
    """Mean validation cross-entropy (nats/token) over the fixed validation batches."""
    model.eval()
    total, count = 0.0, 0
    for inputs, targets in batches:
        with autocast():
            _, loss = model(inputs.to(device), targets.to(device))
        total += loss.item() * inputs.size(0)
        count += inputs.size(0)
    model.train()
    return total / count


@dataclass
class _Trainer:
    """Everything a run's step loop touches, built once by ``_build``."""

    model: torch.nn.Module
    step_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stream: TokenStream
    val_batches: list
    device: torch.device


def _build(spec: RunSpec, dist: Distributed) -> _Trainer:
    device = dist.device or resolve_device(spec.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(spec.cpus)))
    torch.manual_seed(spec.seed)
    corpus = load_corpus(DataConfig(**spec.data))
    if corpus.fingerprint != spec.data_fingerprint:
        raise RuntimeError(f"data fingerprint {corpus.fingerprint} differs from the planned {spec.data_fingerprint}")
    model = GPT(spec.shape).to(device)
    optimizer = build_optimizer(model, spec, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, spec.steps, spec.warmup_steps, spec.min_lr_ratio)
    )
    step_model: torch.nn.Module = model
    if dist.world_size > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if spec.compile and device.type == "cuda":
        step_model = torch.compile(step_model)
    return _Trainer(
        model=model,
        step_model=step_model,
        optimizer=optimizer,
        scheduler=scheduler,
        stream=TokenStream(corpus.train, spec.batch_size, spec.seq_len, spec.seed),
        val_batches=validation_batches(corpus.val, spec.eval_tokens, spec.batch_size, spec.seq_len),
        device=device,
    )


def _state(trainer: _Trainer, step: int, metrics: list[dict], elapsed: float) -> dict:
    return {
        "step": step,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "metrics": metrics,
        "elapsed_seconds": elapsed,
    }


def _restore(trainer: _Trainer, state: dict) -> tuple[int, list[dict], float]:
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return state["step"], list(state["metrics"]), state["elapsed_seconds"]


def _mean_over_ranks(value: torch.Tensor, dist: Distributed) -> float:
    if dist.world_size > 1:
        value = value.detach().clone()
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)
        value /= dist.world_size
    return value.item()


def train_run(spec: RunSpec, checkpoints: CheckpointStore | None = None, dist: Distributed = Distributed()) -> RunOutcome:
    """Train ``spec`` to its last step (or to divergence), resuming from its newest checkpoint if there is one."""
    clock = time.perf_counter()
    trainer = _build(spec, dist)
    device = trainer.device
    state = checkpoints.latest(spec.sweep, spec.run_id) if checkpoints else None
    start_step, metrics, elapsed_before = _restore(trainer, state) if state else (0, [], 0.0)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - clock

    name = str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)
    outcome = RunOutcome(
        status="completed", metrics=metrics, device=name if dist.world_size == 1 else f"{dist.world_size}x {name}", resumed_from_step=start_step
    )
    losses_since_row: list[float] = []
    row_clock, row_tokens = time.perf_counter(), 0
    eval_steps = set(spec.eval_steps)
    outcome.first_step_at = datetime.now(timezone.utc)
    for step in range(start_step, spec.steps):
        inputs, targets = trainer.stream.batch(step)
        inputs, targets = inputs[dist.rank :: dist.world_size], targets[dist.rank :: dist.world_size]
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        lr = trainer.optimizer.param_groups[0]["lr"]
        with autocast():
            _, loss = trainer.step_model(inputs, targets)
        loss.backward()
        clip = spec.grad_clip if spec.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), clip).item()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.scheduler.step()

        done = step + 1
        loss_value = _mean_over_ranks(loss, dist)
        losses_since_row.append(loss_value)
        row_tokens += spec.batch_tokens
        diverged = not math.isfinite(loss_value)
        if not (diverged or done % spec.log_every_steps == 0 or done in eval_steps or done == spec.steps):
            continue
        now = time.perf_counter()
        tokens_per_second = row_tokens / max(now - row_clock, 1e-9)  # training time only: measured before eval
        eval_loss = evaluate(trainer.model, trainer.val_batches, device, autocast) if done in eval_steps and not diverged else None
        metrics.append(
            {
                "step": done,
                "tokens": done * spec.batch_tokens,
                "flops": done * spec.batch_tokens * spec.flops_per_token,
                "train_loss": sum(losses_since_row) / len(losses_since_row),
                "eval_loss": eval_loss,
                "lr": lr,
                "grad_norm": grad_norm,
                "tokens_per_second": tokens_per_second,
                "wall_seconds": elapsed(),
            }
        )
        losses_since_row, row_tokens = [], 0
        if diverged or (eval_loss is not None and not math.isfinite(eval_loss)):
            outcome.status, outcome.error = "diverged", f"non-finite loss at step {done}"
            break
        if checkpoints and dist.rank == 0 and spec.checkpoint_every_steps and done % spec.checkpoint_every_steps == 0 and done < spec.steps:
            checkpoints.save(spec.sweep, spec.run_id, done, _state(trainer, done, metrics, elapsed()))
        row_clock = time.perf_counter()
    outcome.final_train_loss = metrics[-1]["train_loss"] if metrics else None
    evals = [row["eval_loss"] for row in metrics if row["eval_loss"] is not None]
    outcome.final_eval_loss = evals[-1] if evals and outcome.status == "completed" else None
    outcome.wall_seconds = elapsed()
    return outcome
