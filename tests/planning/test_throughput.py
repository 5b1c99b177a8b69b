"""The speed the plan's estimates assume: an explicit rate, the CPU default, or a GPU's peak times the assumed MFU;
and the real-size GPU plan of issue 31 timed at what its FLOPs take on the stated GPU."""

import pytest

from sweep.config import ConfigError, parse_config
from sweep.planning import throughput
from sweep.planning.plan import estimated_seconds, plan_sweep
from sweep.planning.throughput import CPU_FLOPS_PER_SECOND, planned_durations, run_throughput, run_throughputs
from sweep.training.hardware import ACCELERATORS, known_parts, named_accelerator
from tests.conftest import tiny_config
from tests.planning.gpu_plan import VOCAB_SIZE, real_size_gpu_config

H100_BF16, H100_TF32, A100_BF16 = 989.5e12, 494.5e12, 312e12


def configured(**overrides):
    config = parse_config(tiny_config(**overrides))
    return config, plan_sweep(config, vocab_size=256, data_fingerprint="f00d").runs


def speed(**overrides):
    config, runs = configured(**overrides)
    return run_throughput(runs[-1], config.resources)


@pytest.fixture(autouse=True)
def no_local_gpu(monkeypatch):
    """Each test says which GPU this machine has (none unless it says), so it passes on GPU machines too."""
    monkeypatch.setattr(throughput, "local_gpu_name", lambda: None)


def test_an_explicit_rate_holds_for_every_run():
    given = speed(resources={"gpus_per_worker": 1, "gpu_name": "H100 SXM5", "assumed_flops_per_second": 1e14})
    assert given.flops_per_second_per_worker == 1e14
    assert given.source == "resources.assumed_flops_per_second = 1e+14 FLOP/s per worker"


@pytest.mark.parametrize("resources", [{}, {"gpus_per_worker": 0, "gpu_name": "H100 SXM5"}])
def test_a_cpu_run_assumes_the_cpu_default(resources):
    cpu = speed(resources=resources)
    assert cpu.flops_per_second_per_worker == CPU_FLOPS_PER_SECOND == 3e10
    assert cpu.seconds_per_step == 0.004 and cpu.source.startswith("CPU default 3e+10 FLOP/s per worker")


def test_training_device_cpu_is_a_cpu_run_whatever_its_gpus():
    assert speed(resources={"gpus_per_worker": 1}, training={"device": "cpu"}).flops_per_second_per_worker == 3e10


@pytest.mark.parametrize("name", ["H100 SXM5", "h100  sxm5", "NVIDIA H100 80GB HBM3"])
def test_a_named_gpu_gives_its_peak_times_the_assumed_mfu(name):
    gpu = speed(resources={"gpus_per_worker": 1, "gpu_name": name})
    assert gpu.flops_per_second_per_worker == pytest.approx(0.4 * H100_BF16)
    assert gpu.source == "H100 SXM5 bf16 dense peak 989.5 TFLOP/s (resources.gpu_name) x 40% MFU (resources.assumed_mfu)"
    half = speed(resources={"gpus_per_worker": 1, "gpu_name": name, "assumed_mfu": 0.5})
    assert half.flops_per_second_per_worker == pytest.approx(0.5 * H100_BF16) and "50% MFU" in half.source


def test_fp32_runs_at_the_tf32_peak():
    gpu = speed(resources={"gpus_per_worker": 1, "gpu_name": "H100 SXM5"}, training={"precision": "fp32"})
    assert gpu.flops_per_second_per_worker == pytest.approx(0.4 * H100_TF32) and "fp32" in gpu.source


def test_peak_flops_wins_over_the_name():
    gpu = speed(resources={"gpus_per_worker": 1, "gpu_name": "H100 SXM5", "peak_flops": 1e15})
    assert gpu.flops_per_second_per_worker == pytest.approx(4e14) and "resources.peak_flops 1000 TFLOP/s" in gpu.source


def test_without_a_stated_gpu_this_machines_gpu_then_an_a100_said_so(monkeypatch):
    config, runs = configured(resources={"gpus_per_worker": 1})
    generic = run_throughputs(config.resources, runs)[runs[-1].run_id]
    assert generic.flops_per_second_per_worker == pytest.approx(0.4 * A100_BF16)
    assert generic.source.startswith("no GPU stated (set resources.gpu_name or resources.peak_flops): assumed A100 SXM4 bf16")
    monkeypatch.setattr(throughput, "local_gpu_name", lambda: "NVIDIA H100 80GB HBM3")
    local = run_throughputs(config.resources, runs)[runs[-1].run_id]
    assert local.flops_per_second_per_worker == pytest.approx(0.4 * H100_BF16)
    assert "(this machine's GPU: NVIDIA H100 80GB HBM3)" in local.source
    monkeypatch.setattr(throughput, "local_gpu_name", lambda: "NVIDIA H100")  # form factor unsaid: not in the table
    unknown = run_throughputs(config.resources, runs)[runs[-1].run_id]
    assert unknown.flops_per_second_per_worker == pytest.approx(0.4 * A100_BF16) and "NVIDIA H100 has no bf16 peak" in unknown.source


def test_this_machines_gpu_is_not_looked_up_when_nothing_needs_it(monkeypatch):
    def fail():
        raise AssertionError("looked up")

    monkeypatch.setattr(throughput, "local_gpu_name", fail)
    for resources in ({}, {"gpus_per_worker": 1, "gpu_name": "A100 SXM4"}, {"gpus_per_worker": 1, "peak_flops": 1e14}):
        config, runs = configured(resources=resources)
        planned_durations(config.resources, runs)


def test_sizes_on_cpus_and_gpus_each_have_their_source():
    config, runs = configured(resources={"gpu_name": "A100 SXM4", "by_size": [{"min_params": 5e3, "gpus_per_worker": 1}]})
    sources = throughput.throughput_sources(run_throughputs(config.resources, runs))
    assert len(sources) == 2 and sources[0].startswith("2 runs: CPU default") and "A100 SXM4 bf16" in sources[1]


def test_planned_durations_are_estimated_seconds_at_each_runs_speed():
    config, runs = configured(resources={"gpus_per_worker": 1, "gpu_name": "A100 SXM4", "workers_per_run": 2})
    durations = planned_durations(config.resources, runs)
    assert durations == {s.run_id: estimated_seconds(s, 0.4 * A100_BF16, 0.004) for s in runs}


def test_every_part_of_the_table_can_be_named_as_the_datasheet_names_it():
    assert len(known_parts()) == len(ACCELERATORS)
    for part, row in zip(known_parts(), ACCELERATORS):
        assert named_accelerator(part) is row and named_accelerator(part.lower()) is row
    assert named_accelerator("NVIDIA A100-SXM4-80GB").part == "A100 SXM4"  # torch's names too


def test_an_unknown_gpu_name_is_refused_naming_the_key_and_the_known_parts():
    with pytest.raises(ConfigError) as error:
        parse_config(tiny_config(resources={"gpus_per_worker": 1, "gpu_name": "H100"}))  # which H100 is unsaid
    assert "resources.gpu_name: 'H100' is not a GPU of the peak table" in str(error.value)
    assert "H100 SXM5" in str(error.value) and "A100 SXM4" in str(error.value)


def test_a_part_without_a_peak_at_the_runs_precision_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="resources.gpu_name: V100 SXM2 has no bf16 peak"):
        speed(resources={"gpus_per_worker": 1, "gpu_name": "V100 SXM2"})


def test_the_real_size_gpu_plan_times_its_largest_run_by_its_flops_at_40_percent_of_an_h100():
    """Issue 31: with the CPU default, the 2.5e9-parameter run at 1e21 FLOPs was estimated at 4,200 years."""
    config = parse_config(real_size_gpu_config())
    plan = plan_sweep(config, VOCAB_SIZE, "f00d")
    assert len(plan.runs) == 10_000
    largest = max(plan.runs, key=lambda s: s.flops)
    at_40_percent = largest.flops / (0.4 * H100_BF16)  # about 29 days
    estimate = planned_durations(config.resources, plan.runs)[largest.run_id]
    assert at_40_percent / 3 < estimate < 3 * at_40_percent
