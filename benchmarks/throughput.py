"""Training throughput: tokens/s, achieved FLOP/s and MFU of the real training loop, per model size.

Runs ``sweep.training.train.train_run`` (the code a sweep runs, data loading and all) for a fixed number of steps per size
and reports the median tokens/s of its logged intervals. Baseline, in the same process: the same runs with
``scaled_dot_product_attention`` forced to the math backend (what an unfused attention costs). MFU uses the
6N+attention FLOPs per token against ``--peak-flops`` (default: a table of dense bf16 peaks for known GPUs; none on
CPU, where MFU is not printed).

    python benchmarks/throughput.py                       # demo ladder, auto device
    python benchmarks/throughput.py --sizes 1e6 1e7 --seq-len 256 --batch-tokens 16384 --steps 60
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep.config import parse_config  # noqa: E402
from sweep.training.data import load_corpus  # noqa: E402
from sweep.planning.plan import plan_sweep  # noqa: E402
from sweep.training.train import resolve_device, train_run  # noqa: E402

DENSE_BF16_PEAK_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in DENSE_BF16_PEAK_FLOPS.items() if key in name), None)


def measure(spec) -> float:
    """Median tokens/s over the run's logged intervals, the first (warm-up, compilation) left out."""
    rows = train_run(spec).metrics
    rates = [row["tokens_per_second"] for row in rows[1:]] or [rows[0]["tokens_per_second"]]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[7e3, 2e4, 4e4, 7e4, 1.7e5])
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-tokens", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--peak-flops", type=float, help="peak FLOP/s for MFU (default: known GPU table)")
    args = parser.parse_args()

    config = parse_config(
        {
            "name": "bench",
            "budgets": [1.0],
            "model": {"sizes": args.sizes, "seq_len": args.seq_len},
            "training": {"batch_tokens": args.batch_tokens, "device": args.device, "compile": args.compile,
                         "eval_points": 1, "eval_tokens": args.seq_len, "log_every_steps": 10, "min_steps": 1},
            "resources": {"cpus_per_worker": args.threads},
        }
    )  # fmt: skip
    corpus = load_corpus(config.data)
    device = resolve_device(args.device)
    peak = args.peak_flops or peak_flops(device)
    template = plan_sweep(config.model_copy(update={"budgets": [1e30]}), corpus.vocab_size, corpus.fingerprint).runs
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else f'cpu, {args.threads} thread(s)'}; "
          f"seq_len {args.seq_len}, batch {args.batch_tokens} tokens, {args.steps} steps per measurement")  # fmt: skip
    print(f"{'N (non-emb)':>12}{'shape':>12}{'tokens/s':>12}{'TFLOP/s':>10}{'MFU':>8}{'math-SDPA tok/s':>17}{'ratio':>7}")
    for spec in template:
        spec = replace(spec, steps=args.steps, tokens=args.steps * spec.batch_tokens, eval_steps=(args.steps,), warmup_steps=1)
        rate = measure(spec)
        with sdpa_kernel(SDPBackend.MATH):
            baseline = measure(spec)
        achieved = rate * spec.flops_per_token_6n_attention
        mfu = f"{achieved / peak:.1%}" if peak else "-"
        shape = f"{spec.n_layer}x{spec.d_model}/{spec.n_head}"
        print(f"{spec.n_params_nonembedding:>12,}{shape:>12}{rate:>12,.0f}{achieved / 1e12:>10.4f}{mfu:>8}{baseline:>17,.0f}{rate / baseline:>7.2f}")


if __name__ == "__main__":
    main()
