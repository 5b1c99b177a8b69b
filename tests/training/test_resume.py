"""Checkpoints and resume: a run stopped mid-way and started again gives bitwise the loss curve of one never stopped
(in one pass per step and in micro-batches), and its throughput counts the training of both invocations."""

from dataclasses import replace

import pytest

from sweep.training.checkpoint import CheckpointStore
from sweep.config import parse_config
from sweep.training.data import load_corpus
from sweep.planning.plan import plan_sweep
from sweep.results.storage import ResultsStore
from sweep.training.train import train_run
from sweep.training.worker import execute_run
from tests.conftest import tiny_config

CURVE = ("step", "tokens", "flops", "train_loss", "eval_loss", "lr", "grad_norm")


@pytest.fixture(scope="module")
def spec():
    config = parse_config(tiny_config(training={"checkpoint_every_steps": 10, "log_every_steps": 5, "eval_points": 3}))
    corpus = load_corpus(config.data)
    return plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[-1]


class Interrupted(Exception):
    pass


def stop_after(monkeypatch, steps):
    """Make the optimizer raise after ``steps`` steps: a stand-in for a worker killed mid-run."""
    import torch

    calls = {"n": 0}
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > steps:
            raise Interrupted
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)


def curve(metrics):
    return [tuple(row[k] for k in CURVE) for row in metrics]


@pytest.mark.parametrize("micro_batch_tokens", [0, 64])
def test_resume_is_bitwise_identical(spec, tmp_path, monkeypatch, micro_batch_tokens):
    spec = replace(spec, micro_batch_tokens=micro_batch_tokens)
    assert spec.steps > 25
    reference = train_run(spec)
    checkpoints = CheckpointStore(ResultsStore(tmp_path))
    with monkeypatch.context() as patch:
        stop_after(patch, 25)
        with pytest.raises(Interrupted):
            train_run(spec, checkpoints)
    state = checkpoints.latest(spec.sweep, spec.run_id)
    assert state["step"] == 20 and [r["step"] for r in state["metrics"]][-1] == 20
    assert state["train_tokens"] == 20 * spec.batch_tokens and 0 < state["train_seconds"] < state["elapsed_seconds"]
    resumed = train_run(spec, checkpoints)
    assert curve(resumed.metrics) == curve(reference.metrics)
    assert resumed.final_eval_loss == reference.final_eval_loss
    assert resumed.micro_batch_tokens == (micro_batch_tokens or spec.batch_tokens)
    # Throughput of the whole run: the checkpoint's 20 steps and seconds plus this invocation's own (its rows'
    # tokens over their rates; steps 21-25 of the interrupted invocation were lost and are trained again).
    own = sum((r["tokens"] - p["tokens"]) / r["tokens_per_second"] for p, r in zip(resumed.metrics, resumed.metrics[1:]) if p["step"] >= 20)
    assert resumed.tokens_per_second == pytest.approx(spec.tokens / (state["train_seconds"] + own), rel=1e-9)
    assert resumed.model_flops_per_second == pytest.approx(resumed.tokens_per_second * spec.flops_per_token)


def test_newest_two_checkpoints_kept_and_cleared_when_finished(spec, tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    checkpoints = CheckpointStore(store)
    with monkeypatch.context() as patch:
        stop_after(patch, 31)
        with pytest.raises(Interrupted):
            train_run(spec, checkpoints)
    directory = tmp_path / "checkpoints" / f"sweep={spec.sweep}" / spec.run_id
    assert sorted(p.name for p in directory.iterdir()) == ["step-000000020.pt", "step-000000030.pt"]
    summary = execute_run(spec, str(tmp_path))
    assert summary["status"] == "completed"
    assert not directory.exists()
    metrics = store.read_metrics(spec.sweep)
    assert metrics["step"].is_unique and metrics["step"].iloc[-1] == spec.steps


@pytest.fixture(scope="module")
def reference(spec):
    """The run trained once without a stop: what every resumed run must reproduce bit for bit."""
    return train_run(spec)


def _interrupted_after_31_steps(spec, tmp_path, monkeypatch) -> ResultsStore:
    """A results root holding the run's checkpoints at steps 20 and 30, as a worker killed at step 31 leaves it."""
    store = ResultsStore(tmp_path)
    with monkeypatch.context() as patch:
        stop_after(patch, 31)
        with pytest.raises(Interrupted):
            train_run(spec, CheckpointStore(store))
    return store


def _damage(path, how):
    import torch

    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 8)
    elif how == "missing keys":  # loads, but is not a run's state
        torch.save({"step": 30, "model": {}}, path)
    elif how == "another model":  # loads, restores nothing: shapes of another model
        state = torch.load(path, weights_only=True)
        state["model"] = {k: torch.zeros(3) for k in state["model"]}
        torch.save(state, path)
    elif how == "wrong step":  # restores, but holds another step than its name gives: the data would resume there
        state = torch.load(path, weights_only=True)
        state["step"] = 25
        torch.save(state, path)
    elif how == "copied over":  # step 20's file copied over step 30's: a whole, valid state of the wrong step
        path.write_bytes((path.parent / "step-000000020.pt").read_bytes())


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "missing keys", "another model", "wrong step", "copied over"])
def test_a_damaged_checkpoint_is_set_aside_and_the_run_resumes_from_the_previous_one(spec, reference, tmp_path, monkeypatch, capfd, how):
    store = _interrupted_after_31_steps(spec, tmp_path, monkeypatch)
    newest = tmp_path / "checkpoints" / f"sweep={spec.sweep}" / spec.run_id / "step-000000030.pt"
    _damage(newest, how)
    damaged = newest.read_bytes()
    resumed = train_run(spec, CheckpointStore(store))
    assert resumed.resumed_from_step == 20
    assert curve(resumed.metrics) == curve(reference.metrics) and resumed.final_eval_loss == reference.final_eval_loss
    (entry,) = store.quarantined()
    assert entry["original"] == f"checkpoints/sweep={spec.sweep}/{spec.run_id}/step-000000030.pt"
    assert (tmp_path / entry["path"]).read_bytes() == damaged
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "step-000000030.pt" in err and "set aside" in err, err


def test_with_every_checkpoint_damaged_the_run_starts_from_step_0(spec, reference, tmp_path, monkeypatch):
    store = _interrupted_after_31_steps(spec, tmp_path, monkeypatch)
    for path in (tmp_path / "checkpoints").rglob("*.pt"):
        _damage(path, "another model")
    resumed = train_run(spec, CheckpointStore(store))
    assert resumed.resumed_from_step == 0 and len(store.quarantined()) == 2
    assert curve(resumed.metrics) == curve(reference.metrics)  # a fresh model: the first restore's partial load undone
