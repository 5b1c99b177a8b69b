"""``training.schedule: wsds`` plans one continuous trunk per (size, seed) that decays before each budget's horizon,
and the cosine grid's runs as readouts at the bottom of each decay, which train nothing themselves."""

import pytest

from sweep.config import parse_config
from sweep.planning.plan import plan_sweep
from tests.conftest import tiny_config


def plans(**training):
    grid = tiny_config(budgets=[2e9, 4e9, 8e9], training={"seeds": [0, 1]})
    cosine = plan_sweep(parse_config(grid), 256, "f00d")
    wsds = plan_sweep(parse_config({**grid, "training": {**grid["training"], "schedule": "wsds", **training}}), 256, "f00d")
    return cosine, wsds


def test_each_size_and_seed_gets_one_trunk_that_decays_before_every_readout():
    cosine, wsds = plans(cooldown_fraction=0.25)
    trunks = [s for s in wsds.runs if s.schedule == "wsds-trunk"]
    assert len(trunks) == 4 and len(wsds.readouts) == len(cosine.runs) == 12
    by_id = {t.run_id: t for t in trunks}
    for trunk in trunks:
        ends = trunk.decay_ends
        assert trunk.branch_steps == ends and trunk.steps == ends[-1] and set(ends) <= set(trunk.eval_steps)
        for before, start, end in zip((0,) + ends, trunk.decay_starts, ends):
            assert before <= start < end and end - start == round(0.25 * (end - before))
        assert trunk.warmup_steps <= trunk.decay_starts[0] // 2
    for readout, run in zip(sorted(wsds.readouts, key=lambda s: (s.n_params, s.seed, s.steps)),
                            sorted(cosine.runs, key=lambda s: (s.n_params, s.seed, s.steps))):  # fmt: skip
        trunk = by_id[readout.parent_run_id]
        assert (readout.steps, readout.tokens, readout.flops) == (run.steps, run.tokens, run.flops)
        assert readout.schedule == "wsds" and readout.branch_step == readout.steps  # read out at its own end
        i = trunk.decay_ends.index(readout.steps)
        assert readout.decay_ends == trunk.decay_ends[: i + 1] and readout.decay_starts == trunk.decay_starts[: i + 1]
        assert readout.training_flops == 0 and readout.warmup_steps == trunk.warmup_steps
        assert readout.eval_steps[-1] == readout.steps


def test_a_readout_with_other_decays_behind_it_is_another_run():
    _, short = plans(cooldown_fraction=0.2)
    _, long = plans(cooldown_fraction=0.4)
    assert not {s.run_id for s in short.runs} & {s.run_id for s in long.runs}


def test_the_whole_ladder_costs_one_run_to_the_longest_horizon_per_trunk():
    cosine, wsds = plans()
    wsd = plan_sweep(parse_config(tiny_config(budgets=[2e9, 4e9, 8e9], training={"seeds": [0, 1], "schedule": "wsd"})), 256, "f00d")
    assert wsds.total_training_flops == pytest.approx(sum(s.flops for s in wsds.runs if s.schedule == "wsds-trunk"))
    assert wsds.total_training_flops / wsds.cosine_training_flops == pytest.approx(8 / 14, abs=0.01)  # budgets 2:4:8
    assert wsds.total_training_flops < wsd.total_training_flops < cosine.total_training_flops
