"""One training run: build the model, train it for the planned steps, and return its metrics and outcome.

AdamW (decoupled weight decay on matrices only), linear warm-up then cosine decay to ``min_lr_ratio`` of the peak
over exactly the run's own steps (Chinchilla's rule: a schedule longer than the run overestimates its loss),
global gradient-norm clipping, fixed batch size in tokens. CPU trains in float32 with the run's CPU count as torch
threads; CUDA trains under bf16 autocast with fused AdamW and, if asked, ``torch.compile``.

A metrics row is logged every ``log_every_steps`` steps, at every evaluation step and at the last step;
``train_loss`` is the mean training loss of the steps since the previous row. A non-finite loss stops the run
with status ``diverged`` (its rows up to that step are kept), never an exception. This module does no I/O of
results: ``sweep.storage`` writes what it returns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from models.gpt import GPT
from sweep.config import DataConfig
from sweep.data import TokenStream, load_corpus, validation_batches
from sweep.plan import RunSpec


@dataclass
class RunOutcome:
    """What a run produced: its status, final numbers and metrics rows (plain dicts, ``sweep.storage`` schema)."""

    status: str
    """``completed`` or ``diverged``."""
    metrics: list[dict] = field(default_factory=list)
    final_train_loss: float | None = None
    final_eval_loss: float | None = None
    device: str = "cpu"
    wall_seconds: float = 0.0
    error: str | None = None


def lr_factor(step: int, steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Multiplier on the peak rate for 0-based ``step``: linear warm-up, then cosine to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


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


def train_run(spec: RunSpec) -> RunOutcome:
    """Train ``spec`` to its last step (or to divergence) and return the outcome."""
    started = time.perf_counter()
    device = resolve_device(spec.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(spec.cpus)))
    torch.manual_seed(spec.seed)
    corpus = load_corpus(DataConfig(**spec.data))
    if corpus.fingerprint != spec.data_fingerprint:
        raise RuntimeError(f"data fingerprint {corpus.fingerprint} differs from the planned {spec.data_fingerprint}")
    stream = TokenStream(corpus.train, spec.batch_size, spec.seq_len, spec.seed)
    val_batches = validation_batches(corpus.val, spec.eval_tokens, spec.batch_size, spec.seq_len)

    model = GPT(spec.shape).to(device)
    optimizer = build_optimizer(model, spec, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, spec.steps, spec.warmup_steps, spec.min_lr_ratio)
    )
    step_model = torch.compile(model) if spec.compile and device.type == "cuda" else model

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    outcome = RunOutcome(status="completed", device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device))
    losses_since_row: list[float] = []
    row_clock, row_tokens = time.perf_counter(), 0
    eval_steps = set(spec.eval_steps)
    for step in range(spec.steps):
        inputs, targets = stream.batch(step)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        lr = optimizer.param_groups[0]["lr"]
        with autocast():
            _, loss = step_model(inputs, targets)
        loss.backward()
        clip = spec.grad_clip if spec.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()

        done = step + 1
        loss_value = loss.item()
        losses_since_row.append(loss_value)
        row_tokens += spec.batch_tokens
        diverged = not math.isfinite(loss_value)
        if not (diverged or done % spec.log_every_steps == 0 or done in eval_steps or done == spec.steps):
            continue
        now = time.perf_counter()
        tokens_per_second = row_tokens / max(now - row_clock, 1e-9)  # training time only: measured before eval
        eval_loss = evaluate(model, val_batches, device, autocast) if done in eval_steps and not diverged else None
        row = {
            "step": done,
            "tokens": done * spec.batch_tokens,
            "flops": done * spec.batch_tokens * spec.flops_per_token,
            "train_loss": sum(losses_since_row) / len(losses_since_row),
            "eval_loss": eval_loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens_per_second": tokens_per_second,
            "wall_seconds": time.perf_counter() - started,
        }
        outcome.metrics.append(row)
        losses_since_row, row_clock, row_tokens = [], time.perf_counter(), 0
        if diverged or (eval_loss is not None and not math.isfinite(eval_loss)):
            outcome.status = "diverged"
            outcome.error = f"non-finite loss at step {done}"
            break
    outcome.final_train_loss = outcome.metrics[-1]["train_loss"] if outcome.metrics else None
    evals = [row["eval_loss"] for row in outcome.metrics if row["eval_loss"] is not None]
    outcome.final_eval_loss = evals[-1] if evals and outcome.status == "completed" else None
    outcome.wall_seconds = time.perf_counter() - started
    return outcome
