"""Writes ``tests/configs/malformed/``: one sweep file per mistake, each starting with ``# expect: TEXT``, the text
its error must contain (the key it names), and ``expect.json`` mapping every file to it (a UTF-16 file cannot
carry a readable header). Run it to regenerate the corpus after changing a case:

    python tests/configs/make_malformed.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent / "malformed"

BASE = {
    "name": "name: bad",
    "budgets": "budgets: [2e9, 4e9]",
    "model": "model:\n  sizes: [3e3, 8e3]\n  seq_len: 32\n  head_dim: 8\n  aspect_ratio: 16",
    "training": "training:\n  batch_tokens: 256\n  eval_points: 2\n  eval_tokens: 2048\n  min_steps: 5\n  log_every_steps: 5",
}


def config(**sections: str | None) -> str:
    """The base sweep with whole sections replaced (None: left out); extra sections appended."""
    parts = {**BASE, **sections}
    return "\n".join(text for text in parts.values() if text is not None) + "\n"


def training(*lines: str) -> str:
    return BASE["training"] + "".join(f"\n  {line}" for line in lines)


def model(*lines: str, sizes: str = "[3e3, 8e3]") -> str:
    return f"model:\n  sizes: {sizes}\n  seq_len: 32\n  head_dim: 8\n  aspect_ratio: 16" + "".join(f"\n  {line}" for line in lines)


def section(name: str, *lines: str) -> str:
    return f"{name}:" + "".join(f"\n  {line}" for line in lines)


CASES: list[tuple[str, str, str | bytes]] = [
    # The file itself
    ("empty file", "holds no keys", ""),
    ("only a comment", "holds no keys", "# nothing here\n"),
    ("a list at the top", "expected a mapping", "- name: bad\n"),
    ("a word at the top", "expected a mapping", "hello\n"),
    ("latin-1 bytes", "not UTF-8", config(name="name: caf\xe9").encode("latin-1")),
    ("UTF-16 with a BOM", "not UTF-8", config().encode("utf-16")),
    ("a tab for indentation", "malformed/007-a-tab-for-indentation.yaml:6:1", config(model="model:\n\tsizes: [3e3]\n")),
    ("an unclosed bracket", "not valid YAML", config(budgets="budgets: [2e9, 4e9")),
    ("an unclosed quote", "not valid YAML", config(name='name: "bad')),
    ("a value where a key belongs", "not valid YAML", config(name="name: bad: worse")),
    ("two documents", "not valid YAML", config() + "---\n" + config()),
    ("a python tag", "not valid YAML", config(name="name: !!python/object/apply:os.system ['echo hi']")),
    ("an alias bomb", "values once aliases are expanded",
     config() + "bomb:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n  f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"),
    ("a duplicate top-level key", "budgets: duplicate key", config() + "budgets: [1e9]\n"),
    ("a duplicate nested key", "training.batch_tokens: duplicate key", config(training=training("batch_tokens: 512"))),
    ("a duplicate key in model", "model.seq_len: duplicate key", config(model=model("seq_len: 64"))),
    ("a duplicate key in a shape", "model.shapes.0.n_layer: duplicate key",
     config(model=model("shapes:\n    - {n_layer: 2, d_model: 16, n_head: 2, n_layer: 3}"))),
    # name, budgets, convention, results
    ("no name", "name", config(name=None)),
    ("no budgets", "budgets", config(budgets=None)),
    ("no model", "model", config(model=None)),
    ("a name with a space", "name", config(name="name: has space")),
    ("a name climbing out", "name", config(name="name: ../elsewhere")),
    ("a name with a slash", "name", config(name="name: a/b")),
    ("a name starting with a dot", "name", config(name="name: .hidden")),
    ("a name of 101 characters", "name", config(name="name: " + "x" * 101)),
    ("a name that is a number", "name", config(name="name: 5")),
    ("a null name", "name", config(name="name: null")),
    ("no budget", "budgets", config(budgets="budgets: []")),
    ("a budget not in a list", "budgets", config(budgets="budgets: 1e9")),
    ("budgets as a mapping", "budgets", config(budgets="budgets: {small: 1e9}")),
    ("a boolean budget", "budgets.0", config(budgets="budgets: [true]")),
    ("an infinite budget", "budgets.0", config(budgets="budgets: [.inf]")),
    ("a NaN budget", "budgets.1", config(budgets="budgets: [2e9, .nan]")),
    ("a negative budget", "budgets.0", config(budgets="budgets: [-1e9]")),
    ("a zero budget", "budgets.0", config(budgets="budgets: [0]")),
    ("a budget of 1e300", "budgets.0", config(budgets="budgets: [1e300]")),
    ("a budget in words", "budgets.0", config(budgets="budgets: [lots]")),
    ("a null budget", "budgets.0", config(budgets="budgets: [null]")),
    ("a budget past the horizon", "training.max_steps", config(budgets="budgets: [1e20]")),
    ("an unknown convention", "flops_convention", config(flops_convention="flops_convention: 7N")),
    ("a numeric convention", "flops_convention", config(flops_convention="flops_convention: 6")),
    ("an unknown top-level key", "surprise", config(surprise="surprise: 1")),
    ("a results root that is a number", "results", config(results="results: 5")),
    ("a results root with a newline", "results", config(results='results: "a\\nb"')),
    # model
    ("an infinite size", "model.sizes.0", config(model=model(sizes="[.inf]"))),
    ("a zero size", "model.sizes.0", config(model=model(sizes="[0]"))),
    ("a size of 1e14", "model.sizes.1", config(model=model(sizes="[3e3, 1e14]"))),
    ("a boolean size", "model.sizes.0", config(model=model(sizes="[yes]"))),
    ("sizes as text", "model.sizes", config(model=model(sizes="big"))),
    ("no sizes and no shapes", "model", config(model="model:\n  seq_len: 32")),
    ("a model that is a list", "model", config(model="model: [3e3]")),
    ("a context of 1", "model.seq_len", config(model="model:\n  sizes: [3e3]\n  seq_len: 1")),
    ("a fractional context", "model.seq_len", config(model="model:\n  sizes: [3e3]\n  seq_len: 32.5")),
    ("a context of 2^21", "model.seq_len", config(model="model:\n  sizes: [3e3]\n  seq_len: 2097152")),
    ("a boolean context", "model.seq_len", config(model="model:\n  sizes: [3e3]\n  seq_len: true")),
    ("a zero aspect ratio", "model.aspect_ratio", config(model="model:\n  sizes: [3e3]\n  seq_len: 32\n  aspect_ratio: 0")),
    ("an infinite aspect ratio", "model.aspect_ratio", config(model="model:\n  sizes: [3e3]\n  seq_len: 32\n  aspect_ratio: .inf")),
    ("a zero head size", "model.head_dim", config(model="model:\n  sizes: [3e3]\n  seq_len: 32\n  head_dim: 0")),
    ("an unknown model key", "model.depth", config(model=model("depth: 4"))),
    ("heads that do not divide the width", "model.shapes.0", config(model=model("shapes:\n    - {n_layer: 2, d_model: 30, n_head: 4}"))),
    ("a shape without layers", "model.shapes.0.n_layer", config(model=model("shapes:\n    - {n_layer: 0, d_model: 16, n_head: 2}"))),
    ("a shape without heads", "model.shapes.0.n_head", config(model=model("shapes:\n    - {n_layer: 2, d_model: 16}"))),
    ("a shape with an unknown key", "model.shapes.0.width", config(model=model("shapes:\n    - {n_layer: 2, d_model: 16, n_head: 2, width: 3}"))),
    ("a shape of 5000 layers", "model.shapes.0.n_layer", config(model=model("shapes:\n    - {n_layer: 5000, d_model: 16, n_head: 2}"))),
    ("a shape with a boolean width", "model.shapes.0.d_model", config(model=model("shapes:\n    - {n_layer: 2, d_model: true, n_head: 1}"))),
    # data
    ("an unknown data source", "data.source", config(data=section("data", "source: web"))),
    ("tokens without a path", "data.path", config(data=section("data", "source: tokens", "vocab_size: 50"))),
    ("tokens without a vocabulary", "data.vocab_size", config(data=section("data", "source: tokens", "path: x.bin"))),
    ("a path for the stdlib corpus", "data.path", config(data=section("data", "path: x.bin"))),
    ("a vocabulary of 1", "data.vocab_size", config(data=section("data", "source: tokens", "path: x.bin", "vocab_size: 1"))),
    ("a stdlib vocabulary of 300", "data.vocab_size", config(data=section("data", "vocab_size: 300"))),
    ("an int64 dtype", "data.dtype", config(data=section("data", "source: tokens", "path: x.bin", "vocab_size: 50", "dtype: int64"))),
    ("a vocabulary too large for uint16", "data.vocab_size",
     config(data=section("data", "source: tokens", "path: x.bin", "vocab_size: 70000", "dtype: uint16"))),
    ("a vocabulary too large for uint8", "data.vocab_size",
     config(data=section("data", "source: tokens", "path: x.bin", "vocab_size: 257", "dtype: uint8"))),
    ("half held out", "data.val_fraction", config(data=section("data", "val_fraction: 0.5"))),
    ("nothing held out", "data.val_fraction", config(data=section("data", "val_fraction: 0"))),
    ("a boolean held-out fraction", "data.val_fraction", config(data=section("data", "val_fraction: true"))),
    ("an unknown data key", "data.shuffle", config(data=section("data", "shuffle: true"))),
    ("a path with a NUL", "data.path", config(data=section("data", "source: tokens", 'path: "a\\0b"', "vocab_size: 50"))),
    # training
    ("a batch that splits a sequence", "training.batch_tokens", config(training=training("batch_tokens: 100"))),
    ("a batch of 0", "training.batch_tokens", config(training=training("batch_tokens: 0"))),
    ("a boolean batch", "training.batch_tokens", config(training=training("batch_tokens: true"))),
    ("a batch of 2^41", "training.batch_tokens", config(training=training("batch_tokens: 2199023255552"))),
    ("a batch in words", "training.batch_tokens", config(training=training("batch_tokens: many"))),
    ("a zero learning rate", "training.lr", config(training=training("lr: 0"))),
    ("a negative learning rate", "training.lr", config(training=training("lr: -0.001"))),
    ("a boolean learning rate", "training.lr", config(training=training("lr: false"))),
    ("a learning rate of 100", "training.lr", config(training=training("lr: 100"))),
    ("a fixed rate under the kaplan rule", "training.lr", config(training=training("lr: 0.001", "lr_rule: kaplan"))),
    ("the fixed rule without a rate", "training.lr", config(training=training("lr_rule: fixed"))),
    ("an unknown LR rule", "training.lr_rule", config(training=training("lr_rule: cosine"))),
    ("power-law constants without the rule", "training.lr_power", config(training=training("lr_power: {coefficient: 0.001}"))),
    ("a NaN power-law exponent", "training.lr_power.exponent", config(training=training("lr_rule: power", "lr_power: {exponent: .nan}"))),
    ("an unknown batch rule", "training.batch_rule", config(training=training("batch_rule: linear"))),
    ("batch constants without the rule", "training.batch_power", config(training=training("batch_power: {exponent: 0.5}"))),
    ("a fixed batch under the power rule", "training.batch_tokens", config(training=training("batch_rule: power"))),
    ("a negative warm-up", "training.warmup_tokens", config(training=training("warmup_tokens: -5"))),
    ("a warm-up in words", "training.warmup_tokens", config(training=training("warmup_tokens: half"))),
    ("a boolean warm-up", "training.warmup_tokens", config(training=training("warmup_tokens: true"))),
    ("two warm-ups", "training.warmup_tokens", config(training=training("warmup_tokens: 1000", "warmup_fraction: 0.1"))),
    ("a warm-up of the whole run", "training.warmup_fraction", config(training=training("warmup_fraction: 1.0"))),
    ("an unknown beta2 rule", "training.beta2_rule", config(training=training("beta2_rule: decay"))),
    ("a beta2 reference without the rule", "training.beta2_reference_batch_tokens",
     config(training=training("beta2_reference_batch_tokens: 512"))),
    ("half-life under the batch power rule without a reference", "training.beta2_reference_batch_tokens",
     config(training="training:\n  batch_rule: power\n  beta2_rule: half_life\n  eval_points: 2\n  min_steps: 5\n  log_every_steps: 5")),
    ("a final LR above the peak", "training.min_lr_ratio", config(training=training("min_lr_ratio: 1.5"))),
    ("a negative weight decay", "training.weight_decay", config(training=training("weight_decay: -0.1"))),
    ("beta1 of 1", "training.beta1", config(training=training("beta1: 1.0"))),
    ("a yes for beta2", "training.beta2", config(training=training("beta2: yes"))),
    ("a zero clip", "training.grad_clip", config(training=training("grad_clip: 0"))),
    ("an infinite clip", "training.grad_clip", config(training=training("grad_clip: .inf"))),
    ("no seeds", "training.seeds", config(training=training("seeds: []"))),
    ("a seed of 2^70", "training.seeds.0", config(training=training("seeds: [1180591620717411303424]"))),
    ("a seed of 2^63", "training.seeds.1", config(training=training("seeds: [0, 9223372036854775808]"))),
    ("a negative seed", "training.seeds.0", config(training=training("seeds: [-1]"))),
    ("a fractional seed", "training.seeds.0", config(training=training("seeds: [0.5]"))),
    ("a boolean seed", "training.seeds.0", config(training=training("seeds: [true]"))),
    ("a seed not in a list", "training.seeds", config(training=training("seeds: 3"))),
    ("zero minimum steps", "training.min_steps", config(training=training("min_steps: 0"))),
    ("zero maximum steps", "training.max_steps", config(training=training("max_steps: 0"))),
    ("logging every 0 steps", "training.log_every_steps", config(training=training("log_every_steps: 0"))),
    ("checkpoints off the logging grid", "training.checkpoint_every_steps", config(training=training("checkpoint_every_steps: 7"))),
    ("negative checkpoint interval", "training.checkpoint_every_steps", config(training=training("checkpoint_every_steps: -5"))),
    ("no evaluations", "training.eval_points", config(training=training("eval_points: 0"))),
    ("no evaluation tokens", "training.eval_tokens", config(training=training("eval_tokens: 0"))),
    ("a TPU", "training.device", config(training=training("device: tpu"))),
    ("compile as 1", "training.compile", config(training=training("compile: 1"))),
    ("compile as the text yes", "training.compile", config(training=training('compile: "yes"'))),
    ("fp16", "training.precision", config(training=training("precision: fp16"))),
    ("a micro-batch of 0", "training.micro_batch_tokens", config(training=training("micro_batch_tokens: 0"))),
    ("a micro-batch in words", "training.micro_batch_tokens", config(training=training("micro_batch_tokens: big"))),
    ("a micro-batch that splits a sequence", "training.micro_batch_tokens", config(training=training("micro_batch_tokens: 48"))),
    ("an unknown training key", "training.learning_rate", config(training=training("learning_rate: 0.1"))),
    ("training as a list", "training", config(training="training: [1, 2]")),
    # resources
    ("no workers", "resources.workers_per_run", config(resources=section("resources", "workers_per_run: 0"))),
    ("workers that cannot split the batch", "resources.workers_per_run", config(resources=section("resources", "workers_per_run: 3"))),
    ("no CPUs", "resources.cpus_per_worker", config(resources=section("resources", "cpus_per_worker: 0"))),
    ("negative GPUs", "resources.gpus_per_worker", config(resources=section("resources", "gpus_per_worker: -1"))),
    ("boolean GPUs", "resources.gpus_per_worker", config(resources=section("resources", "gpus_per_worker: true"))),
    ("negative retries", "resources.max_retries", config(resources=section("resources", "max_retries: -1"))),
    ("no concurrent runs", "resources.max_concurrent_runs", config(resources=section("resources", "max_concurrent_runs: 0"))),
    ("no placement time", "resources.placement_timeout_seconds", config(resources=section("resources", "placement_timeout_seconds: 0"))),
    ("infinite GPU memory", "resources.gpu_memory_gb", config(resources=section("resources", "gpu_memory_gb: .inf"))),
    ("a negative peak", "resources.peak_flops", config(resources=section("resources", "peak_flops: -1"))),
    ("a by-size rule below zero", "resources.by_size.0.min_params", config(resources=section("resources", "by_size: [{min_params: -1}]"))),
    ("a by-size rule without a size", "resources.by_size.0.min_params", config(resources=section("resources", "by_size: [{workers_per_run: 2}]"))),
    ("no assumed FLOP rate", "resources.assumed_flops_per_second", config(resources=section("resources", "assumed_flops_per_second: 0"))),
    ("an unknown resources key", "resources.gpus", config(resources=section("resources", "gpus: 8"))),
    # tracking (credentials must come from the environment; the error never repeats the URI)
    ("a tracking URI with a password", "tracking.mlflow.tracking_uri: holds credentials",
     config(tracking=section("tracking", "mlflow:", "  tracking_uri: https://alice:hunter2-secret@mlflow.example:5000"))),
    ("a tracking URI with a token parameter", "tracking.mlflow.tracking_uri: holds credentials",
     config(tracking=section("tracking", "mlflow:", "  tracking_uri: https://mlflow.example/?access_token=abcdefgh12345678"))),
    ("MLflow without a tracking URI", "tracking.mlflow.tracking_uri", config(tracking=section("tracking", "mlflow:", "  experiment: x"))),
    ("an empty experiment name", "tracking.mlflow.experiment",
     config(tracking=section("tracking", "mlflow:", "  tracking_uri: sqlite:///mlflow.db", '  experiment: ""'))),
    ("an unknown MLflow key", "tracking.mlflow.run_name",
     config(tracking=section("tracking", "mlflow:", "  tracking_uri: sqlite:///mlflow.db", "  run_name: x"))),
    ("an unknown tracker", "tracking.wandb", config(tracking=section("tracking", "wandb:", "  project: x"))),
    ("TensorBoard without a log directory", "tracking.tensorboard.log_dir", config(tracking=section("tracking", "tensorboard: {}"))),
    ("tracking as a word", "tracking", config(tracking="tracking: mlflow")),
]


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for old in HERE.glob("*.yaml"):
        old.unlink()
    expectations = {}
    for index, (title, expect, body) in enumerate(CASES, start=1):
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        header = f"# {title}\n# expect: {expect}\n".encode()
        content = body if isinstance(body, bytes) else body.encode()
        if isinstance(body, bytes) and body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            header = b""  # a UTF-16 file: its BOM must come first (its expectation is in expect.json only)
        name = f"{index:03d}-{slug}.yaml"
        (HERE / name).write_bytes(header + content)
        expectations[name] = expect
    (HERE / "expect.json").write_text(json.dumps(expectations, indent=1) + "\n")
    print(f"{len(CASES)} malformed sweep files in {HERE}")


if __name__ == "__main__":
    main()
