"""The real-size GPU sweep of issue 31, for tests of the plan's estimates and of ``sweep plan``'s text: 20 budgets
1e18-1e21 FLOPs (log-spaced) x 25 sizes 1e7-2.5e9 x 20 seeds = 10,000 runs of one H100 each, a 50k vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

VOCAB_SIZE = 50_000


def real_size_gpu_config(token_file: str | Path | None = None, **resources) -> dict:
    """The sweep as plain data; ``token_file``: its corpus (``write_token_file``), needed by ``sweep plan`` only."""
    config = {
        "name": "gpu-real-size",
        "budgets": [float(b) for b in np.logspace(18, 21, 20)],
        "model": {"sizes": [float(n) for n in np.logspace(7, np.log10(2.5e9), 25)], "seq_len": 2048},
        "training": {"batch_tokens": 2**20, "seeds": list(range(20)), "max_steps": 10**9},
        "resources": {"gpus_per_worker": 1, "gpu_name": "H100 SXM5", **resources},
    }
    if token_file is not None:
        config["data"] = {"source": "tokens", "path": str(token_file), "vocab_size": VOCAB_SIZE}
    return config


def write_token_file(path: Path, tokens: int = 1_100_000) -> Path:
    """A uint16 token file of random ids below ``VOCAB_SIZE``, one 2**20-token batch and a validation split long."""
    np.random.default_rng(0).integers(0, VOCAB_SIZE, tokens, dtype=np.uint16).tofile(path)
    return path
