"""Parameter and FLOP accounting for ``models.gpt.GPT``: pure functions of a ``GPTShape``.

Every count here is a closed form derived from the module's layers, and each is checked in ``tests/`` against
PyTorch itself: parameter counts against ``sum(p.numel())`` of the built module, FLOPs against
``torch.utils.flop_counter.FlopCounterMode`` on a forward + backward pass.

Parameters (V vocab, T seq_len, d d_model, L n_layer; no biases anywhere):

1. token embedding V*d and position embedding T*d: the *embedding* parameters (table look-ups, no matmul);
2. per block: two LayerNorm weights 2d, QKV projection 3d^2, output projection d^2, MLP 4d^2 + 4d^2 -> 12d^2 + 2d;
3. final LayerNorm d and the (untied) output head V*d.

Non-embedding parameters are 2 + 3: everything except the look-up tables. The output head is a real matmul and
counts, as in Chinchilla's total-parameter convention; Kaplan et al. (2020) leave it out, a difference of V*d that
is 2% of N at the smallest demo size and shrinks with size.

Training FLOPs per token, three conventions (each run records all three and which one sized it):

- ``6N``: 6 * non-embedding parameters (2 forward + 4 backward per parameter per token; Kaplan et al. 2020).
- ``6N+attention``: 6N + 12 * L * T * d, as nanoGPT's ``estimate_flops`` and Kaplan et al.: per layer and
  token the forward pass does Q.K^T (2Td) and attention.V (2Td), tripled for the backward pass. The full T x T
  score matrix is counted, as the kernels compute it.
- ``chinchilla``: Hoffmann et al. (2022), Appendix F, per sequence then divided by T, backward = 2 x forward:
  embedding 2Vd (one-hot matmul), per layer QKV 6d^2, scores 2Td, softmax 3*n_head*T, reduction 2Td, output
  projection 2d^2, MLP 4*d*d_ff, and logits 2dV.

What ``FlopCounterMode`` measures is matmul work only: ``matmul_flops_per_token`` below. It differs from the
conventions by exactly: ``6N+attention`` minus matmul = 6 * (2L + 1) * d (the LayerNorm weights counted in N);
``chinchilla`` minus matmul = 3 * (2Vd + 3 * L * n_head * T) (the one-hot embedding and softmax that it counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from models.gpt import GPTShape

FlopConvention = Literal["6N", "6N+attention", "chinchilla"]
FLOP_CONVENTIONS: tuple[str, ...] = ("6N", "6N+attention", "chinchilla")


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts of one shape; ``total == embedding + nonembedding``."""

    total: int
    embedding: int
    nonembedding: int


def param_counts(shape: GPTShape) -> ParamCounts:
    """Exact parameter counts of ``GPT(shape)`` (steps 1-3 of the module docstring)."""
    V, T, d, L = shape.vocab_size, shape.seq_len, shape.d_model, shape.n_layer
    embedding = V * d + T * d  # step 1
    per_block = 2 * d + 3 * d * d + d * d + 2 * d * shape.d_ff  # step 2: 12d^2 + 2d
    nonembedding = L * per_block + d + V * d  # step 3
    return ParamCounts(total=embedding + nonembedding, embedding=embedding, nonembedding=nonembedding)


def flops_per_token_6n(shape: GPTShape) -> float:
    """``6N``: six FLOPs per non-embedding parameter per trained token."""
    return 6.0 * param_counts(shape).nonembedding


def flops_per_token_6n_attention(shape: GPTShape) -> float:
    """``6N+attention``: 6N plus 12 * n_layer * seq_len * d_model for the attention scores and reduction."""
    return flops_per_token_6n(shape) + 12.0 * shape.n_layer * shape.seq_len * shape.d_model


def flops_per_token_chinchilla(shape: GPTShape) -> float:
    """Hoffmann et al. (2022), Appendix F: forward FLOPs per sequence / seq_len, times 3 for forward + backward."""
    V, T, d, H = shape.vocab_size, shape.seq_len, shape.d_model, shape.n_head
    embeddings = 2 * T * V * d
    attention = (
        2 * 3 * T * d * d  # key, query and value projections (key_size * num_heads = d_model)
        + 2 * T * T * d  # key @ query logits
        + 3 * H * T * T  # softmax
        + 2 * T * T * d  # softmax @ value reduction
        + 2 * T * d * d  # final linear
    )
    dense = 2 * T * (d * shape.d_ff + d * shape.d_ff)
    logits = 2 * T * d * V
    forward_per_sequence = embeddings + shape.n_layer * (attention + dense) + logits
    return 3.0 * forward_per_sequence / T


def matmul_flops_per_token(shape: GPTShape) -> float:
    """Matmul FLOPs per token, forward + backward: exactly what ``FlopCounterMode`` counts for ``GPT``."""
    V, T, d, L = shape.vocab_size, shape.seq_len, shape.d_model, shape.n_layer
    linear_params = L * 12 * d * d + V * d  # QKV, output projection, MLP, output head
    return 6.0 * linear_params + 12.0 * L * T * d


FLOPS_PER_TOKEN: dict[str, Callable[[GPTShape], float]] = {
    "6N": flops_per_token_6n,
    "6N+attention": flops_per_token_6n_attention,
    "chinchilla": flops_per_token_chinchilla,
}


def flops_per_token(shape: GPTShape, convention: str) -> float:
    """Training FLOPs per token of ``shape`` under ``convention`` (one of ``FLOP_CONVENTIONS``)."""
    try:
        return FLOPS_PER_TOKEN[convention](shape)
    except KeyError:
        raise ValueError(f"unknown FLOP convention {convention!r}; choose one of {FLOP_CONVENTIONS}") from None
