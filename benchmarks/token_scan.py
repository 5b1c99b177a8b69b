"""The token-file check's cost: hashing a file (the fingerprint, as before) against hashing it and finding its
largest id in the same pass (``sweep.training.data._scan``), alternated and repeated in one process.

    python benchmarks/token_scan.py [--megabytes 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.training.data import _scan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "tokens.bin"
        np.random.default_rng(0).integers(0, 50_257, args.megabytes * 2**20 // 2, dtype=np.uint16).tofile(path)
        times: dict[str, list[float]] = {"hash only (before)": [], "hash + largest id": []}
        for _ in range(args.repeats):
            for name, dtype in (("hash only (before)", None), ("hash + largest id", "uint16")):
                started = time.perf_counter()
                _scan([path], dtype)
                times[name].append(time.perf_counter() - started)
        base = statistics.median(times["hash only (before)"])
        print(f"{args.megabytes} MB uint16 token file (page cache warm), median of {args.repeats}")
        for name, values in times.items():
            print(f"{name:<22}{statistics.median(values):>8.3f} s{statistics.median(values) / base:>8.2f}x")


if __name__ == "__main__":
    main()
