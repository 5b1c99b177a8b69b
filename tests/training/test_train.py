"""Training: the schedule, a tiny run that learns, and a non-finite loss recorded as diverged, not raised."""

import math
from dataclasses import replace

import pytest
import torch

from sweep.config import parse_config
from sweep.training.data import load_corpus
from sweep.planning.plan import plan_sweep
from sweep.results.storage import ResultsStore
from sweep.training.train import lr_factor, train_run
from sweep.training.worker import execute_run
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def spec():
    config = parse_config(tiny_config())
    corpus = load_corpus(config.data)
    return plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[0]


def test_schedule_warmup_then_cosine_to_floor():
    factors = [lr_factor(s, 100, 10, 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert factors[-1] == pytest.approx(0.1)


def test_tiny_run_learns_and_logs(spec):
    outcome = train_run(spec)
    assert outcome.status == "completed"
    steps = [row["step"] for row in outcome.metrics]
    assert steps == sorted(set(steps)) and steps[-1] == spec.steps
    assert set(spec.eval_steps) <= set(steps)
    first, last = outcome.metrics[0], outcome.metrics[-1]
    assert last["train_loss"] < first["train_loss"] < math.log(256) + 0.5
    assert last["flops"] == pytest.approx(spec.flops) and last["tokens"] == spec.tokens
    assert outcome.final_eval_loss == last["eval_loss"] < math.log(256)
    assert outcome.precision == "fp32" and outcome.micro_batch_tokens == spec.batch_tokens  # auto on CPU
    assert outcome.tokens_per_second > 0
    assert outcome.model_flops_per_second == pytest.approx(outcome.tokens_per_second * spec.flops_per_token)


class ExplodingAfter:
    """Wraps GPT so the loss turns NaN after ``steps`` forward passes: a stand-in for a diverging run."""

    def __init__(self, steps):
        self.steps, self.calls = steps, 0

    def __call__(self, model_cls):
        wrapper = self

        class Exploding(model_cls):
            def forward(self, idx, targets=None):
                logits, loss = super().forward(idx, targets)
                if self.training:
                    wrapper.calls += 1
                    if wrapper.calls > wrapper.steps:
                        loss = loss * torch.tensor(float("nan"))
                return logits, loss

        return Exploding


def test_nan_loss_recorded_as_diverged(spec, tmp_path, monkeypatch):
    """The loss is read once per metrics row (every 5 steps here), so the NaN of step 8 is seen at step 10's row:
    the run stops there, and its last row is that of step 8, the first non-finite step."""
    import sweep.training.train

    exploding = ExplodingAfter(7)
    monkeypatch.setattr(sweep.training.train, "GPT", exploding(sweep.training.train.GPT))
    summary = execute_run(spec, str(tmp_path))
    assert summary["status"] == "diverged" and "non-finite loss at step 8 (noticed at step 10)" in summary["error"]
    assert exploding.calls == 10 < spec.steps  # stopped within log_every_steps of the first NaN
    store = ResultsStore(tmp_path)
    row = store.read_runs(spec.sweep).iloc[0]
    assert row["status"] == "diverged" and math.isnan(row["final_train_loss"]) and row["final_eval_loss"] != row["final_eval_loss"]
    metrics = store.read_metrics(spec.sweep)
    assert metrics["step"].tolist()[-1] == 8 and math.isnan(metrics["train_loss"].iloc[-1])
    assert spec.run_id in store.finished_run_ids(spec.sweep)
    # What it spent: the 10 steps it trained, not its budget.
    assert row["steps_done"] == 10 and row["flops_spent"] == pytest.approx(10 * spec.batch_tokens * spec.flops_per_token)
    assert summary["flops_spent"] == row["flops_spent"] < spec.flops


def test_exception_recorded_as_failed(spec, tmp_path):
    broken = replace(spec, data_fingerprint="not-the-data")
    summary = execute_run(broken, str(tmp_path))
    assert summary["status"] == "failed" and "fingerprint" in summary["error"]
    assert ResultsStore(tmp_path).read_runs()["status"].tolist() == ["failed"]
    assert ResultsStore(tmp_path).read_runs()["flops_spent"].tolist() == [0.0]  # no checkpoint: nothing kept


def test_completed_and_failed_rows_record_what_they_spent(spec, tmp_path):
    from datetime import datetime, timezone

    from sweep.training.checkpoint import CheckpointStore
    from sweep.training.worker import failed_outcome, ledger_row

    store, now = ResultsStore(tmp_path), datetime.now(timezone.utc)
    summary = execute_run(spec, str(tmp_path))
    row = store.read_run(spec.sweep, spec.run_id)
    assert summary["status"] == "completed" and row["steps_done"] == spec.steps and row["flops_spent"] == pytest.approx(spec.flops)
    CheckpointStore(store).save(spec.sweep, "other", 5, {"step": 5})
    failed = ledger_row(replace(spec, seed=1), failed_outcome(store, replace(spec, seed=1), "boom"), now, now, None)
    assert failed["steps_done"] == 0  # another run's checkpoint does not count
    outcome = failed_outcome(store, spec, "boom")  # spec's checkpoints were cleared when it completed
    assert outcome.steps_done == 0
    CheckpointStore(store).save(spec.sweep, spec.run_id, 5, {"step": 5})
    assert failed_outcome(store, spec, "boom").steps_done == 5
