"""Training throughput: the sweep's training loop against a plain nanoGPT-style loop, same model, data and batch.

Ours: ``sweep.training.train.train_run``, the code a sweep runs (data loading, micro-batches, logging, the
scheduler, everything but evaluation, which is switched off here). Baseline: the minimal loop below, written
after nanoGPT's ``train.py`` (Karpathy): the same ``models.gpt.GPT``, AdamW with the same parameter groups and
settings (fused, as ours is, so the ratio measures the loops, not two optimizer kernels), nanoGPT's ``get_batch``
(a fresh memmap of the same corpus file per batch, random offsets, ``torch.stack``), the next batch fetched
right after the forward pass, forward, backward, clip, step, ``zero_grad``, warm-up + cosine LR set by hand, and
``loss.item()`` only every ``--log-every`` steps. Both train the same shape, batch and precision with the same
torch threads.

Each measurement trains ``warm-up + measured`` steps and times the measured ones: from the host read of the
warm-up's last logged step to that of the last step (ours: the ``wall_seconds`` of those two metrics rows, so
everything the loop does in between is inside), in tokens per second. The two loops alternate (ABAB..., the
order swapped every repeat), at least 3 repeats per shape; the table gives medians and the median of the
per-repeat ratios ours / baseline (wall clock; on a shared machine also the CPU-time ratio, which other
processes' load disturbs less). MFU (model FLOPs per token under the 6N + attention convention, over
``--peak-flops``) is printed when a peak is given.

    python benchmarks/throughput.py                                   # CPU, 1 thread, the three default shapes
    python benchmarks/throughput.py --shapes 2x80:64:16 --repeats 5
    python benchmarks/throughput.py --device cuda --precision bf16 --compile --shapes 12x768:1024:16 \\
        --peak-flops 989e12                                           # a 124M GPT on an H100 SXM (dense bf16)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.gpt import GPT  # noqa: E402
from sweep.config import DataConfig, parse_config  # noqa: E402
from sweep.planning.plan import RunSpec, plan_sweep  # noqa: E402
from sweep.training.data import build_stdlib_corpus, load_corpus  # noqa: E402
import sweep.training.train as train  # noqa: E402
from sweep.training.train import train_run  # noqa: E402

DEFAULT_SHAPES = ("1x16:64:16", "2x80:64:16", "4x256:256:8")
"""n_layer x d_model : seq_len : sequences per batch (heads of 16 dims, byte vocabulary)."""


def make_spec(shape: str, args: argparse.Namespace, steps: int) -> RunSpec:
    """A sweep run of ``shape`` ("LxD:T:B"), ``steps`` steps long, with no evaluation and no checkpoints."""
    dims, seq_len, sequences = shape.split(":")
    n_layer, d_model = (int(x) for x in dims.split("x"))
    config = parse_config(
        {
            "name": "bench",
            "budgets": [1e16],  # any budget that plans: the benchmark sets its own steps below
            "model": {"shapes": [{"n_layer": n_layer, "d_model": d_model, "n_head": max(1, d_model // 16)}], "seq_len": int(seq_len)},
            "training": {"batch_tokens": int(seq_len) * int(sequences), "device": args.device, "compile": args.compile,
                         "precision": args.precision, "log_every_steps": args.log_every, "checkpoint_every_steps": 0,
                         "min_steps": 1, "max_steps": 10**10},
            "resources": {"cpus_per_worker": args.threads},
        }
    )  # fmt: skip
    corpus = load_corpus(config.data)
    spec = plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[0]
    return replace(spec, steps=steps, tokens=steps * spec.batch_tokens, eval_steps=(), warmup_steps=max(1, steps // 20))


class Clocks:
    """Wall and CPU clocks read just after each host read of a loop (the end of each logged step)."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def mark(self) -> None:
        self.marks.append((time.perf_counter(), time.process_time()))

    def rates(self, tokens: int, first: int) -> tuple[float, float]:
        """Tokens/s (wall, CPU) from mark ``first`` to the last mark."""
        (wall0, cpu0), (wall1, cpu1) = self.marks[first], self.marks[-1]
        return tokens / (wall1 - wall0), tokens / (cpu1 - cpu0)


def measure_ours(spec: RunSpec, warmup: int) -> tuple[float, float]:
    """Tokens/s (wall, CPU) of ``train_run`` over the steps after ``warmup``: clocks read as each metrics row's
    one host read returns (``train._read_row``), so all the loop does between two rows is inside."""
    clocks, read_row = Clocks(), train._read_row

    def timed(*args):
        values = read_row(*args)
        clocks.mark()
        return values

    train._read_row = timed
    try:
        outcome = train_run(spec)
    finally:
        train._read_row = read_row
    assert outcome.status == "completed" and len(clocks.marks) == spec.steps // spec.log_every_steps
    return clocks.rates((spec.steps - warmup) * spec.batch_tokens, warmup // spec.log_every_steps - 1)


def measure_baseline(spec: RunSpec, warmup: int, device: torch.device) -> tuple[float, float]:
    """Tokens/s (wall, CPU) of a nanoGPT-style loop (see the module docstring) over the steps after ``warmup``."""
    torch.set_num_threads(max(1, int(spec.cpus)))
    torch.manual_seed(spec.seed)
    path, train_len = build_stdlib_corpus(), len(load_corpus(DataConfig(**spec.data)).train)
    block, batch = spec.seq_len, spec.batch_size
    model = GPT(spec.shape).to(device)
    params = dict(model.named_parameters())
    decay = [p for n, p in params.items() if p.dim() == 2 and "embedding" not in n]
    no_decay = [p for n, p in params.items() if not (p.dim() == 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=spec.lr, betas=(spec.beta1, spec.beta2), fused=True)  # fmt: skip
    if spec.compile:
        model = torch.compile(model)
    bf16 = spec.precision == "bf16" or (spec.precision == "auto" and device.type == "cuda")
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def get_batch():
        data = np.memmap(path, dtype=np.uint8, mode="r")  # nanoGPT: a new memmap per batch (avoids a memory leak)
        ix = torch.randint(train_len - block, (batch,))
        x = torch.stack([torch.from_numpy(data[i : i + block].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + block].astype(np.int64)) for i in ix])
        if device.type == "cuda":
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        return x, y

    def get_lr(it: int) -> float:
        if it < spec.warmup_steps:
            return spec.lr * (it + 1) / spec.warmup_steps
        ratio = min(1.0, (it - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps - 1))
        return spec.lr * (spec.min_lr_ratio + (1 - spec.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * ratio)))

    X, Y = get_batch()
    clocks = Clocks()
    for it in range(spec.steps):
        for group in optimizer.param_groups:
            group["lr"] = get_lr(it)
        with ctx:
            _, loss = model(X, Y)
        X, Y = get_batch()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (it + 1) % spec.log_every_steps == 0:
            loss.item()
            clocks.mark()
    return clocks.rates((spec.steps - warmup) * spec.batch_tokens, warmup // spec.log_every_steps - 1)


def machine(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}; torch {torch.__version__}"
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} logical CPUs, {threads} torch thread(s); torch {torch.__version__}; {platform.platform()}"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES), help="LxD:T:B, e.g. 2x80:64:16")
    parser.add_argument("--tokens", type=float, default=2e5, help="measured tokens per measurement (steps follow)")
    parser.add_argument("--warmup-steps", type=int, default=20, help="untimed steps first (compilation, caches)")
    parser.add_argument("--log-every", type=int, default=10, help="steps between host reads (both loops)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--peak-flops", type=float, help="one device's peak FLOP/s at this precision, for MFU")
    args = parser.parse_args()
    if args.warmup_steps % args.log_every:
        parser.error("--warmup-steps must be a multiple of --log-every")
    device = torch.device(args.device)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    print(f"machine: {machine(device, args.threads)}; commit {commit}")
    print(f"{args.repeats} repeats, alternated; {args.warmup_steps} warm-up steps; host read every {args.log_every} steps; {load()}")
    header = f"{'shape':>13}{'N (non-emb)':>12}{'steps':>6}{'ours tok/s':>12}{'base tok/s':>12}{'ratio':>7}{'range':>13}{'CPU-time ratio':>16}"
    print(header + ("" if args.peak_flops is None else f"{'MFU ours':>10}{'MFU base':>10}"))
    for shape in args.shapes:
        probe = make_spec(shape, args, 1)
        measured = max(args.log_every, round(args.tokens / probe.batch_tokens / args.log_every) * args.log_every)
        spec = make_spec(shape, args, args.warmup_steps + measured)
        ours, base = [], []
        for repeat in range(args.repeats):
            for which in ("ours", "base") if repeat % 2 == 0 else ("base", "ours"):
                if which == "ours":
                    ours.append(measure_ours(spec, args.warmup_steps))
                else:
                    base.append(measure_baseline(spec, args.warmup_steps, device))
        wall = [a[0] / b[0] for a, b in zip(ours, base)]
        cpu = statistics.median(a[1] / b[1] for a, b in zip(ours, base))
        ours_wall, base_wall = statistics.median(a[0] for a in ours), statistics.median(b[0] for b in base)
        line = (f"{shape:>13}{spec.n_params_nonembedding:>12,}{measured:>6}{ours_wall:>12,.0f}{base_wall:>12,.0f}"
                f"{statistics.median(wall):>7.3f}{f'{min(wall):.3f}-{max(wall):.3f}':>13}{cpu:>16.3f}")  # fmt: skip
        if args.peak_flops is not None:
            line += "".join(f"{rate * spec.flops_per_token_6n_attention / args.peak_flops:>10.1%}" for rate in (ours_wall, base_wall))
        print(line, flush=True)
    print(load())


if __name__ == "__main__":
    main()
