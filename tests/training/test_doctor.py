"""``sweep doctor``: the CPU path end to end, one line per failed check, the checks a GPU machine gets, and the
spawned 2-worker DDP check (gloo on CPU here; NCCL on GPUs)."""

import time
from dataclasses import replace

import pytest

import sweep.training.doctor as doctor
from sweep.cli import main
from sweep.training.doctor import Check, CheckFailed, Devices, assess, doctor_spec, plan_checks, train_ddp
from sweep.training.train import RunOutcome

NO_GPU = Devices((), (), False, None)


@pytest.fixture
def cpu_only(monkeypatch):
    """The CPU path whatever this machine has (the checks' specs are built for CPU)."""
    monkeypatch.setattr(doctor, "find_devices", lambda: NO_GPU)


def test_doctor_checks_the_cpu_path(cpu_only, capsys):
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok   devices: no CUDA device")
    assert lines[1] == "no CUDA device: checking the CPU path"
    for name in ("cpu fp32", "cpu bf16 autocast", "cpu compile (inductor)"):
        (line,) = [line for line in lines if line.startswith(f"ok   {name}: ")]
        assert "tokens/s" in line and "model FLOP/s" in line and "MFU n/a (peak unknown)" in line and "loss " in line
    assert lines[-1] == "sweep doctor: all 4 checks passed"


def test_doctor_shows_mfu_against_a_given_peak(cpu_only, capsys, monkeypatch):
    monkeypatch.setattr(doctor, "plan_checks", lambda devices: ([Check("cpu fp32", doctor_spec("cpu", "fp32", False))], []))
    assert main(["doctor", "--peak-flops", "1e12"]) == 0
    assert "of 1e+12 FLOP/s" in capsys.readouterr().out


def test_a_failed_check_is_one_line_and_exit_1(cpu_only, capsys, monkeypatch):
    real = doctor.train_run

    def broken_bf16(spec, *args):
        if spec.precision == "bf16":
            raise RuntimeError("bf16 kernel missing\nsecond line of detail")
        return real(spec, *args)

    monkeypatch.setattr(doctor, "train_run", broken_bf16)
    real_plan = doctor.plan_checks
    monkeypatch.setattr(doctor, "plan_checks", lambda devices: (real_plan(devices)[0][:2], []))  # no compile: quick
    assert main(["doctor"]) == 1
    captured = capsys.readouterr()
    failures = [line for line in captured.out.splitlines() if line.startswith("FAIL")]
    assert failures == ["FAIL cpu bf16 autocast: RuntimeError: bf16 kernel missing"]
    assert captured.out.splitlines()[-1] == "sweep doctor: 1 check(s) failed: cpu bf16 autocast"
    assert "ok   cpu fp32" in captured.out and "Traceback" not in captured.out + captured.err

    assert main(["doctor", "--verbose"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_a_broken_device_query_fails_its_check(capsys, monkeypatch):
    def no_driver():
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(doctor, "plan_checks", lambda devices: ([], []))
    assert doctor.run_doctor(find=no_driver) == 1
    assert "FAIL devices: RuntimeError: CUDA driver initialization failed" in capsys.readouterr().out


@pytest.fixture(scope="module")
def spec():
    return doctor_spec("cpu", "bf16", False)


def outcome(losses, **fields):
    rows = [{"step": 3 * (i + 1), "tokens": 3072 * (i + 1), "train_loss": loss, "tokens_per_second": 1e4} for i, loss in enumerate(losses)]
    return RunOutcome(status=fields.pop("status", "completed"), metrics=rows, **fields)


def test_assess_judges_the_run(spec):
    check = Check("c", spec)
    line = assess(check, outcome([5.0, 4.0], precision="bf16"), graphs=0)
    assert "1e+04 tokens/s" in line and "precision bf16," in line and "loss 5.000 -> 4.000" in line
    with pytest.raises(CheckFailed, match="asked for bf16, the run trained at None"):
        assess(check, outcome([5.0, 4.0]), graphs=0)
    with pytest.raises(CheckFailed, match="asked for bf16, the run trained at fp32"):
        assess(check, outcome([5.0, 4.0], precision="fp32"), graphs=0)
    with pytest.raises(CheckFailed, match="did not fall"):
        assess(check, outcome([5.0, 5.1], precision="bf16"), graphs=0)
    with pytest.raises(CheckFailed, match="non-finite"):
        assess(check, outcome([5.0, float("nan")], precision="bf16"), graphs=0)
    with pytest.raises(CheckFailed, match="run diverged: non-finite loss at step 6"):
        assess(check, outcome([5.0], status="diverged", error="non-finite loss at step 6"), graphs=0)
    compiled = Check("c", replace(spec, compile=True))
    assert "built 2 graph(s)" in assess(compiled, outcome([5.0, 4.0], precision="bf16"), graphs=2)
    with pytest.raises(CheckFailed, match="built no graph"):
        assess(compiled, outcome([5.0, 4.0], precision="bf16"), graphs=0)
    gpu = assess(check, outcome([5.0, 4.0], device="NVIDIA H100 80GB HBM3", precision="bf16"), graphs=0)
    assert f"MFU {1e4 * spec.flops_per_token / 989.5e12:.1%} of 9.9e+14 FLOP/s" in gpu


def test_the_checks_a_gpu_machine_gets():
    two = Devices(("NVIDIA H100 80GB HBM3",) * 2, (80 * 2**30,) * 2, True, "2.21.5")
    checks, skipped = plan_checks(two)
    assert [c.name for c in checks] == ["cuda bf16 + fused AdamW", "cuda bf16 + compile", "cuda fp32 (TF32)", "ddp 2x cuda nccl bf16 + compile"]
    assert all(c.spec.device == "cuda" for c in checks) and skipped == []
    assert checks[0].spec.n_params_nonembedding > 1e7 and checks[0].spec.batch_tokens >= 16384  # a GPU-sized model
    line = doctor.describe(two)
    assert "2 CUDA (cuda:0 NVIDIA H100 80GB HBM3 (80.0 GiB), cuda:1 NVIDIA H100 80GB HBM3 (80.0 GiB))" in line
    assert "bf16 yes; NCCL 2.21.5" in line
    ddp = checks[-1]
    assert (ddp.backend, ddp.spec.workers, ddp.spec.compile, ddp.spec.precision) == ("nccl", 2, True, "bf16")
    volta = Devices(("Tesla V100-SXM2-16GB",), (16 * 2**30,), False, "2.21.5")
    checks, skipped = plan_checks(volta)
    assert [c.name for c in checks] == ["cuda fp32 (TF32)"] and len(skipped) == 2
    assert "no bf16" in skipped[0] and "needs two" in skipped[1]


def test_spawned_ddp_check_trains_on_loopback_and_reports_a_worker_error():
    """Two spawned gloo workers train like one (the same global batch) and listen on loopback only (sampled
    while they run), and an error inside a worker becomes that worker's own exception line."""
    import ipaddress
    import threading

    import psutil

    sockets, done = set(), threading.Event()
    # Only the workers this check spawns (new direct children, and theirs): the session's Ray processes are
    # children of this process too, and a test session's Ray is not the doctor's business.
    before = {child.pid for child in psutil.Process().children()}

    def sample():
        while not done.is_set():
            spawned = [child for child in psutil.Process().children() if child.pid not in before]
            for worker in spawned:
                try:
                    for process in [worker, *worker.children(recursive=True)]:
                        sockets.update((c.laddr.ip, c.status) for c in process.net_connections(kind="inet"))
                except psutil.Error:
                    pass
            time.sleep(0.05)

    spec = doctor_spec("cpu", "fp32", False, workers=2)
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result, graphs = train_ddp(spec, "gloo", timeout=120)
    finally:
        done.set()
        sampler.join()
    listening = {ip for ip, status in sockets if status == psutil.CONN_LISTEN}
    assert listening and all(ipaddress.ip_address(ip.split("%")[0]).is_loopback for ip in listening), sockets
    assert result.status == "completed" and result.device == "2x cpu" and graphs == 0
    assert "on 2x cpu" in assess(Check("ddp", spec, "gloo"), result, graphs)
    single = doctor.train_run(replace(spec, workers=1))
    assert [r["train_loss"] for r in result.metrics] == pytest.approx([r["train_loss"] for r in single.metrics], rel=1e-4)
    with pytest.raises(Exception) as failure:
        train_ddp(replace(spec, data_fingerprint="not-the-corpus"), "gloo", timeout=120)
    assert doctor._one_line(failure.value).startswith("RuntimeError: data fingerprint")
