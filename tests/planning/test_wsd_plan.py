"""``training.schedule: wsd`` plans one trunk per (size, seed) and the cosine grid's runs as its readouts."""

import pytest

from sweep.config import ConfigError, parse_config
from sweep.planning.plan import plan_sweep
from tests.conftest import tiny_config


def plans(**training):
    cosine = plan_sweep(parse_config(tiny_config(budgets=[2e9, 4e9, 8e9], training={"seeds": [0, 1]})), 256, "f00d")
    wsd = plan_sweep(parse_config(tiny_config(budgets=[2e9, 4e9, 8e9], training={"seeds": [0, 1], "schedule": "wsd", **training})), 256, "f00d")
    return cosine, wsd


def test_each_size_and_seed_gets_a_trunk_and_a_readout_per_budget():
    cosine, wsd = plans(cooldown_fraction=0.2)
    trunks = [s for s in wsd.runs if s.schedule == "wsd-trunk"]
    assert len(trunks) == 4 and len(wsd.readouts) == len(cosine.runs) == 12
    by_id = {t.run_id: t for t in trunks}
    for readout, run in zip(sorted(wsd.readouts, key=lambda s: (s.n_params, s.seed, s.steps)),
                            sorted(cosine.runs, key=lambda s: (s.n_params, s.seed, s.steps))):  # fmt: skip
        trunk = by_id[readout.parent_run_id]
        assert (readout.steps, readout.tokens, readout.flops) == (run.steps, run.tokens, run.flops)  # a standalone run's
        assert readout.branch_step == round(run.steps * 0.8) and readout.branch_step in trunk.branch_steps
        assert (trunk.seed, trunk.n_layer, trunk.d_model) == (readout.seed, readout.n_layer, readout.d_model)
        assert readout.warmup_steps == trunk.warmup_steps <= min(trunk.branch_steps) // 2
        assert readout.eval_steps[-1] == readout.steps and min(readout.eval_steps) > readout.branch_step
        assert readout.training_flops == pytest.approx(readout.flops * (readout.steps - readout.branch_step) / readout.steps)
        assert readout.run_id != run.run_id  # another schedule, another run
    longest = {(s.n_params, s.seed): s.warmup_steps for s in sorted(cosine.runs, key=lambda s: s.steps)}
    for trunk in trunks:
        assert trunk.steps == max(trunk.branch_steps) and trunk.training_flops == trunk.flops
        # the longest readout's warm-up (a short one hurts large models at the peak rate), within half a trunk part
        assert trunk.warmup_steps == min(longest[(trunk.n_params, trunk.seed)], min(trunk.branch_steps) // 2)


def test_the_plan_counts_what_the_sweep_trains_against_the_cosine_grid():
    cosine, wsd = plans()
    assert wsd.cosine_training_flops == pytest.approx(cosine.total_training_flops)
    trunk_part = sum(s.flops for s in wsd.runs if s.schedule == "wsd-trunk")
    decays = sum(s.training_flops for s in wsd.readouts)
    assert wsd.total_training_flops == pytest.approx(trunk_part + decays)
    assert wsd.total_training_flops / wsd.cosine_training_flops == pytest.approx(0.8 * 8 / 14 + 0.2, abs=0.01)  # budgets 2:4:8


def test_a_cosine_sweep_keeps_its_run_ids():
    cosine, _ = plans()
    assert cosine.runs[0].run_id == "7aea9f5b5d56102f"  # as planned before schedules existed
    assert all(s.schedule == "cosine" and s.parent_run_id is None for s in cosine.runs)


@pytest.mark.parametrize("training, key", [({"cooldown_fraction": 0.3}, "training.cooldown_fraction"),
                                           ({"cooldown_shape": "linear"}, "training.cooldown_shape"),
                                           ({"schedule": "wsd", "cooldown_fraction": 1.0}, "training.cooldown_fraction"),
                                           ({"schedule": "step"}, "training.schedule")])  # fmt: skip
def test_schedule_mistakes_name_the_key(training, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(tiny_config(training=training))
