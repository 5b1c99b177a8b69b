"""Parameter and FLOP accounting against PyTorch's own counters."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from models import (
    GPT,
    GPTShape,
    flops_per_token,
    flops_per_token_6n,
    flops_per_token_6n_attention,
    flops_per_token_chinchilla,
    matmul_flops_per_token,
    param_counts,
)

SHAPES = [
    GPTShape(n_layer=1, d_model=16, n_head=1, seq_len=32, vocab_size=256),
    GPTShape(n_layer=2, d_model=64, n_head=4, seq_len=128, vocab_size=256),
    GPTShape(n_layer=3, d_model=48, n_head=6, seq_len=64, vocab_size=1000),
    GPTShape(n_layer=4, d_model=128, n_head=8, seq_len=256, vocab_size=50304),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_param_counts_equal_numel(shape):
    model = GPT(shape)
    embedding = model.token_embedding.weight.numel() + model.position_embedding.weight.numel()
    counts = param_counts(shape)
    assert counts.total == sum(p.numel() for p in model.parameters())
    assert counts.embedding == embedding
    assert counts.nonembedding == counts.total - embedding


def measured_flops_per_token(shape: GPTShape, batch: int = 2) -> float:
    """FlopCounterMode over one forward + backward; the math SDPA backend so attention shows as counted bmm's
    (the CPU flash kernel has no registered FLOP formula and would count as zero)."""
    model = GPT(shape)
    tokens = torch.randint(0, shape.vocab_size, (batch, shape.seq_len))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _, loss = model(tokens, tokens)
        loss.backward()
    return counter.get_total_flops() / (batch * shape.seq_len)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_flop_conventions_against_flop_counter(shape):
    measured = measured_flops_per_token(shape)
    L, d, T, V = shape.n_layer, shape.d_model, shape.seq_len, shape.vocab_size
    # Matmul work is counted exactly.
    assert matmul_flops_per_token(shape) == measured
    # 6N+attention counts the LayerNorm weights as parameters: 6 * (2L + 1) * d more, nothing else.
    assert flops_per_token_6n_attention(shape) - measured == 6 * (2 * L + 1) * d
    assert abs(flops_per_token_6n_attention(shape) / measured - 1) < 0.02
    # Chinchilla adds the one-hot embedding matmul and the softmax: 3 * (2Vd + 3 * L * n_head * T), nothing else.
    assert flops_per_token_chinchilla(shape) - measured == pytest.approx(3 * (2 * V * d + 3 * L * shape.n_head * T))
    # 6N leaves out attention's 12 L T d.
    assert measured - flops_per_token_6n(shape) == 12 * L * T * d - 6 * (2 * L + 1) * d


def test_chinchilla_within_two_percent_where_its_extra_terms_are_small():
    shape = GPTShape(n_layer=8, d_model=512, n_head=8, seq_len=256, vocab_size=256)
    assert abs(flops_per_token_chinchilla(shape) / measured_flops_per_token(shape, batch=1) - 1) < 0.02


def test_flops_per_token_dispatch():
    shape = SHAPES[1]
    assert flops_per_token(shape, "6N") == flops_per_token_6n(shape)
    assert flops_per_token(shape, "chinchilla") == flops_per_token_chinchilla(shape)
    with pytest.raises(ValueError, match="unknown FLOP convention"):
        flops_per_token(shape, "7N")
