"""Accelerators' peak FLOP/s, and the model FLOPs utilisation (MFU) of a run measured against them.

MFU (Chowdhery et al. 2022, "PaLM", Appendix B) is achieved model FLOP/s over the hardware's peak::

    model_flops_per_second = tokens_per_second * spec.flops_per_token     (the sweep's own FLOP convention)
    mfu = model_flops_per_second / (workers * peak_flops(device, precision))

The numerator uses the same FLOPs per token that sized the run (``flops_convention``: 6N+attention by default,
``models.accounting``), so a run's FLOPs, its horizon and its MFU share one convention end to end; no
recomputation (activation checkpointing) is counted, as PaLM's definition asks.

The denominator is one device's dense peak at the precision the run trained at, from NVIDIA's datasheets:

- ``bf16``: the BF16 tensor-core peak with FP32 accumulation (what ``torch.autocast(dtype=torch.bfloat16)``
  runs), *dense*. Datasheets print the figure "with sparsity" (2:4 structured sparsity, which dense training
  never uses) marked with an asterisk; the dense peak is half of it.
- ``fp32``: float32 training on CUDA runs its matmuls as TF32 (``torch.backends.cuda.matmul.allow_tf32``), so
  the TF32 tensor-core dense peak; parts without TF32 (Volta, Turing) the FP32 CUDA-core peak.
- ``fp16``: the FP16 tensor-core peak (FP32 accumulation), for the record: the sweep trains at fp32 or bf16.

A part that lacks a precision (V100 and T4 have no bf16) gives None for it. Parts are told apart by the name
``torch.cuda.get_device_name`` returns: SXM and PCIe/NVL parts of the same chip differ in clocks and power,
hence in peak (``NVIDIA H100 80GB HBM3`` is the SXM5 part; ``NVIDIA H100 PCIe`` and ``NVIDIA H100 NVL`` are
not). The table is searched in order and the first row whose pattern matches wins, so more specific names come
first (``A10G`` before ``A10``, ``H100 ... NVL`` before a bare ``H100``). Anything else (an unlisted GPU, a
name that does not say the form factor, a CPU) gives None: MFU is then not reported rather than guessed, and
``resources.peak_flops`` supplies the figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sweep.config import resolved_precision

PRECISIONS = ("bf16", "fp32", "fp16")
"""Precisions the table knows; ``auto`` is resolved first (``resolve_precision``)."""


@dataclass(frozen=True)
class Accelerator:
    """One row of the table: a part and its dense peaks in FLOP/s (None: the part has no such tensor math)."""

    pattern: str
    """Regular expression searched in ``torch.cuda.get_device_name``'s string (case-sensitive)."""
    part: str
    """The part's datasheet name."""
    bf16: float | None
    """Dense BF16 tensor-core peak (FP32 accumulate)."""
    fp32: float | None
    """What fp32 training runs at: the dense TF32 tensor-core peak, or the FP32 CUDA-core peak without TF32."""
    fp16: float | None
    """Dense FP16 tensor-core peak (FP32 accumulate)."""


T = 1e12
ACCELERATORS: tuple[Accelerator, ...] = (
    # Blackwell. NVIDIA Blackwell datasheet, per GPU, with sparsity: HGX B200 BF16/FP16 4.5 PF, TF32 2.2 PF;
    # GB200 NVL72 BF16/FP16 5 PF, TF32 2.5 PF. Dense: half.
    Accelerator(r"\bGB200\b", "GB200 (NVL72)", 2500 * T, 1250 * T, 2500 * T),
    Accelerator(r"\bB200\b", "HGX B200", 2250 * T, 1100 * T, 2250 * T),
    # Hopper. NVIDIA H100 datasheet, with sparsity: SXM BF16/FP16 1,979 TF, TF32 989 TF; NVL 1,671 / 835;
    # PCIe 1,513 / 756. H200 datasheet: SXM 1,979 / 989, NVL 1,671 / 835. GH200 datasheet: 1,979 / 989.
    # A bare "H100" (no HBM3, SXM, PCIe or NVL in the name) is left unknown: its form factor is not said.
    Accelerator(r"\bGH200\b", "GH200 (H100/H200 on Grace Hopper)", 989.5 * T, 494.5 * T, 989.5 * T),
    Accelerator(r"\bH200\b.*\bNVL\b", "H200 NVL", 835.5 * T, 417.5 * T, 835.5 * T),
    Accelerator(r"\bH200\b", "H200 SXM", 989.5 * T, 494.5 * T, 989.5 * T),
    Accelerator(r"\bH100\b.*\bNVL\b", "H100 NVL", 835.5 * T, 417.5 * T, 835.5 * T),
    Accelerator(r"\bH100\b.*\bPCIe\b", "H100 PCIe", 756.5 * T, 378 * T, 756.5 * T),
    Accelerator(r"\bH100\b.*\b(HBM3|SXM\w*)\b", "H100 SXM5", 989.5 * T, 494.5 * T, 989.5 * T),
    # Ampere. NVIDIA A100 datasheet (40GB and 80GB, PCIe and SXM alike), with sparsity: BF16/FP16 624 TF,
    # TF32 312 TF. A30 datasheet: 330 / 165. A10 datasheet: 250 / 125. A40 datasheet: 299.4 / 149.6.
    # GeForce RTX 3090: NVIDIA Ampere GA102 whitepaper, dense FP16/BF16 with FP32 accumulate 71, TF32 35.6.
    # A10G (AWS) has no NVIDIA datasheet giving its tensor peak: unknown, so it never matches the A10 row.
    Accelerator(r"\bA100\b.*\bSXM", "A100 SXM4", 312 * T, 156 * T, 312 * T),
    Accelerator(r"\bA100\b.*\bPCI[Ee]", "A100 PCIe", 312 * T, 156 * T, 312 * T),
    Accelerator(r"\bA30\b", "A30", 165 * T, 82 * T, 165 * T),
    Accelerator(r"\bA10G\b", "A10G (no published tensor peak)", None, None, None),
    Accelerator(r"\bA10\b", "A10", 125 * T, 62.5 * T, 125 * T),
    Accelerator(r"\bA40\b", "A40", 149.7 * T, 74.8 * T, 149.7 * T),
    Accelerator(r"RTX 3090$", "GeForce RTX 3090", 71 * T, 35.6 * T, 71 * T),
    # Ada. NVIDIA L4 datasheet, with sparsity: BF16/FP16 242 TF, TF32 120 TF. L40S datasheet: dense BF16/FP16
    # 362.05 TF, TF32 183 TF (733 / 366 with sparsity). L40 datasheet: dense 181.05 / 90.5.
    # GeForce RTX 4090: NVIDIA Ada Lovelace whitepaper, dense FP16/BF16 with FP32 accumulate 165.2, TF32 82.6
    # (the 4090 D and laptop parts differ: unknown).
    Accelerator(r"\bL40S\b", "L40S", 362.05 * T, 183 * T, 362.05 * T),
    Accelerator(r"\bL40\b", "L40", 181.05 * T, 90.5 * T, 181.05 * T),
    Accelerator(r"\bL4\b", "L4", 121 * T, 60 * T, 121 * T),
    Accelerator(r"RTX 4090$", "GeForce RTX 4090", 165.2 * T, 82.6 * T, 165.2 * T),
    # Volta and Turing: FP16 tensor cores only (no BF16, no TF32; fp32 runs on the CUDA cores). NVIDIA V100
    # datasheet: SXM2 tensor 125 TF, FP32 15.7 TF; PCIe 112 / 14; V100S PCIe 130 / 16.4. T4 datasheet: mixed
    # precision (FP16/FP32) 65 TF, FP32 8.1 TF.
    Accelerator(r"\bV100S\b", "V100S PCIe", None, 16.4 * T, 130 * T),
    Accelerator(r"\bV100\b.*\bSXM2\b", "V100 SXM2", None, 15.7 * T, 125 * T),
    Accelerator(r"\bV100\b.*\bPCIE\b", "V100 PCIe", None, 14 * T, 112 * T),
    Accelerator(r"\bT4\b", "T4", None, 8.1 * T, 65 * T),
)  # fmt: skip
"""Searched in order; the first match wins (see the module docstring)."""


def parse_device(device: str) -> tuple[int, str]:
    """``(count, name)`` of a recorded device string: ``"2x NVIDIA H100 80GB HBM3"`` (a DDP run, see
    ``sweep.training.train``) is ``(2, "NVIDIA H100 80GB HBM3")``; anything else is one device of that name."""
    match = re.fullmatch(r"(\d+)x (.+)", device.strip())
    return (int(match.group(1)), match.group(2)) if match else (1, device.strip())


def accelerator(device_name: str) -> Accelerator | None:
    """The table's row for ``device_name`` (a recorded ``"2x NAME"`` string too), or None if unknown."""
    _, name = parse_device(device_name)
    return next((row for row in ACCELERATORS if re.search(row.pattern, name)), None)


def part_name(row: Accelerator) -> str:
    """A row's datasheet name without its note: ``GB200 (NVL72)`` is ``GB200``."""
    return row.part.split(" (")[0]


def known_parts() -> list[str]:
    """Every part of the table by its datasheet name, in table order."""
    return [part_name(row) for row in ACCELERATORS]


def named_accelerator(name: str) -> Accelerator | None:
    """The row a user names (``resources.gpu_name``): a datasheet name, case and spacing aside (``H100 SXM5``,
    ``a100 sxm4``), else a device name as ``torch.cuda.get_device_name`` gives it (``accelerator``); None if neither."""
    wanted = " ".join(name.split()).casefold()
    by_part = next((row for row in ACCELERATORS if wanted in (row.part.casefold(), part_name(row).casefold())), None)
    return by_part or accelerator(name)


def is_cuda_name(device_name: str | None) -> bool:
    """Whether a recorded device string names a GPU (``sweep.training.train`` records CPUs as ``cpu``)."""
    return bool(device_name) and not parse_device(device_name)[1].startswith("cpu")


def resolve_precision(precision: str | None, device_name: str | None) -> str | None:
    """``auto`` as ``training.precision`` defines it (bf16 on CUDA, fp32 on CPU); other values unchanged."""
    return resolved_precision(precision, is_cuda_name(device_name))


def peak_flops(device_name: str | None, precision: str | None) -> float | None:
    """One device's dense peak FLOP/s at ``precision`` (``bf16``, ``fp32``, ``fp16``; ``auto`` resolved by the
    device), or None for an unknown device, a CPU, or a precision the part lacks (module docstring)."""
    precision = resolve_precision(precision, device_name)
    if not device_name or precision not in PRECISIONS:
        return None
    row = accelerator(device_name)
    return getattr(row, precision) if row else None


def mfu(model_flops_per_second: float | None, workers: int, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved model FLOP/s of the whole run over ``workers`` devices' peak (None when
    either is unknown)."""
    if model_flops_per_second is None or not peak or workers < 1:
        return None
    return model_flops_per_second / (workers * peak)


def mean_tokens_per_second(metrics: list[dict], skip_first: bool = False) -> float | None:
    """Training tokens per second over a run's metrics rows (``sweep.results.storage.METRICS_SCHEMA``): the
    tokens of each row's interval over the time it took (``tokens / tokens_per_second``), summed, so evaluation
    and checkpoint time stay out as they do in each row. ``skip_first`` leaves out the first interval (start-up,
    ``torch.compile``) when there are others. None without a row that measured a rate."""
    intervals, previous = [], 0
    for row in sorted(metrics, key=lambda r: r["step"]):
        tokens, rate = row["tokens"] - previous, row.get("tokens_per_second")
        previous = row["tokens"]
        if rate and rate > 0 and tokens > 0:
            intervals.append((tokens, tokens / rate))
    if skip_first and len(intervals) > 1:
        intervals = intervals[1:]
    if not intervals:
        return None
    return sum(t for t, _ in intervals) / sum(s for _, s in intervals)
