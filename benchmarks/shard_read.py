"""The shard reader against the single-file reader on the same tokens: batches of a training stream
(``sweep.training.data.TokenStream``) read from one raw file, and from the same ids split into N llm.c shards and
N ``.npy`` shards, alternated and repeated in one process, page cache warm.

    python benchmarks/shard_read.py [--megabytes 400] [--shards 10 100] [--batch 512] [--seq-len 1024] [--steps 40]

Prints per layout the median time of a batch, tokens/s and the ratio to the single file. Windows never straddle
files (``sweep.training.shards``), so the sharded streams read ``(n_k - 1) // seq_len`` windows per file: a few fewer
windows in all, the same ids.
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

from sweep.config import DataConfig  # noqa: E402
from sweep.training.data import TokenStream, load_corpus  # noqa: E402

VOCAB = 50_304


def write_llmc(path: Path, ids: np.ndarray) -> None:
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(ids))
    with open(path, "wb") as handle:
        handle.write(header.tobytes())
        handle.write(ids.astype("<u2").tobytes())


def layouts(root: Path, ids: np.ndarray, shard_counts: list[int]) -> dict[str, str]:
    """Each layout's data.path: the single raw file, then llm.c and .npy directories of each shard count."""
    ids.astype(np.uint16).tofile(root / "single.bin")
    paths = {"single raw file": str(root / "single.bin")}
    for count in shard_counts:
        for kind in ("llm.c", "npy"):
            folder = root / f"{kind}-{count}"
            folder.mkdir()
            for k, part in enumerate(np.array_split(ids, count)):
                if kind == "npy":
                    np.save(folder / f"train-{k:05d}.npy", part.astype(np.uint16))
                else:
                    write_llmc(folder / f"train-{k:05d}.bin", part)
            paths[f"{count} {kind} shards"] = str(folder)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=400)
    parser.add_argument("--shards", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ids = np.random.default_rng(0).integers(0, VOCAB, args.megabytes * 2**20 // 2, dtype=np.uint16)
    with tempfile.TemporaryDirectory() as directory:
        paths = layouts(Path(directory), ids, args.shards)
        streams = {}
        for name, path in paths.items():
            corpus = load_corpus(DataConfig(source="tokens", path=path, vocab_size=VOCAB, val_fraction=0.001))
            streams[name] = TokenStream(corpus.train, args.batch, args.seq_len, seed=0)
            streams[name].batch(0)  # map the files, fill the page cache
        times: dict[str, list[float]] = {name: [] for name in streams}
        for repeat in range(args.repeats):
            for name, stream in streams.items():
                started = time.perf_counter()
                for step in range(repeat * args.steps, (repeat + 1) * args.steps):
                    stream.batch(step)
                times[name].append((time.perf_counter() - started) / args.steps)
    base = statistics.median(times["single raw file"])
    tokens = args.batch * args.seq_len
    print(f"{args.megabytes} MB of uint16 ids; batches of {args.batch} x {args.seq_len}; median over {args.repeats} "
          f"alternated repeats of {args.steps} steps")
    print(f"{'layout':<22}{'ms / batch':>12}{'M tokens/s':>12}{'vs single':>11}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<22}{median * 1e3:>12.3f}{tokens / median / 1e6:>12.1f}{median / base:>10.2f}x")


if __name__ == "__main__":
    main()
