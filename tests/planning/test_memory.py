"""The memory model: the estimate agrees with measured peaks on CPU, its parts move as derived, micro-batches are
picked to fit or refused, and ``plan_sweep`` checks, resolves and records them."""

import doctest
from dataclasses import replace

import psutil
import pytest
import torch

from models.accounting import param_counts
from models.gpt import GPTShape
from sweep.config import ConfigError, parse_config
from sweep.planning import memory
from sweep.planning.memory import (
    CUDA_RUNTIME_BYTES,
    GiB,
    MemoryDoesNotFit,
    available_bytes,
    estimate_for_run,
    estimate_peak_bytes,
    measure_peak_bytes,
    micro_batch_tokens_for,
)
from sweep.planning.plan import plan_sweep
from tests.conftest import tiny_config

SHAPES = [GPTShape(1, 16, 2, 32, 256), GPTShape(2, 32, 4, 64, 256), GPTShape(2, 64, 4, 32, 512)]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("micro_batches", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.n_layer}x{s.d_model}xT{s.seq_len}xV{s.vocab_size}")
def test_estimate_agrees_with_measured_peak(shape, micro_batches, precision):
    """Whole training steps of the real model on CPU: the estimate (allowance included) is within -10%/+30% of the
    measured peak of live tensor storage, and its tensor part is not below it (an upper bound by design) but for
    the few 4-byte scalars of the loss and the gradient norm."""
    sequences = 3
    measured = measure_peak_bytes(shape, sequences, precision, micro_batches=micro_batches)
    estimate = estimate_peak_bytes(shape, sequences, precision, device="cpu", accumulating=micro_batches > 1)
    assert 0.9 <= estimate.total / measured <= 1.3, (estimate, measured)
    assert estimate.tensors >= measured - 64
    if micro_batches > 1:  # gradients live through the pass: every part is exact up to those scalars
        assert abs(estimate.tensors - measured) <= 64, (estimate, measured)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_measurement_agrees_with_torch_memtracker(precision):
    """The measuring mode against torch's own ``MemTracker`` on the same steps (one pass each, which it allows)."""
    from torch.distributed._tools.mem_tracker import MemTracker

    from models.gpt import GPT

    shape, sequences = SHAPES[1], 3
    torch.manual_seed(0)
    model = GPT(shape)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)

    def step():
        x, y = (torch.randint(0, shape.vocab_size, (sequences, shape.seq_len)) for _ in range(2))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            _, loss = model(x, y)
        (loss / 1).backward()  # the loss scaled by the number of micro-batches, as measured
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    tracker = MemTracker()
    tracker.track_external(model, optimizer)
    for _ in range(2):
        with tracker:  # entering resets its peak
            step()
        tracker.reset_mod_stats()
    expected = sum(snapshot["Total"] for snapshot in tracker.get_tracker_snapshot("peak").values())
    assert measure_peak_bytes(shape, sequences, precision, micro_batches=1) == expected


def test_parts_follow_the_derivation():
    shape = GPTShape(4, 128, 4, 256, 256)
    N, (L, h, a, T, V) = param_counts(shape).total, (4, 128, 4, 256, 256)
    one = estimate_peak_bytes(shape, 1, "fp32")
    two = estimate_peak_bytes(shape, 2, "fp32")
    assert (one.parameters, one.gradients, one.gradient_buckets) == (4 * N, 4 * N, 0)
    assert one.optimizer_states == 8 * N + 4 * (6 * L + 4)  # exp_avg, exp_avg_sq and a step count per tensor
    # step 3: (2R + 14p) h + 16 + 4a bytes per token and layer; the rest per token; positions once
    per_token = L * (64 * h + 16 + 4 * a) + 4 * h + 8 + 4 * h + 16
    assert one.activations == T * per_token + 8 * T and two.activations - one.activations == T * per_token
    assert one.logits == 4 * V * T and one.transient == max(12 * V * T, 20 * h * T + 4 * max(4 * h * h, V * h))
    bf16 = estimate_peak_bytes(shape, 1, "bf16")
    assert bf16.activations - 8 * T == T * (L * (36 * h + 16 + 4 * a) + 4 * h + 8 + 2 * h + 16)
    assert bf16.weight_copies == 2 * (12 * L * h * h + V * h) and one.weight_copies == 0
    assert estimate_peak_bytes(shape, 1, "fp32", data_parallel=True).gradient_buckets == 4 * N
    cpu = estimate_peak_bytes(shape, 1, "fp32", device="cpu")
    assert one.total - cpu.total == CUDA_RUNTIME_BYTES and cpu.optimizer_temporaries == 0  # fused AdamW, CPU too
    single = estimate_peak_bytes(shape, 1, "fp32", accumulating=False)
    assert single.gradients == 4 * (V * h + 12 * h * h + 3 * h) and single.total < one.total
    assert one.total == one.tensors + one.allowance
    with pytest.raises(ValueError, match="precision"):
        estimate_peak_bytes(shape, 1, "fp16")


def test_docstring_example():
    assert doctest.testmod(memory).failed == 0


def gpu_run(**training):
    """The first run of a tiny sweep, as if it trained on one GPU per worker."""
    config = parse_config(tiny_config(training={"batch_tokens": 512, **training}, resources={"gpus_per_worker": 1}))
    return plan_sweep(config, 256, "f00d").runs[0]


def test_micro_batch_is_the_largest_divisor_that_fits():
    spec = replace(gpu_run(), micro_batch_tokens=0)  # 16 sequences of 32 tokens on one worker
    for sequences in (1, 2, 4, 8, 16):
        need = estimate_for_run(spec, sequences * spec.seq_len).total
        assert micro_batch_tokens_for(spec, need) == sequences * spec.seq_len
        if sequences > 1:
            assert micro_batch_tokens_for(spec, need - 1) == sequences // 2 * spec.seq_len
    assert micro_batch_tokens_for(spec, 10**15) == spec.batch_tokens
    two_workers = replace(spec, workers=2)  # 8 sequences each; DDP buckets count
    assert micro_batch_tokens_for(two_workers, 10**15) == spec.batch_tokens // 2
    assert estimate_for_run(two_workers, 32).gradient_buckets > 0


def test_one_sequence_that_does_not_fit_is_refused_in_one_line():
    spec = gpu_run()
    need = estimate_for_run(spec, spec.seq_len).total
    with pytest.raises(MemoryDoesNotFit) as error:
        micro_batch_tokens_for(spec, need - 1)
    message = str(error.value)
    assert isinstance(error.value, ValueError) and "\n" not in message
    assert f"{spec.n_layer}x{spec.d_model}" in message and f"{need / GiB:.2f} GiB" in message and "available" in message


def test_available_bytes_on_cpu():
    total = psutil.virtual_memory().total
    whole = available_bytes(torch.device("cpu"), share=1.0)
    assert 0 < whole <= total
    assert 0 < available_bytes(torch.device("cpu")) <= total
    assert available_bytes(torch.device("cpu"), share=0.25) <= 0.3 * total


def plan(**overrides):
    return plan_sweep(parse_config(tiny_config(**overrides)), 256, "f00d")


def test_plan_checks_an_explicit_micro_batch():
    runs = plan(training={"micro_batch_tokens": 64}).runs
    assert all(r.micro_batch_tokens == 64 for r in runs)
    assert all(r.memory_estimate_bytes == estimate_for_run(r, 64).total for r in runs)
    for bad in (48, 96):  # not a multiple of seq_len 32; does not divide the 256-token batch
        with pytest.raises(ConfigError, match=r"training\.micro_batch_tokens \(" + str(bad)):
            plan(training={"micro_batch_tokens": bad})


def test_plan_resolves_auto_only_for_gpu_runs_with_a_memory_size():
    cpu = plan().runs
    assert all(r.micro_batch_tokens == 0 for r in cpu)  # resolved when the run starts
    assert all(r.memory_estimate_bytes == estimate_for_run(r, r.batch_tokens).total for r in cpu)
    assert all(r.micro_batch_tokens == 0 for r in plan(resources={"gpu_memory_gb": 80}).runs)  # CPU runs: no GPU
    gpu = plan(resources={"gpus_per_worker": 1, "gpu_memory_gb": 80}).runs
    assert all(r.micro_batch_tokens == r.batch_tokens and r.memory_estimate_bytes > CUDA_RUNTIME_BYTES for r in gpu)
    spec = gpu[0]  # a memory size between the estimates of 1 and 2 sequences: one sequence per pass
    size = (estimate_for_run(spec, 32).total + estimate_for_run(spec, 64).total) / 2 / GiB
    squeezed = plan(model={"sizes": [3e3]}, resources={"gpus_per_worker": 1, "gpu_memory_gb": size}).runs[0]
    assert squeezed.micro_batch_tokens == 32 and squeezed.memory_estimate_bytes == estimate_for_run(spec, 32).total


def test_plan_refuses_a_gpu_run_that_cannot_fit_one_sequence():
    with pytest.raises(ConfigError, match=r"resources\.gpu_memory_gb \(0\.5\): run \d+x\d+ .* needs 1\.\d\d GiB"):
        plan(resources={"gpus_per_worker": 1, "gpu_memory_gb": 0.5})  # the CUDA allowance alone is 1 GiB
