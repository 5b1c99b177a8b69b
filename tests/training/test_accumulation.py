"""Micro-batches: k forward/backward passes per step give the gradient of one pass, on one worker and on two DDP
workers, and an invalid ``training.micro_batch_tokens`` is refused naming the key.

Tolerances. Each micro-batch's mean loss is scaled by its share of the worker's rows (1/k, a power of two here,
so the scaling is exact), so the accumulated gradient is the one-pass gradient up to the order of float32
additions: the cross-entropy mean and the weight-gradient sums over 256 tokens are split into k partial sums
(relative error about sqrt(256) * 6e-8 = 1e-6; measured 5e-7 to 6.3e-7 on the first step, from identical
weights). We allow 2e-6, far below the error of a wrongly scaled accumulation (k - 1, i.e. 100% or more).
Loss curves over 8 steps agree to 1.1e-7 relative (allowed: 1e-6). The parameters after 8 steps agree to
2e-4 of the distance they moved (allowed: 1e-3), not to float noise: AdamW's first updates are nearly
``lr * sign(g)``, so an element whose gradient is about zero moves by up to ``lr`` either way on a rounding
difference (largest such gap measured: 1% of lr).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import sweep.training.train as train
from sweep.config import parse_config
from sweep.planning.plan import plan_sweep
from sweep.training.data import load_corpus
from sweep.training.train import Distributed, train_run
from tests.conftest import tiny_config

GRADIENT_RTOL, LOSS_RTOL, PARAMETER_DRIFT = 2e-6, 1e-6, 1e-3


@pytest.fixture(scope="module")
def spec():
    config = parse_config(tiny_config())
    corpus = load_corpus(config.data)
    run = plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[0]
    assert run.batch_size == 8 and run.seq_len == 32
    return replace(run, steps=8, tokens=8 * run.batch_tokens, eval_steps=(4, 8), warmup_steps=2)


def trained(spec, dist=Distributed()):
    """Train ``spec``; returns its outcome, the gradients of its first optimizer step, and its parameters before
    the first step and at the end."""
    seen = {}
    original = train._build

    def build(*args):
        trainer = seen["trainer"] = original(*args)
        seen["start"] = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

        def first_gradients(*_):
            seen.setdefault("grads", {n: p.grad.clone() for n, p in trainer.model.named_parameters()})

        trainer.optimizer.register_step_pre_hook(first_gradients)
        return trainer

    train._build = build
    try:
        outcome = train_run(spec, dist=dist)
    finally:
        train._build = original
    final = {n: p.detach().clone() for n, p in seen["trainer"].model.named_parameters()}
    return outcome, seen["grads"], seen["start"], final


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / a.norm()).item()


def assert_same_training(one_pass, other):
    (outcome_a, grads_a, start, params_a), (outcome_b, grads_b, start_b, params_b) = one_pass, other
    assert all(torch.equal(start[name], start_b[name]) for name in start)
    assert outcome_a.status == outcome_b.status == "completed"
    for name in grads_a:
        assert relative(grads_a[name], grads_b[name]) < GRADIENT_RTOL, name
    rows_a, rows_b = outcome_a.metrics, outcome_b.metrics
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    for key in ("train_loss", "grad_norm"):
        assert [r[key] for r in rows_b] == pytest.approx([r[key] for r in rows_a], rel=LOSS_RTOL if key == "train_loss" else 1e-5)
    assert outcome_b.final_eval_loss == pytest.approx(outcome_a.final_eval_loss, rel=LOSS_RTOL)
    for name in params_a:
        moved = (params_a[name] - start[name]).norm()
        assert (params_a[name] - params_b[name]).norm() < PARAMETER_DRIFT * moved, name


@pytest.fixture(scope="module")
def one_pass(spec):
    return trained(spec)


@pytest.mark.parametrize("micro_sequences", [1, 2, 4])
def test_micro_batches_give_the_one_pass_update(spec, one_pass, micro_sequences):
    accumulated = trained(replace(spec, micro_batch_tokens=micro_sequences * spec.seq_len))
    assert one_pass[0].micro_batch_tokens == spec.batch_tokens
    assert accumulated[0].micro_batch_tokens == micro_sequences * spec.seq_len
    assert_same_training(one_pass, accumulated)


@pytest.mark.parametrize("tokens", [48, 512, 96])
def test_micro_batch_tokens_must_be_whole_sequences_dividing_the_share(spec, tokens):
    with pytest.raises(ValueError, match="training.micro_batch_tokens"):
        train_run(replace(spec, micro_batch_tokens=tokens))


def _ddp_worker(rank: int, spec, init_file: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        result = trained(spec, Distributed(rank, 2, torch.device("cpu")))
        if rank == 0:
            torch.save(result, out)
    finally:
        torch.distributed.destroy_process_group()


def test_two_ddp_workers_with_accumulation_match_one_worker(spec, one_pass, tmp_path):
    """Two gloo workers (train_run's DDP path without Ray), each its 4 rows in 2 micro-batches of 2, against
    one worker's single pass over the 8 rows: the all-reduce adds one more split of the gradient sums."""
    out = tmp_path / "rank0.pt"
    ddp_spec = replace(spec, micro_batch_tokens=2 * spec.seq_len)
    torch.multiprocessing.spawn(_ddp_worker, args=(ddp_spec, str(tmp_path / "init"), str(out)), nprocs=2)
    result = torch.load(out, weights_only=False)
    assert result[0].micro_batch_tokens == 2 * spec.seq_len and result[0].device == "2x cpu"
    assert_same_training(one_pass, result)


def test_auto_picks_the_largest_micro_batch_the_memory_estimate_fits(spec, monkeypatch):
    import sweep.planning.memory as memory

    auto = replace(spec, micro_batch_tokens=0, steps=2, tokens=2 * spec.batch_tokens, eval_steps=(2,), warmup_steps=1)
    assert train_run(auto).micro_batch_tokens == auto.batch_tokens  # this machine holds the whole tiny batch
    two_sequences = memory.estimate_for_run(auto, 2 * auto.seq_len).total
    monkeypatch.setattr(memory, "available_bytes", lambda device, share=None: two_sequences)
    assert train_run(auto).micro_batch_tokens == 2 * auto.seq_len
    monkeypatch.setattr(memory, "available_bytes", lambda device, share=None: 1_000)
    outcome_error = pytest.raises(memory.MemoryDoesNotFit, train_run, auto)
    assert "needs" in str(outcome_error.value) and "available" in str(outcome_error.value)
