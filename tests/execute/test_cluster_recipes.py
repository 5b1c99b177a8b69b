"""The cluster recipes in clusters/: each parses and has what its own tool (Ray, KubeRay, SLURM, cron, systemd) needs."""

import configparser
import copy
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import yaml

from sweep.config import parse_config
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config

CLUSTERS = Path(__file__).resolve().parents[2] / "clusters"
SLURM = CLUSTERS / "slurm.sbatch"


def test_aws_recipe_passes_ray_validation():
    from jsonschema import ValidationError
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((CLUSTERS / "aws.yaml").read_text())
    assert raw["provider"]["type"] == "aws" and raw["head_node_type"] in raw["available_node_types"]
    config = prepare_config(copy.deepcopy(raw))  # what `ray up` does first: merge Ray's AWS defaults in
    validate_config(config)  # then Ray's schema and cross-field checks; raises on any problem
    assert config["available_node_types"].keys() == raw["available_node_types"].keys()  # ours, not the defaults'
    workers = [t for name, t in raw["available_node_types"].items() if name != raw["head_node_type"]]
    assert any(t["resources"]["GPU"] > 0 and t["max_workers"] > t["min_workers"] for t in workers)  # autoscaled GPUs
    assert any("pip install" in command and "scaling-sweep" in command for command in raw["setup_commands"])
    config["available_node_types"]["head"]["max_worker"] = 1  # control: the validator does reject a misspelt key
    with pytest.raises(ValidationError):
        validate_config(config)


def test_kuberay_rayjob_has_the_fields_kuberay_requires():
    job, config_map = yaml.safe_load_all((CLUSTERS / "kuberay-rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob") and job["metadata"]["name"]
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    entrypoint = spec["entrypoint"].split()
    assert entrypoint[:2] == ["sweep", "run"] and "--results" in entrypoint and "--address" in entrypoint
    head = spec["rayClusterSpec"]["headGroupSpec"]
    (head_container,) = head["template"]["spec"]["containers"]
    (worker,) = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert worker["groupName"] and 0 <= worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"]
    (worker_container,) = worker["template"]["spec"]["containers"]
    assert worker_container["resources"]["limits"]["nvidia.com/gpu"] >= 1 and worker_container["image"]
    for params in head["rayStartParams"], worker["rayStartParams"]:  # KubeRay's CRD types them map[string]string
        assert all(isinstance(value, str) for value in params.values())
    # The entrypoint's sweep file is the ConfigMap's key, mounted on the head (where a RayJob entrypoint runs).
    (mount,) = head_container["volumeMounts"]
    (volume,) = [v for v in head["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    assert (config_map["kind"], config_map["metadata"]["name"]) == ("ConfigMap", volume["configMap"]["name"])
    sweep_path = Path(entrypoint[2])
    assert str(sweep_path.parent) == mount["mountPath"] and sweep_path.name in config_map["data"]
    parse_config(yaml.safe_load(config_map["data"][sweep_path.name]))  # a sweep the project accepts


def test_slurm_script_parses_and_requests_gpu_nodes():
    subprocess.run(["bash", "-n", str(SLURM)], check=True)
    text = SLURM.read_text()
    requests = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", text, re.MULTILINE))
    assert int(requests["nodes"]) >= 2 and int(requests["gpus-per-task"]) >= 1 and requests["time"]
    assert "ray start --head" in text and re.search(r"^sweep run .*--address ", text, re.MULTILINE)


# Stand-ins for SLURM, Ray and the sweep, so the script's control flow runs in milliseconds.
STUBS = {
    "scontrol": 'printf "node1\\nnode2\\n"',
    "srun": 'while [[ $1 == -* ]]; do [[ $1 == -w ]] && shift; shift; done; exec "$@"',
    "hostname": 'echo "10.0.0.1 fe80::1"',
    "ray": 'echo "ray $*" >> "$LOG"; [[ $* != *--block* ]] || exec sleep 60',  # a Ray step lives until stopped
    "python": "cat > /dev/null",
    "sweep": 'echo "sweep $*" >> "$LOG"; exit "$SWEEP_STATUS"',
}


def _stub_bin(tmp_path: Path, stubs: dict[str, str], path_after: str = "") -> Path:
    """A directory of stub commands and an ``activate`` (the script sources $VENV/bin/activate) that puts it first."""
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    for name, body in stubs.items():
        (stub_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (stub_dir / name).chmod(0o755)
    (stub_dir / "activate").write_text(f'PATH="{stub_dir}:{path_after}$PATH"\n')
    return stub_dir


@pytest.mark.parametrize("status", [0, 1, 3, 5])
def test_slurm_script_starts_ray_then_exits_with_the_sweeps_status(tmp_path, status):
    _stub_bin(tmp_path, STUBS)
    env = {**os.environ, "VENV": str(tmp_path), "LOG": str(tmp_path / "log"), "SWEEP_STATUS": str(status),
           "SWEEP_CONFIG": "s.yaml", "RESULTS": "out", "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_JOB_NUM_NODES": "2",
           "SLURM_CPUS_PER_TASK": "8", "SLURM_GPUS_PER_TASK": "4"}  # fmt: skip
    env.pop("RAY_AUTH_MODE", None)
    result = subprocess.run(["bash", str(SLURM)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == status, result.stderr
    log = (tmp_path / "log").read_text().splitlines()
    assert log[0] == "ray get-auth-token --generate"  # a token exists before the head starts
    head = "ray start --head --node-ip-address=10.0.0.1 --port=6379 --temp-dir=/tmp/ray --log-color=false --num-cpus=8 --num-gpus=4 --block"
    assert head in log and "ray start --address=10.0.0.1:6379 --log-color=false --num-cpus=8 --num-gpus=4 --block" in log
    assert "sweep run s.yaml --results out --address 10.0.0.1:6379" in log  # (the stub worker step may log after it)


def test_slurm_script_exits_5_when_the_ray_cluster_never_comes_up(tmp_path):
    _stub_bin(tmp_path, {**STUBS, "python": "cat > /dev/null; exit 1"})  # the wait step gives up
    env = {**os.environ, "VENV": str(tmp_path), "LOG": str(tmp_path / "log"), "SWEEP_STATUS": "0", "SWEEP_CONFIG": "s.yaml",
           "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_JOB_NUM_NODES": "2", "SLURM_CPUS_PER_TASK": "8"}  # fmt: skip
    result = subprocess.run(["bash", str(SLURM)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 5, result.stderr
    assert not any(line.startswith("sweep ") for line in (tmp_path / "log").read_text().splitlines())


@pytest.mark.slow
def test_slurm_script_runs_a_real_two_node_ray_cluster_on_loopback(tmp_path):
    """The script's launch logic for real: stubs only for SLURM (scontrol, srun running its command here, hostname
    giving 127.0.0.1); a real token-auth Ray head plus one real worker node, a real sweep; then nothing left."""
    from tests.execute.test_connect import BIN, PORT_FLAGS, clean_env, free_port, stop_tree

    real_stubs = {name: body for name, body in STUBS.items() if name in ("scontrol", "srun")}
    _stub_bin(tmp_path, {**real_stubs, "hostname": "echo 127.0.0.1"}, path_after=f"{BIN}:")
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config(name="slurm")))
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay under 107 bytes
    extra = "--disable-usage-stats"
    env = clean_env(VENV=str(tmp_path), SWEEP_CONFIG=str(config), RESULTS=str(tmp_path / "results"),
                    SLURM_JOB_NODELIST="node[1-2]", SLURM_JOB_NUM_NODES="2", SLURM_CPUS_PER_TASK="1",
                    SLURM_GPUS_PER_TASK="0", RAY_PORT=str(free_port()), RAY_TEMP_DIR=str(ray_tmp),
                    RAY_HEAD_ARGS=" ".join([extra, "--include-dashboard=false", *(f"--{flag}={free_port()}" for flag in PORT_FLAGS)]),
                    RAY_WORKER_ARGS=" ".join([extra, *(f"--{flag}={free_port()}" for flag in PORT_FLAGS[1:])]))  # fmt: skip
    script = subprocess.Popen(["bash", str(SLURM)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    started: dict[int, float] = {}  # every process the script started: pid -> create time
    try:
        deadline = time.monotonic() + 400
        while script.poll() is None and time.monotonic() < deadline:
            try:
                children = psutil.Process(script.pid).children(recursive=True)
                started |= {p.pid: p.create_time() for p in children if p.is_running()}
            except psutil.Error:
                pass
            time.sleep(0.5)
        output, _ = script.communicate(timeout=420)
        assert script.returncode == 0, output[-4000:]
        runs = ResultsStore(str(tmp_path / "results")).read_runs("slurm")
        assert len(runs) == 4 and set(runs["status"]) == {"completed"}, output[-4000:]
        # Two distinct nodes: the sweep joined the script's cluster (embedded Ray is one node) and used its head and
        # its worker node.
        assert runs["node"].nunique() == 2, output[-4000:]
        time.sleep(2)
        left = [pid for pid, created in started.items() if _alive(pid, created)]
        assert left == [], [psutil.Process(pid).name() for pid in left]  # the trap stopped every Ray step
    finally:
        script.kill() if script.poll() is None else None
        for pid, created in started.items():  # only what this test's script started
            if _alive(pid, created):
                stop_tree(pid, timeout=5)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((CLUSTERS / "cron" / name).read_text())
    return parser


def test_systemd_service_and_timer():
    service, timer = _unit("scaling-sweep.service"), _unit("scaling-sweep.timer")
    assert service["Unit"]["Description"] and service["Service"]["Type"] == "oneshot"
    assert re.match(r"/\S+/sweep run \S+", service["Service"]["ExecStart"])  # systemd wants an absolute path
    # then tonight's sweep against the last good night; its exit 4 (a regression) fails the unit, which OnFailure= tells
    assert re.match(r"/\S+/sweep compare --last \S+", service["Service"]["ExecStartPost"])
    assert "4" not in service["Service"]["SuccessExitStatus"].split() and service["Unit"]["OnFailure"]
    assert "3" in service["Service"]["SuccessExitStatus"].split()  # a locked results dir is not a failure
    assert "143" in service["Service"]["SuccessExitStatus"].split()  # the sweep's clean stop on SIGTERM
    # systemctl stop: SIGTERM to the driver alone (it stops its own Ray first), then SIGKILL to whatever is left
    assert service["Service"]["KillSignal"] == "SIGTERM" and service["Service"]["KillMode"] == "mixed"
    assert int(service["Service"]["TimeoutStopSec"]) >= 30  # comfortably above the sweep's 10 s to stop
    assert timer["Unit"]["Description"] and timer["Timer"]["OnCalendar"] == "*-*-* 02:00:00"
    assert timer["Timer"]["Persistent"] == "true" and timer["Install"]["WantedBy"] == "timers.target"


def test_crontab_runs_sweep_nightly_at_two():
    lines = (CLUSTERS / "cron" / "crontab.txt").read_text().splitlines()
    entries = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert [line.split("=")[0] for line in entries if re.match(r"^[A-Z_]+=", line)] == ["MAILTO"]  # where alerts go
    (entry,) = [line for line in entries if not re.match(r"^[A-Z_]+=", line)]
    fields = entry.split()
    assert all(re.fullmatch(r"[\d*/,-]+", field) for field in fields[:5]) and fields[:2] == ["0", "2"]
    command = " ".join(fields[5:])
    assert "sweep run " in command and not re.search(r"(?<!\\)%", command)  # cron turns a bare % into a newline
    # the comparison runs after a successful sweep; its report goes to the log, its one regression line (stderr) to mail
    run, compare = command.split(" && .venv/bin/sweep compare ")
    assert compare.startswith("--last 'nightly-*' ") and "2>&1" not in compare
