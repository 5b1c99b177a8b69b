"""The transformer family that sweeps train: the model, its size ladder, and its parameter and FLOP accounting."""

from models.accounting import (
    FLOP_CONVENTIONS,
    ParamCounts,
    flops_per_token,
    flops_per_token_6n,
    flops_per_token_6n_attention,
    flops_per_token_chinchilla,
    matmul_flops_per_token,
    param_counts,
)
from models.gpt import GPT, GPTShape
from models.ladder import ladder, shape_for_params

__all__ = [
    "FLOP_CONVENTIONS",
    "GPT",
    "GPTShape",
    "ParamCounts",
    "flops_per_token",
    "flops_per_token_6n",
    "flops_per_token_6n_attention",
    "flops_per_token_chinchilla",
    "ladder",
    "matmul_flops_per_token",
    "param_counts",
    "shape_for_params",
]
