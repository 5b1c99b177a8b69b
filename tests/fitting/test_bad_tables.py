"""Bad fit tables (``sweep fit|predict|report --input FILE``): a table that cannot be fitted is one line and exit 2
naming the file (and the column); rows that cannot be used are left out and listed; never a traceback."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweep.cli import main


def good_frame(n_budgets: int = 3) -> pd.DataFrame:
    """Runs drawn from L = 1.7 + 400/N^0.34 + 410/D^0.3: an iso-FLOP grid of five sizes per budget."""
    rows = []
    for budget in np.logspace(9, 10, n_budgets):
        for n in (2e3, 5e3, 1.2e4, 3e4, 8e4):
            d = budget / (6 * n)
            rows.append({"n_params": n, "tokens": d, "loss": 1.7 + 400 / n**0.34 + 410 / d**0.3})
    return pd.DataFrame(rows)


def csv(frame: pd.DataFrame, **options) -> bytes:
    return frame.to_csv(index=False, **options).encode()


def parquet(table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table if isinstance(table, pa.Table) else pa.Table.from_pandas(table), buffer)
    return buffer.getvalue()


GOOD = good_frame()
GOOD_PARQUET = parquet(GOOD)
with_text = GOOD.astype({"loss": object}).copy()
with_text.loc[3, "loss"] = "n/a"

# (name, file name, content, exit code, text the output must contain)
BAD = [
    ("missing file", "nope.csv", None, 2, "no such file"),
    ("a directory", "dir.csv", "DIR", 2, "not a file"),
    ("0 bytes", "empty.csv", b"", 2, "empty"),
    ("0-byte Parquet", "empty.parquet", b"", 2, "not a readable Parquet table"),
    ("non-UTF-8 CSV", "latin.csv", "n_params,tokens,loss\n1e3,1e6,3.0\ncaf\xe9,1,1\n".encode("latin-1"), 2, "not UTF-8"),
    ("garbage bytes as Parquet", "garbage.parquet", bytes(range(256)) * 4, 2, "not a readable Parquet table"),
    ("truncated Parquet", "cut.parquet", GOOD_PARQUET[: len(GOOD_PARQUET) // 2], 2, "not a readable Parquet table"),
    ("Parquet cut by 8 bytes", "cut8.parquet", GOOD_PARQUET[:-8], 2, "not a readable Parquet table"),
    ("CSV bytes named .parquet", "text.parquet", csv(GOOD), 2, "not a readable Parquet table"),
    ("Parquet bytes named .csv", "binary.csv", GOOD_PARQUET, 2, "--input"),
    ("no loss column", "noloss.csv", csv(GOOD.drop(columns=["loss"])), 2, "missing column loss"),
    ("no size column", "nosize.csv", csv(GOOD.drop(columns=["n_params"])), 2, "missing column"),
    ("neither tokens nor flops", "notokens.csv", csv(GOOD.drop(columns=["tokens"])), 2, "tokens"),
    ("header only", "header.csv", b"n_params,tokens,loss\n", 2, "no completed runs"),
    ("a loss column of words", "words.csv", csv(GOOD.assign(loss="low")), 2, "column loss holds no numbers"),
    ("an all-NaN tokens column", "nan.csv", csv(GOOD.assign(tokens=np.nan)), 2, "column tokens holds no numbers"),
    ("semicolons for commas", "semicolon.csv", csv(GOOD, sep=";"), 2, "missing column"),
    ("a JSON file", "runs.json", json.dumps(GOOD.to_dict("records")).encode(), 2, "--input"),
    ("an Excel-like binary", "runs.xlsx", b"PK\x03\x04" + bytes(200), 2, "--input"),
    ("a list column in Parquet", "lists.parquet", parquet(pa.table({"n_params": [[1.0, 2.0]] * 15, "tokens": [1e6] * 15, "loss": [3.0] * 15})), 2, "column n_params holds no numbers"),
    ("a budget column of words", "budgetwords.csv", csv(GOOD.assign(budget="big")), 2, "column budget holds no numbers"),
    ("every loss negative", "negative.csv", csv(GOOD.assign(loss=-1.0)), 2, "no completed runs"),
    ("every size zero", "zero.csv", csv(GOOD.assign(n_params=0.0)), 2, "no completed runs"),
]

# Tables whose bad rows are left out (listed as not fitted) while the rest is fitted: exit 0.
ROWS = [
    ("one negative loss", "oneneg.csv", csv(GOOD.assign(loss=[-1.0] + GOOD["loss"].tolist()[1:])), "not fitted: run 0 (invalid)"),
    ("one infinite token count", "oneinf.csv", csv(GOOD.assign(tokens=GOOD["tokens"].where(GOOD.index != 4, np.inf))), "not fitted: run 4 (invalid)"),
    ("one loss as text", "onetext.csv", csv(with_text), "not fitted: run 3 (invalid)"),
    ("one empty cell", "onecell.csv", csv(GOOD.assign(n_params=GOOD["n_params"].where(GOOD.index != 7))), "not fitted: run 7 (invalid)"),
    ("duplicated rows", "dupes.csv", csv(pd.concat([GOOD, GOOD])), "30 runs fitted"),
    ("a single run", "single.csv", csv(GOOD.iloc[:1]), "1 runs fitted"),
    ("two runs", "two.csv", csv(GOOD.iloc[:2]), "2 runs fitted"),
    ("one budget only", "onebudget.csv", csv(good_frame(1)), "5 runs fitted"),
    ("every run identical", "same.csv", csv(pd.concat([GOOD.iloc[:1]] * 6)), "6 runs fitted"),
    ("a zero budget in one row", "zerobudget.csv", csv(GOOD.assign(budget=[0.0] + [1e9] * 14)), "not fitted: run 0 (invalid)"),
]


def _write(tmp_path, name, content):
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("name, file, content, code, text", BAD, ids=[case[0] for case in BAD])
@pytest.mark.parametrize("command", ["fit", "predict", "report"])
def test_a_table_that_cannot_be_fitted_is_one_line_naming_the_file(tmp_path, capsys, name, file, content, code, text, command):
    path = _write(tmp_path, file, content)
    extra = {"fit": ["--plot", str(tmp_path / "p.png")], "predict": ["--flops", "1e12"], "report": ["--out", str(tmp_path / "r")]}[command]
    status = main([command, "--input", str(path), "--bootstrap", "0", *extra])
    out, err = capsys.readouterr()
    assert status == code and err.count("\n") == 1 and err.startswith("sweep: error: "), err
    assert text in err and file in err and "Traceback" not in out + err, err


@pytest.mark.parametrize("name, file, content, text", ROWS, ids=[case[0] for case in ROWS])
def test_rows_that_cannot_be_used_are_left_out_and_listed(tmp_path, capsys, name, file, content, text):
    path = _write(tmp_path, file, content)
    status = main(["fit", "--input", str(path), "--bootstrap", "0", "--plot", str(tmp_path / "p.png")])
    out, err = capsys.readouterr()
    assert status == 0 and text in out and "Traceback" not in out + err, out + err


def test_the_corpus_is_large():
    assert len(BAD) + len(ROWS) >= 30
