"""The training speed the plan's time estimates assume (``sweep plan``, the driver's longest-first order, its time
left), one rule per run, first match wins::

    resources.assumed_flops_per_second                   given: every run, as given
    CPU_FLOPS_PER_SECOND (3e10) per worker               a run without GPUs
    peak * resources.assumed_mfu (default 0.4)           a GPU run, its peak the first of:
        resources.peak_flops;  the peak table's for resources.gpu_name;  this machine's GPU 0;  GENERIC_GPU (said so)

The peak is the dense one at the run's precision on CUDA (``auto``: bf16), from the table MFU is measured against
(``sweep.training.hardware``). A run's duration is then ``estimated_seconds`` (``sweep.planning.plan``); the driver
scales the estimates by the speed its finished runs measured (``sweep.execute.progress``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from sweep.config import ConfigError, ResourcesConfig
from sweep.planning.memory import run_device, run_precision
from sweep.planning.plan import RunSpec, estimated_seconds
from sweep.training.hardware import accelerator, named_accelerator, part_name

CPU_FLOPS_PER_SECOND = 3e10
"""Sustained training FLOP/s of one CPU worker assumed without ``resources.assumed_flops_per_second``."""
GENERIC_GPU = "A100 SXM4"
"""The part assumed for a GPU run when nothing says which GPU (bf16 dense peak 312 TFLOP/s)."""


@dataclass(frozen=True)
class Throughput:
    """The speed one run's estimate assumes, and where it comes from."""

    flops_per_second_per_worker: float
    """Sustained training FLOP/s of one worker (under the sweep's FLOP convention)."""
    seconds_per_step: float
    """Fixed overhead per optimizer step (``resources.assumed_seconds_per_step``)."""
    source: str
    """One line for ``sweep plan``: which rule gave ``flops_per_second_per_worker``."""

    def seconds(self, spec: RunSpec) -> float:
        """``spec``'s estimated duration at this speed (``estimated_seconds``)."""
        return estimated_seconds(spec, self.flops_per_second_per_worker, self.seconds_per_step)


def run_throughput(spec: RunSpec, resources: ResourcesConfig, local_gpu: str | None = None) -> Throughput:
    """The speed ``spec``'s estimate assumes (module docstring); ``local_gpu``: this machine's GPU 0 by its
    ``torch.cuda.get_device_name``, None without one. ``ConfigError`` naming ``resources.gpu_name`` for a part the
    table has no peak for at the run's precision."""
    per_step = resources.assumed_seconds_per_step
    if resources.assumed_flops_per_second is not None:
        rate = resources.assumed_flops_per_second
        return Throughput(rate, per_step, f"resources.assumed_flops_per_second = {rate:.3g} FLOP/s per worker")
    if run_device(spec) != "cuda":
        return Throughput(CPU_FLOPS_PER_SECOND, per_step, f"CPU default {CPU_FLOPS_PER_SECOND:.3g} FLOP/s per worker "
                                                          "(set resources.assumed_flops_per_second)")  # fmt: skip
    peak, what = gpu_peak(resources, run_precision(spec), local_gpu)
    mfu = resources.assumed_mfu
    return Throughput(peak * mfu, per_step, f"{what} x {mfu:.0%} MFU (resources.assumed_mfu)")


def gpu_peak(resources: ResourcesConfig, precision: str, local_gpu: str | None) -> tuple[float, str]:
    """(one GPU's peak FLOP/s, what it is) for a GPU run at ``precision``: the first of ``resources.peak_flops``,
    ``resources.gpu_name``'s, ``local_gpu``'s and ``GENERIC_GPU``'s."""
    if resources.peak_flops is not None:
        return resources.peak_flops, f"resources.peak_flops {resources.peak_flops / 1e12:.4g} TFLOP/s"
    if resources.gpu_name is not None:
        row = named_accelerator(resources.gpu_name)
        peak = getattr(row, precision, None) if row else None
        if peak is None:
            raise ConfigError(f"resources.gpu_name: {resources.gpu_name} has no {precision} peak in the table "
                              "(sweep.training.hardware): give resources.peak_flops")  # fmt: skip
        return peak, f"{part_name(row)} {precision} dense peak {peak / 1e12:.4g} TFLOP/s (resources.gpu_name)"
    unknown = ""
    if local_gpu is not None:
        row = accelerator(local_gpu)
        peak = getattr(row, precision, None) if row else None
        if peak is not None:
            return peak, f"{part_name(row)} {precision} dense peak {peak / 1e12:.4g} TFLOP/s (this machine's GPU: {local_gpu})"
        unknown = f"this machine's {local_gpu} has no {precision} peak in the table; "
    peak = getattr(named_accelerator(GENERIC_GPU), precision)
    return peak, (f"no GPU stated ({unknown}set resources.gpu_name or resources.peak_flops): assumed {GENERIC_GPU} "
                  f"{precision} dense peak {peak / 1e12:.4g} TFLOP/s")  # fmt: skip


@cache
def local_gpu_name() -> str | None:
    """This machine's GPU 0 by the name ``torch.cuda.get_device_name`` also gives (the driver's), read from
    ``nvidia-smi`` so that the planning process creates no CUDA context on a GPU its runs will train on; None
    without one."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "--id=0"],
                             capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0].strip() if out.strip() else None


def run_throughputs(resources: ResourcesConfig, runs: Iterable[RunSpec]) -> dict[str, Throughput]:
    """Each run's ``run_throughput`` by run id; this machine's GPU is looked up only when a GPU run needs it."""
    runs = list(runs)
    stated = (resources.assumed_flops_per_second, resources.peak_flops, resources.gpu_name) != (None, None, None)
    needs_local = not stated and any(run_device(spec) == "cuda" for spec in runs)
    local_gpu = local_gpu_name() if needs_local else None
    return {spec.run_id: run_throughput(spec, resources, local_gpu) for spec in runs}


def planned_durations(resources: ResourcesConfig, runs: Iterable[RunSpec]) -> dict[str, float]:
    """Each run's estimated seconds by run id (``estimated_seconds`` at its ``run_throughput``)."""
    runs = list(runs)
    speeds = run_throughputs(resources, runs)
    return {spec.run_id: speeds[spec.run_id].seconds(spec) for spec in runs}


def throughput_sources(throughputs: dict[str, Throughput]) -> list[str]:
    """The distinct sources of ``throughputs`` (``run_throughputs``), most runs first: the source alone when every
    run shares it, else ``N runs: SOURCE`` each."""
    counts = Counter(t.source for t in throughputs.values())
    if len(counts) == 1:
        return list(counts)
    return [f"{n:,} runs: {source}" for source, n in counts.most_common()]
