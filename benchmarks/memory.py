"""Peak memory of a training step: ``sweep.planning.memory``'s estimate against the measured peak, on CPU.

For each shape, precision and step kind (two micro-batches accumulating, or one pass per step) it trains two steps
of the real model (``measure_peak_bytes``: live tensor storage after every op, by a TorchDispatchMode) and prints a
Markdown table: measured peak, the estimate's tensors (steps 1-6 of the derivation) and total (with the 10%
allocator allowance; no CUDA allowance on CPU), and their ratios to the measured peak. The table in ``docs/memory.md``
comes from this script.

    python benchmarks/memory.py                 # the table of docs/memory.md (about 5 minutes on one thread)
    python benchmarks/memory.py --quick         # the small shapes only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.accounting import param_counts  # noqa: E402
from models.gpt import GPTShape  # noqa: E402
from sweep.planning.memory import estimate_peak_bytes, measure_peak_bytes  # noqa: E402

# (shape, sequences per micro-batch): byte-level vocab from a tiny model to 25M parameters, then GPT-2 small's
# shape and vocabulary, where the logits and the fp32 loss dominate the activations.
CASES = [
    (GPTShape(2, 64, 4, 128, 256), 8),
    (GPTShape(4, 256, 4, 256, 256), 8),
    (GPTShape(6, 384, 6, 512, 256), 4),
    (GPTShape(8, 512, 8, 512, 256), 4),
    (GPTShape(12, 768, 12, 1024, 50257), 1),
]
QUICK = 2


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK} shapes only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {args.threads} thread(s); MiB; ratio = estimate / measured")
    print()
    print("| shape L x d (heads), T, V | N | B x T | precision | micro-batches | measured | estimate tensors | ratio | estimate total | ratio |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for shape, sequences in CASES[:QUICK] if args.quick else CASES:
        for precision in ("fp32", "bf16"):
            for micro_batches in (2, 1):
                started = time.perf_counter()
                measured = measure_peak_bytes(shape, sequences, precision, micro_batches=micro_batches)
                e = estimate_peak_bytes(shape, sequences, precision, device="cpu", accumulating=micro_batches > 1)
                print(
                    f"| {shape.n_layer} x {shape.d_model} ({shape.n_head}), {shape.seq_len}, {shape.vocab_size} "
                    f"| {param_counts(shape).total / 1e6:.1f}M | {sequences} x {shape.seq_len} | {precision} | {micro_batches} "
                    f"| {mib(measured)} | {mib(e.tensors)} | {e.tensors / measured:.3f} | {mib(e.total)} | {e.total / measured:.3f} |",
                    flush=True,
                )
                print(f"  ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
