"""Peak memory of one training worker: a closed-form estimate per micro-batch, and the measurement that checks it.

What one worker holds at the peak of a training step of ``models.gpt.GPT`` (AdamW, fp32 master weights), in bytes.
N all parameters, B sequences per micro-batch, T seq_len, h d_model, a n_head, L n_layer, V vocab; p bytes per
activation element (4 fp32, 2 bf16 under autocast); R = 4 for the residual stream and LayerNorm, which autocast
keeps in fp32 (``layer_norm`` is on its fp32 list on CPU and CUDA, and fp32 + bf16 promotes to fp32).

1. Parameters 4N; AdamW's ``exp_avg`` and ``exp_avg_sq`` 8N and its ``step`` counts, a 4-byte scalar for each of
   the 6 L + 4 parameter tensors; with more than one worker, DDP's gradient buckets 4N (``gradient_as_bucket_view``
   is off by default). Gradients, fp32: all 4N live through the forward and backward once micro-batches accumulate.
   With one pass per step (``zero_grad(set_to_none=True)``) none exist in the forward, and the backward frees a
   layer's activations as it makes that layer's gradients, so the live total moves linearly from the backward's
   start (activations whole, the gradients of the head and of one block made: 4 (V h + 12 h^2 + 3 h)) to its end
   (gradients whole, activations gone: step 6 covers that end).
2. bf16 only: autocast's cached bf16 copies of the matmul weights, 2 (12 L h^2 + V h), saved for the backward.
3. Activations saved for the backward. Korthikanti et al. (2022), "Reducing Activation Recomputation in Large
   Transformer Models", sec. 4.1, count s b h (34 + 5 a s / h) bytes per layer in fp16, with dropout and without
   flash attention. For this model, per token and layer:
   - the two LayerNorm inputs, in fp32: 2 R h (they count 4 sbh at 2 bytes), and their mean and rstd, 16;
   - attention: the QKV input h; Q, K and V 3h; the attention output h, which is also the output projection's
     input (SDPA returns it in (B, T, nh, hs) memory, so ``transpose(1, 2).contiguous()`` copies nothing): 5 p h;
   - MLP: the up projection's input h, the GELU input 4h, the down projection's input 4h: 9 p h;
   - no dropout masks (their 2 sbh and a s^2 b), and no s x s scores: SDPA's flash and memory-efficient kernels on
     CUDA, and ``_scaled_dot_product_flash_attention_for_cpu`` (torch 2.13; fp32 and bf16, causal, no dropout), keep
     only the fp32 log-sum-exp, 4a, in place of Korthikanti's 5 a s / h term (the math backend would store it);
   so (2 R + 14 p) h + 16 + 4a: 64 h + 16 + 4a in fp32, and 36 h + 16 + 4a in bf16 (Korthikanti's 34 h less 2 h of
   dropout masks, plus 4 h for the fp32 LayerNorm inputs). Once per token besides: the final LayerNorm's input R h
   and stats 8, the head's input p h, the token ids and targets (int64) 16; and 8 T for the positions.
4. Logits: the (B, T, V) logits at p, which the caller holds through the backward (``_, loss = model(x, y)``).
5. The largest short-lived working set of the pass, whichever is larger:
   - the loss: ``F.cross_entropy(logits.float())`` keeps the fp32 log-probabilities, and its backward makes two fp32
     (B, T, V) gradients before the first is freed: 12 V per token;
   - the last block's backward: the residual stream's gradient R h and the MLP hidden's gradient 4 p h per token,
     and the weight gradient of the largest matrix M = max(4 h^2, V h) before it is added to ``.grad``, 4 M (in
     bf16 also its bf16 form, 2 M).
6. The optimizer step, after the activations are freed: all 4N gradients and the step's temporaries. The
   training loop uses the fused AdamW kernel on CPU and CUDA, which makes none (``torch.optim.AdamW``'s
   per-parameter loop would keep about 3 x 4 M', M' the largest parameter).
7. An allowance: 10% of the above for the allocator (CUDA's caching allocator rounds and caches blocks, glibc's malloc
   keeps freed arenas), and on CUDA a fixed 1 GiB that no tensor holds: the CUDA context (about 0.3-0.6 GiB with
   CUDA 12's lazy loading), cuBLAS workspaces and NCCL's buffers.

Total = parameters + optimizer states + buckets + max(gradients of step 1 + steps 2-5, 4N + step 6) + step 7.

Checked against the peak of live tensor storage over whole CPU training steps (``measure_peak_bytes``): steps 1-6
are never below it but for a few 4-byte scalars, exact when the loss sets the peak and micro-batches accumulate, and
at most 6% above it at the shapes tested (``tests/planning/test_memory.py``; the table in ``docs/memory.md``, from
``benchmarks/memory.py``). The estimate is for eager mode: ``torch.compile`` usually saves fewer activations.

``micro_batch_tokens_for`` picks the largest micro-batch whose estimate fits a memory size; ``available_bytes``
reads that size from the device when a run starts (``training.micro_batch_tokens: auto``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from models.accounting import param_counts
from models.gpt import GPTShape
from sweep.config import resolved_precision

if TYPE_CHECKING:  # torch only where a device is read or a step is measured
    import torch

    from sweep.planning.plan import RunSpec

Precision = Literal["fp32", "bf16"]
BYTES_PER_ELEMENT = {"fp32": 4, "bf16": 2}
RESIDUAL_BYTES = 4
"""The residual stream and LayerNorm stay fp32 under bf16 autocast."""
ALLOCATOR_FRACTION = 0.10
"""Step 7: the allowance for allocator rounding and fragmentation, as a fraction of the tensors' peak."""
CUDA_RUNTIME_BYTES = 2**30
"""Step 7: memory on a GPU that no tensor holds (CUDA context, cuBLAS workspaces, NCCL buffers)."""
GiB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of one worker's training step, by part (steps 1-7 of the module docstring)."""

    parameters: int
    """fp32 weights, 4N."""
    gradients: int
    """fp32 gradients live at the forward/backward peak: 4N when accumulating, else the head's and one block's."""
    optimizer_states: int
    """AdamW ``exp_avg`` and ``exp_avg_sq``, 8N, and its ``step`` counts."""
    gradient_buckets: int
    """DDP's flat gradient buckets, 4N with more than one worker, else 0."""
    weight_copies: int
    """bf16 autocast's copies of the matmul weights (0 in fp32)."""
    activations: int
    """Tensors saved for the backward of one micro-batch."""
    logits: int
    """The (B, T, V) logits at the activation precision."""
    transient: int
    """The largest short-lived working set of the forward/backward: the fp32 loss or the last block's backward."""
    optimizer_temporaries: int
    """Temporaries of the optimizer step (after the activations are freed)."""
    allowance: int
    """Allocator rounding and fragmentation (10%) plus, on CUDA, the context and workspaces (1 GiB)."""
    total: int
    """parameters + optimizer_states + gradient_buckets + allowance
    + max(gradients + weight_copies + activations + logits + transient, 4N + optimizer_temporaries)."""

    @property
    def tensors(self) -> int:
        """The live tensor storage at the peak: ``total`` without the allowance (what ``measure_peak_bytes`` sees)."""
        return self.total - self.allowance


def estimate_peak_bytes(
    shape: GPTShape,
    micro_batch_sequences: int,
    precision: Precision,
    *,
    device: Literal["cpu", "cuda"] = "cuda",
    data_parallel: bool = False,
    accumulating: bool = True,
) -> MemoryEstimate:
    """Peak memory of one worker training ``shape`` on ``micro_batch_sequences`` sequences per forward/backward pass.

    ``device`` picks the fixed CUDA allowance; ``data_parallel`` adds DDP's gradient buckets; ``accumulating``: more than one micro-batch per step (all
    gradients live through the forward), else one pass per step.

    >>> e = estimate_peak_bytes(GPTShape(12, 768, 12, 1024, 50257), 8, "bf16")
    >>> round(e.total / 2**30, 1)
    12.7
    """
    if precision not in BYTES_PER_ELEMENT:
        raise ValueError(f"precision must be one of {tuple(BYTES_PER_ELEMENT)}, got {precision!r}")
    if micro_batch_sequences < 1:
        raise ValueError(f"micro_batch_sequences must be >= 1, got {micro_batch_sequences}")
    p, R = BYTES_PER_ELEMENT[precision], RESIDUAL_BYTES
    L, h, a, T, V = shape.n_layer, shape.d_model, shape.n_head, shape.seq_len, shape.vocab_size
    N = param_counts(shape).total
    tokens = micro_batch_sequences * T
    largest_matrix = max(4 * h * h, V * h)
    largest_parameter = max(largest_matrix, T * h)

    optimizer_states = 8 * N + 4 * (6 * L + 4)  # step 1
    static = 4 * N + optimizer_states + (4 * N if data_parallel else 0)
    gradients = 4 * N if accumulating else 4 * (V * h + 12 * h * h + 3 * h)
    weight_copies = 2 * (12 * L * h * h + V * h) if precision == "bf16" else 0  # step 2
    per_layer = (2 * R + 14 * p) * h + 16 + 4 * a  # step 3
    activations = tokens * (L * per_layer + R * h + 8 + p * h + 16) + 8 * T
    logits = p * V * tokens  # step 4
    loss = 12 * V * tokens  # step 5
    backward = (R + 4 * p) * h * tokens + (4 + (2 if precision == "bf16" else 0)) * largest_matrix
    transient = max(loss, backward)
    optimizer_temporaries = 0  # step 6: fused AdamW
    tensors = static + max(gradients + weight_copies + activations + logits + transient, 4 * N + optimizer_temporaries)
    allowance = round(ALLOCATOR_FRACTION * tensors) + (CUDA_RUNTIME_BYTES if device == "cuda" else 0)  # step 7
    return MemoryEstimate(
        parameters=4 * N,
        gradients=gradients,
        optimizer_states=optimizer_states,
        gradient_buckets=4 * N if data_parallel else 0,
        weight_copies=weight_copies,
        activations=activations,
        logits=logits,
        transient=transient,
        optimizer_temporaries=optimizer_temporaries,
        allowance=allowance,
        total=tensors + allowance,
    )


class MemoryDoesNotFit(ValueError):
    """Even one sequence per micro-batch needs more memory than the run has."""


def run_device(spec: RunSpec) -> Literal["cpu", "cuda"]:
    """Where a run trains: CUDA when it has GPUs and ``training.device`` is not ``cpu``."""
    return "cuda" if spec.gpus > 0 and spec.device != "cpu" else "cpu"


def run_precision(spec: RunSpec) -> Precision:
    """``spec.precision`` with ``auto`` resolved: bf16 on CUDA, fp32 on CPU."""
    return resolved_precision(spec.precision, run_device(spec) == "cuda")  # type: ignore[return-value]


def worker_sequences(spec: RunSpec) -> int:
    """Sequences per step on one worker: its share of ``batch_tokens``."""
    return spec.batch_tokens // spec.workers // spec.seq_len


def estimate_for_run(spec: RunSpec, micro_batch_tokens: int) -> MemoryEstimate:
    """``estimate_peak_bytes`` for one worker of ``spec`` at ``micro_batch_tokens`` tokens per pass."""
    return estimate_peak_bytes(
        spec.shape,
        micro_batch_tokens // spec.seq_len,
        run_precision(spec),
        device=run_device(spec),
        data_parallel=spec.workers > 1,
        accumulating=micro_batch_tokens < worker_sequences(spec) * spec.seq_len,
    )


def micro_batch_tokens_for(spec: RunSpec, available_bytes: int) -> int:
    """The largest micro-batch, in tokens, whose estimate fits ``available_bytes``.

    Candidates are the multiples of ``seq_len`` that divide the worker's share of the batch
    (``batch_tokens // workers``). Raises ``MemoryDoesNotFit`` (a ``ValueError``) if one sequence does not fit.
    """
    sequences = worker_sequences(spec)
    for count in sorted((c for c in range(1, sequences + 1) if sequences % c == 0), reverse=True):
        if estimate_for_run(spec, count * spec.seq_len).total <= available_bytes:
            return count * spec.seq_len
    need = estimate_for_run(spec, spec.seq_len).total
    raise MemoryDoesNotFit(
        f"run {spec.n_layer}x{spec.d_model} (N={spec.n_params:,}, {run_precision(spec)}) needs "
        f"{need / GiB:.2f} GiB for one {spec.seq_len}-token sequence per micro-batch; "
        f"{available_bytes / GiB:.2f} GiB available"
    )


def available_bytes(device: torch.device, share: float | None = None) -> int:
    """Memory a run on ``device`` may use, in bytes.

    CUDA: the device's free memory (``torch.cuda.mem_get_info``) plus what this process's caching allocator already
    holds (its tensors are part of the estimate), times ``share`` (default 1; pass ``spec.gpus`` for a fraction of a
    GPU). CPU: the host's available memory (``psutil``) times ``share``, default this worker's torch threads over
    the machine's CPUs: the worker sets its threads to its ``resources.cpus_per_worker``, so runs packed on a node by
    their CPUs divide its memory the same way. Call it before building the model on CPU.
    """
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int((free + torch.cuda.memory_reserved(device)) * (1.0 if share is None else share))
    import psutil

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    fraction = min(1.0, torch.get_num_threads() / cpus) if share is None else share
    return int(psutil.virtual_memory().available * fraction)


def _live_storage_mode():
    """A ``TorchDispatchMode`` that sums the bytes of every live tensor storage (built here: torch loads lazily).

    Each storage an op returns is counted once, by its C++ identity, and uncounted by a ``weakref.finalize`` when it
    dies (a storage keeps its Python object while it lives). ``peak`` is read after every op: the peak at op
    granularity, without a kernel's internal scratch or allocator overhead. ``add`` counts tensors made outside.
    """
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_map_only

    class LiveStorage(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.sizes: dict[int, int] = {}
            self.live = self.peak = 0

        def add(self, tensor: torch.Tensor) -> None:
            storage = tensor.untyped_storage()
            key = storage._cdata
            if key not in self.sizes:
                self.sizes[key] = storage.nbytes()
                self.live += self.sizes[key]
                weakref.finalize(storage, self._free, key)
            self.peak = max(self.peak, self.live)

        def _free(self, key: int) -> None:
            self.live -= self.sizes.pop(key, 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            tree_map_only(torch.Tensor, self.add, out)
            return out

    return LiveStorage()


def measure_peak_bytes(
    shape: GPTShape, micro_batch_sequences: int, precision: Precision, micro_batches: int = 2, steps: int = 2
) -> int:
    """Peak live tensor storage, in bytes, of the last of ``steps`` CPU training steps of ``GPT(shape)``.

    Each step is what a worker does: ``micro_batches`` forward/backward passes (bf16 autocast if asked), the loss
    scaled, gradients accumulated; gradient clipping; ``torch.optim.AdamW.step``; ``zero_grad(set_to_none=True)``.
    Every tensor counts (weights, gradients, optimizer states, activations, inputs); the first steps create the
    optimizer states, the last one's peak is returned. Allocator overhead is not seen.
    (``torch.distributed._tools.mem_tracker.MemTracker`` gives the same peak for one pass per step, but refuses a
    module called twice in one step, as gradient accumulation does.)
    """
    import torch

    from models.gpt import GPT

    torch.manual_seed(0)
    model = GPT(shape)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)  # as train.py, CPU too

    def micro_step() -> None:
        x = torch.randint(0, shape.vocab_size, (micro_batch_sequences, shape.seq_len))
        y = torch.randint(0, shape.vocab_size, (micro_batch_sequences, shape.seq_len))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            _, loss = model(x, y)  # the logits stay alive through the backward, as in a training loop
        (loss / micro_batches).backward()

    tracker = _live_storage_mode()
    with tracker:
        for parameter in model.parameters():
            tracker.add(parameter)
        for _ in range(steps):
            tracker.peak = tracker.live
            for _ in range(micro_batches):
                micro_step()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return tracker.peak
