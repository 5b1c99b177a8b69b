"""The sweep configuration: the YAML file a user writes, validated into frozen pydantic models.

The models here are the single source of truth for what a sweep file may say. Unknown keys and wrong types are
errors that name the key (``ConfigError``), which the CLI turns into one line and exit status 2. Values stay plain
data (numbers, names), so they travel to Ray workers and land in Parquet as columns.

Example (``sweep/configs/demo.yaml`` is a complete one)::

    name: my-sweep
    budgets: [1e11, 3e11, 1e12]          # training FLOPs per run
    model:
      sizes: [2e4, 5e4, 1e5, 2e5, 5e5]   # target non-embedding parameters, mapped by models.ladder
    training:
      batch_tokens: 2048
"""

from __future__ import annotations

import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import yaml
from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator,
)

from sweep.versions import git_commit


class ConfigError(ValueError):
    """A sweep file or command-line value is wrong; the message names the offending key."""


def cache_dir() -> Path:
    """This machine's cache (built corpora, local locks): ``$SWEEP_CACHE``, default ``~/.cache/scaling-sweep``."""
    return Path(os.environ.get("SWEEP_CACHE", Path.home() / ".cache" / "scaling-sweep"))


def resolved_precision(precision: str | None, on_cuda: bool) -> str | None:
    """``training.precision`` with ``auto`` resolved: bf16 on CUDA, fp32 elsewhere; other values as given. The one
    place the rule lives (training resolves it by its device, planning by the run's GPUs, MFU by the device name)."""
    if precision == "auto":
        return "bf16" if on_cuda else "fp32"
    return precision


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""Sweep names (and every value that becomes a folder name): no separators, no leading dot, no ``..``."""
MAX_BUDGET_FLOPS = 1e27
"""Largest budget accepted (FLOPs): above the largest training runs reported to date (~5e25) by a wide margin."""
MAX_PARAMS = 1e13
"""Largest model size accepted (parameters)."""
INT32_MAX, INT64_LIMIT = 2**31 - 1, 2**63
"""Bounds of the Parquet columns that integers land in (``sweep.results.storage``)."""


NAME_PLACEHOLDERS = ("date", "git_sha")
"""What a sweep name may hold in braces (``templated_name``)."""
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


def sweep_date() -> str:
    """``{date}`` of a sweep name: ``SWEEP_DATE`` (YYYY-MM-DD, for a schedule's own clock and for tests) or today in
    UTC."""
    given = os.environ.get("SWEEP_DATE")
    if given is not None:
        if not re.match(DATE_PATTERN, given):
            raise ValueError(f"{{date}}: SWEEP_DATE {given!r} is not a date YYYY-MM-DD")
        return given
    return datetime.now(timezone.utc).date().isoformat()


def templated_name(value: Any) -> Any:
    """A sweep name with its placeholders filled (``NAME_PLACEHOLDERS``); ``ValueError`` for an unknown one, or
    ``{git_sha}`` outside a git checkout."""
    if not isinstance(value, str) or "{" not in value and "}" not in value:
        return value
    fields = re.findall(r"\{([^{}]*)\}", value)
    unknown = [field for field in fields if field not in NAME_PLACEHOLDERS]
    if unknown or re.sub(r"\{[^{}]*\}", "", value).count("{") or re.sub(r"\{[^{}]*\}", "", value).count("}"):
        shown = f"{{{unknown[0]}}}" if unknown else "an unmatched brace"
        raise ValueError(f"{shown} is not a placeholder (a name may hold {{date}} and {{git_sha}})")
    values = {"date": sweep_date() if "date" in fields else ""}
    if "git_sha" in fields:
        commit = git_commit()
        if commit is None:
            raise ValueError("{git_sha} needs this package to run from a git checkout")
        values["git_sha"] = commit.replace("+", "-")
    return value.format(**values)


def check_name(value: str, key: str) -> str:
    """``value`` if it is a valid name (``NAME_PATTERN``, at most 100 characters), else ``ConfigError`` naming ``key``:
    for every value that becomes part of a path, e.g. ``--sweep``."""
    if not isinstance(value, str) or len(value) > 100 or not re.match(NAME_PATTERN, value) or ".." in value:
        raise ConfigError(f"{key}: {value!r} is not a valid name (letters, digits, '_', '.', '-'; no '/', no '..', "
                          "at most 100 characters, not starting with '.' or '-')")
    return value


_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
"""A number written as text: ASCII digits only, as YAML itself writes them."""


def _number(value: Any) -> Any:
    """A number for a float field: booleans are not numbers (YAML's ``yes``/``true`` would read as 1)."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    if isinstance(value, str):  # YAML 1.1 reads 1e11 (no dot) as a string
        if not _DECIMAL.fullmatch(value):  # float() would also take '٣٢', '1_000' and ' 7 '
            raise ValueError(f"expected a number, not the text {ascii(value)}")
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, not {value}")
    return value


def _integer(value: Any) -> Any:
    """An integer for an int field: no booleans; ``1e6`` (a string to YAML) or 2048.0 accepted when whole."""
    value = _number(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"expected a whole number, not {value!r}")
        return int(value)
    return value


def Number(**bounds: Any) -> Any:
    """A finite float with bounds (``gt``, ``ge``, ``lt``, ``le``); booleans and ``.inf``/``.nan`` rejected."""
    return Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False, **bounds)]


def Integer(**bounds: Any) -> Any:
    """A whole number with bounds; booleans rejected."""
    return Annotated[int, BeforeValidator(_integer), Field(**bounds)]


Flag = Annotated[bool, Field(strict=True)]
"""``true`` or ``false`` only (not 1, not the text "yes")."""
PathOrUri = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00\n\r]*$")]
"""A file path or URI: one line, no NUL."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShapeConfig(_Strict):
    """An explicit model shape, for users who want exact architectures instead of the ladder."""

    n_layer: Integer(ge=1, le=1000)
    """Transformer blocks (1 to 1,000)."""
    d_model: Integer(ge=1, le=2**17)
    """Residual width (at most 131,072)."""
    n_head: Integer(ge=1, le=4096)
    """Attention heads; must divide d_model."""

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "ShapeConfig":
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})")
        return self


class AutoSizesConfig(_Strict):
    """``model.sizes: auto``: each budget's sizes chosen where the budgets before it put the optimum
    (``sweep.planning.auto_sizes``)."""

    first: Annotated[list[Number(ge=1, le=MAX_PARAMS)], Field(min_length=2, max_length=2)]
    """The smallest budget's ladder: ``[smallest, largest]`` target sizes, a wide range since nothing is known yet."""
    first_points: Integer(ge=3, le=100) = 7
    """Sizes of the smallest budget, log-spaced over ``first``."""
    points: Integer(ge=3, le=100) = 5
    """Sizes of every larger budget, log-spaced about its predicted N_opt."""
    span: Number(gt=1, le=1e6) = 8.0
    """Largest over smallest size of a larger budget (8: from N_opt / sqrt(8) to N_opt x sqrt(8))."""
    exponent: Number(gt=0, lt=1) = 0.5
    """The a of N_opt ∝ C^a assumed until two budgets have an interior minimum (Chinchilla's 0.5)."""

    @model_validator(mode="after")
    def _first_is_a_range(self) -> "AutoSizesConfig":
        if not self.first[0] < self.first[1]:
            raise ValueError("model.auto_sizes.first: give [smallest, largest] with smallest < largest")
        return self


class ModelConfig(_Strict):
    """The model-size ladder: target sizes (mapped by ``models.ladder``), ``auto``, or explicit shapes."""

    sizes: Annotated[list[Number(ge=1, le=MAX_PARAMS)], Field(max_length=1000)] | Literal["auto"] = []
    """Target parameter counts (1 to 1e13; counted as ``size_params`` says); each becomes one ladder rung. ``auto``: each budget its own
    sizes, centred where the finished smaller budgets put the optimum (``auto_sizes``)."""
    auto_sizes: AutoSizesConfig | None = None
    """How ``sizes: auto`` chooses (required with it, and only used with it)."""
    shapes: Annotated[list[ShapeConfig], Field(max_length=1000)] = []
    """Explicit shapes, used as given (in addition to ``sizes``)."""
    seq_len: Integer(ge=2, le=2**20) = 128
    """Context length in tokens (2 to 1,048,576)."""
    aspect_ratio: Number(gt=0, le=10_000) = 32.0
    """Ladder rule: d_model ~= aspect_ratio * n_layer."""
    head_dim: Integer(ge=1, le=4096) = 16
    """Ladder rule: attention head size; d_model is snapped to a multiple of it."""
    size_params: Literal["nonembedding", "kaplan", "total"] = "nonembedding"
    """Which parameter count ``sizes`` are targets for (``models.ladder``): ``nonembedding`` (blocks, final norm and
    the untied output head; the default), ``kaplan`` (blocks and final norm only, Kaplan et al.'s N) or ``total``
    (embeddings too). At a 50k vocabulary the head is most of a small model, so the choice moves every rung."""

    @model_validator(mode="after")
    def _has_a_size(self) -> "ModelConfig":
        if not self.sizes and not self.shapes:
            raise ValueError("give at least one entry in model.sizes or model.shapes")
        if self.sizes == "auto" and self.auto_sizes is None:
            raise ValueError("model.auto_sizes: required by model.sizes auto (at least first: [smallest, largest])")
        if self.sizes != "auto" and self.auto_sizes is not None:
            raise ValueError("model.auto_sizes: only used with model.sizes auto")
        if self.sizes == "auto" and self.shapes:
            raise ValueError("model.shapes: explicit shapes cannot be combined with model.sizes auto")
        return self

    @property
    def fixed_sizes(self) -> list[float]:
        """``sizes`` as a list (empty under ``auto``)."""
        return [] if self.sizes == "auto" else list(self.sizes)


TOKEN_IDS = {"uint8": 2**8, "uint16": 2**16, "uint32": 2**32}
"""How many token ids a raw file of each ``data.dtype`` can hold."""


class DataConfig(_Strict):
    """Training data: the bundled offline corpus or token files (one, or shards; ``sweep.training.shards``)."""

    source: Literal["stdlib", "tokens"] = "stdlib"
    """``stdlib``: the running interpreter's standard-library sources, byte-level (vocab 256), built offline.
    ``tokens``: token files read through memmaps (``path``)."""
    path: PathOrUri | None = None
    """Token files (``source: tokens``): a file (nanoGPT's ``train.bin``), a directory (its ``.bin`` and ``.npy``
    files) or a glob (``data/fineweb_train_*.bin``), read in name order. Each file is a raw file of ``dtype`` ids, an
    llm.c / modded-nanogpt shard (its 256-int32 header gives dtype and count) or a 1-D integer ``.npy`` array. Or the
    same in an object store (``s3://bucket/web/train-*.npy``, ``gs://...``; credentials from each node's environment,
    never in the URI), copied once per node into ``$SWEEP_CACHE/remote`` (``sweep.training.remote``)."""
    val_path: PathOrUri | None = None
    """Optional validation token files, given as ``path`` is and sharing no file with it; without it the last
    ``val_fraction`` of ``path``'s tokens (in file order: the tail of the last file or files) is held out."""
    dtype: Literal["uint8", "uint16", "uint32"] = "uint16"
    """Token id type of raw files in ``path`` and ``val_path`` (llm.c and ``.npy`` files carry their own)."""
    vocab_size: Integer(ge=2, le=2**32) | None = None
    """Vocabulary size of a token file (required for ``source: tokens``; 256 for ``stdlib``); with raw files, at most
    what ``dtype`` holds (256 for uint8, 65,536 for uint16); llm.c and ``.npy`` files carry their own dtype."""
    val_fraction: Number(gt=0, lt=0.5) = 0.01
    """Fraction of the corpus held out for validation when there is no ``val_path``."""

    @field_validator("path", "val_path")
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        """An object-store URI (``sweep.training.remote``) travels to every worker and into stored configs."""
        return None if value is None else _refuse_credentials(value, _STORE_CREDENTIALS)

    @model_validator(mode="after")
    def _token_file_is_complete(self) -> "DataConfig":
        if self.source == "tokens":
            if self.path is None:
                raise ValueError("data.path is required when data.source is 'tokens'")
            if self.vocab_size is None:
                raise ValueError("data.vocab_size is required when data.source is 'tokens'")
        elif self.path is not None or self.val_path is not None:
            raise ValueError("data.path and data.val_path are only for data.source 'tokens'")
        elif self.vocab_size not in (None, 256):
            raise ValueError("the stdlib corpus is byte-level: data.vocab_size must be 256 or left out")
        largest = TOKEN_IDS[self.dtype]
        if "dtype" in self.model_fields_set and self.vocab_size is not None and self.vocab_size > largest:
            raise ValueError(f"data.vocab_size ({self.vocab_size:,}) is more than data.dtype {self.dtype} can hold ({largest:,} ids)")
        return self  # dtype left at its default: refused only where raw files are read (training/data.py)


class LrPowerRule(_Strict):
    """``training.lr_rule: power``: peak LR = coefficient * (N / reference_params) ** exponent, times ``lr_scale``.

    N is the run's non-embedding parameter count. The defaults are OLMo-core's model ladder (which takes them from
    Porian et al. 2024): 0.0047 at 108M, falling as N^(-1/3)."""

    coefficient: Number(gt=0, le=10) = 0.0047
    """Peak learning rate at N = ``reference_params``."""
    reference_params: Number(gt=0, le=MAX_PARAMS) = 108e6
    """Non-embedding parameters at which the rate equals ``coefficient``."""
    exponent: Number(ge=-10, le=10) = -1 / 3
    """Power of N / reference_params (negative: larger models train at lower rates)."""


class BatchPowerRule(_Strict):
    """``training.batch_rule: power``: batch tokens = coefficient_tokens * (N / reference_params) ** exponent.

    The defaults are OLMo-core's model ladder (after Porian et al. 2024): 160 sequences of 2,048 tokens at 108M
    non-embedding parameters, growing as N^(2/3)."""

    coefficient_tokens: Number(gt=0, le=2**40) = 2048 * 160
    """Batch size in tokens at N = ``reference_params``."""
    reference_params: Number(gt=0, le=MAX_PARAMS) = 108e6
    """Non-embedding parameters at which the batch equals ``coefficient_tokens``."""
    exponent: Number(ge=-10, le=10) = 2 / 3
    """Power of N / reference_params."""


class TunedLrRule(_Strict):
    """``training.lr_tuned``: the learning-rate rule a ``sweep tune`` study fitted (``sweep.tuning.rule``), read from
    the table it wrote: peak LR = coefficient * (N / reference_params) ** exponent, times ``lr_scale``. Every run
    records the rate it resolved to and the study (``lr_study``)."""

    study: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    """The study the rule came from; must be the one the table names."""
    file: PathOrUri
    """The rule table ``sweep tune`` wrote (``RESULTS/tune/rules/STUDY.json``, or a copy kept beside the sweep
    file); a relative path is taken from the sweep file's directory. Plain JSON, never executed."""
    coefficient: float = 0.0
    reference_params: float = 1.0
    exponent: float = 0.0
    """Read from ``file`` (a sweep file gives only ``study`` and ``file``)."""

    @model_validator(mode="before")
    @classmethod
    def _read_table(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        if not isinstance(data.get("file"), str) or not isinstance(data.get("study"), str):
            return data  # the field checks name what is missing
        base = Path((info.context or {}).get("base_dir", "."))
        table = read_tuned_rule(base / data["file"], data["study"])
        differ = sorted(key for key in table if key in data and data[key] != table[key])
        if differ:  # a dumped config validated again carries the table's own values, which is fine
            raise ValueError(f"{', '.join(differ)}: read from the rule table {data['file']} (give only study and file)")
        return {**data, "file": str(base / data["file"]), **table}


def read_tuned_rule(path: Path, study: str) -> dict[str, float]:
    """The power law of a rule table written by ``sweep tune`` (``sweep.tuning.rule.RuleFit.to_dict``): its
    coefficient, reference size and exponent, checked; ``ValueError`` names the file and what is wrong."""
    import json

    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the rule table {path}: {getattr(error, 'strerror', None) or error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a rule table (not JSON: {error.msg} at line {error.lineno})") from None
    law = table.get("lr_rule") if isinstance(table, dict) else None
    if not isinstance(law, dict) or table.get("kind") != "sweep-tune-rule":
        raise ValueError(f"{path} is not a rule table written by sweep tune (no kind sweep-tune-rule with an lr_rule)")
    if table.get("study") != study:
        raise ValueError(f"{path} holds the rule of study {table.get('study')!r}, not {study!r}")
    values = {key: law.get(key) for key in ("coefficient", "reference_params", "exponent")}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{path}: lr_rule.{key} is not a finite number ({value!r})")
    if not (0 < values["coefficient"] <= 10 and values["reference_params"] > 0 and -10 <= values["exponent"] <= 10):
        raise ValueError(f"{path}: lr_rule out of bounds (coefficient in (0, 10], reference_params > 0, |exponent| <= 10)")
    return {key: float(value) for key, value in values.items()}


class TrainingConfig(_Strict):
    """Training rules shared by every run of the sweep."""

    batch_tokens: Integer(ge=1, le=2**40) = 2048
    """Tokens per optimizer step (a multiple of model.seq_len) for ``batch_rule: fixed``; each run's workers must split
    its sequences evenly."""
    lr: Number(gt=0, le=10) | None = None
    """Peak learning rate for every run (``lr_rule: fixed``); leave out for a per-size rule (``sweep.planning.rules``)."""
    lr_scale: Number(gt=0, le=1000) = 1.0
    """Multiplier on the per-size rule (``kaplan`` or ``power``); a fixed ``lr`` is used as given."""
    # Per-size rules (sweep/planning/rules.py resolves them for each run; docs/rules.md derives and cites them).
    lr_rule: Literal["kaplan", "power", "fixed", "tuned"] | None = None
    """Peak LR by size: ``kaplan`` (Kaplan et al. 2020, eq. D.1), ``power`` (``lr_power``: OLMo-core's ladder, after
    Porian et al. 2024), ``fixed`` (``lr``) or ``tuned`` (``lr_tuned``: the power law a ``sweep tune`` study
    fitted). Left out: ``fixed`` when ``lr`` is given, else ``kaplan``."""
    lr_power: LrPowerRule = LrPowerRule()
    """The ``power`` LR rule's constants (only with ``lr_rule: power``)."""
    lr_tuned: TunedLrRule | None = None
    """The ``tuned`` rule's study and table (required by, and only with, ``lr_rule: tuned``)."""
    batch_rule: Literal["fixed", "power"] = "fixed"
    """Tokens per step: ``fixed`` (``batch_tokens`` for every run) or ``power`` (``batch_power``, rounded to whole
    sequences and to a multiple of the run's workers)."""
    batch_power: BatchPowerRule = BatchPowerRule()
    """The ``power`` batch rule's constants (only with ``batch_rule: power``)."""
    warmup_tokens: Literal["params"] | Integer(ge=0, lt=INT64_LIMIT) | None = None
    """Warm-up length in tokens instead of ``warmup_fraction``: a count, or ``params`` for as many tokens as the run's
    non-embedding parameters (Porian et al. 2024; OLMo-core's ladder). Rounded to whole steps, below the run's steps."""
    beta2_rule: Literal["fixed", "half_life"] = "fixed"
    """AdamW beta2 by batch: ``fixed`` (``beta2`` for every run) or ``half_life``: beta2 ** (B / B_ref), which keeps the
    second moment's half-life in tokens constant across batch sizes B (Marek et al. 2025)."""
    beta2_reference_batch_tokens: Integer(ge=1, le=2**40) | None = None
    """B_ref of ``half_life``: the batch (tokens) at which ``beta2`` holds. Default ``batch_tokens`` with
    ``batch_rule: fixed``; required with ``batch_rule: power``."""
    warmup_fraction: Number(ge=0, lt=1) = 0.05
    """Linear warm-up length as a fraction of the run's steps (or give ``warmup_tokens`` instead, not both)."""
    min_lr_ratio: Number(ge=0, le=1) = 0.1
    """The decay ends at this fraction of the peak (Chinchilla's cosine decays 10x; Hägele et al.'s cooldowns go to
    0)."""
    schedule: Literal["cosine", "wsd", "wsds"] = "cosine"
    """``cosine``: every (budget, size, seed) its own run, warm-up then cosine over its steps. ``wsd``
    (warmup-stable-decay, Hägele et al. 2024): per (size, seed) one trunk at the constant peak rate after warm-up,
    and per budget a readout that branches off the trunk's checkpoint at (1 - cooldown_fraction) of its steps and
    decays over the rest: one run's worth of constant-rate training serves every budget. ``wsds`` (OLMo's WSD-S):
    per (size, seed) one continuous run that decays over the last ``cooldown_fraction`` of each stretch between
    two budgets' horizons, is read out at the bottom of each decay and returns to the peak: no branches, so the
    cheapest, but a readout has the earlier decays behind it, unlike a standalone run (``sweep.planning.plan``)."""
    cooldown_fraction: Number(gt=0, lt=1) = 0.2
    """``wsd``: the share of each readout's steps spent decaying (Hägele et al. 2024 find 20% matches cosine);
    ``wsds``: the share of each stretch since the previous readout."""
    cooldown_shape: Literal["linear", "1-sqrt"] = "1-sqrt"
    """``wsd``, ``wsds``: the decay's shape from the peak to ``min_lr_ratio``: linear, or 1 - sqrt(progress), which Hägele et al.
    2024 find better."""
    weight_decay: Number(ge=0, le=10) = 0.1
    """AdamW decoupled weight decay on matrices (not on LayerNorm weights or embeddings)."""
    beta1: Number(ge=0, lt=1) = 0.9
    beta2: Number(ge=0, lt=1) = 0.95
    """AdamW second-moment decay (at ``beta2_reference_batch_tokens`` under ``beta2_rule: half_life``)."""
    grad_clip: Number(gt=0, le=1e6) | None = 1.0
    """Global gradient-norm clip; null disables clipping."""
    seeds: Annotated[list[Integer(ge=0, lt=INT64_LIMIT)], Field(min_length=1, max_length=1000)] = [0]
    """One run per seed for every (budget, size); 0 <= seed < 2**63. A repeated seed is planned once (with a warning)."""
    min_steps: Integer(ge=1, le=10**9) = 20
    """Runs whose budget buys fewer optimizer steps are left out of the plan (and reported)."""
    max_steps: Integer(ge=1, le=10**10) = 1_000_000
    """The horizon: a run whose budget buys more optimizer steps than this is refused (exit 2), since a typo in a
    budget (``1e30`` for ``1e20``) would otherwise train for months. Raise it for a sweep that means it."""
    log_every_steps: Integer(ge=1, le=10**9) = 10
    """A metrics row every this many steps (and at the last step)."""
    checkpoint_every_steps: Integer(ge=0, le=10**9) = 500
    """Save the run's full state every this many steps (a multiple of log_every_steps; 0: never), so a killed
    worker or driver resumes the run instead of restarting it."""
    eval_points: Integer(ge=1, le=10_000) = 4
    """Validation-loss evaluations, evenly spaced; the last is at the end of training."""
    eval_tokens: Integer(ge=1, le=2**40) = 65536
    """Validation tokens per evaluation (a fixed slice of the held-out split)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` trains on CUDA when the worker has a GPU, else on CPU."""
    compile: Flag = False
    """``torch.compile`` the model (inductor; on CPU and CUDA)."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Matmul precision: ``bf16`` trains under bf16 autocast (master weights and optimizer states stay fp32), on
    CPU too; ``fp32`` trains in float32 (TF32 matmuls on CUDA); ``auto``: bf16 on CUDA, fp32 on CPU."""
    micro_batch_tokens: Literal["auto"] | Integer(ge=1, le=2**40) = "auto"
    """Tokens per forward/backward pass on one worker (a multiple of model.seq_len dividing the worker's share of
    the batch); gradients accumulate over the micro-batches of a step. ``auto``: the largest that fits the memory
    (see ``sweep.planning.memory``)."""


class SizeResources(_Strict):
    """Resources for the models at or above a size (``resources.by_size``)."""

    min_params: Number(ge=0, le=MAX_PARAMS)
    """Applies to models with at least this many non-embedding parameters."""
    workers_per_run: Integer(ge=1, le=4096) | None = None
    cpus_per_worker: Number(gt=0, le=4096) | None = None
    gpus_per_worker: Number(ge=0, le=64) | None = None


class ResourcesConfig(_Strict):
    """What each run asks Ray for."""

    workers_per_run: Integer(ge=1, le=4096) = 1
    """Training processes per run; more than one trains with PyTorch DDP through Ray Train (gloo on CPU, NCCL on
    GPU), its workers packed on one node where they fit. The global batch is split evenly across them."""
    cpus_per_worker: Number(gt=0, le=4096) = 1
    """CPUs per training process; on CPU it is also the process's torch thread count."""
    gpus_per_worker: Number(ge=0, le=64) = 0
    """GPUs per training process (0 on a CPU machine)."""
    by_size: Annotated[list[SizeResources], Field(max_length=100)] = []
    """Overrides by model size; for each run the entry with the largest ``min_params`` not above its N wins."""
    max_concurrent_runs: Integer(ge=1, le=10**6) | None = None
    """At most this many runs in flight (default: as many as Ray's resources allow)."""
    max_retries: Integer(ge=0, le=100) = 2
    """Ray retries of a run whose worker or node died; the retry resumes from the run's checkpoint."""
    placement_timeout_seconds: Number(gt=0, le=7 * 86400) = 900.0
    """How long a run that no node alive now can hold waits for Ray's autoscaler to add one (cloud nodes take
    minutes to boot). On timeout the run is recorded ``failed`` with its demand in the error, the sweep goes on, and
    ``sweep run`` exits 1. A run that no node can ever hold (embedded Ray, or a cluster without an autoscaler) is
    refused before any training starts instead (exit 2)."""

    def for_size(self, n_params: int) -> tuple[int, float, float]:
        """(workers, cpus per worker, gpus per worker) for a model of ``n_params`` non-embedding parameters."""
        workers, cpus, gpus = self.workers_per_run, self.cpus_per_worker, self.gpus_per_worker
        for rule in sorted(self.by_size, key=lambda r: r.min_params):
            if n_params >= rule.min_params:
                workers = rule.workers_per_run or workers
                cpus = rule.cpus_per_worker or cpus
                gpus = rule.gpus_per_worker if rule.gpus_per_worker is not None else gpus
        return workers, cpus, gpus
    gpu_memory_gb: Number(gt=0, le=10_000) | None = None
    """Memory per GPU in GiB, for the plan's memory check and ``training.micro_batch_tokens: auto`` (default: the
    device's free memory, read when the run starts)."""
    peak_flops: Number(gt=0, le=1e18) | None = None
    """Peak FLOP/s of one device at the run's precision, for MFU and time estimates (default: a table of known GPUs;
    none on CPU)."""
    gpu_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """The GPU the runs train on, for time estimates: a part of the peak table (``sweep.training.hardware``) by its
    datasheet name (``H100 SXM5``, ``A100 SXM4``) or as ``torch.cuda.get_device_name`` gives it (``NVIDIA H100 80GB
    HBM3``). Default: ``peak_flops`` if given, else this machine's GPU, else an A100 SXM4, said so by ``sweep plan``."""
    assumed_mfu: Number(gt=0, le=1) = 0.4
    """Share of a GPU's peak (``peak_flops`` or ``gpu_name``'s) that training sustains, for time estimates."""
    assumed_flops_per_second: Number(gt=0, le=1e18) | None = None
    """Sustained training FLOP/s per worker, for time estimates (``sweep plan``, scheduling order, time left); given,
    it holds for every run. Default: a GPU run the peak times ``assumed_mfu``, a CPU run 3e10
    (``sweep.planning.throughput``)."""
    assumed_seconds_per_step: Number(ge=0, le=3600) = 0.004
    """Fixed overhead per optimizer step for the same estimates (dominates for tiny models)."""

    @field_validator("gpu_name")
    @classmethod
    def _known_gpu(cls, value: str | None) -> str | None:
        from sweep.training.hardware import known_parts, named_accelerator  # the table; imported only when named

        if value is not None and named_accelerator(value) is None:
            raise ValueError(f"{value!r} is not a GPU of the peak table; known parts: {', '.join(known_parts())} "
                             "(or give resources.peak_flops)")
        return value


_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SECRET_WORDS = ("key", "secret", "token", "password", "credential")
"""Query parameters named with one of these carry a secret (as ``sweep.results.uri`` reads results roots)."""


_MLFLOW_CREDENTIALS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
_STORE_CREDENTIALS = ("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), an AWS profile, or "
                      "GOOGLE_APPLICATION_CREDENTIALS")


def _refuse_credentials(uri: str, variables: str = _MLFLOW_CREDENTIALS) -> str:
    """``uri`` unless it carries credentials: user information (an ``@`` before the query) or a query parameter
    named like a secret. ``file://`` and ``sqlite://`` URIs and plain paths are paths, where ``@`` is a character.
    The message never repeats the URI; it names the environment ``variables`` that carry credentials instead."""
    match = _URI_SCHEME.match(uri)
    if not match or match.group(1).lower() in ("file", "sqlite"):
        return uri
    location, _, query = uri[match.end():].partition("?")
    names = [name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)]
    if "@" in location or any(word in name for name in names for word in _SECRET_WORDS):
        raise ValueError(
            "holds credentials (user:password@ or a secret query parameter), which a sweep file must not: give them "
            f"to the workers' environment as {variables}"
        )
    return uri


class MlflowTracking(_Strict):
    """``tracking.mlflow``: each training run logged to MLflow as it trains (``sweep.training.tracking``; needs the
    ``tracking`` extra, ``pip install '.[tracking]'``)."""

    tracking_uri: PathOrUri
    """Where MLflow keeps the runs: an ``http://`` or ``https://`` tracking server, a ``sqlite:///`` database (four
    slashes before an absolute path), or a local directory (a path or ``file://`` URI: MLflow's file store, which
    MLflow 3 keeps in maintenance mode). A relative path is taken from the directory ``sweep run`` starts in; every
    node must reach it. Credentials never go here (a URI holding ``user:password@`` or a secret query parameter is
    refused): MLflow reads ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``
    from each worker's environment."""
    experiment: Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00\n\r]*$")] | None = None
    """The MLflow experiment the runs go to, created if missing; default: the sweep's name."""

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        return _refuse_credentials(value)


class TensorBoardTracking(_Strict):
    """``tracking.tensorboard``: each training run's metrics as TensorBoard event files (written with
    ``tensorboardX``, which Ray Train already installs; viewing them needs ``pip install tensorboard``)."""

    log_dir: PathOrUri
    """Directory of the event files, one folder per run: ``LOG_DIR/sweep=NAME/RUN_ID/``. A relative path is taken
    from the directory ``sweep run`` starts in; every node must reach it (a shared file system)."""


class TrackingConfig(_Strict):
    """Experiment trackers each training run is mirrored to while it trains; none by default. The results store
    stays the source of truth: a tracker that fails is turned off for that run with one warning, never failing or
    slowing the run."""

    mlflow: MlflowTracking | None = None
    """Log runs to MLflow: spec as params, loss, FLOPs, tokens and throughput as metrics by step, status as a tag."""
    tensorboard: TensorBoardTracking | None = None
    """Write the same metrics as TensorBoard scalars."""

    @property
    def enabled(self) -> bool:
        return self.mlflow is not None or self.tensorboard is not None


class _Range(_Strict):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> "_Range":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        return self


class LogRange(_Range):
    """A range searched log-uniformly (``low`` < ``high``)."""

    low: Number(gt=0, le=2**40)
    high: Number(gt=0, le=2**40)


class UnitRange(_Range):
    """A range in [0, 1) searched uniformly (``low`` < ``high``)."""

    low: Number(ge=0, lt=1)
    high: Number(ge=0, lt=1)


class TuneSpace(_Strict):
    """What each trial draws; the keys left out keep the sweep's own ``training`` values."""

    lr: LogRange = LogRange(low=1e-4, high=1e-1)
    """Peak learning rate, log-uniform (default 1e-4 to 1e-1)."""
    batch_tokens: Annotated[list[Integer(ge=1, le=2**40)], Field(min_length=2, max_length=100)] | None = None
    """Tokens per step to choose from (each a multiple of model.seq_len); a trial's horizon stays in tokens or
    FLOPs, so a larger batch trains fewer steps."""
    warmup_fraction: UnitRange | None = None
    """Warm-up as a fraction of the trial's steps, uniform."""
    beta2: UnitRange | None = None
    """AdamW beta2, uniform."""


class TuneHorizon(_Strict):
    """How long each trial trains: one budget for every size, or tokens in proportion to the size (give one)."""

    budget_flops: Number(gt=0, le=MAX_BUDGET_FLOPS) | None = None
    """Training FLOPs of every trial (under ``flops_convention``): an iso-FLOP tuning."""
    tokens_per_param: Number(gt=0, le=1e6) | None = None
    """Tokens per non-embedding parameter (Chinchilla's compute-optimal ratio is about 20)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> "TuneHorizon":
        if (self.budget_flops is None) == (self.tokens_per_param is None):
            raise ValueError("give exactly one of budget_flops and tokens_per_param")
        return self


class TuneConfig(_Strict):
    """``sweep tune``: per-size hyperparameter studies with Optuna, each trial a run trained by the orchestrator
    (``sweep.tuning``). The studies' best rates give a power law LR*(N) that ``training.lr_rule: tuned`` uses."""

    study: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)] | None = None
    """The study's name (default ``NAME-tune``): its trials are the runs of ``sweep=STUDY`` in the results, apart
    from the sweep's own runs, and its Optuna studies are ``STUDY.N<size>``."""
    sizes: Annotated[list[Number(ge=1, le=MAX_PARAMS)], Field(min_length=1, max_length=100)] | None = None
    """The sizes to tune, each one of ``model.sizes`` (default: all of them); a power law needs two or more."""
    horizon: TuneHorizon
    """Each trial's training length."""
    space: TuneSpace = TuneSpace()
    """The search space."""
    n_trials: Integer(ge=1, le=10_000) = 8
    """Trials per size (pruned ones count; failed ones are retried with a new trial)."""
    sampler: Literal["tpe", "gp", "cmaes", "random"] = "tpe"
    """Optuna's sampler: ``tpe`` (with constant liar for trials in parallel), ``gp`` (Gaussian process), ``cmaes``
    (needs the ``cmaes`` package; for one parameter Optuna falls back to random sampling) or ``random``."""
    pruner: Literal["none", "median", "hyperband"] = "median"
    """Stop unpromising trials early at their evaluation points: Optuna's ``MedianPruner`` (after 3 finished trials,
    from the evaluation at 3/4 of training: judged earlier, it prunes the low rates that catch up as a cosine decays)
    or ``HyperbandPruner`` (over the evaluation points, from the first), or ``none`` (``sweep.tuning.study``)."""
    eval_points: Integer(ge=1, le=1000) = 6
    """Validation-loss evaluations per trial, evenly spaced: the points the pruner judges at."""
    seed: Integer(ge=0, le=INT32_MAX) = 0
    """The samplers' seed (each size's study adds its index and, when resumed, its trials so far); trials train
    with ``training.seeds[0]``."""
    max_concurrent_trials: Integer(ge=1, le=10**6) | None = None
    """At most this many trials in flight (default: as many as the cluster's free resources hold)."""
    storage: PathOrUri | None = None
    """Where the Optuna studies live: a journal file path (default ``RESULTS/tune/studies/STUDY.journal``, which
    needs a local or shared-filesystem results root) or a ``sqlite:///`` URL. Required for an object-store results
    root (its trials' runs still go there)."""


class SweepConfig(_Strict):
    """A whole sweep: the grid of (budget x model size x seed) runs and how to train them."""

    name: Annotated[str, BeforeValidator(templated_name), Field(pattern=NAME_PATTERN, max_length=100)]
    """Sweep name: the Hive partition ``sweep=NAME`` of the results. It may hold ``{date}`` (today in UTC, or
    ``SWEEP_DATE``) and ``{git_sha}`` (the commit of this package's checkout, ``-dirty`` with local changes): a
    nightly sweep ``nightly-{date}`` trains anew each night and stays idempotent within one."""
    budgets: Annotated[list[Number(gt=0, le=MAX_BUDGET_FLOPS)], Field(min_length=1, max_length=1000)]
    """Training compute budgets in FLOPs (per run), under ``flops_convention``; each at most 1e27. A repeated budget
    is planned once (with a warning); a run longer than ``training.max_steps`` steps is refused."""
    flops_convention: Literal["6N", "6N+attention", "chinchilla"] = "6N+attention"
    """Which FLOP count sizes each run's token budget (all three are recorded; see ``models.accounting``)."""
    results: PathOrUri | None = None
    """Results directory or URI; the CLI's ``--results`` wins, then this, then ``./results``."""
    model: ModelConfig
    data: DataConfig = DataConfig()
    training: TrainingConfig = TrainingConfig()
    resources: ResourcesConfig = ResourcesConfig()
    tracking: TrackingConfig = TrackingConfig()
    """Experiment tracking (MLflow, TensorBoard); absent: none."""
    tune: TuneConfig | None = None
    """Hyperparameter tuning per size (``sweep tune``); ignored by ``sweep run``."""

    @property
    def study(self) -> str:
        """The tuning study's name (``tune.study``, default ``NAME-tune``)."""
        return (self.tune.study if self.tune and self.tune.study else None) or f"{self.name}-tune"

    @model_validator(mode="after")
    def _tune_fits_the_sweep(self) -> "SweepConfig":
        if self.tune is None:
            return self
        unknown = [size for size in self.tune.sizes or () if size not in self.model.fixed_sizes]
        if unknown and self.model.sizes != "auto":
            raise ValueError(f"tune.sizes: {', '.join(f'{size:g}' for size in unknown)} not in model.sizes")
        if self.tune.sizes is None and not self.model.fixed_sizes:
            raise ValueError("tune.sizes: the sweep has no model.sizes to tune")
        batches = self.tune.space.batch_tokens or ()
        if batches and self.training.batch_rule != "fixed":
            raise ValueError("tune.space.batch_tokens: searching the batch needs training.batch_rule fixed")
        for batch in batches:
            if batch % self.model.seq_len:
                raise ValueError(f"tune.space.batch_tokens: {batch} is not a multiple of model.seq_len ({self.model.seq_len})")
        if self.tune.space.warmup_fraction is not None and self.training.warmup_tokens is not None:
            raise ValueError("tune.space.warmup_fraction: contradicts training.warmup_tokens (leave one out)")
        if self.tune.space.beta2 is not None and self.training.beta2_rule != "fixed":
            raise ValueError("tune.space.beta2: searching beta2 needs training.beta2_rule fixed")
        if self.tune.study == self.name:
            raise ValueError("tune.study: must differ from the sweep's name (the trials are not the sweep's runs)")
        return self

    @model_validator(mode="after")
    def _batch_holds_whole_sequences(self) -> "SweepConfig":
        t = self.training
        if t.batch_rule == "fixed" and t.batch_tokens % self.model.seq_len:
            raise ValueError(f"training.batch_tokens ({t.batch_tokens}) must be a multiple of model.seq_len ({self.model.seq_len})")
        if t.checkpoint_every_steps % t.log_every_steps:
            raise ValueError(
                f"training.checkpoint_every_steps ({t.checkpoint_every_steps}) must be a multiple of training.log_every_steps ({t.log_every_steps})"
            )
        # Whether a run's workers split its batch evenly depends on the run's size (resources.for_size) and, under
        # batch_rule power, on its batch: sweep.planning.rules checks it for each run when the sweep is planned.
        return self

    @model_validator(mode="after")
    def _rules_fit_together(self) -> "SweepConfig":
        """Keys that contradict the rule they would feed are errors naming the key, not silently ignored."""
        t, given = self.training, self.training.model_fields_set
        if t.lr_rule == "fixed" and t.lr is None:
            raise ValueError("training.lr: required by training.lr_rule fixed")
        if t.lr_rule in ("kaplan", "power") and t.lr is not None:
            raise ValueError(f"training.lr: a fixed rate contradicts training.lr_rule {t.lr_rule} (leave one out)")
        if t.lr_rule == "tuned" and t.lr_tuned is None:
            raise ValueError("training.lr_tuned: required by training.lr_rule tuned (study and file)")
        if t.lr_tuned is not None and t.lr_rule != "tuned":
            raise ValueError("training.lr_tuned: only used with training.lr_rule tuned")
        if t.lr_rule == "tuned" and t.lr is not None:
            raise ValueError("training.lr: a fixed rate contradicts training.lr_rule tuned (leave one out)")
        if "lr_power" in given and t.lr_rule != "power":
            raise ValueError("training.lr_power: only used with training.lr_rule power")
        if "batch_power" in given and t.batch_rule != "power":
            raise ValueError("training.batch_power: only used with training.batch_rule power")
        if t.batch_rule == "power" and "batch_tokens" in given:
            raise ValueError("training.batch_tokens: batch_rule power sizes each run's batch (leave batch_tokens out)")
        if t.warmup_tokens is not None and "warmup_fraction" in given:
            raise ValueError("training.warmup_tokens: give the warm-up as warmup_fraction or warmup_tokens, not both")
        if self.model.sizes == "auto" and t.schedule != "cosine":
            raise ValueError(f"training.schedule: {t.schedule} needs a fixed ladder (model.sizes a list): with sizes auto a "
                             "size joins at a later budget, after its trunk was planned")
        if t.schedule == "cosine" and given & {"cooldown_fraction", "cooldown_shape"}:
            raise ValueError(f"training.{sorted(given & {'cooldown_fraction', 'cooldown_shape'})[0]}: only used with training.schedule wsd or wsds")
        if t.beta2_reference_batch_tokens is not None and t.beta2_rule != "half_life":
            raise ValueError("training.beta2_reference_batch_tokens: only used with training.beta2_rule half_life")
        if t.beta2_rule == "half_life" and t.batch_rule == "power" and t.beta2_reference_batch_tokens is None:
            raise ValueError("training.beta2_reference_batch_tokens: required by beta2_rule half_life with batch_rule power (the batch at which training.beta2 holds)")
        return self


def describe_validation_error(error: ValidationError) -> str:
    """One problem per key, each naming the dotted key. A value that fits no member of a union (``auto`` or a
    number) gets the message of the member it came closest to, with the words it could have been."""
    problems: dict[str, list[str]] = {}
    alternatives: dict[str, list[str]] = {}
    for item in error.errors():
        parts = [str(part) for part in item["loc"]]
        key = ".".join(part for part in parts if "[" not in part)  # union members are tagged like literal['auto']
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        if item["type"] == "literal_error" and any("[" in part for part in parts):
            alternatives.setdefault(key, []).append(message.removeprefix("Input should be "))
            continue
        problems.setdefault(key, []).append(message)
    for key, words in alternatives.items():
        problems.setdefault(key, ["not one of the accepted values"])
        problems[key] = [f"{problems[key][0]} (or {' or '.join(words)})"]
    return "; ".join(f"{key}: {messages[0]}" if key else messages[0] for key, messages in problems.items())


def parse_config(data: Any, source: str = "config", base_dir: str | Path = ".") -> SweepConfig:
    """Validate plain data (as loaded from YAML) into a ``SweepConfig``; ``ConfigError`` names each bad key.
    ``base_dir``: where relative paths of files the config reads itself (``training.lr_tuned.file``) start."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        return SweepConfig.model_validate(data, context={"base_dir": str(base_dir)})
    except ValidationError as error:
        raise ConfigError(f"{source}: {describe_validation_error(error)}") from None


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep YAML file. Every problem is a ``ConfigError`` of one line naming the file, and for
    YAML syntax its line and column, or the key: unreadable or non-UTF-8 files, syntax errors, duplicate keys (at
    any depth; PyYAML would keep the last silently), and everything ``parse_config`` checks."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror or error}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {len(raw):,} bytes; a sweep file is at most {MAX_CONFIG_BYTES:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes with line and column, for duplicate keys
        _check_nodes(root, path)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(part for part in (error.context, error.problem) if part)
        raise ConfigError(f"{where}: not valid YAML: {' '.join(what.split())}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if data is None:
        raise ConfigError(f"{path}: the file holds no keys (name, budgets and model are required)")
    return parse_config(data, source=str(path), base_dir=path.parent)


MAX_CONFIG_BYTES = 1 << 20
_MAX_NODES = 100_000
"""A sweep file is small: a bound on its values, aliases expanded, keeps a malicious one (nested aliases that
expand exponentially) from exhausting memory during validation."""


def _check_nodes(root: yaml.Node | None, path: Path) -> None:
    """Refuse duplicate mapping keys (naming the dotted key and both lines) and files whose aliases expand past
    ``_MAX_NODES`` values."""
    stack, visited = [(root, "")], 0
    while stack:
        node, prefix = stack.pop()
        visited += 1
        if visited > _MAX_NODES:
            raise ConfigError(f"{path}: more than {_MAX_NODES:,} values once aliases are expanded")
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
                dotted = f"{prefix}.{key}" if prefix else str(key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError(f"{path}:{line}:{key_node.start_mark.column + 1}: {dotted}: duplicate key (first given on line {seen[key]})")
                seen[key] = line
                stack.append((value_node, dotted))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{prefix}.{index}") for index, item in enumerate(node.value))
