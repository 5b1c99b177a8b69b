"""The model-size ladder: map a target parameter count to a ``GPTShape`` by one documented rule, at any vocabulary.

A target counts parameters one of three ways (``model.size_params``, ``SIZE_COUNTS``): ``nonembedding`` (the
default: blocks, final norm and the untied output head V*d, ``models.accounting``), ``kaplan`` (Kaplan et al.
2020's N: blocks and final norm, no head) or ``total`` (everything, embeddings included). At a real vocabulary the
head and embeddings are most of a small model: at V = 50,304 and d_model 16 the head alone holds 805k parameters.

Rule (fixed aspect ratio, head size snapped), for a target of N parameters under the chosen count:

0. Under the default count, the rule from before vocabularies were real is tried first: depth
   ``round((N / (12 aspect_ratio^2))^(1/3))``, the width within 2 heads of ``sqrt(N / 12 L)`` closest to N. Where
   its shape is within ``MISS`` (10%) of N it is kept: a sweep at a byte vocabulary keeps its shapes and run ids.
1. Depth: the ladder keeps ``d_model ~= aspect_ratio * n_layer`` (Kaplan et al. find loss flat over a wide band of
   aspect ratios; 32 suits models of 10^4-10^7 parameters, 64-128 larger ones). ``n_layer`` is the real L whose
   count at d = aspect_ratio * L equals N, every term included (12 L d^2 for the blocks, V d for the head, ...),
   rounded, at least 1.
2. Width: ``d_model`` is the multiple of ``head_dim`` (at least one head) whose exact count is closest to N in log
   space, over every width (the count is quadratic in d, so the real root is solved and the multiples either side
   compared; a guess that ignores the head misses by up to 12x at V = 50,304).
3. Where that misses N by more than ``MISS`` (10%), every depth from 1 to twice the first one is searched too, and
   the closest count wins (ties: the depth nearer the aspect ratio).

``ladder_notes`` says which targets are still missed by more than ``MISS`` and why (the head alone exceeds the
target, or the widths' step of ``head_dim`` is coarser than the gap), and which targets snap onto one shape.
Sweeps record the actual count, never the target.
"""

from __future__ import annotations

import math
from typing import Literal

from models.accounting import param_counts
from models.gpt import GPTShape

SizeCount = Literal["nonembedding", "kaplan", "total"]
SIZE_COUNTS: tuple[str, ...] = ("nonembedding", "kaplan", "total")
MISS = 0.10
"""A shape whose count is more than 10% from its target is searched harder (step 3) and, if still off, said."""


def counted(shape: GPTShape, count: str = "nonembedding") -> int:
    """``shape``'s parameters under ``count`` (module docstring)."""
    c = param_counts(shape)
    if count == "nonembedding":
        return c.nonembedding
    if count == "total":
        return c.total
    if count == "kaplan":
        return c.nonembedding - shape.vocab_size * shape.d_model
    raise ValueError(f"unknown parameter count {count!r}; choose one of {SIZE_COUNTS}")


def _shape(n_layer: int, n_head: int, head_dim: int, seq_len: int, vocab_size: int) -> GPTShape:
    return GPTShape(n_layer=n_layer, d_model=n_head * head_dim, n_head=n_head, seq_len=seq_len, vocab_size=vocab_size)


def _count_coefficients(n_layer: float, count: str, seq_len: int, vocab_size: int) -> tuple[float, float]:
    """(a, b) of the count a d^2 + b d of ``param_counts`` at depth ``n_layer`` (12 d^2 + 2 d per block, the final
    norm d, and per ``count`` the head V d and the embeddings (V + T) d)."""
    extra = {"nonembedding": vocab_size, "kaplan": 0, "total": 2 * vocab_size + seq_len}[count]
    return 12.0 * n_layer, 2.0 * n_layer + 1.0 + extra


def _depth(target: float, count: str, seq_len: int, vocab_size: int, aspect_ratio: float) -> int:
    """Step 1: the L whose count at d = aspect_ratio * L (real-valued) equals ``target``, rounded, at least 1."""

    def count_at(layers: float) -> float:
        a, b = _count_coefficients(layers, count, seq_len, vocab_size)
        d = aspect_ratio * layers
        return a * d * d + b * d

    low, high = 1e-6, 1.0
    while count_at(high) < target:
        high *= 2.0
    for _ in range(100):
        middle = math.sqrt(low * high)
        low, high = (middle, high) if count_at(middle) < target else (low, middle)
    return max(1, round(math.sqrt(low * high)))


def _best_width(target: float, n_layer: int, count: str, seq_len: int, vocab_size: int, head_dim: int) -> tuple[float, int]:
    """(log error, heads) of the width closest to ``target`` at depth ``n_layer``: the count is a quadratic
    a d^2 + b d in d (``_count_coefficients``), so the real root is solved and the head_dim multiples either side of
    it compared (every width that can reach the target, exactly)."""
    a, b = _count_coefficients(n_layer, count, seq_len, vocab_size)
    root = (-b + math.sqrt(b * b + 4.0 * a * target)) / (2.0 * a)
    heads = {max(1, math.floor(root / head_dim)), max(1, math.ceil(root / head_dim))}
    errors = [(math.log(counted(_shape(n_layer, h, head_dim, seq_len, vocab_size), count) / target), h) for h in sorted(heads)]
    return min(errors, key=lambda pair: abs(pair[0]))


def _legacy(target: float, seq_len: int, vocab_size: int, aspect_ratio: float, head_dim: int) -> GPTShape:
    """The rule before vocabularies were real (step 0): depth from 12 L d^2 alone, widths within 2 heads of a guess."""
    n_layer = max(1, round((target / (12.0 * aspect_ratio**2)) ** (1.0 / 3.0)))
    guess = max(1, round(math.sqrt(target / (12.0 * n_layer)) / head_dim))
    return min((_shape(n_layer, h, head_dim, seq_len, vocab_size) for h in range(max(1, guess - 2), guess + 3)),
               key=lambda shape: abs(math.log(param_counts(shape).nonembedding / target)))


def shape_for_params(target_params: float, *, seq_len: int, vocab_size: int, aspect_ratio: float = 32.0, head_dim: int = 16,
                     count: str = "nonembedding") -> GPTShape:  # fmt: skip
    """The ladder's shape for ``target_params`` parameters under ``count`` (rule in the module docstring)."""
    if target_params <= 0:
        raise ValueError(f"target_params must be positive, got {target_params}")
    if count not in SIZE_COUNTS:
        raise ValueError(f"unknown parameter count {count!r}; choose one of {SIZE_COUNTS}")
    if count == "nonembedding":
        shape = _legacy(target_params, seq_len, vocab_size, aspect_ratio, head_dim)
        if abs(math.log(counted(shape) / target_params)) <= math.log1p(MISS):
            return shape
    depth = _depth(target_params, count, seq_len, vocab_size, aspect_ratio)
    error, n_head = _best_width(target_params, depth, count, seq_len, vocab_size, head_dim)
    if abs(error) > math.log1p(MISS):
        candidates = []
        for layers in range(1, 2 * depth + 2):
            e, h = _best_width(target_params, layers, count, seq_len, vocab_size, head_dim)
            candidates.append((round(abs(e), 4), abs(math.log(h * head_dim / (aspect_ratio * layers))), layers, h))
        _, _, depth, n_head = min(candidates)
    return _shape(depth, n_head, head_dim, seq_len, vocab_size)


def ladder(targets: list[float], *, seq_len: int, vocab_size: int, aspect_ratio: float = 32.0, head_dim: int = 16,
           count: str = "nonembedding") -> list[GPTShape]:  # fmt: skip
    """Shapes for each target, smallest first, with duplicates (targets that snap to one shape) removed."""
    shapes: dict[GPTShape, None] = {}
    for target in sorted(targets):
        shapes[shape_for_params(target, seq_len=seq_len, vocab_size=vocab_size, aspect_ratio=aspect_ratio, head_dim=head_dim, count=count)] = None
    return list(shapes)


def ladder_notes(targets: list[float], *, seq_len: int, vocab_size: int, aspect_ratio: float = 32.0, head_dim: int = 16,
                 count: str = "nonembedding") -> list[str]:  # fmt: skip
    """One line per target whose shape misses it by more than ``MISS``, with why, and per group of targets that
    snap onto one shape."""
    notes, by_shape = [], {}
    for target in sorted(targets):
        shape = shape_for_params(target, seq_len=seq_len, vocab_size=vocab_size, aspect_ratio=aspect_ratio, head_dim=head_dim, count=count)
        by_shape.setdefault(shape, []).append(target)
        got = counted(shape, count)
        if abs(math.log(got / target)) <= math.log1p(MISS):
            continue
        smallest = _shape(1, 1, head_dim, seq_len, vocab_size)
        if counted(smallest, count) > target * (1 + MISS):
            head = f"the output head alone is {vocab_size * head_dim:,} parameters at {vocab_size:,} ids and d_model {head_dim}"
            why = head if count != "kaplan" else f"one layer of d_model {head_dim} alone holds {counted(smallest, count):,}"
            why += f"; the smallest shape (1 layer, d_model {head_dim}) holds {counted(smallest, count):,}"
        else:
            why = (f"widths step by head_dim {head_dim}, and no depth puts a width within {MISS:.0%} of it (a smaller "
                   "model.head_dim gives finer steps)")  # fmt: skip
        notes.append(f"target {target:,.4g} {count} parameters: the ladder's closest shape (n_layer {shape.n_layer}, d_model "
                     f"{shape.d_model}) holds {got:,} ({got / target:.2f}x): {why}")  # fmt: skip
    for shape, group in by_shape.items():
        if len(group) > 1:
            notes.append(f"targets {', '.join(f'{t:,.4g}' for t in group)} snap onto one shape (n_layer {shape.n_layer}, d_model "
                         f"{shape.d_model}, {counted(shape, count):,} {count} parameters): it is trained once")  # fmt: skip
    return notes
