"""Precision and compilation on CPU: bf16 autocast and ``torch.compile`` (inductor) train, and ``auto`` resolves.

bf16 is checked to be in effect (the matmuls dispatch in bfloat16, and its loss curve is not fp32's), not only
to run; compile is checked to have compiled the model. Each trains a tiny model a few steps and must lower the
loss. fp32 resume stays bitwise: ``tests/training/test_resume.py``.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import sweep.training.train as train
from sweep.config import parse_config
from sweep.planning.plan import plan_sweep
from sweep.training.data import load_corpus
from sweep.training.precision import autocast_for, resolve_precision
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def spec():
    config = parse_config(tiny_config(training={"checkpoint_every_steps": 0}))
    corpus = load_corpus(config.data)
    run = plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[0]
    return replace(run, steps=20, tokens=20 * run.batch_tokens, eval_steps=(20,), warmup_steps=2)


def test_auto_is_bf16_on_cuda_and_fp32_on_cpu():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="training.precision"):
        resolve_precision("fp16", torch.device("cpu"))


class MatmulDtypes(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default):
            self.dtypes.add(args[-1].dtype)
        return func(*args, **(kwargs or {}))


def losses_fall(outcome) -> bool:
    rows = outcome.metrics
    return outcome.status == "completed" and rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.1


def test_bf16_autocast_trains_on_cpu(spec):
    with autocast_for("bf16", torch.device("cpu"))():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    matmuls = MatmulDtypes()
    with matmuls:
        bf16 = train.train_run(replace(spec, precision="bf16"))
    assert matmuls.dtypes == {torch.bfloat16}
    assert bf16.precision == "bf16" and losses_fall(bf16)
    fp32 = train.train_run(spec)
    assert fp32.precision == "fp32" and losses_fall(fp32)
    assert [r["train_loss"] for r in bf16.metrics] != [r["train_loss"] for r in fp32.metrics]
    assert bf16.metrics[-1]["train_loss"] == pytest.approx(fp32.metrics[-1]["train_loss"], rel=0.02)


@pytest.mark.slow  # inductor compiles C++ kernels: about 45 s on a cold cache on 2 cores, 8 s once cached
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor on CPU needs a C++ compiler")
def test_compile_trains_on_cpu(spec, monkeypatch):
    built = []
    original = train._build
    monkeypatch.setattr(train, "_build", lambda *args: built.append(original(*args)) or built[-1])
    compiled = train.train_run(replace(spec, compile=True, precision="bf16"))
    assert built[0].model._compiled_call_impl is not None  # nn.Module.compile() in place
    assert compiled.precision == "bf16" and losses_fall(compiled)
    eager = train.train_run(replace(spec, precision="bf16"))
    assert compiled.metrics[-1]["train_loss"] == pytest.approx(eager.metrics[-1]["train_loss"], rel=0.02)
