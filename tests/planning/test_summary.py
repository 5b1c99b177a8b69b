"""``sweep plan``'s text: columns sized to their values, a summary for large plans, each kind of warning once."""

from dataclasses import replace

import pytest

from sweep.config import parse_config
from sweep.planning.plan import plan_sweep
from sweep.planning.summary import (
    aligned, bytes_text, count_text, duration_text, gpu_memory_warning, grouped, plan_summary, repeats_data_warning,
    runs_table,
)  # fmt: skip
from tests.conftest import tiny_config


def runs(**overrides):
    return plan_sweep(parse_config(tiny_config(**overrides)), vocab_size=256, data_fingerprint="f00d").runs


def test_columns_are_as_wide_as_their_widest_value_and_never_touch():
    lines = aligned(["id", "N", "D"], [["a", "21,678,128", "6,244,270,080"], ["bb", "7", "1"]])
    assert lines == ["id           N              D", "a   21,678,128  6,244,270,080", "bb           7              1"]


def test_every_row_of_the_table_splits_back_into_its_cells():
    planned = runs(training={"schedule": "wsd"})
    seconds = {s.run_id: 1e6 * (i + 1) for i, s in enumerate(planned)}
    header, *rows = runs_table(planned, seconds)
    assert header.split()[-1] == "role" and len(rows) == len(planned)
    for spec, row in zip(planned, rows):
        cells = row.split()
        assert len(cells) == len(header.split()) and cells[0] == spec.run_id
        assert int(cells[5].replace(",", "")) == spec.n_params_nonembedding and int(cells[6].replace(",", "")) == spec.tokens
        assert cells[-1] == ("trunk" if spec.schedule == "wsd-trunk" else f"@{spec.branch_step}")


def test_a_mid_sized_plan_is_summarised_by_budget_and_size_a_large_one_by_budget():
    planned = runs(training={"seeds": list(range(10))})  # 2 budgets x 2 sizes x 10 seeds
    seconds = {s.run_id: 3600.0 for s in planned}
    header, *rows, legend = plan_summary(planned, seconds)
    assert header.split() == ["budget", "N", "runs", "seeds", "D", "steps", "est/run", "est", "mem"]
    assert len(rows) == 4 and all(row.split()[2:4] == ["10", "10"] and row.split()[7] == "10h" for row in rows)
    assert legend.startswith("by budget and size")
    header, *rows, legend = plan_summary(planned, seconds, max_rows=3)
    assert header.split()[:3] == ["budget", "sizes", "N"] and len(rows) == 2 and legend.startswith("by budget;")
    assert rows[0].split()[1:5] == ["2", f"{count_text(planned[0].n_params_nonembedding)}-{count_text(planned[-1].n_params_nonembedding)}", "20", "10"]


def test_a_summary_by_budget_past_its_rows_shows_both_ends():
    many = [replace(spec, flops_budget=float(i)) for i, spec in enumerate(runs() * 15)]  # 60 budgets
    lines = plan_summary(many, {s.run_id: 1.0 for s in many}, max_rows=10)
    assert len(lines) == 1 + 10 + 1 + 1 and "(50 budgets more)" in lines[6]


def test_lines_of_a_kind_past_a_few_are_counted():
    assert grouped("left out", ["a", "b"]) == ["left out: a", "left out: b"]
    lines = grouped("left out", [f"budget {i}" for i in range(500)])
    assert lines[0] == "left out: 500 entries, for example:" and len(lines) == 5 and "497 more" in lines[-1]
    assert grouped("planned once", ["a", "a", "b", "a"]) == ["planned once: a (3 times)", "planned once: b"]
    lines = grouped("planned once", ["a"] * 3 + ["b", "c", "d", "e"])
    assert lines[1:4] == ["  a", "  b", "  c"] and "4 more" in lines[-1]  # the examples differ


def test_runs_repeating_data_are_one_line():
    planned = runs()
    epochs = {s.run_id: e for s, e in zip(planned, [0.5, 1.5, 3.25, 2.0])}
    line = repeats_data_warning(planned, lambda s: epochs[s.run_id], "token file t.bin")
    most = planned[2]
    assert line == (f"repeats data: 3 of 4 runs read token file t.bin more than once, up to 3.25 epochs (run "
                    f"{most.run_id}, N={most.n_params_nonembedding:,}, D={most.tokens:,})")  # fmt: skip
    assert repeats_data_warning(planned, lambda s: 1.0, "x") is None


def test_runs_over_the_gpus_memory_are_one_line():
    planned = runs(resources={"gpus_per_worker": 1})
    assert gpu_memory_warning(planned, None) is None and gpu_memory_warning(planned, 80) is None
    line = gpu_memory_warning(planned, 1e-9)
    assert line.startswith("4 runs are estimated over resources.gpu_memory_gb 1e-09 GiB, the largest run ")
    assert gpu_memory_warning(planned[:1], 1e-9).endswith(", over resources.gpu_memory_gb 1e-09 GiB")
    assert gpu_memory_warning(runs(), 1e-9) is None  # CPU runs have no GPU memory


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0.4s"), (38, "38s"), (720, "12min"), (5.2 * 3600, "5.2h"),
                                               (29 * 86400, "29d"), (4200 * 365.25 * 86400, "4,200y")])  # fmt: skip
def test_durations_counts_and_sizes_in_one_unit_without_a_space(seconds, text):
    assert duration_text(seconds) == text
    assert [count_text(n) for n in (980, 999_600, 21_678_128, 6_244_270_080)] == ["980", "1M", "21.7M", "6.24B"]
    assert bytes_text(5 * 2**40, sep="") == "5TiB" and bytes_text(1020 * 2**20) == "1020 MiB"
