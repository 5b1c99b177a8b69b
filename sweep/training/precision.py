"""How a run computes: its precision (fp32 or bf16 autocast), TF32 matmuls, ``torch.compile`` and batch copies.

- **bf16 autocast** (``training.precision: bf16``; ``auto`` picks it on CUDA): matmuls and attention run in
  bfloat16, while the master weights, gradients and AdamW states stay float32 (mixed precision, Micikevicius et
  al. 2018; bfloat16 keeps float32's exponent range, so no loss scaling is needed, Kalamkar et al. 2019). The
  loss is computed from float32 logits (``models.gpt``). It runs on CPU too, through the same
  ``torch.autocast``, so the path is tested on every machine.
- **fp32** (``auto`` on CPU): no autocast. On CUDA, float32 matmuls use TF32 tensor cores
  (``torch.set_float32_matmul_precision("high")``: 10-bit mantissa products, float32 accumulation), as most
  GPU training code does; on CPU, fp32 is exact float32, which keeps resumed runs bitwise.
- **compile** (``training.compile``): the model is compiled in place with ``nn.Module.compile`` (inductor, on
  CPU through the C++ compiler and on CUDA through Triton) before any DDP wrapping, the order PyTorch documents
  ("Where to apply torch.compile?": compile the inner module passed to DistributedDataParallel).
- **batches** reach a CUDA device from pinned host memory with non-blocking copies, so the copy of the next
  micro-batch overlaps the current one's kernels; on CPU they are used as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import ContextManager

import torch

from sweep.config import resolved_precision

PRECISIONS = ("fp32", "bf16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``training.precision`` for this device: ``auto`` is bf16 on CUDA and fp32 elsewhere."""
    precision = resolved_precision(precision, device.type == "cuda")
    if precision not in PRECISIONS:
        raise ValueError(f"training.precision must be auto, fp32 or bf16, got {precision!r}")
    return precision


def autocast_for(precision: str, device: torch.device) -> Callable[[], ContextManager]:
    """A factory of the context every forward pass runs in: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def configure_matmuls(precision: str, device: torch.device) -> None:
    """TF32 for float32 matmuls on CUDA (a process-wide setting; a worker trains one run at a time)."""
    if device.type == "cuda" and precision == "fp32":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True


def maybe_compile(model: torch.nn.Module, compile: bool) -> torch.nn.Module:
    """Compile ``model`` in place (its parameters and state-dict keys unchanged) when asked; returns it."""
    if compile:
        model.compile()
    return model


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host batch on ``device``: through pinned memory and a non-blocking copy on CUDA, untouched on CPU."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
