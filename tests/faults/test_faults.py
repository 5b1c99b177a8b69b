"""Fault injection: each fault applied to a copy of a real, finished results directory, then every command run on it.

For every fault: ``sweep status``, ``fit``, ``report`` and ``run`` exit as documented with no traceback, the damaged
file is named, ``sweep run`` sets it aside byte for byte (``RESULTS/quarantine/`` with a reason) and goes on, no
completed run is trained again (unless ``--repair`` asks for exactly that), and every other finished file is
byte-identical before and after (SHA-256). The sweep is trained once per test session (6 tiny runs).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sweep.cli import main
from sweep.results.storage import RUNS_SCHEMA, ResultsStore
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow

SWEEP = "faults"
CONFIG = tiny_config(name=SWEEP, model={"sizes": [3e3, 8e3, 2e4]}, training={"checkpoint_every_steps": 5})
EXTENDED = {**CONFIG, "budgets": [*CONFIG["budgets"], 8e9]}
VOLATILE = ("progress/", "logs/", ".sweep.lock", "quarantine/", "claims/")
"""Paths the driver rewrites on every run (its status file, Ray's log, the lock) or that only faults create."""


@dataclass
class Fault:
    """What a fault did and what the commands must show for it."""

    damaged: str | None = None
    """The file made damaged (path under the root): named by status, set aside by run."""
    named: str | None = None
    """What ``sweep status`` must name (default: ``damaged``)."""
    retrained: set[str] = field(default_factory=set)
    """Runs ``sweep run`` may train again (only --repair's)."""
    rewritten: set[str] = field(default_factory=set)
    """Files (paths under the root) that may differ afterwards: a rebuilt ledger row, a repaired run's files."""
    run_args: tuple[str, ...] = ()
    config: dict | None = None
    """Another sweep file for ``sweep run`` (the extended sweep, for checkpoint faults)."""
    run_shows: str | None = None
    """What ``sweep run`` must say."""


def _runs(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "runs" / f"sweep={SWEEP}").glob("*.parquet"))


def _ledger(root: Path, run_id: str) -> Path:
    return root / "runs" / f"sweep={SWEEP}" / f"{run_id}.parquet"


def _metrics(root: Path, run_id: str) -> Path:
    return root / "metrics" / f"sweep={SWEEP}" / f"{run_id}.parquet"


def _rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def _write_table(path: Path, table: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    path.write_bytes(buffer.getvalue())


def _bytes_fault(transform: Callable[[bytes], bytes], which: Callable[[Path, str], Path]) -> Callable[[Path], Fault]:
    def apply(root: Path) -> Fault:
        run_id = _runs(root)[0]
        path = which(root, run_id)
        path.write_bytes(transform(path.read_bytes()))
        rewritten = {_rel(root, _ledger(root, run_id))} if which is _ledger else set()
        return Fault(damaged=_rel(root, path), rewritten=rewritten)

    return apply


def _table_fault(transform: Callable[[pa.Table], pa.Table], which: Callable[[Path, str], Path]) -> Callable[[Path], Fault]:
    return _bytes_fault(lambda data: _table_bytes(transform(pq.read_table(io.BytesIO(data)))), which)


def _table_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _garbage(data: bytes) -> bytes:
    return np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()


def _flip_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]


def _wrong_type(table: pa.Table, column: str) -> pa.Table:
    index = table.column_names.index(column)
    return table.set_column(index, column, table.column(column).cast(pa.string()))


def _copied_ledger(root: Path) -> Fault:
    run_id = _runs(root)[0]
    copy = _ledger(root, run_id).with_name(f"{run_id}-copy.parquet")
    shutil.copyfile(_ledger(root, run_id), copy)
    return Fault(damaged=_rel(root, copy))


def _ledger_of_another_run(root: Path) -> Fault:
    first, second = _runs(root)[:2]
    shutil.copyfile(_ledger(root, first), _ledger(root, second))  # second's file now holds first's row
    return Fault(damaged=_rel(root, _ledger(root, second)), rewritten={_rel(root, _ledger(root, second))})


def _stray(relative: str, data: bytes) -> Callable[[Path], Fault]:
    def apply(root: Path) -> Fault:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return Fault(damaged=relative)

    return apply


def _ledger_deleted(root: Path) -> Fault:
    run_id = _runs(root)[0]
    _ledger(root, run_id).unlink()
    return Fault(named=None, rewritten={_rel(root, _ledger(root, run_id))})


def _metrics_fault(how: str, repair: bool) -> Callable[[Path], Fault]:
    def apply(root: Path) -> Fault:
        run_id = _runs(root)[-1]
        path = _metrics(root, run_id)
        damaged = None
        if how == "deleted":
            path.unlink()
        elif how == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
            damaged = _rel(root, path)
        elif how == "cut short":
            table = pq.read_table(path)
            _write_table(path, table.slice(0, table.num_rows // 2))
        elif how == "foreign rows":
            other = _runs(root)[0]
            table = pq.read_table(path)
            _write_table(path, table.set_column(0, "run_id", pa.array([other] * table.num_rows)))
            damaged = _rel(root, path)
        elif how == "no rows":
            _write_table(path, pq.read_table(path).slice(0, 0))
            damaged = _rel(root, path)
        retrained = {run_id} if repair else set()
        rewritten = {_rel(root, _ledger(root, run_id)), _rel(root, path)} if repair else {_rel(root, path)}
        return Fault(damaged=damaged, named=run_id, retrained=retrained, rewritten=rewritten,
                     run_args=("--repair",) if repair else ())  # fmt: skip

    return apply


def _progress_fault(data: bytes) -> Callable[[Path], Fault]:
    def apply(root: Path) -> Fault:
        path = root / "progress" / f"sweep={SWEEP}.json"
        path.write_bytes(data)
        return Fault(named=_rel(root, path))

    return apply


def _checkpoint_fault(data: bytes) -> Callable[[Path], Fault]:
    """A damaged checkpoint of a run not trained yet (the extended sweep adds it): it trains from step 0."""

    def apply(root: Path) -> Fault:
        from sweep.execute.orchestrate import prepare_plan
        from sweep.config import parse_config

        known = set(_runs(root))
        new = [s for s in prepare_plan(parse_config(EXTENDED)).runs if s.run_id not in known]
        path = root / "checkpoints" / f"sweep={SWEEP}" / new[0].run_id / "step-000000005.pt"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        return Fault(damaged=_rel(root, path), named="", config=EXTENDED)

    return apply


def _repeated(**training_or_budgets) -> Callable[[Path], Fault]:
    """The same sweep with a repeated seed or budget: planned once, nothing trained twice."""

    def apply(root: Path) -> Fault:
        config = {**CONFIG, **{k: v for k, v in training_or_budgets.items() if k == "budgets"}}
        if "seeds" in training_or_budgets:
            config["training"] = {**CONFIG["training"], "seeds": training_or_budgets["seeds"]}
        return Fault(named="", config=config, run_shows="planned once")

    return apply


FAULTS: dict[str, Callable[[Path], Fault]] = {
    "ledger file of 0 bytes": _bytes_fault(lambda data: b"", _ledger),
    "ledger file truncated": _bytes_fault(lambda data: data[: len(data) // 2], _ledger),
    "ledger file cut by 8 bytes": _bytes_fault(lambda data: data[:-8], _ledger),
    "ledger file of random bytes": _bytes_fault(_garbage, _ledger),
    "ledger file with flipped bytes": _bytes_fault(_flip_middle, _ledger),
    "ledger file holding CSV text": _bytes_fault(lambda data: b"run_id,status\nx,completed\n", _ledger),
    "ledger file of a foreign table": _bytes_fault(lambda data: _table_bytes(pa.table({"x": [1, 2]})), _ledger),
    "ledger column of another type": _table_fault(lambda t: _wrong_type(t, "flops"), _ledger),
    "ledger file of two rows": _table_fault(lambda t: pa.concat_tables([t, t]), _ledger),
    "ledger file missing a column": _table_fault(lambda t: t.drop_columns(["final_eval_loss"]), _ledger),
    "ledger file with an unknown status": _table_fault(
        lambda t: t.set_column(t.column_names.index("status"), "status", pa.array(["done"])), _ledger
    ),
    "ledger file with an extra column": _table_fault(lambda t: t.append_column("note", pa.array(["x"])), _ledger),
    "ledger file copied under another name": _copied_ledger,
    "ledger file holding another run's row": _ledger_of_another_run,
    "ledger file deleted": _ledger_deleted,
    "stray text file in the ledger": _stray(f"runs/sweep={SWEEP}/README.txt", b"notes\n"),
    "stray Parquet file outside a sweep": _stray("runs/extra.parquet", _table_bytes(pa.table({"x": [1]}))),
    "stray file in a badly named sweep folder": _stray("runs/sweep=a b/x.parquet", b""),
    "metrics file deleted": _metrics_fault("deleted", repair=False),
    "metrics file deleted, --repair": _metrics_fault("deleted", repair=True),
    "metrics file truncated": _metrics_fault("truncated", repair=False),
    "metrics file truncated, --repair": _metrics_fault("truncated", repair=True),
    "metrics rows cut short": _metrics_fault("cut short", repair=False),
    "metrics rows cut short, --repair": _metrics_fault("cut short", repair=True),
    "metrics file holding another run's rows": _metrics_fault("foreign rows", repair=False),
    "metrics file without rows": _metrics_fault("no rows", repair=False),
    "metrics step column of another type": _table_fault(lambda t: _wrong_type(t, "step"), _metrics),
    "metrics file of random bytes": _bytes_fault(_garbage, _metrics),
    "progress file not JSON": _progress_fault(b"{not json"),
    "progress file of another shape": _progress_fault(json.dumps({"planned": "all", "in_flight": 3}).encode()),
    "progress file not UTF-8": _progress_fault(b"\xff\xfe\x00"),
    "checkpoint of random bytes": _checkpoint_fault(_garbage(bytes(4096))),
    "checkpoint of 0 bytes": _checkpoint_fault(b""),
    "a seed repeated in the sweep file": _repeated(seeds=[0, 0]),
    "a budget repeated in the sweep file": _repeated(budgets=[2e9, 4e9, 2e9]),
}


def _hashes(root: Path) -> dict[str, str]:
    return {
        _rel(root, p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and not _rel(root, p).startswith(VOLATILE)
    }


@pytest.fixture(scope="session")
def finished_sweep(ray_session, tmp_path_factory) -> tuple[Path, Path]:
    """A real results directory: the fault sweep trained once (every run completed)."""
    base = tmp_path_factory.mktemp("faults")
    config = base / "sweep.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    assert main(["run", str(config), "--results", str(base / "results")]) == 0
    assert len(_runs(base / "results")) == 6
    return config, base / "results"


def _command(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out + err


def _started(root: Path) -> dict[str, object]:
    runs = ResultsStore(root, warn=lambda message: None).read_runs(SWEEP)
    return dict(zip(runs["run_id"], runs["started_at"]))


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault(name, finished_sweep, tmp_path, capsys):
    config, finished = finished_sweep
    root = tmp_path / "results"
    shutil.copytree(finished, root)
    started, before = _started(root), _hashes(root)
    fault = FAULTS[name](root)
    damaged_bytes = (root / fault.damaged).read_bytes() if fault.damaged else None
    if fault.config is not None:
        config = tmp_path / "sweep.yaml"
        config.write_text(yaml.safe_dump(fault.config))

    code, shown = _command(capsys, "status", "--results", str(root))
    assert code == 0
    named = fault.named if fault.named is not None else fault.damaged
    if named:
        assert named in shown, shown
    for command in (("fit", "--bootstrap", "0", "--plot", str(tmp_path / "fit.png")), ("report", "--bootstrap", "0", "--out", str(tmp_path / "report"))):
        code, shown = _command(capsys, *command, "--results", str(root))
        assert code == 0, shown

    code, shown = _command(capsys, "run", str(config), "--results", str(root), *fault.run_args)
    assert code == 0, shown
    if fault.run_shows:
        assert fault.run_shows in shown, shown
    after = _hashes(root)
    if fault.damaged:
        assert fault.damaged in shown, shown
        (kept,) = [p for p in (root / "quarantine").rglob("*") if p.is_file() and not p.name.endswith(".reason.json") and _rel(root / "quarantine", p).startswith(fault.damaged + ".")]
        assert kept.read_bytes() == damaged_bytes
        assert json.loads(Path(str(kept) + ".reason.json").read_text())["original"] == fault.damaged
    changed = {path for path, digest in before.items() if after.get(path) != digest} - {fault.damaged} - fault.rewritten
    assert changed == set(), f"finished files changed: {sorted(changed)}"
    now = _started(root)
    retrained = {run for run, stamp in started.items() if not pd.isna(now.get(run)) and now.get(run) != stamp}  # rebuilt: NaT
    assert retrained == fault.retrained, shown
    assert set(now) >= set(started)  # every run still has its row

    code, shown = _command(capsys, "status", "--results", str(root))
    assert code == 0 and "damaged:" not in shown, shown
    if fault.damaged:
        assert f"set aside: quarantine/{fault.damaged}." in shown, shown
    code, shown = _command(capsys, "report", "--bootstrap", "0", "--out", str(tmp_path / "after"), "--results", str(root))
    assert code == 0, shown
    assert ResultsStore(root, warn=lambda message: pytest.fail(message)).read_runs(SWEEP)["run_id"].is_unique


def test_status_of_a_missing_results_directory_is_one_line_and_exit_2(tmp_path, capsys):
    for command in (["status"], ["fit", "--bootstrap", "0"], ["report", "--out", str(tmp_path / "r")]):
        code, shown = _command(capsys, *command, "--results", str(tmp_path / "nowhere"))
        assert code == 2 and shown.count("\n") == 1 and "nowhere" in shown, shown


def test_a_bucket_that_does_not_exist_is_one_line_and_exit_2(s3_endpoint, tmp_path, capsys):
    from tests.conftest import s3_root

    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    root = s3_root(s3_endpoint, "no-such-bucket", userinfo="test:secret-key-value")
    for command in (["status"], ["fit", "--bootstrap", "0"], ["run", str(config)]):
        code, shown = _command(capsys, *command, "--results", root)
        lines = [line for line in shown.splitlines() if "--results carries credentials" not in line]  # run's warning
        assert code == 2 and len(lines) == 1 and lines[0].startswith("sweep: error:") and "no-such-bucket" in shown, shown
        assert "secret-key-value" not in shown


def test_a_sweep_name_that_climbs_out_of_the_results_is_refused(finished_sweep, tmp_path, capsys):
    _, finished = finished_sweep
    for command in (["status"], ["fit", "--bootstrap", "0"], ["report", "--out", str(tmp_path / "r")]):
        code, shown = _command(capsys, *command, "--results", str(finished), "--sweep", "x/../../../elsewhere")
        assert code == 2 and shown.count("\n") == 1 and "--sweep" in shown, shown
    assert not list(tmp_path.parent.rglob("isoflop-x*"))  # no plot written anywhere
