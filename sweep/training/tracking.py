"""Experiment tracking: each training run mirrored to MLflow (and TensorBoard) while it trains.

The results store (``sweep.results``) stays the source of truth; a tracker is a view of it for people who watch
runs in MLflow's or TensorBoard's UI. What a run sends (``tracking`` in the sweep file, ``sweep.config``):

- **MLflow**: one MLflow run per sweep run, named by its run id, in the experiment ``tracking.mlflow.experiment``
  (default: the sweep's name). Params: every ``RunSpec`` field (sizes, budget, tokens, lr, batch, seed, ...).
  Metrics, each at ``step`` = the optimizer step of its metrics row: ``train_loss``, ``eval_loss`` (at evaluation
  steps), ``lr``, ``grad_norm``, ``tokens``, ``flops``, ``tokens_per_second`` and ``wall_seconds``, so loss against
  FLOPs or tokens reads back as two metrics at the same steps. Tags: ``sweep.name``, ``sweep.run_id`` and
  ``sweep.status`` (``running``, then ``completed``, ``diverged`` or ``failed``); MLflow's own status ends
  ``FINISHED`` (completed, diverged) or ``FAILED``.
- **TensorBoard**: the same metrics as scalars under ``LOG_DIR/sweep=NAME/RUN_ID/`` (``tensorboardX``, which Ray
  Train already installs).

**Resume.** A run resumed from its checkpoint (``sweep.training.train``) finds its MLflow run again by the two
tags (``MlflowClient.search_runs``), sets it running, and logs only the rows whose steps the MLflow run lacks: the
steps an earlier invocation logged past its last checkpoint are not logged twice, and rows an earlier invocation
could not send are sent now. Params already present are kept (MLflow's params are immutable). A worker killed
outright (or cancelled by a stopped sweep) leaves its MLflow run ``RUNNING`` with ``sweep.status`` ``running``
until a rerun resumes it; rows the driver records itself (a worker dead past its retries, a run never placed)
do not reach MLflow. TensorBoard
purges the events from the resumed invocation's first row on (``purge_step``), so each step shows once.

**Never in the way.** MLflow is imported before the run trains (1.3 s, once per worker process: in a thread, its
module code would hold the interpreter's lock while the first steps run). The training loop only puts each row
on a queue (``RunTracking.log_row``); a background thread opens the run and sends the rows with
``MlflowClient.log_batch``, every row queued within ``FLUSH_SECONDS`` in one request, so neither a slow server nor
the cost of each request slows the steps. Any error (MLflow missing, server down, bad URI, a store MLflow
refuses) prints one warning line and turns MLflow off for that run; training goes on. When the run ends its
status is queued and the worker waits at most ``FINISH_WAIT_SECONDS`` for the queue to drain, else says so in one
line and leaves. Only rank 0 of a DDP run tracks (the callers in ``sweep.training.worker`` and ``distributed``).

**Credentials and network.** The tracking URI comes from the sweep file without credentials (``sweep.config``
refuses them); MLflow reads ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``
from the worker's environment. Warnings show the URI through ``sweep.results.uri.redact_uri`` and scrub those
variables' values from MLflow's messages. Unless set in the environment, this module sets
``MLFLOW_DISABLE_TELEMETRY=true`` (MLflow 3 otherwise sends usage data to its own servers: the sweep talks to
the tracking server only), ``MLFLOW_LOGGING_LEVEL=WARNING`` (no INFO lines from every worker), and, for a local
directory only, ``MLFLOW_ALLOW_FILE_STORE=true`` (MLflow 3 refuses its file store unless asked; a sweep file
naming a directory asks).

MLflow is an optional dependency (``pip install '.[tracking]'``: ``mlflow-skinny``), imported by this module
alone, when a run starts with ``tracking.mlflow`` configured.

Example::

    tracking = start_tracking(config.tracking, spec)           # None when nothing is configured
    outcome = train_run(spec, checkpoints, on_row=tracking.log_row if tracking else None)
    ...                                                         # record the run in the results store
    if tracking:
        tracking.finish(outcome.status)
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sweep.config import MlflowTracking, TrackingConfig
from sweep.planning.plan import RunSpec
from sweep.results.uri import REDACTED, redact_uri

FINISH_WAIT_SECONDS = 15.0
"""How long a finished run waits for its tracker to send what is queued before leaving without it."""
FLUSH_SECONDS = 2.0
"""Rows are sent at most this often (one ``log_batch`` each time): a request costs the same for one row as for a
hundred (16 ms of CPU for either on a local SQLite store), and the training loop shares the worker's CPU."""
ROWS_PER_BATCH = 100
"""Metrics rows per ``log_batch`` request at most (8 metrics a row: under MLflow's 1,000 metrics a request)."""
_CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
_FINAL_MLFLOW_STATUS = {"completed": "FINISHED", "diverged": "FINISHED", "failed": "FAILED"}


def for_workers(tracking: TrackingConfig) -> TrackingConfig | None:
    """The driver's ``tracking`` as workers need it: None if nothing is configured, else with relative local
    paths (a directory, ``sqlite:///NAME.db``) made absolute: a Ray worker's working directory is not the driver's."""
    if not tracking.enabled:
        return None
    update: dict[str, Any] = {}
    if tracking.mlflow:
        uri = tracking.mlflow.tracking_uri
        if _is_local_path(uri):
            uri = str(Path(uri).resolve())
        elif uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            uri = f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
        update["mlflow"] = tracking.mlflow.model_copy(update={"tracking_uri": uri})
    if tracking.tensorboard and "://" not in tracking.tensorboard.log_dir:
        update["tensorboard"] = tracking.tensorboard.model_copy(update={"log_dir": str(Path(tracking.tensorboard.log_dir).resolve())})
    return tracking.model_copy(update=update)


def start_tracking(tracking: TrackingConfig | None, spec: RunSpec) -> RunTracking | None:
    """Start the trackers ``tracking`` configures for ``spec`` (None if none); never raises."""
    if tracking is None or not tracking.enabled:
        return None
    sinks: list[Any] = []
    if tracking.mlflow is not None:
        sinks.append(_MlflowSink(tracking.mlflow, spec))
    if tracking.tensorboard is not None:
        sinks.append(_TensorBoardSink(tracking.tensorboard.log_dir, spec))
    return RunTracking(sinks)


class RunTracking:
    """The trackers of one training run: ``log_row`` for each metrics row (cheap: the training loop calls it),
    ``finish`` once with the run's status."""

    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = sinks

    def log_row(self, row: dict) -> None:
        for sink in self.sinks:
            sink.log_row(dict(row))

    def finish(self, status: str) -> None:
        for sink in self.sinks:
            sink.finish(status)


def param_value(value: Any) -> str:
    """A spec field as an MLflow param (text): JSON for tuples, lists and dicts, ``str`` otherwise."""
    if isinstance(value, (tuple, list, dict)):
        return json.dumps(value, sort_keys=True, default=list)
    return str(value)


def spec_params(spec: RunSpec) -> dict[str, str]:
    """The run's params: every ``RunSpec`` field and the run id."""
    return {"run_id": spec.run_id, **{key: param_value(value) for key, value in asdict(spec).items()}}


def row_metrics(row: dict) -> dict[str, float]:
    """A metrics row's numeric values, ``step`` left out (it is every metric's step)."""
    return {
        key: float(value)
        for key, value in row.items()
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _is_local_path(uri: str) -> bool:
    return "://" not in uri and not uri.startswith(("sqlite:", "file:", "databricks", "http:", "https:"))


def _is_file_store(uri: str) -> bool:
    return _is_local_path(uri) or uri.startswith("file:")


def _warn(spec: RunSpec, message: str) -> None:
    print(f"sweep: warning: run {spec.run_id}: {message}", file=sys.stderr, flush=True)


def _one_line(error: BaseException, uri: str) -> str:
    """``error`` as one short line, the tracking URI redacted and credential variables' values scrubbed."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    text = text.replace(uri, redact_uri(uri))
    for name in _CREDENTIAL_VARIABLES:
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text if len(text) <= 300 else f"{text[:150]} ... {text[-150:]}"  # the cause is usually at the end


def _import_mlflow(uri: str) -> None:
    """Import MLflow in the caller's thread, before the run trains, after setting the environment it reads."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if _is_file_store(uri):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ImportError("MLflow is not installed where this run trains (pip install 'scaling-sweep[tracking]')") from None


class _MlflowSink:
    """One MLflow run, fed from a queue by a daemon thread (see the module docstring)."""

    def __init__(self, settings: MlflowTracking, spec: RunSpec) -> None:
        self.settings, self.spec = settings, spec
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.off = threading.Event()
        """Set once MLflow failed or the run stopped waiting: rows are dropped, the thread stops."""
        self.thread = threading.Thread(target=self._serve, name=f"mlflow-{spec.run_id}", daemon=True)
        try:
            _import_mlflow(settings.tracking_uri)
        except Exception as error:
            self._fail(error)
            return
        self.thread.start()

    def log_row(self, row: dict) -> None:
        if not self.off.is_set():
            self.queue.put(("row", row, int(time.time() * 1000)))

    def finish(self, status: str) -> None:
        if self.off.is_set() or not self.thread.is_alive():
            return
        self.queue.put(("finish", status, int(time.time() * 1000)))
        self.thread.join(FINISH_WAIT_SECONDS)
        if self.thread.is_alive():
            self.off.set()
            _warn(self.spec, f"MLflow at {redact_uri(self.settings.tracking_uri)} did not take the run's last metrics "
                             f"within {FINISH_WAIT_SECONDS:g} s; left unsent (the results store has them)")

    def _serve(self) -> None:
        try:
            client, run_id, logged = self._open()
            while not self.off.is_set():
                items = self._next_batch()
                rows = [(row, at) for kind, row, at in items if kind == "row" and row["step"] not in logged]
                self._send(client, run_id, rows)
                logged.update(row["step"] for row, _ in rows)
                finish = next((item for item in items if item[0] == "finish"), None)
                if finish is not None:
                    self._close(client, run_id, finish[1], finish[2])
                    return
        except Exception as error:  # whatever MLflow raises: tracking goes off, training goes on
            if not self.off.is_set():  # (set: the run stopped waiting and has said so)
                self._fail(error)

    def _fail(self, error: BaseException) -> None:
        uri = self.settings.tracking_uri
        _warn(self.spec, f"MLflow tracking to {redact_uri(uri)} failed ({_one_line(error, uri)}); tracking is off "
                         "for this run, training goes on")
        self.off.set()

    def _next_batch(self) -> list[tuple]:
        """The queued items of the next ``log_batch``: all that arrive within ``FLUSH_SECONDS`` of the first, at
        most ``ROWS_PER_BATCH``, and no later than the run's end."""
        items = [self.queue.get()]
        deadline = time.monotonic() + FLUSH_SECONDS
        while len(items) < ROWS_PER_BATCH and items[-1][0] != "finish":
            try:
                items.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return items

    def _open(self) -> tuple[Any, str, set[int]]:
        """The client, the MLflow run (found by its tags, or created with the spec's params) and the steps it
        already holds. A fresh SQLite store opened by several workers at once races on its schema: retried."""
        from mlflow import MlflowClient

        uri = self.settings.tracking_uri

        attempts = 3 if uri.startswith("sqlite:") else 1
        for attempt in range(attempts):
            try:
                client = MlflowClient(tracking_uri=uri)
                experiment_id = self._experiment(client)
                break
            except Exception:
                if attempt == attempts - 1:
                    raise
                time.sleep(1.0 + attempt)
        run_id, logged = self._run(client, experiment_id)
        return client, run_id, logged

    def _experiment(self, client: Any) -> str:
        name = self.settings.experiment or self.spec.sweep
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name)
        except Exception:  # another worker created it meanwhile
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _run(self, client: Any, experiment_id: str) -> tuple[str, set[int]]:
        from mlflow.entities import Param, RunTag

        spec = self.spec
        found = client.search_runs(
            [experiment_id], f"tags.`sweep.run_id` = '{spec.run_id}' and tags.`sweep.name` = '{spec.sweep}'",
            max_results=1, order_by=["attributes.start_time DESC"],
        )  # fmt: skip
        tags = {"sweep.name": spec.sweep, "sweep.run_id": spec.run_id, "sweep.status": "running"}
        if found:
            run, logged = found[0], {metric.step for metric in client.get_metric_history(found[0].info.run_id, "flops")}
            client.update_run(run.info.run_id, status="RUNNING")
        else:
            run, logged = client.create_run(experiment_id, run_name=spec.run_id, tags=tags), set()
        params = [Param(k, v) for k, v in spec_params(spec).items() if k not in run.data.params]
        client.log_batch(run.info.run_id, params=params, tags=[RunTag(k, v) for k, v in tags.items()])
        return run.info.run_id, logged

    def _send(self, client: Any, run_id: str, rows: list[tuple[dict, int]]) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(key, value, at, int(row["step"])) for row, at in rows for key, value in row_metrics(row).items()]
        if metrics:
            client.log_batch(run_id, metrics=metrics)

    def _close(self, client: Any, run_id: str, status: str, at: int) -> None:
        from mlflow.entities import RunTag

        client.log_batch(run_id, tags=[RunTag("sweep.status", status)])
        client.set_terminated(run_id, status=_FINAL_MLFLOW_STATUS.get(status, "FAILED"), end_time=at)


class _TensorBoardSink:
    """The run's scalars as TensorBoard event files, written by ``tensorboardX`` (its own writer thread flushes
    them); opened at the first row with ``purge_step`` at that row's step, so a resumed invocation, which sends its
    restored rows first, replaces whatever an earlier one logged from there on."""

    def __init__(self, log_dir: str, spec: RunSpec) -> None:
        self.directory = f"{log_dir.rstrip('/')}/sweep={spec.sweep}/{spec.run_id}"
        self.spec, self.writer, self.off = spec, None, False

    def log_row(self, row: dict) -> None:
        if self.off:
            return
        try:
            if self.writer is None:
                from tensorboardX import SummaryWriter

                self.writer = SummaryWriter(self.directory, purge_step=int(row["step"]))
            for key, value in row_metrics(row).items():
                self.writer.add_scalar(key, value, int(row["step"]))
        except Exception as error:
            self._fail(error)

    def finish(self, status: str) -> None:
        if self.off or self.writer is None:
            return
        try:
            self.writer.add_text("sweep.status", status)
            self.writer.close()
        except Exception as error:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        self.off = True
        _warn(self.spec, f"TensorBoard logging to {redact_uri(self.directory)} failed ({_one_line(error, self.directory)}); "
                         "it is off for this run, training goes on")
