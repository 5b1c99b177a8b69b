"""The CLI: every command has help; plan prints the runs (text and JSON)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweep.cli import build_parser, main
from tests.conftest import tiny_config

COMMANDS = ["plan", "run", "tune", "status", "fit", "predict", "compare", "history", "report", "demo", "doctor", "data"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: sweep " + command in out
    assert "``" not in out  # plain text, not the docstrings' RST


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("sweep ")


EPOCH = "tests/data/chinchilla_epoch_svg_extracted.csv"


@pytest.mark.parametrize("command", [["fit"], ["predict", "--flops", "1e21"]])
def test_one_json_convention(command, tmp_path, capsys, monkeypatch):
    """Bare --json: JSON alone on stdout; --json PATH.json: written there, the text printed too; any other path is
    refused (exit 2), so a positional taken for the path is never overwritten; fit --input writes no ./plots."""
    monkeypatch.chdir(tmp_path)
    base = [*command, "--input", str(Path(__file__).parent.parent / EPOCH), "--bootstrap", "0"]
    assert main([*base, "--json"]) == 0
    assert "n_runs" in json.loads(capsys.readouterr().out)
    assert main([*base, "--json", str(tmp_path / "out" / "fit.json")]) == 0
    captured = capsys.readouterr()
    assert "approach" in captured.out and "JSON: " in captured.err
    assert json.loads((tmp_path / "out" / "fit.json").read_text())["n_runs"] == 245
    (tmp_path / "config.yaml").write_text("name: x\n")
    assert main([*base, "--json", str(tmp_path / "config.yaml")]) == 2
    assert (tmp_path / "config.yaml").read_text() == "name: x\n"
    assert "not a .json path" in capsys.readouterr().err
    assert not (tmp_path / "plots").exists()  # --input never writes into the working directory unasked
    if command == ["fit"]:
        assert (tmp_path / "out" / "isoflop-chinchilla_epoch_svg_extracted.png").exists()  # beside the JSON


def test_parser_knows_exactly_these_commands():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(subparsers.choices) == sorted(COMMANDS)


def test_usage_error_exits_2():
    result = subprocess.run([sys.executable, "-m", "sweep", "plan"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_plan_json(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_config()))
    assert main(["plan", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["sweep"] == "tiny" and len(plan["runs"]) == 4
    run = plan["runs"][0]
    for key in ("run_id", "n_layer", "d_model", "n_head", "n_params", "tokens", "flops", "estimated_seconds"):
        assert key in run
    assert main(["plan", str(path)]) == 0
    assert "total" in capsys.readouterr().out


def test_plan_shows_memory_and_micro_batch(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_config(training={"micro_batch_tokens": 64})))
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("run_id"))
    assert header.split()[-2:] == ["micro", "mem"]
    rows = [line for line in out.splitlines() if line[:16].isalnum() and len(line.split()) > 10]
    assert len(rows) == 4 and all(row.split()[-2] == "2x32" and row.split()[-1].endswith("KiB") for row in rows)
    path.write_text(yaml.safe_dump(tiny_config()))
    assert main(["plan", str(path), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert all(r["micro_batch_tokens"] == 0 and r["memory_estimate_bytes"] > 0 for r in runs)
    assert main(["plan", str(path)]) == 0
    assert "micro auto" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["plan", "run"])
def test_run_that_cannot_fit_one_sequence_is_refused(command, tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_config(resources={"gpus_per_worker": 1, "gpu_memory_gb": 0.5})))
    extra = ["--results", str(tmp_path / "results")] if command == "run" else []
    assert main([command, str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("sweep: error: resources.gpu_memory_gb (0.5): run ")
    assert "GiB for one 32-token sequence" in err
    assert not (tmp_path / "results").exists()  # refused before anything started


def test_plan_warns_when_an_explicit_micro_batch_exceeds_the_gpu(tmp_path, capsys):
    from sweep.config import parse_config
    from sweep.planning.memory import GiB, estimate_for_run
    from sweep.planning.plan import plan_sweep

    overrides = {"model": {"sizes": [3e3]}, "training": {"micro_batch_tokens": 256}}
    spec = plan_sweep(parse_config(tiny_config(**overrides, resources={"gpus_per_worker": 1})), 256, "f00d").runs[0]
    size = round(estimate_for_run(spec, 32).total / GiB, 4) + 0.0001  # one sequence fits, eight do not
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_config(**overrides, resources={"gpus_per_worker": 1, "gpu_memory_gb": size})))
    assert main(["plan", str(path)]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 2 runs are estimated over resources.gpu_memory_gb")


def test_the_real_size_gpu_plan_fits_a_screen_and_its_table_behind_runs_splits_into_columns(tmp_path, capsys):
    """Issue 31's sweep (10,000 runs on H100s): a summary by budget of at most a screen, the speed it assumed, no
    line twice; ``--runs`` prints every run in columns that never run together."""
    from tests.planning.gpu_plan import real_size_gpu_config, write_token_file

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(real_size_gpu_config(write_token_file(tmp_path / "tokens.bin"))))
    assert main(["plan", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 60 and len(set(lines)) == len(lines)
    assert lines[0] == "sweep gpu-real-size: 10,000 runs (6N+attention FLOPs)"
    assert lines[1].startswith("times assume H100 SXM5 bf16 dense peak 989.5 TFLOP/s (resources.gpu_name) x 40% MFU")
    assert any(line.endswith("every run with sweep plan --runs, or --json") for line in lines[-3:])
    largest = next(line for line in lines if line.startswith("1e+21 ")).split()
    assert largest[:4] == ["1e+21", "25", "9.54M-2.49B", "500"] and largest[-3] == "29d-30d"  # est/run: 1e21 / (0.4 * 989.5e12); 9.54M: the 1e7 target with the 50k head counted (21.6M before)
    assert main(["plan", str(path), "--runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("run_id"))
    columns, rows = lines[header].split(), lines[header + 1 : header + 10_001]
    assert all(len(row.split()) == len(columns) for row in rows)
    n_params = {int(row.split()[columns.index("N")].replace(",", "")) for row in rows}
    assert len(n_params) == 25 and max(n_params) == 2_489_223_760


def test_the_real_size_gpu_plan_warns_of_repeated_data_once(tmp_path, capsys):
    from tests.planning.gpu_plan import real_size_gpu_config, write_token_file

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(real_size_gpu_config(write_token_file(tmp_path / "tokens.bin"))))
    assert main(["plan", str(path)]) == 0
    warnings = [line.split("] ", 1)[-1] for line in capsys.readouterr().err.splitlines()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: repeats data: 10,000 of 10,000 runs read token file")


def test_an_unknown_gpu_name_exits_2_naming_the_key(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_config(resources={"gpus_per_worker": 1, "gpu_name": "RTX 9999"})))
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sweep: error: {path}: resources.gpu_name: 'RTX 9999' is not a GPU")
    assert "known parts: GB200, HGX B200" in err and "H100 SXM5" in err


def test_fits_never_pool_sweeps(tmp_path, capsys):
    """Two sweeps in one results root: fit, predict and report refuse to guess (exit 2 naming both); with --sweep,
    or with one sweep only, they fit that sweep and say which."""
    from tests.conftest import write_synthetic_results

    root = tmp_path / "results"
    write_synthetic_results(root, sweep="alpha")
    for command in (["fit", "--plot", str(tmp_path / "p.png")], ["predict", "--flops", "1e12"], ["report", "--out", str(tmp_path / "r")]):
        assert main([*command, "--results", str(root), "--bootstrap", "0"]) == 0
        out = capsys.readouterr().out
        assert command[0] == "report" or f"sweep alpha in {root}" in out
    write_synthetic_results(root, sweep="beta", budgets=(2e9, 6e9, 2e10))
    for command in (["fit"], ["predict", "--flops", "1e12"], ["report", "--out", str(tmp_path / "r")]):
        assert main([*command, "--results", str(root), "--bootstrap", "0"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--sweep" in err and "2 sweeps (alpha, beta)" in err, err
    assert main(["fit", "--results", str(root), "--sweep", "beta", "--bootstrap", "0", "--plot", str(tmp_path / "b.png")]) == 0
    out = capsys.readouterr().out
    assert "Fitting sweep beta" in out and "15 runs fitted" in out


def test_with_the_sweep_file_stale_runs_are_left_out_of_fits_and_counted_apart(tmp_path, capsys):
    """Runs of an earlier version of a sweep share its name, not its plan: given the sweep file, fit, predict,
    report and status use the current plan's runs only (``--include-stale`` keeps the others in a fit)."""
    import yaml

    from sweep.config import parse_config
    from sweep.execute.orchestrate import prepare_plan
    from sweep.results.storage import ResultsStore
    from tests.conftest import tiny_config, write_synthetic_results

    root = tmp_path / "results"
    config = tiny_config(name="synthetic", results=str(root))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    write_synthetic_results(root)  # 15 runs, none of them in the file's plan: all stale
    store, plan = ResultsStore(root), prepare_plan(parse_config(config))
    for spec in plan.runs[:2]:  # two runs of the current plan, completed
        store.write_run("synthetic", {
            "run_id": spec.run_id, "status": "completed", "n_params": spec.n_params, "n_params_nonembedding": spec.n_params_nonembedding,
            "tokens": spec.tokens, "flops": spec.flops, "flops_budget": spec.flops_budget, "seed": 0, "final_eval_loss": 3.0,
        })  # fmt: skip
    args = ["--config", str(tmp_path / "sweep.yaml"), "--bootstrap", "0"]
    assert main(["fit", *args, "--plot", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "2 runs fitted" in out and out.count("(stale)") == 15
    assert main(["fit", *args, "--include-stale", "--plot", str(tmp_path / "p.png")]) == 0
    assert "17 runs fitted" in capsys.readouterr().out
    assert main(["status", "--config", str(tmp_path / "sweep.yaml")]) == 0
    out = capsys.readouterr().out
    assert "15 stale (not in the current plan)" in out and "2 of 4 planned still to run" in out
    assert main(["fit", *args, "--sweep", "other"]) == 2


def test_fit_reads_minima_as_asked_and_records_how(tmp_path, capsys):
    """``--minimum parabola --window 7`` on a public iso-FLOP table: recorded in the JSON; a window a parabola
    cannot use exits 2 naming the flag."""
    import json

    import pandas as pd

    table = pd.read_csv(Path(__file__).parent / "data" / "public" / "porian2024_isoflop.csv")
    path = tmp_path / "owt2.csv"
    table[table["config"] == "owt2/base/short/kaplan/standard/val"].drop(columns="config").to_csv(path, index=False)
    assert main(["fit", "--input", str(path), "--bootstrap", "0", "--minimum", "parabola", "--window", "7", "--json"]) == 0
    minimum = json.loads(capsys.readouterr().out)["approach2"]["minimum"]
    assert minimum == {"method": "parabola", "window": 7, "include_edges": False,
                       "description": "parabola in log N through the 7 sizes nearest each budget's best"}
    assert main(["fit", "--input", str(path), "--bootstrap", "0"]) == 0
    assert "Approach 2 (iso-FLOP minima: Akima spline of mean loss in log N" in capsys.readouterr().out
    assert main(["fit", "--input", str(path), "--minimum", "parabola", "--window", "2"]) == 2
    assert "--window: a parabola needs a window of 3 or more sizes" in capsys.readouterr().err


def test_demo_gives_its_fit_and_report_every_option_they_read(tmp_path, monkeypatch):
    """``sweep demo`` calls ``cmd_fit`` and ``cmd_report`` with a namespace it fills by hand: it must hold every
    option their parsers define, however those grow (``--minimum`` once went missing: a traceback after the sweep)."""
    import argparse

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    wanted = {name: {a.dest for a in commands.choices[name]._actions if a.dest != "help"} for name in ("fit", "report")}
    seen = {}
    monkeypatch.setattr("sweep.cli.cmd_run", lambda args: 0)
    monkeypatch.setattr("sweep.cli.cmd_fit", lambda args: seen.setdefault("fit", set(vars(args))) and 0)
    monkeypatch.setattr("sweep.cli.cmd_report", lambda args: seen.setdefault("report", set(vars(args))) and 0)
    assert main(["demo", "--results", str(tmp_path)]) == 0
    assert wanted["fit"] <= seen["fit"], wanted["fit"] - seen["fit"]
    assert wanted["report"] <= seen["report"], wanted["report"] - seen["report"]
