"""The size ladder: shapes are valid, ordered and close to their targets."""

import pytest

from models import GPTShape, ladder, param_counts, shape_for_params


@pytest.mark.parametrize("target", [1e5, 3e5, 1e6, 1e7, 1e8, 1e9])  # below ~1e5 one head of 16 is a 30% step
def test_shape_close_to_target(target):
    shape = shape_for_params(target, seq_len=128, vocab_size=256, aspect_ratio=32, head_dim=16)
    assert shape.d_model % 16 == 0 and shape.n_head == shape.d_model // 16
    assert 0.8 < param_counts(shape).nonembedding / target < 1.25


def test_aspect_ratio_respected_at_scale():
    shape = shape_for_params(1e9, seq_len=2048, vocab_size=50304, aspect_ratio=64, head_dim=64)
    assert 0.7 < shape.d_model / (64 * shape.n_layer) < 1.4


def test_ladder_sorted_and_deduplicated():
    shapes = ladder([1e6, 1e4, 1e4 * 1.001, 1e5], seq_len=64, vocab_size=256)
    counts = [param_counts(s).nonembedding for s in shapes]
    assert counts == sorted(counts) and len(set(shapes)) == len(shapes) == 3


def test_invalid_shape_rejected():
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTShape(n_layer=1, d_model=30, n_head=4, seq_len=8, vocab_size=10)
