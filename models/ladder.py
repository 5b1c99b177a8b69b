"""The model-size ladder: map a target parameter count to a ``GPTShape`` by one documented rule.

Rule (fixed aspect ratio, head size snapped), for a target of N non-embedding parameters:

1. A block holds about 12 * d_model^2 parameters, and the ladder keeps ``d_model ~= aspect_ratio * n_layer``
   (Kaplan et al. 2020 find loss flat over a wide band of aspect ratios; 32 suits models of 10^4-10^7 parameters,
   64-128 larger ones). So ``n_layer = max(1, round((N / (12 * aspect_ratio^2)) ** (1/3)))``.
2. ``d_model`` is the multiple of ``head_dim`` (at least one head) whose exact non-embedding count
   (``models.accounting.param_counts``) is closest to N in log space; ``n_head = d_model / head_dim``.

The shape's actual count differs from the target by the snapping (a few per cent at most sizes); sweeps record the
actual count, never the target.
"""

from __future__ import annotations

import math

from models.accounting import param_counts
from models.gpt import GPTShape


def shape_for_params(
    target_params: float, *, seq_len: int, vocab_size: int, aspect_ratio: float = 32.0, head_dim: int = 16
) -> GPTShape:
    """The ladder's shape for ``target_params`` non-embedding parameters (rule in the module docstring)."""
    if target_params <= 0:
        raise ValueError(f"target_params must be positive, got {target_params}")
    n_layer = max(1, round((target_params / (12.0 * aspect_ratio**2)) ** (1.0 / 3.0)))

    def shape_with(n_head: int) -> GPTShape:
        return GPTShape(n_layer=n_layer, d_model=n_head * head_dim, n_head=n_head, seq_len=seq_len, vocab_size=vocab_size)

    def log_error(n_head: int) -> float:
        return abs(math.log(param_counts(shape_with(n_head)).nonembedding / target_params))

    guess = max(1, round(math.sqrt(target_params / (12.0 * n_layer)) / head_dim))
    candidates = range(max(1, guess - 2), guess + 3)
    return shape_with(min(candidates, key=log_error))


def ladder(
    targets: list[float], *, seq_len: int, vocab_size: int, aspect_ratio: float = 32.0, head_dim: int = 16
) -> list[GPTShape]:
    """Shapes for each target, smallest first, with duplicates (targets that snap to one shape) removed."""
    shapes: dict[GPTShape, None] = {}
    for target in sorted(targets):
        shape = shape_for_params(target, seq_len=seq_len, vocab_size=vocab_size, aspect_ratio=aspect_ratio, head_dim=head_dim)
        shapes[shape] = None
    return list(shapes)
