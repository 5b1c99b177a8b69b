"""Per-size training rules: each run's peak learning rate, batch, warm-up and AdamW beta2, from its size N.

N is the run's non-embedding parameter count (``models.accounting``: all but the token and position tables; the
untied output head counts). ``sweep.planning.plan`` calls ``size_rules`` before it computes a run's horizon, since the
horizon depends on the batch, and ``warmup_steps`` after. ``docs/rules.md`` gives each rule's config keys and
defaults. Derivations and sources:

Learning rate (``training.lr_rule``)::

    kaplan:  lr = lr_scale * (0.003239 - 0.0001395 ln N)        Kaplan et al. 2020, "Scaling Laws for Neural
             Language Models", eq. D.1 (fitted on N = 1e5..1e9, Adam, cosine); floored at 1e-5
    power:   lr = lr_scale * c * (N / N0) ** k                   c = 0.0047, N0 = 108M, k = -1/3 by default
    tuned:   lr = lr_scale * c * (N / N0) ** k                   c, N0, k: the table a ``sweep tune`` study
                                                                 fitted (``sweep.tuning.rule``; training.lr_tuned)
    fixed:   lr = training.lr

The ``power`` defaults are OLMo-core's model ladder (``allenai/OLMo-core``,
``src/olmo_core/model_ladder/wsds_chinchilla_run_configurator.py``, ``configure_optimizer``:
``0.0047 * (num_params / 108_000_000) ** (-1 / 3)``), which cites Porian et al. 2024, "Resolving Discrepancies in
Compute-Optimal Scaling of Language Models" (arXiv:2406.19146; Semantic Scholar CorpusID 270764838) for it. There
``num_params`` is ``num_non_embedding_params`` = all parameters minus the d_model x vocab input embedding, the
output head included: the same N as ours (OLMo's models have no learned position table). That configurator then
halves the rate for its WSD-S schedule; ``lr_scale: 0.5`` does the same here.

Batch (``training.batch_rule``)::

    fixed:   B = training.batch_tokens                            (its sequences must split evenly over the workers)
    power:   B* = c_B * (N / N0) ** k_B                           c_B = 2048 * 160 tokens, N0 = 108M, k_B = 2/3
             B  = seq_len * W * max(1, round(B* / (seq_len * W))) W = the run's workers (resources.for_size)

OLMo-core's ladder, ``configure_target_batch_size``: ``round(2048 * 160 * (num_params / 108_000_000) ** (2 / 3))``
tokens (160 sequences of 2,048 at 108M, after Porian et al. 2024), which it too rounds to a multiple of its data-
parallel micro-batches. Here B is the nearest whole number of sequences that every worker gets equally of, at least
one per worker.

Warm-up (``training.warmup_fraction`` or ``training.warmup_tokens``)::

    fraction:  w = round(warmup_fraction * steps)
    tokens:    w = round(warmup_tokens / B)                        warmup_tokens: params -> N tokens
    then       w = min(w, steps - 1)                               the schedule keeps at least one step after warm-up

Warm-up duration is one of the three factors Porian et al. 2024 find behind the Kaplan/Chinchilla discrepancy;
OLMo-core's ladder warms up for N tokens, citing them (``configure_chinchilla_periods``: ``warmup = num_params``, in
tokens). The run records w and w * B.

AdamW beta2 (``training.beta2_rule``)::

    fixed:      beta2 = training.beta2
    half_life:  beta2(B) = beta2_ref ** (B / B_ref)                B_ref = beta2_reference_batch_tokens

The second moment forgets at beta2 per step, so its half-life is h = ln(1/2) / ln(beta2) steps, or h * B tokens.
Holding the half-life in tokens fixed across batch sizes (Marek et al. 2025, "Small Batch Size Training for Language
Models: When Vanilla SGD Works, and Why Gradient Accumulation Is Wasteful", arXiv:2507.07101) gives
B / ln(beta2(B)) = B_ref / ln(beta2_ref), i.e. the formula above. Porian et al. 2024 likewise find beta2 must rise
at small batches (OLMo-core's ladder, citing their Table 4, uses 0.99 below 524,288 tokens and 0.95 above).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sweep.config import ConfigError, TrainingConfig


def learning_rate(n_params_nonembedding: int, scale: float = 1.0) -> float:
    """Peak learning rate by size: Kaplan et al. (2020), eq. D.1, LR(N) = 0.003239 - 0.0001395 * ln(N).

    Fitted on models of 10^5-10^9 non-embedding parameters trained with Adam and a cosine schedule; ``scale``
    (``training.lr_scale``) multiplies it. Floored at 1e-5 so huge N never gives a non-positive rate.
    """
    return scale * max(1e-5, 0.003239 - 0.0001395 * math.log(n_params_nonembedding))


def power_law(n_params_nonembedding: float, coefficient: float, reference_params: float, exponent: float) -> float:
    """coefficient * (N / reference_params) ** exponent: the form of both OLMo-core ladder rules."""
    return coefficient * (n_params_nonembedding / reference_params) ** exponent


def whole_batch_tokens(target_tokens: float, seq_len: int, workers: int) -> int:
    """The batch nearest ``target_tokens`` that is whole sequences, split evenly over ``workers``, at least one each."""
    per_step = seq_len * workers
    return per_step * max(1, round(target_tokens / per_step))


def half_life_beta2(beta2_reference: float, batch_tokens: int, reference_batch_tokens: int) -> float:
    """beta2 at ``batch_tokens`` with the second moment's half-life in tokens that ``beta2_reference`` has at
    ``reference_batch_tokens`` (Marek et al. 2025)."""
    return beta2_reference ** (batch_tokens / reference_batch_tokens)


def beta2_half_life_tokens(beta2: float, batch_tokens: int) -> float:
    """Tokens after which AdamW's second moment weighs a gradient by half: B * ln(1/2) / ln(beta2)."""
    return batch_tokens * math.log(0.5) / math.log(beta2)


@dataclass(frozen=True)
class SizeRules:
    """What a run's size resolved to, before its horizon is known (plain values, recorded in its ``RunSpec``)."""

    lr: float
    lr_rule: str
    """``kaplan``, ``power``, ``tuned`` or ``fixed``."""
    batch_tokens: int
    batch_rule: str
    """``fixed`` or ``power``."""
    beta2: float
    lr_study: str | None = None
    """The study whose fitted rule gave ``lr`` (``lr_rule: tuned``), else None."""


def resolve_lr(training: TrainingConfig, n_params_nonembedding: int) -> tuple[float, str]:
    """(peak learning rate, the rule that gave it); an unset ``lr_rule`` is ``fixed`` with ``lr``, else ``kaplan``."""
    rule = training.lr_rule or ("fixed" if training.lr is not None else "kaplan")
    if rule == "fixed":
        if training.lr is None:  # also refused when the config is read
            raise ConfigError("training.lr: required by training.lr_rule fixed")
        return training.lr, rule
    if rule == "kaplan":
        return learning_rate(n_params_nonembedding, training.lr_scale), rule
    p = training.lr_tuned if rule == "tuned" else training.lr_power
    if p is None:  # also refused when the config is read
        raise ConfigError("training.lr_tuned: required by training.lr_rule tuned (study and file)")
    return training.lr_scale * power_law(n_params_nonembedding, p.coefficient, p.reference_params, p.exponent), rule


def resolve_batch_tokens(training: TrainingConfig, n_params_nonembedding: int, seq_len: int, workers: int) -> int:
    """Tokens per optimizer step of a run with ``workers`` data-parallel workers; ``ConfigError`` names the key
    when a fixed batch cannot be split evenly into whole sequences."""
    if training.batch_rule == "power":
        p = training.batch_power
        target = power_law(n_params_nonembedding, p.coefficient_tokens, p.reference_params, p.exponent)
        return whole_batch_tokens(target, seq_len, workers)
    batch = training.batch_tokens
    if batch % seq_len:  # also refused when the config is read
        raise ConfigError(f"training.batch_tokens ({batch}) must be a multiple of model.seq_len ({seq_len})")
    if (batch // seq_len) % workers:
        raise ConfigError(
            f"training.batch_tokens: {batch // seq_len} sequences cannot be split evenly over the {workers} workers "
            f"(resources.workers_per_run) of the models with N={n_params_nonembedding:,}"
        )
    return batch


def resolve_beta2(training: TrainingConfig, batch_tokens: int) -> float:
    """AdamW beta2 for a run whose batch is ``batch_tokens``."""
    if training.beta2_rule == "fixed":
        return training.beta2
    reference = training.beta2_reference_batch_tokens
    if reference is None:
        if training.batch_rule != "fixed":  # also refused when the config is read
            raise ConfigError("training.beta2_reference_batch_tokens: required by beta2_rule half_life with batch_rule power")
        reference = training.batch_tokens
    return half_life_beta2(training.beta2, batch_tokens, reference)


def size_rules(training: TrainingConfig, n_params_nonembedding: int, seq_len: int, workers: int) -> SizeRules:
    """Every per-size value of a run with ``n_params_nonembedding`` parameters trained by ``workers`` workers."""
    lr, lr_rule = resolve_lr(training, n_params_nonembedding)
    batch = resolve_batch_tokens(training, n_params_nonembedding, seq_len, workers)
    beta2 = resolve_beta2(training, batch)
    study = training.lr_tuned.study if lr_rule == "tuned" and training.lr_tuned else None
    return SizeRules(lr=lr, lr_rule=lr_rule, batch_tokens=batch, batch_rule=training.batch_rule, beta2=beta2, lr_study=study)


def warmup_steps(training: TrainingConfig, n_params_nonembedding: int, steps: int, batch_tokens: int) -> int:
    """Whole warm-up steps of a run of ``steps`` steps of ``batch_tokens``: a fraction of the steps, or a token
    count (``params``: N tokens) rounded to whole steps; always below ``steps``."""
    tokens = training.warmup_tokens
    if tokens is None:
        warmup = round(training.warmup_fraction * steps)
    else:
        warmup = round((n_params_nonembedding if tokens == "params" else tokens) / batch_tokens)
    return max(0, min(warmup, steps - 1))
