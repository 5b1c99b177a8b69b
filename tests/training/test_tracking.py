"""Experiment tracking (``sweep.training.tracking``): a tiny run logged to a local MLflow store and read back through
``MlflowClient``; a resumed run continues its MLflow run without logging a step twice; an unreachable tracking
server costs one warning line and nothing else; TensorBoard event files hold the same curve."""

from __future__ import annotations

import os
import socket
import struct
import sys
from pathlib import Path

import pytest

from sweep.config import parse_config
from sweep.planning.plan import plan_sweep
from sweep.results.storage import ResultsStore
from sweep.training import tracking as tracking_module
from sweep.training.data import load_corpus
from sweep.training.tracking import for_workers, spec_params
from sweep.training.worker import execute_run
from tests.conftest import tiny_config
from tests.training.test_resume import stop_after

# As in a worker, where sweep.training.tracking imports MLflow first and sets these unless they are set.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory) -> str:
    """One SQLite store for the module (creating its schema costs about 2 s); each test uses its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def spec():
    config = parse_config(tiny_config(training={"checkpoint_every_steps": 10, "log_every_steps": 5, "eval_points": 3}))
    corpus = load_corpus(config.data)
    return plan_sweep(config, corpus.vocab_size, corpus.fingerprint).runs[0]


def tracking_to(uri: str, experiment: str | None = None, **others):
    mlflow_section = {"tracking_uri": uri} | ({"experiment": experiment} if experiment else {})
    return parse_config(tiny_config(tracking={"mlflow": mlflow_section, **others})).tracking


def mlflow_runs(uri: str, experiment: str) -> list:
    client = mlflow.MlflowClient(tracking_uri=uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def history(uri: str, run, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in mlflow.MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, key))


def test_a_run_is_one_mlflow_run_with_its_spec_curve_and_status(spec, store_uri, tmp_path, capfd):
    summary = execute_run(spec, str(tmp_path), tracking=tracking_to(store_uri, "logged"))
    assert summary["status"] == "completed"
    (run,) = mlflow_runs(store_uri, "logged")
    assert run.info.run_name == spec.run_id and run.info.status == "FINISHED"
    assert run.data.params == spec_params(spec)
    assert {k: v for k, v in run.data.tags.items() if k.startswith("sweep.")} == {
        "sweep.name": spec.sweep, "sweep.run_id": spec.run_id, "sweep.status": "completed",
    }  # fmt: skip
    metrics = ResultsStore(tmp_path).read_metrics(spec.sweep).set_index("step")
    assert history(store_uri, run, "train_loss") == list(metrics["train_loss"].items())
    assert history(store_uri, run, "flops") == list(metrics["flops"].items())  # loss against FLOPs: same steps
    assert history(store_uri, run, "tokens") == list(metrics["tokens"].astype(float).items())
    assert history(store_uri, run, "eval_loss") == list(metrics["eval_loss"].dropna().items())
    assert [step for step, _ in history(store_uri, run, "tokens_per_second")] == list(metrics.index)
    assert capfd.readouterr().err == ""


def test_a_resumed_run_continues_its_mlflow_run_without_logging_a_step_twice(spec, store_uri, tmp_path, monkeypatch):
    assert spec.steps > 30
    tracking = tracking_to(store_uri, "resumed")
    with monkeypatch.context() as patch:
        stop_after(patch, 27)  # rows up to step 25 logged, checkpoint at step 20: steps 21-25 train again
        assert execute_run(spec, str(tmp_path), tracking=tracking)["status"] == "failed"
    (run,) = mlflow_runs(store_uri, "resumed")
    assert run.data.tags["sweep.status"] == "failed" and run.info.status == "FAILED"
    assert [step for step, _ in history(store_uri, run, "train_loss")] == [5, 10, 15, 20, 25]

    assert execute_run(spec, str(tmp_path), tracking=tracking)["status"] == "completed"
    (run,) = mlflow_runs(store_uri, "resumed")
    assert run.data.tags["sweep.status"] == "completed" and run.info.status == "FINISHED"
    metrics = ResultsStore(tmp_path).read_metrics(spec.sweep).set_index("step")
    # Each step once; on CPU the resumed curve is bitwise the uninterrupted one, so steps 21-25 match too.
    assert history(store_uri, run, "train_loss") == list(metrics["train_loss"].items())
    assert history(store_uri, run, "flops") == list(metrics["flops"].items())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_costs_one_warning_and_nothing_else(spec, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's default retries for minutes (in the background)
    uri = f"http://127.0.0.1:{_closed_port()}"
    summary = execute_run(spec, str(tmp_path), tracking=tracking_to(uri))
    assert summary["status"] == "completed"
    store = ResultsStore(tmp_path)
    assert store.read_run(spec.sweep, spec.run_id)["status"] == "completed"
    assert store.read_metrics(spec.sweep)["step"].iloc[-1] == spec.steps
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "tracking is off for this run" in err and spec.run_id in err, err


def test_a_server_that_never_answers_in_time_is_left_behind_with_one_warning(spec, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(tracking_module, "FINISH_WAIT_SECONDS", 0.2)  # the default retries take minutes
    summary = execute_run(spec, str(tmp_path), tracking=tracking_to(f"http://127.0.0.1:{_closed_port()}"))
    assert summary["status"] == "completed"
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "did not take the run's last metrics" in err, err


def test_without_mlflow_installed_a_run_trains_untracked_with_one_warning(spec, store_uri, tmp_path, monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` meets where the extra is not installed
    assert execute_run(spec, str(tmp_path), tracking=tracking_to(store_uri, "uninstalled"))["status"] == "completed"
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "MLflow is not installed" in err and "tracking is off for this run" in err, err


def test_relative_paths_are_resolved_for_the_workers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert for_workers(parse_config(tiny_config()).tracking) is None  # nothing configured: no tracking
    assert for_workers(tracking_to("sqlite:///mlflow.db")).mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert for_workers(tracking_to("mlruns")).mlflow.tracking_uri == str(tmp_path / "mlruns")
    for kept in ("sqlite:////abs/mlflow.db", "http://127.0.0.1:5000", "file:///abs/mlruns"):
        assert for_workers(tracking_to(kept)).mlflow.tracking_uri == kept
    tensorboard = parse_config(tiny_config(tracking={"tensorboard": {"log_dir": "tb"}})).tracking
    assert for_workers(tensorboard).tensorboard.log_dir == str(tmp_path / "tb")


def _scalars(directory) -> dict[str, list[tuple[int, float]]]:
    """Scalars of every event file under ``directory`` (TFRecord frames of ``Event`` protos), purged steps left out."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for path in sorted(directory.rglob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            events.append(Event.FromString(data[offset + 12 : offset + 12 + length]))
            offset += 12 + length + 4
    scalars: dict[str, dict[int, float]] = {}
    for event in sorted(events, key=lambda e: e.wall_time):  # later files first purge, then rewrite, their steps
        if event.HasField("session_log") and event.session_log.status == event.session_log.START:
            for curve in scalars.values():
                for step in [s for s in curve if s >= event.step]:
                    del curve[step]
        for value in event.summary.value:
            scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return {tag: sorted(curve.items()) for tag, curve in scalars.items()}


def test_tensorboard_event_files_hold_the_curve_and_a_resume_replaces_its_steps(spec, tmp_path, monkeypatch):
    tracking = parse_config(tiny_config(tracking={"tensorboard": {"log_dir": str(tmp_path / "tb")}})).tracking
    with monkeypatch.context() as patch:
        stop_after(patch, 27)
        execute_run(spec, str(tmp_path), tracking=tracking)
    assert execute_run(spec, str(tmp_path), tracking=tracking)["status"] == "completed"
    scalars = _scalars(tmp_path / "tb" / f"sweep={spec.sweep}" / spec.run_id)
    metrics = ResultsStore(tmp_path).read_metrics(spec.sweep).set_index("step")
    assert [step for step, _ in scalars["train_loss"]] == list(metrics.index)
    assert [value for _, value in scalars["train_loss"]] == pytest.approx(list(metrics["train_loss"]), rel=1e-6)  # float32
    assert [step for step, _ in scalars["flops"]] == list(metrics.index)


@pytest.mark.slow
def test_sweep_run_tracks_each_run_once_and_a_ddp_run_from_rank_0_alone(ray_session, tmp_path, monkeypatch):
    import yaml

    from sweep.cli import main

    monkeypatch.chdir(tmp_path)  # the sweep file's relative SQLite path is taken from here, not the workers' directory
    config = tiny_config(name="tracked", budgets=[3e9], resources={"by_size": [{"min_params": 5e3, "workers_per_run": 2}]},
                         tracking={"mlflow": {"tracking_uri": "sqlite:///mlflow.db"}})  # fmt: skip
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    # The results root is absolute: this session's Ray started in another directory, where its task workers run.
    assert main(["run", "sweep.yaml", "--results", str(tmp_path / "results")]) == 0
    store, uri = ResultsStore(tmp_path / "results"), f"sqlite:///{tmp_path / 'mlflow.db'}"
    ledger, metrics = store.read_runs("tracked").set_index("run_id"), store.read_metrics("tracked")
    assert sorted(ledger["workers"]) == [1, 2]
    runs = mlflow_runs(uri, "tracked")
    assert sorted(run.info.run_name for run in runs) == sorted(ledger.index)  # one MLflow run per sweep run
    for run in runs:
        assert run.data.tags["sweep.status"] == "completed" and run.info.status == "FINISHED"
        assert run.data.params["workers"] == str(ledger.loc[run.info.run_name, "workers"])
        curve = metrics[metrics["run_id"] == run.info.run_name].set_index("step")
        assert history(uri, run, "train_loss") == list(curve["train_loss"].items())  # each step once: rank 0 alone


def test_the_example_sweep_file_tracks_to_mlflow():
    from sweep.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "sweep" / "configs" / "tracking.yaml")
    assert config.tracking.mlflow.tracking_uri == "sqlite:///mlflow.db" and config.tracking.tensorboard is None
