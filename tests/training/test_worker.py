"""The ledger row: how the run trained (spec fields, resolved precision and micro-batch) and its throughput and MFU."""

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from sweep.config import parse_config
from sweep.planning.plan import plan_sweep
from sweep.results.storage import RUNS_SCHEMA, ResultsStore
from sweep.training.data import load_corpus
from sweep.training.train import RunOutcome
from sweep.training.worker import execute_run, ledger_row
from tests.conftest import tiny_config

NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def spec():
    config = parse_config(tiny_config(training={"precision": "auto", "micro_batch_tokens": "auto"}))
    corpus = load_corpus(config.data)
    return plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[0]


def row_for(spec, **outcome):
    return ledger_row(spec, RunOutcome(status="completed", **outcome), NOW, NOW, node=None)


def test_row_records_how_the_run_trained(spec):
    spec = replace(spec, lr_rule="power", batch_rule="power", warmup_tokens=1024, memory_estimate_bytes=12345, workers=2, compile=True)
    row = row_for(spec)
    assert set(row) <= set(RUNS_SCHEMA.names)
    for column in ("compile", "lr_rule", "batch_rule", "warmup_steps", "warmup_tokens", "beta1", "beta2", "weight_decay",
                   "memory_estimate_bytes", "data_order", "workers"):  # fmt: skip
        assert row[column] == getattr(spec, column), column
    assert (row["precision"], row["micro_batch_tokens"]) == ("auto", 0)  # the outcome did not say: the spec's
    resolved = row_for(spec, precision="bf16", micro_batch_tokens=128)
    assert (resolved["precision"], resolved["micro_batch_tokens"]) == ("bf16", 128)


def test_mfu_of_a_ddp_run_on_a_known_gpu(spec):
    """Two H100 SXM workers at bf16: peak 989.5 TFLOP/s each, MFU = model FLOP/s / (2 * peak)."""
    spec = replace(spec, workers=2)
    row = row_for(spec, device="2x NVIDIA H100 80GB HBM3", precision="bf16", tokens_per_second=1e6, model_flops_per_second=7.9e14)
    assert row["peak_flops"] == pytest.approx(989.5e12)
    assert row["mfu"] == pytest.approx(7.9e14 / (2 * 989.5e12))
    assert row["tokens_per_second"] == 1e6 and row["model_flops_per_second"] == 7.9e14
    auto = row_for(spec, device="2x NVIDIA H100 80GB HBM3", tokens_per_second=1e6)  # precision auto -> bf16 on CUDA
    assert auto["peak_flops"] == pytest.approx(989.5e12)
    assert auto["model_flops_per_second"] == pytest.approx(1e6 * spec.flops_per_token)  # the sweep's own convention
    fp32 = row_for(spec, device="2x NVIDIA H100 80GB HBM3", precision="fp32", tokens_per_second=1e6)
    assert fp32["peak_flops"] == pytest.approx(494.5e12)  # TF32


def test_peak_from_the_config_wins_and_unknown_devices_give_no_mfu(spec):
    row = row_for(replace(spec, peak_flops=1e12), device="cpu", tokens_per_second=1e4)
    assert row["peak_flops"] == 1e12 and row["mfu"] == pytest.approx(1e4 * spec.flops_per_token / 1e12)
    for device in ("cpu", "NVIDIA H100", "Some Future GPU"):
        row = row_for(spec, device=device, precision="bf16", tokens_per_second=1e4)
        assert row["peak_flops"] is None and row["mfu"] is None and row["tokens_per_second"] == 1e4


def test_throughput_from_metrics_when_the_outcome_has_none(spec):
    metrics = [{"step": 5, "tokens": 1280, "tokens_per_second": 1280.0}, {"step": 10, "tokens": 2560, "tokens_per_second": 640.0}]
    row = row_for(spec, device="NVIDIA L4", precision="bf16", metrics=metrics)
    assert row["tokens_per_second"] == pytest.approx(2560 / 3.0)
    assert row["model_flops_per_second"] == pytest.approx(2560 / 3.0 * spec.flops_per_token)
    assert row["mfu"] == pytest.approx(row["model_flops_per_second"] / 121e12)
    failed = ledger_row(spec, RunOutcome(status="failed", error="boom"), NOW, NOW, node=None)
    assert failed["tokens_per_second"] is None and failed["model_flops_per_second"] is None and failed["mfu"] is None


def test_a_trained_run_records_its_throughput(spec, tmp_path):
    spec = replace(spec, steps=5, tokens=5 * spec.batch_tokens, flops=5 * spec.batch_tokens * spec.flops_per_token, eval_steps=(5,))
    execute_run(spec, str(tmp_path))
    row = ResultsStore(tmp_path).read_run(spec.sweep, spec.run_id)
    assert row["status"] == "completed" and row["tokens_per_second"] > 0
    assert row["model_flops_per_second"] == pytest.approx(row["tokens_per_second"] * spec.flops_per_token)
    assert row["peak_flops"] is None and row["mfu"] is None  # CPU: no peak known, none guessed
    assert row["workers"] == 1 and row["warmup_steps"] == spec.warmup_steps and row["data_order"] == spec.data_order
