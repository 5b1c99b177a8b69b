"""docs/token-data.md's example sweep at a 50k vocabulary plans on a directory of prepared-style shards, and the
plan says which targets the ladder cannot reach at that vocabulary."""

import re
from pathlib import Path

import numpy as np
import yaml

from sweep.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "token-data.md"


def test_the_documented_50k_sweep_plans_on_npy_shards(tmp_path, capsys):
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S).group(1)
    config = yaml.safe_load(block)
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 1)):
        for k in range(count):
            np.save(tmp_path / f"{split}-{k:06d}-000.npy", rng.integers(0, 50_304, 200_000, dtype=np.uint16))
    config["data"] |= {"path": str(tmp_path / "train-*.npy"), "val_path": str(tmp_path / "val-*.npy")}
    path = tmp_path / "web.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sweep web-50k: 15 runs" in out
    assert "ladder:" not in out  # every documented target is reached within 10% with the head counted
