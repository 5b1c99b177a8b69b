"""Credentials in a results URI never reach a file or a printed line: a sweep on an ``s3://KEY:SECRET@...`` root
(the local S3 server accepts any), driven through the CLI in subprocesses, then every byte it wrote (each object
in the bucket, the local cache, working and Ray directories, Ray's export events of its tasks, job and Ray Train
state included) and everything it printed is searched for them. One run is a 2-worker DDP run: Ray Train records
its ``train_loop_config``, where the root travels. ``sweep run`` takes the root from the sweep file, as README
advises: Ray records the driver's command line as the job's entrypoint."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import yaml

from sweep.config import cache_dir
from sweep.results.storage import ResultsStore
from tests.conftest import tiny_config
from tests.conftest import s3_root

pytestmark = pytest.mark.slow

KEY, SECRET = "AKIASWEEPTEST", "s3cr3t-SWEEP-do-not-leak"


def sweep_cli(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweep", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=400)


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def bucket_objects(s3: pafs.S3FileSystem, bucket: str) -> dict[str, bytes]:
    infos = s3.get_file_info(pafs.FileSelector(bucket, recursive=True))
    return {info.path: s3.open_input_stream(info.path).read() for info in infos if info.is_file}


def test_credentials_in_an_s3_root_are_never_written_or_printed(tmp_path, s3_endpoint, s3_bucket):
    bucket, s3 = s3_bucket
    root = s3_root(s3_endpoint, bucket, userinfo=f"{KEY}:{SECRET}")
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    cache.mkdir()
    for corpus in cache_dir().glob("stdlib-*.u8"):  # the built corpus, to skip rebuilding it (it holds no secret)
        shutil.copy(corpus, cache / corpus.name)
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # Ray's own files; short, for its socket paths
    # Ray's export API writes what its state API holds (tasks, Ray Train's run settings) under the session dir.
    env = {**os.environ, "SWEEP_CACHE": str(cache), "RAY_TMPDIR": str(ray_tmp), "RAY_enable_export_api_write": "1",
           "RAY_TRAIN_ENABLE_STATE_TRACKING": "1"}  # fmt: skip
    config = tmp_path / "secret.yaml"  # the user's own file, which holds the root: not searched
    ddp = {"by_size": [{"min_params": 5e3, "workers_per_run": 2}]}  # the larger model trains with Ray Train
    # The root goes in the sweep file, as README advises: a command line is what Ray records as the job's entrypoint.
    config.write_text(yaml.safe_dump(tiny_config(name="secret", budgets=[2e9], resources=ddp, results=root)))
    try:
        outputs = {}
        outputs["run"] = sweep_cli(["run", str(config)], env, work)
        assert outputs["run"].returncode == 0, outputs["run"].stderr
        outputs["status"] = sweep_cli(["status", "--results", root], env, work)
        outputs["status --json"] = sweep_cli(["status", "--results", root, "--json"], env, work)
        outputs["fit"] = sweep_cli(["fit", "--results", root, "--bootstrap", "10"], env, work)
        outputs["report"] = sweep_cli(["report", "--results", root, "--out", str(work / "report"), "--bootstrap", "10"], env, work)
        outputs["bad root"] = sweep_cli(["status", "--results", root + "&no_such_option=1"], env, work)
        outputs["rerun"] = sweep_cli(["run", str(config), "--results", root], env, work)  # nothing to run: no Ray
        for name, result in outputs.items():
            assert result.returncode == (2 if name == "bad root" else 0), f"{name}: {result.stderr}"
        assert "s3://***@" in outputs["run"].stderr and "s3://***@" in outputs["bad root"].stderr
        assert "2 completed" in outputs["run"].stderr and "2 already finished" in outputs["rerun"].stderr
        assert "warning: --results carries credentials" in outputs["rerun"].stderr
        runs = ResultsStore(root).read_runs("secret")
        assert len(runs) == 2 and (runs["status"] == "completed").all()  # the results stay usable

        printed = {name: (r.stdout + r.stderr).encode() for name, r in outputs.items()}
        written = {str(p): p.read_bytes() for p in files_under(work, cache, ray_tmp)}
        stored = bucket_objects(s3, bucket)
        assert any(key.endswith(".parquet") for key in stored) and any("progress/" in key for key in stored)
        # Ray Train's run state (its train_loop_config, with the root in it) was written and searched too:
        assert any("export_events" in path and b"results_root" in data for path, data in written.items())
        for secret in (SECRET.encode(), KEY.encode()):
            hits = [f"printed by {n}" for n, text in printed.items() if secret in text]
            hits += [f"file {p}" for p, data in written.items() if secret in data]
            hits += [f"object {k}" for k, data in stored.items() if secret in data]
            assert not hits, f"{secret!r} leaked: {hits}"
        print(f"searched {len(printed)} outputs, {len(written)} local files, {len(stored)} objects: no credentials")
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
