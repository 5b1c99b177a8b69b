"""``sweep doctor``: does this machine train the way a sweep will? A first check before a sweep on new hardware.

It finds the devices (CUDA count, names, memory, bf16 support, NCCL), then trains a small GPT for a few steps
through the real ``sweep.training.train.train_run`` in each configuration a sweep on this machine would use, and
prints one line per check::

    CUDA   bf16 autocast + fused AdamW; bf16 + torch.compile; fp32 (TF32 matmuls); with two or more GPUs a
           2-worker NCCL DDP run (bf16 + compile), its processes spawned here (``torch.multiprocessing``)
    CPU    fp32; bf16 autocast; torch.compile (inductor)  -- "no CUDA device: checking the CPU path"

A check passes when the run completes with finite losses that fall from its first logged interval to its last,
at the precision asked for (``RunOutcome.precision``), and, for a compile check, with at least one graph built by
``torch.compile``. Its line gives tokens/s (the logged intervals after the first, so start-up and compilation are
left out), model FLOP/s under the sweep's FLOPs per token and MFU where the device's peak is known
(``sweep.training.hardware``; ``--peak-flops`` otherwise), plus how many graphs a compile check built. A GPU without bf16 (V100, T4) skips the bf16 checks with a line. Any
failure is one line naming the check (``FAIL name: error``) and the exit status is 1; ``--verbose`` adds the
traceback.

The DDP check's processes rendezvous through a ``FileStore`` in a temporary directory (no TCP store), and
NCCL's and gloo's own sockets are pinned to the loopback interface (``NCCL_SOCKET_IFNAME``,
``GLOO_SOCKET_IFNAME``), so the check opens no port beyond this machine. It is given ``DDP_TIMEOUT_SECONDS``;
past that its processes (the ones it started) are killed and the check fails.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from typing import Callable

import torch

from sweep.planning.plan import RunSpec, plan_sweep
from sweep.training.hardware import mean_tokens_per_second, mfu, peak_flops, resolve_precision
from sweep.training.train import Distributed, RunOutcome, train_run

DDP_TIMEOUT_SECONDS = 300.0
"""The 2-worker check's limit, compilation in both processes included."""


@dataclass(frozen=True)
class Devices:
    """What ``torch`` sees on this machine."""

    names: tuple[str, ...]
    """``torch.cuda.get_device_name`` of each CUDA device (empty: none)."""
    memory_bytes: tuple[int, ...]
    """Total memory of each CUDA device."""
    bf16: bool
    """Whether the CUDA devices run bf16 (``torch.cuda.is_bf16_supported``)."""
    nccl: str | None
    """NCCL's version when ``torch.distributed`` has it, else None."""


def find_devices() -> Devices:
    """The CUDA devices and their properties (no device: empty names)."""
    if not torch.cuda.is_available():
        return Devices((), (), False, None)
    count = torch.cuda.device_count()
    names = tuple(torch.cuda.get_device_name(i) for i in range(count))
    memory = tuple(torch.cuda.get_device_properties(i).total_memory for i in range(count))
    nccl = None
    if torch.distributed.is_available() and torch.distributed.is_nccl_available():
        version = torch.cuda.nccl.version()
        nccl = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
    return Devices(names, memory, count > 0 and torch.cuda.is_bf16_supported(), nccl)


def describe(devices: Devices) -> str:
    """One line: each CUDA device with its memory, bf16 support and NCCL."""
    if not devices.names:
        return f"no CUDA device (torch {torch.__version__}, {os.cpu_count()} CPUs)"
    listed = ", ".join(f"cuda:{i} {name} ({memory / 2**30:.1f} GiB)" for i, (name, memory) in enumerate(zip(devices.names, devices.memory_bytes)))
    return (f"{len(devices.names)} CUDA ({listed}); bf16 {'yes' if devices.bf16 else 'no'}; "
            f"NCCL {devices.nccl or 'not available'}; torch {torch.__version__}, CUDA {torch.version.cuda}")  # fmt: skip


@dataclass(frozen=True)
class Check:
    """One training check: a run spec and how it trains (one process, or ``workers`` DDP processes)."""

    name: str
    spec: RunSpec
    backend: str | None = None
    """DDP backend (``nccl``, ``gloo``) for a multi-process check; None: one process."""


def doctor_spec(device: str, precision: str, compile: bool, workers: int = 1) -> RunSpec:
    """A small GPT's spec for a check: tiny on CPU (seconds), about 20M parameters on CUDA (a GPU's
    kernels, not its launch overhead, dominate), trained at a fixed learning rate for a few logged intervals."""
    from sweep.config import parse_config
    from sweep.training.data import load_corpus

    if device == "cpu":
        model = {"sizes": [1e4], "seq_len": 64, "head_dim": 16, "aspect_ratio": 16}
        batch_tokens, steps, log_every, warmup, lr = 1024, 12, 3, 2, 1e-2
    else:  # 12 x 384, 21M non-embedding parameters; lr about Kaplan's rule for that size
        model = {"sizes": [2e7], "seq_len": 512, "head_dim": 64}
        batch_tokens, steps, log_every, warmup, lr = 32768, 30, 5, 5, 1e-3
    config = parse_config(
        {
            "name": "doctor",
            "budgets": [1e15],  # any budget: the check sets its own steps below
            "model": model,
            "training": {"batch_tokens": batch_tokens, "device": device, "compile": compile, "precision": precision,
                         "lr": lr, "eval_points": 1, "eval_tokens": batch_tokens,
                         "log_every_steps": log_every, "min_steps": 1, "max_steps": 10**10, "checkpoint_every_steps": 0},
            "resources": {"cpus_per_worker": 1, "gpus_per_worker": 0 if device == "cpu" else 1, "workers_per_run": workers},
        }
    )  # fmt: skip
    corpus = load_corpus(config.data)
    (spec,) = plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs
    return replace(spec, steps=steps, tokens=steps * spec.batch_tokens, flops=steps * spec.batch_tokens * spec.flops_per_token,
                   eval_steps=(steps,), warmup_steps=warmup, warmup_tokens=warmup * spec.batch_tokens)  # fmt: skip


def plan_checks(devices: Devices) -> tuple[list[Check], list[str]]:
    """The checks for this machine, and the lines of what is skipped (and why)."""
    if not devices.names:
        checks = [Check("cpu fp32", doctor_spec("cpu", "fp32", False)), Check("cpu bf16 autocast", doctor_spec("cpu", "bf16", False)),
                  Check("cpu compile (inductor)", doctor_spec("cpu", "fp32", True))]  # fmt: skip
        return checks, []
    skipped, checks = [], []
    if devices.bf16:
        checks += [Check("cuda bf16 + fused AdamW", doctor_spec("cuda", "bf16", False)),
                   Check("cuda bf16 + compile", doctor_spec("cuda", "bf16", True))]  # fmt: skip
    else:
        skipped.append("cuda bf16: the device has no bf16 (train at training.precision: fp32)")
    checks.append(Check("cuda fp32 (TF32)", doctor_spec("cuda", "fp32", False)))
    if len(devices.names) >= 2:
        precision = "bf16" if devices.bf16 else "fp32"
        checks.append(Check(f"ddp 2x cuda nccl {precision} + compile", doctor_spec("cuda", precision, True, workers=2), backend="nccl"))
    else:
        skipped.append("ddp: one CUDA device (the 2-worker NCCL check needs two)")
    return checks, skipped


class CheckFailed(Exception):
    """A check ran but its result is wrong (the message is the check's one line)."""


def _compiled_graphs() -> int:
    """Graphs ``torch.compile`` has built in this process (dynamo's own counter)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def assess(check: Check, outcome: RunOutcome, graphs: int, peak: float | None = None) -> str:
    """The check's line if ``outcome`` is a healthy run (module docstring); raises ``CheckFailed`` otherwise."""
    spec = check.spec
    if outcome.status != "completed":
        raise CheckFailed(f"run {outcome.status}: {(outcome.error or '').splitlines()[0] if outcome.error else 'no error recorded'}")
    losses = [row["train_loss"] for row in outcome.metrics]
    if not losses or not all(math.isfinite(loss) for loss in losses):
        raise CheckFailed(f"non-finite or missing training losses: {losses}")
    if len(losses) > 1 and not losses[-1] < losses[0]:
        raise CheckFailed(f"the loss did not fall: {losses[0]:.4f} -> {losses[-1]:.4f}")
    asked = resolve_precision(spec.precision, outcome.device)
    if outcome.precision != asked:
        raise CheckFailed(f"asked for {asked}, the run trained at {outcome.precision}")
    if spec.compile and not graphs:
        raise CheckFailed("torch.compile built no graph: the run trained uncompiled")
    precision = outcome.precision
    rate = mean_tokens_per_second(outcome.metrics, skip_first=True)
    model_flops = rate * spec.flops_per_token if rate else None
    peak = peak or peak_flops(outcome.device, precision)
    utilisation = mfu(model_flops, spec.workers, peak)
    parts = [f"{rate:.3g} tokens/s" if rate else "tokens/s unknown", f"{model_flops:.3g} model FLOP/s" if model_flops else None,
             f"MFU {utilisation:.1%} of {peak:.3g} FLOP/s" if utilisation is not None else "MFU n/a (peak unknown)",
             f"on {outcome.device}", f"precision {precision}", f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"]  # fmt: skip
    if spec.compile:
        parts.append(f"torch.compile built {graphs} graph(s)")
    return ", ".join(p for p in parts if p)


def _loopback_interface() -> str | None:
    names = {name for _, name in socket.if_nameindex()} if hasattr(socket, "if_nameindex") else set()
    return next((name for name in ("lo", "lo0") if name in names), None)


def _ddp_worker(rank: int, world_size: int, spec: RunSpec, backend: str, directory: str) -> None:
    """One process of the DDP check: join the group through the FileStore, train, rank 0 saves the outcome."""
    loopback = _loopback_interface()
    if loopback:
        os.environ["NCCL_SOCKET_IFNAME"] = os.environ["GLOO_SOCKET_IFNAME"] = loopback
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    store = torch.distributed.FileStore(os.path.join(directory, "store"), world_size)
    torch.distributed.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    try:
        outcome = train_run(spec, None, Distributed(rank, world_size, device))
        if rank == 0:
            outcome.metrics = [dict(row) for row in outcome.metrics]
            torch.save({"outcome": outcome, "graphs": _compiled_graphs()}, os.path.join(directory, "outcome.pt"))
    finally:
        torch.distributed.destroy_process_group()


def train_ddp(spec: RunSpec, backend: str, timeout: float = DDP_TIMEOUT_SECONDS) -> tuple[RunOutcome, int]:
    """Train ``spec`` with ``spec.workers`` spawned processes (``backend``); rank 0's outcome and graph count."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="sweep-doctor-") as directory:
        context = mp.start_processes(_ddp_worker, args=(spec.workers, spec, backend, directory), nprocs=spec.workers,
                                     join=False, start_method="spawn")  # fmt: skip
        deadline = time.monotonic() + timeout
        spawn_log = logging.getLogger("torch.multiprocessing.spawn")  # it logs each survivor it stops on a failure
        level, spawn_log.level = spawn_log.level, logging.ERROR
        try:
            while not context.join(timeout=1.0):
                if time.monotonic() > deadline:
                    raise CheckFailed(f"no result within {timeout:.0f} s")
        finally:
            spawn_log.setLevel(level)
            for process in context.processes:  # only the processes this check started
                if process.is_alive():
                    process.kill()
                    process.join()
        saved = torch.load(os.path.join(directory, "outcome.pt"), weights_only=False)
    return saved["outcome"], saved["graphs"]


def run_check(check: Check, peak: float | None = None) -> str:
    """Train ``check`` and return its line (raises on failure)."""
    if check.spec.compile:
        torch.compiler.reset()
    if check.backend:
        outcome, graphs = train_ddp(check.spec, check.backend)
    else:
        before = _compiled_graphs()
        outcome = train_run(check.spec)
        graphs = _compiled_graphs() - before
    return assess(check, outcome, graphs, peak)


def _one_line(error: BaseException) -> str:
    """The error as one line: a spawned process's own exception line rather than its whole traceback."""
    if isinstance(error, CheckFailed):
        return str(error)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if type(error).__name__ == "ProcessRaisedException" and lines:
        return lines[-1]
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class _Lines:
    """The doctor's output: one line per check, the failures remembered."""

    def __init__(self, out, verbose: bool) -> None:
        self.out, self.verbose, self.failed = out, verbose, []

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def ok(self, name: str, line: str, started: float) -> None:
        self.say(f"ok   {name}: {line} [{time.perf_counter() - started:.1f} s]")

    def fail(self, name: str, error: BaseException) -> None:
        self.failed.append(name)
        self.say(f"FAIL {name}: {_one_line(error)}")
        if self.verbose:
            traceback.print_exception(error)


def run_doctor(peak: float | None = None, verbose: bool = False, out=None, find: Callable[[], Devices] | None = None) -> int:
    """Find the devices, run the checks, print one line each; 0 if all passed, else 1 (module docstring).
    ``peak``: one device's peak FLOP/s for MFU where the table does not know the device."""
    lines = _Lines(out or sys.stdout, verbose)
    started = time.perf_counter()
    try:
        devices = (find or find_devices)()
        lines.ok("devices", describe(devices), started)
        if not devices.names:
            lines.say("no CUDA device: checking the CPU path")
    except Exception as error:  # noqa: BLE001 -- a broken driver is the doctor's finding, not a crash
        lines.fail("devices", error)
        devices = Devices((), (), False, None)
    try:
        checks, skipped = plan_checks(devices)
    except Exception as error:  # noqa: BLE001
        lines.fail("building the checks", error)
        checks, skipped = [], []
    for reason in skipped:
        lines.say(f"skip {reason}")
    for check in checks:
        started = time.perf_counter()
        try:
            lines.ok(check.name, run_check(check, peak), started)
        except Exception as error:  # noqa: BLE001 -- every failure becomes the check's one line
            lines.fail(check.name, error)
    if lines.failed:
        lines.say(f"sweep doctor: {len(lines.failed)} check(s) failed: {', '.join(lines.failed)}")
        return 1
    lines.say(f"sweep doctor: all {len(checks) + 1} checks passed")
    return 0
