"""The token-file check's cost: hashing a file (the fingerprint, as before) against hashing it and finding its
largest id in the same pass (``sweep.training.provenance.scan_files``, uncached), alternated and repeated in one
process.

    python benchmarks/token_scan.py [--megabytes 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.training.provenance import scan_files  # noqa: E402
from sweep.training.shards import Shard  # noqa: E402


def hash_only(path: Path) -> str:
    """The fingerprint alone: SHA-256 of the file in 16 MiB reads (the baseline)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "tokens.bin"
        np.random.default_rng(0).integers(0, 50_257, args.megabytes * 2**20 // 2, dtype=np.uint16).tofile(path)
        shard = Shard(path, "raw", "uint16", 0, path.stat().st_size // 2)
        times: dict[str, list[float]] = {"hash only (before)": [], "hash + largest id": []}
        for _ in range(args.repeats):
            for name, read in (("hash only (before)", lambda: hash_only(path)), ("hash + largest id", lambda: scan_files([shard]))):
                started = time.perf_counter()
                read()
                times[name].append(time.perf_counter() - started)
        base = statistics.median(times["hash only (before)"])
        print(f"{args.megabytes} MB uint16 token file (page cache warm), median of {args.repeats}")
        for name, values in times.items():
            print(f"{name:<22}{statistics.median(values):>8.3f} s{statistics.median(values) / base:>8.2f}x")


if __name__ == "__main__":
    main()
