"""Per-size rules: each formula on known values, batches in whole sequences per worker, warm-up in tokens, beta2's
half-life in tokens, per-run horizons, config errors that name the key, and the demo plan unchanged by default."""

import math
from dataclasses import replace
import subprocess
import sys

import pytest
import yaml

from models import flops_per_token
from sweep.cli import main
from sweep.config import ConfigError, TrainingConfig, parse_config
from sweep.planning import plan as plan_module
from sweep.planning.plan import plan_sweep
from sweep.planning.rules import (
    beta2_half_life_tokens,
    half_life_beta2,
    learning_rate,
    power_law,
    resolve_batch_tokens,
    resolve_lr,
    size_rules,
    warmup_steps,
    whole_batch_tokens,
)
from tests.conftest import tiny_config


def plan(**overrides):
    return plan_sweep(parse_config(tiny_config(**overrides)), vocab_size=256, data_fingerprint="f00d")


def training(**keys) -> TrainingConfig:
    return parse_config(tiny_config(training=keys)).training


def power_batches(resources: dict | None = None, **training_keys) -> dict:
    """``tiny_config`` with ``batch_rule: power`` (its fixed ``batch_tokens`` left out, as the rule requires)."""
    config = tiny_config(training={"batch_rule": "power", **training_keys}, resources=resources or {})
    config["training"].pop("batch_tokens")
    return config


# --- learning rate -----------------------------------------------------------------------------------------------


def test_kaplan_rule_is_eq_d1_times_scale():
    assert learning_rate(10**5) == pytest.approx(0.003239 - 0.0001395 * math.log(1e5), rel=1e-12)
    assert learning_rate(10**30) == 1e-5  # floored, never non-positive
    assert resolve_lr(training(), 10**5) == (learning_rate(10**5), "kaplan")
    assert resolve_lr(training(lr_scale=3.0), 10**5)[0] == pytest.approx(3 * learning_rate(10**5), rel=1e-12)
    assert resolve_lr(training(lr_rule="kaplan", lr_scale=2.0), 10**5) == (2 * learning_rate(10**5), "kaplan")
    assert plan_module.learning_rate is learning_rate  # still importable from its old home


def test_power_rule_is_olmo_ladder():
    rule = training(lr_rule="power")
    assert resolve_lr(rule, 108_000_000) == (pytest.approx(0.0047, rel=1e-12), "power")
    assert resolve_lr(rule, 8 * 108_000_000)[0] == pytest.approx(0.0047 / 2, rel=1e-12)  # 8^(-1/3) = 1/2
    assert resolve_lr(rule, 108_000_000 // 27)[0] == pytest.approx(0.0047 * 3, rel=1e-6)
    assert resolve_lr(training(lr_rule="power", lr_scale=0.5), 108_000_000)[0] == pytest.approx(0.00235, rel=1e-12)
    custom = training(lr_rule="power", lr_power={"coefficient": 0.01, "reference_params": 1e6, "exponent": -0.5})
    assert resolve_lr(custom, 4_000_000)[0] == pytest.approx(0.005, rel=1e-12)


def test_fixed_rule_and_the_default_choice():
    assert resolve_lr(training(lr=0.01), 10**5) == (0.01, "fixed")
    assert resolve_lr(training(lr=0.01, lr_rule="fixed"), 10**9) == (0.01, "fixed")
    assert resolve_lr(training(lr=0.01, lr_scale=5.0), 10**5) == (0.01, "fixed")  # lr wins, as before the rules
    runs = plan(training={"lr_rule": "power"}).runs
    assert {r.lr_rule for r in runs} == {"power"}
    assert all(r.lr == pytest.approx(power_law(r.n_params_nonembedding, 0.0047, 108e6, -1 / 3)) for r in runs)
    assert {r.lr_rule for r in plan().runs} == {"kaplan"} and {r.lr_rule for r in plan(training={"lr": 0.01}).runs} == {"fixed"}


# --- batch -------------------------------------------------------------------------------------------------------


def test_power_batch_is_olmo_ladder_in_whole_sequences():
    rule = parse_config(power_batches()).training
    assert resolve_batch_tokens(rule, 108_000_000, seq_len=2048, workers=1) == 2048 * 160
    assert resolve_batch_tokens(rule, 8 * 108_000_000, seq_len=2048, workers=1) == 2048 * 640  # 8^(2/3) = 4
    assert resolve_batch_tokens(rule, 108_000_000, seq_len=2048, workers=3) == 2048 * 159  # nearest multiple of 3
    custom = parse_config(power_batches(batch_power={"coefficient_tokens": 1000, "reference_params": 1e4, "exponent": 1})).training
    assert resolve_batch_tokens(custom, 20_000, seq_len=64, workers=1) == 64 * 31  # 2000 / 64 = 31.25


@pytest.mark.parametrize("seq_len", [16, 64, 2048])
@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_batch_rounding_to_sequences_and_workers(seq_len, workers):
    per_step = seq_len * workers
    for target in [1, per_step / 3, per_step * 0.49, per_step * 0.51, per_step * 7.3, 1e6, 327_680.4]:
        batch = whole_batch_tokens(target, seq_len, workers)
        assert batch % per_step == 0 and batch >= per_step  # every worker gets the same whole sequences, at least one
        if target >= per_step:
            assert abs(batch - target) <= per_step / 2  # the nearest such batch


def test_fixed_batch_checked_per_run_against_its_workers():
    three_for_larger = {"by_size": [{"min_params": 5e3, "workers_per_run": 3}]}
    with pytest.raises(ConfigError, match=r"training\.batch_tokens: 8 sequences .* 3 workers"):
        plan(resources=three_for_larger)  # 256 tokens / 32 = 8 sequences: not over 3 workers
    assert len(plan(resources={"by_size": [{"min_params": 1e9, "workers_per_run": 3}]}).runs) == 4  # no run that large
    assert {r.workers for r in plan(resources={"by_size": [{"min_params": 5e3, "workers_per_run": 4}]}).runs} == {1, 4}
    # the power rule rounds to the run's workers instead
    runs = plan_sweep(parse_config(power_batches(three_for_larger)), vocab_size=256, data_fingerprint="f00d").runs
    assert {r.workers for r in runs} == {1, 3}
    assert all(r.batch_tokens % (r.seq_len * r.workers) == 0 and r.batch_tokens >= r.seq_len * r.workers for r in runs)


def test_plan_uses_each_runs_batch_for_its_horizon():
    config = power_batches(batch_power={"coefficient_tokens": 2048, "reference_params": 3e3})
    result = plan_sweep(parse_config(config), vocab_size=256, data_fingerprint="f00d")
    assert len(result.runs) == 4 and {r.batch_rule for r in result.runs} == {"power"}
    assert len({r.batch_tokens for r in result.runs}) == 2  # one batch per size
    for run in result.runs:
        per_token = flops_per_token(run.shape, "6N+attention")
        target = power_law(run.n_params_nonembedding, 2048, 3e3, 2 / 3)
        assert run.batch_tokens == whole_batch_tokens(target, run.seq_len, run.workers)
        assert run.steps == round(run.flops_budget / (per_token * run.batch_tokens))
        assert run.tokens == run.steps * run.batch_tokens and run.flops == pytest.approx(run.tokens * per_token)
        assert abs(run.flops - run.flops_budget) <= 0.5 * run.batch_tokens * per_token  # within half a step
    small, large = sorted(result.runs, key=lambda r: r.n_params_nonembedding)[0], max(result.runs, key=lambda r: r.n_params)
    assert large.batch_tokens > small.batch_tokens


# --- warm-up -----------------------------------------------------------------------------------------------------


def test_warmup_in_tokens_resolves_to_whole_steps():
    assert warmup_steps(training(warmup_tokens=1000), 5000, steps=100, batch_tokens=256) == 4  # 3.9 steps
    assert warmup_steps(training(warmup_tokens=0), 5000, steps=100, batch_tokens=256) == 0
    assert warmup_steps(training(warmup_tokens="params"), 5000, steps=100, batch_tokens=256) == 20  # 19.53 steps
    assert warmup_steps(training(warmup_tokens="params"), 4900, steps=100, batch_tokens=256) == 19  # 19.14 steps
    assert warmup_steps(training(warmup_tokens=10**9), 5000, steps=100, batch_tokens=256) == 99  # below the run's steps
    assert warmup_steps(training(), 5000, steps=100, batch_tokens=256) == 5  # warmup_fraction 0.05, as before
    assert warmup_steps(training(warmup_fraction=0.999), 5000, steps=100, batch_tokens=256) == 99
    for run in plan(training={"warmup_tokens": "params"}).runs:
        assert run.warmup_steps == round(run.n_params_nonembedding / run.batch_tokens)
        assert run.warmup_tokens == run.warmup_steps * run.batch_tokens and 0 < run.warmup_steps < run.steps
    for run in plan().runs:
        assert run.warmup_steps == round(0.05 * run.steps) and run.warmup_tokens == run.warmup_steps * run.batch_tokens


# --- AdamW beta2 -------------------------------------------------------------------------------------------------


def test_beta2_half_life_in_tokens_is_the_same_at_every_batch():
    reference = beta2_half_life_tokens(0.95, 2**19)
    for batch in [2**10, 2**14, 2**17, 2**19, 2**21]:
        beta2 = half_life_beta2(0.95, batch, 2**19)
        assert beta2_half_life_tokens(beta2, batch) == pytest.approx(reference, rel=1e-9)
        assert beta2 ** (reference / batch) == pytest.approx(0.5, rel=1e-9)  # the moment halves after those tokens
    assert half_life_beta2(0.95, 2**19, 2**19) == 0.95
    assert half_life_beta2(0.95, 2**17, 2**19) == pytest.approx(0.95**0.25) and 0.987 < 0.95**0.25 < 0.988


def test_beta2_rules_in_the_plan():
    assert {r.beta2 for r in plan(training={"beta2_rule": "half_life"}).runs} == {0.95}  # fixed batch: its own reference
    halved = plan(training={"beta2_rule": "half_life", "beta2_reference_batch_tokens": 512}).runs
    assert [r.beta2 for r in halved] == pytest.approx([0.95**0.5] * 4)  # 256-token batches, half the reference
    config = power_batches(beta2_rule="half_life", beta2_reference_batch_tokens=4096, beta2=0.9,
                           batch_power={"coefficient_tokens": 2048, "reference_params": 3e3})  # fmt: skip
    runs = plan_sweep(parse_config(config), vocab_size=256, data_fingerprint="f00d").runs
    assert len({r.beta2 for r in runs}) == 2
    for run in runs:
        assert beta2_half_life_tokens(run.beta2, run.batch_tokens) == pytest.approx(beta2_half_life_tokens(0.9, 4096))
    assert size_rules(training(), 5000, 32, 1).beta2 == 0.95


# --- config errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, key",
    [
        ({"lr_rule": "fixed"}, "training.lr"),
        ({"lr_rule": "power", "lr": 0.01}, "training.lr"),
        ({"lr_rule": "olmo"}, "training.lr_rule"),
        ({"lr_power": {"coefficient": 0.01}}, "training.lr_power"),
        ({"lr_rule": "power", "lr_power": {"coefficient": -1}}, "training.lr_power.coefficient"),
        ({"batch_rule": "power"}, "training.batch_tokens"),  # tiny_config sets batch_tokens
        ({"batch_power": {"exponent": 0.5}}, "training.batch_power"),
        ({"warmup_tokens": 100, "warmup_fraction": 0.1}, "training.warmup_tokens"),
        ({"warmup_tokens": "tokens"}, "training.warmup_tokens"),
        ({"warmup_tokens": -5}, "training.warmup_tokens"),
        ({"beta2_rule": "sqrt"}, "training.beta2_rule"),
        ({"beta2_reference_batch_tokens": 1024}, "training.beta2_reference_batch_tokens"),
    ],
)
def test_config_errors_name_the_key(keys, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(tiny_config(training=keys))


def test_half_life_with_power_batches_needs_a_reference():
    config = power_batches(beta2_rule="half_life")
    with pytest.raises(ConfigError, match=r"training\.beta2_reference_batch_tokens: required"):
        parse_config(config)


def test_cli_exits_2_naming_the_key(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_config(training={"lr_rule": "fixed"})))
    assert main(["plan", str(path)]) == 2
    assert "training.lr: required by training.lr_rule fixed" in capsys.readouterr().err
    # a per-run error found while planning takes the same path: one line, exit 2, no traceback
    path.write_text(yaml.safe_dump(tiny_config(resources={"by_size": [{"min_params": 5e3, "workers_per_run": 3}]})))
    result = subprocess.run([sys.executable, "-m", "sweep", "plan", str(path)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "training.batch_tokens" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- defaults: the demo plan as it was before the rules ------------------------------------------------------------

# The demo sweep as it was from commit f2c5a71 until issue 21, item 8 redesigned `sweep/configs/demo.yaml` (3 budgets
# x 5 ladder sizes, cosine): a sweep file that sets no rule, so every rule's default applies.
OLD_DEMO = {
    "name": "demo", "budgets": [1.0e11, 3.0e11, 1.0e12], "flops_convention": "6N+attention",
    "model": {"sizes": [7.0e3, 2.0e4, 4.0e4, 7.0e4, 1.7e5], "seq_len": 64, "aspect_ratio": 32, "head_dim": 16},
    "data": {"source": "stdlib"},
    "training": {"batch_tokens": 1024, "lr_scale": 3.0, "eval_points": 3, "eval_tokens": 32768, "min_steps": 20},
    "resources": {"cpus_per_worker": 1},
}  # fmt: skip

# (n_params_nonembedding, budget, steps, warmup_steps, run_id) of that sweep planned at commit f2c5a71
# (vocab 256, fingerprint "f00d"); batch 1024, beta2 0.95 and lr = 3 * Kaplan's rule for every run.
DEMO_BEFORE_RULES = [
    (7216, 1e11, 1757, 88, "4cd2cd21f6dba0cb"), (20576, 1e11, 660, 33, "9559cacc53e03da0"),
    (40080, 1e11, 352, 18, "1175a24ddc9acec1"), (67824, 1e11, 203, 10, "d27cdf68c9e0369d"),
    (174480, 1e11, 83, 4, "aefb27c903f4c250"), (7216, 3e11, 5271, 264, "823d5da28290472e"),
    (20576, 3e11, 1979, 99, "2e6a9025da9b22c1"), (40080, 3e11, 1056, 53, "3270f86b7b6bee4e"),
    (67824, 3e11, 609, 30, "105b9faa5a66b86d"), (174480, 3e11, 250, 12, "48670600b819f8ea"),
    (7216, 1e12, 17569, 878, "8d18ef53d5d1c028"), (20576, 1e12, 6597, 330, "248a5f23ab197737"),
    (40080, 1e12, 3521, 176, "113197cf33faa882"), (67824, 1e12, 2032, 102, "73b90fe74ba7bc2f"),
    (174480, 1e12, 835, 42, "50f08343f7e69464"),
]  # fmt: skip


def test_defaults_leave_the_demo_plan_unchanged():
    config = parse_config(OLD_DEMO)
    runs = plan_sweep(config, vocab_size=256, data_fingerprint="f00d").runs
    # run ids changed once since, on purpose: the data order (``data_order``) is part of a run's identity
    got = [(r.n_params_nonembedding, r.flops_budget, r.steps, r.warmup_steps, replace(r, data_order="lanes").run_id) for r in runs]
    assert got == DEMO_BEFORE_RULES
    assert all(r.run_id != replace(r, data_order="lanes").run_id for r in runs)
    for run in runs:
        assert run.lr == 3.0 * (0.003239 - 0.0001395 * math.log(run.n_params_nonembedding))
        assert (run.batch_tokens, run.beta2, run.lr_rule, run.batch_rule) == (1024, 0.95, "kaplan", "fixed")
        assert run.warmup_tokens == run.warmup_steps * 1024


def test_a_run_planned_by_the_rules_trains():
    from sweep.training.data import load_corpus
    from sweep.training.train import train_run

    config = parse_config(power_batches(lr_rule="power", lr_scale=0.1, warmup_tokens="params", beta2_rule="half_life",
                                        beta2_reference_batch_tokens=4096,
                                        batch_power={"coefficient_tokens": 1024, "reference_params": 3e3}))  # fmt: skip
    corpus = load_corpus(config.data)
    spec = plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[0]
    assert spec.batch_tokens != 256 and spec.beta2 != 0.95 and spec.warmup_steps > 0
    outcome = train_run(spec)
    assert outcome.status == "completed"
    first, last = outcome.metrics[0], outcome.metrics[-1]
    assert last["step"] == spec.steps and last["tokens"] == spec.tokens and last["train_loss"] < first["train_loss"]
