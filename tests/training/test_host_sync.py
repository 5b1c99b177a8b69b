"""No per-step host sync: the training loop reads device values once per metrics row (and once per evaluation).

What counts as a read. On a GPU, Python waits for the device whenever it reads a tensor's value: ``.item()``,
``float()``, ``bool()``, ``int()``, formatting (all of which dispatch ``aten._local_scalar_dense``), a copy to
the CPU (``aten._to_copy`` to device ``cpu``), or ``.tolist()`` / ``.numpy()`` (which read memory directly and
never reach the dispatcher on CPU, so they are counted by wrapping the methods). The test runs on CPU, where
the same calls mark the same places, so it counts every such call during ``train_run``, except inside
``TokenStream.rows`` (the data path builds host batches from a memmap; it never reads a device tensor) and
``_build`` (set-up, before the first step).

Expected, exactly: one read per metrics row (the stacked losses and gradient norms of the row's steps, one
``.tolist()``) plus one per evaluation (its summed loss, one ``.item()``); nothing per step. This needs the
fused AdamW (the for-each and single-tensor AdamW read their step counters with ``.item()`` at every step) and
a clip whose norm is never read.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import sweep.training.train as train
from sweep.config import parse_config
from sweep.planning.plan import plan_sweep
from sweep.training.data import TokenStream, load_corpus
from tests.conftest import tiny_config


class HostReads(TorchDispatchMode):
    """Counts reads of tensor values by Python (see the module docstring), while ``paused`` is 0."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []
        self.paused = 0

    def note(self, what: str) -> None:
        if not self.paused:
            self.reads.append(what)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self.note("item")
        elif func is torch.ops.aten._to_copy.default and args[0].device.type != "cpu" and str(kwargs.get("device")) == "cpu":
            self.note("copy to cpu")
        return func(*args, **kwargs)


def counting(monkeypatch, reads: HostReads, owner, name: str, what: str | None = None) -> None:
    """Wrap ``owner.name``: counted as a read (``what``) or, with ``what`` None, paused while it runs."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if what is not None:
            reads.note(what)
            return original(*args, **kwargs)
        reads.paused += 1
        try:
            return original(*args, **kwargs)
        finally:
            reads.paused -= 1

    monkeypatch.setattr(owner, name, wrapper)


@pytest.mark.parametrize("micro_batch_tokens", [0, 64])
def test_one_host_read_per_metrics_row(monkeypatch, micro_batch_tokens):
    config = parse_config(tiny_config(training={"log_every_steps": 7, "checkpoint_every_steps": 0, "eval_points": 2}))
    corpus = load_corpus(config.data)
    spec = replace(plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[0], micro_batch_tokens=micro_batch_tokens)
    reads = HostReads()
    counting(monkeypatch, reads, torch.Tensor, "tolist", "tolist")
    counting(monkeypatch, reads, torch.Tensor, "numpy", "numpy")
    counting(monkeypatch, reads, TokenStream, "rows")
    counting(monkeypatch, reads, train, "_build")
    with reads:
        outcome = train.train_run(spec)
    assert outcome.status == "completed"
    rows, evaluations = len(outcome.metrics), len(spec.eval_steps)
    assert spec.steps >= 4 * rows  # many steps per row, so a read per step could not hide in the count
    assert sorted(reads.reads) == sorted(["tolist"] * rows + ["item"] * evaluations)
