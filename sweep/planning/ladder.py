"""The sweep's model ladder from its config: each target size's shape (``models.ladder``, under the sweep's
``model.size_params``), the explicit shapes beside them, and what the ladder cannot reach (for ``sweep plan``)."""

from __future__ import annotations

from models.accounting import param_counts
from models.gpt import GPTShape
from models.ladder import ladder_notes, shape_for_params
from sweep.config import ModelConfig, SweepConfig


def ladder_shape(model: ModelConfig, size: float, vocab_size: int) -> GPTShape:
    """The ladder's shape for one target size of ``model`` (``models.ladder``)."""
    return shape_for_params(size, seq_len=model.seq_len, vocab_size=vocab_size, aspect_ratio=model.aspect_ratio,
                            head_dim=model.head_dim, count=model.size_params)  # fmt: skip


def size_notes(config: SweepConfig, vocab_size: int) -> list[str]:
    """The ladder's targets missed by more than 10% (with why) and targets that snap onto one shape
    (``models.ladder.ladder_notes``), for ``sweep plan``."""
    m = config.model
    return ladder_notes(m.fixed_sizes, seq_len=m.seq_len, vocab_size=vocab_size, aspect_ratio=m.aspect_ratio,
                        head_dim=m.head_dim, count=m.size_params)  # fmt: skip


def model_shapes(config: SweepConfig, vocab_size: int) -> list[GPTShape]:
    """The sweep's model ladder, smallest first, without duplicates."""
    m = config.model
    shapes = [ladder_shape(m, size, vocab_size) for size in m.sizes]
    shapes += [GPTShape(s.n_layer, s.d_model, s.n_head, m.seq_len, vocab_size) for s in m.shapes]
    return sorted(dict.fromkeys(shapes), key=lambda s: param_counts(s).nonembedding)
