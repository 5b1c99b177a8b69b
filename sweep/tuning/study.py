"""The Optuna side of ``sweep tune``: where the studies live, their samplers and pruners, and what a trial trains.

One Optuna study per tuned size (``STUDY.N<non-embedding parameters>``), all in one storage: by default a journal
file under the results root (``RESULTS/tune/studies/STUDY.journal``: Optuna's ``JournalFileBackend``, an
append-only log that survives a killed driver, whose lock works on local and shared filesystems), or a
``sqlite:///`` database (``tune.storage``). An object-store results root has no file to append to, so it needs
``tune.storage`` on a filesystem the driver reaches.

A trial's parameters become a run through the sweep's own planner (``trial_spec``): the sweep file with one size,
one budget (``tune.horizon``), the trial's values as fixed rules (``lr_rule: fixed``, and the batch, warm-up or
beta2 searched), ``tune.eval_points`` evaluations and the first seed. Its horizon is computed where every run's is
(``sweep.planning.plan``), its run id is that of any run with the same values, and the same parameters always give
the same run, so a resumed study finds a trial's run by its id (stored as the trial's ``run_id`` attribute).

Samplers: TPE with ``constant_liar`` (trials in flight count as pessimistic guesses, so parallel asks spread out
instead of repeating one point), Optuna's GP sampler, CMA-ES (the optional ``cmaes`` package), or random; each
size's study seeds its sampler with ``tune.seed``, the size's index and the number of trials the study already
holds (so a resumed driver does not replay the random draws it made before, asking for the same rates again). The
first third of each size's trials (3 to 10) are drawn at random before the model-based samplers take over. Pruners judge a trial at its k-th evaluation
(the step Optuna sees is k = 1..eval_points, the same fraction of training for every trial of a size, whatever its
batch): ``median`` (``MedianPruner`` after 3 finished trials, from the evaluation at 3/4 of training on) or
``hyperband`` (``HyperbandPruner`` over the evaluation points, reduction factor 3).

Why the median pruner waits until 3/4 of training: under a cosine schedule a trial at a lower rate is behind
mid-run and catches up as its rate decays, so judging trials half-way prunes the low rates first and biases LR*
upward (seen on the demo: pruned at half-way, 12 of 21 trials, the lowest rates among them, some that would have
ended best). Hyperband prunes from the first evaluation by design: use it for wide searches, where most of the
range is far from the optimum, not to pin LR* down.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import optuna

from models.accounting import flops_per_token, param_counts
from sweep.config import ConfigError, SweepConfig, TuneConfig, parse_config
from sweep.planning.ladder import ladder_shape
from sweep.planning.plan import RunSpec, plan_sweep
from sweep.results.storage import ResultsStore

PARAMETERS = ("lr", "batch_tokens", "warmup_fraction", "beta2")
"""What a trial may search (``tune.space``); every trial of a study draws the same ones."""


def searched(config: SweepConfig) -> set[str]:
    """The parameters ``config``'s trials draw: the learning rate, and each other one ``tune.space`` gives."""
    return {key for key in PARAMETERS if key == "lr" or getattr(config.tune.space, key)}


def study_name(study: str, n_params: int) -> str:
    """The Optuna study of one size."""
    return f"{study}.N{n_params}"


def open_storage(config: SweepConfig, store: ResultsStore) -> optuna.storages.BaseStorage:
    """The studies' storage (module docstring); ``ConfigError`` naming ``tune.storage`` when there is none."""
    where = config.tune.storage
    if where is not None and where.startswith("sqlite:///"):
        return optuna.storages.RDBStorage(where)
    if where is None and store.is_object_store:
        raise ConfigError(
            f"tune.storage: the results root {store.shown} is an object store, which holds no journal file; give a "
            "journal file path or a sqlite:/// URL on a filesystem this driver reaches"
        )
    if where is not None and "://" in where:
        raise ConfigError(f"tune.storage: {where.split('://')[0]}:// is not supported (a journal file path or sqlite:///)")
    path = Path(where) if where else Path(store.base) / "studies" / f"{config.study}.journal"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"tune.storage: cannot create {path.parent}: {error.strerror or error}") from None
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path)))


def startup_trials(tune: TuneConfig) -> int:
    """Random trials before a model-based sampler takes over: a third of each size's trials, 3 to 10."""
    return max(3, min(10, tune.n_trials // 3))


def make_sampler(tune: TuneConfig, index: int, trials_so_far: int = 0) -> optuna.samplers.BaseSampler:
    """``tune.sampler`` for the ``index``-th size's study, seeded by ``tune.seed``, the index and the trials the
    study already holds (``trials_so_far``): a resumed driver's sampler must not replay its random draws."""
    seed, startup = tune.seed + index + 1000 * trials_so_far, startup_trials(tune)
    if tune.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    if tune.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if tune.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna's CmaEsSampler needs it)
        except ImportError:
            raise ConfigError("tune.sampler: cmaes needs the cmaes package (pip install cmaes)") from None
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    return optuna.samplers.RandomSampler(seed=seed)


def median_from(tune: TuneConfig) -> int:
    """The first evaluation the median pruner judges: the one at 3/4 of a trial's training (module docstring)."""
    return max(1, math.ceil(0.75 * tune.eval_points))


def make_pruner(tune: TuneConfig) -> optuna.pruners.BasePruner:
    """``tune.pruner`` over the evaluation points (module docstring)."""
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=median_from(tune))
    if tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=tune.eval_points, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_studies(config: SweepConfig, storage: optuna.storages.BaseStorage, sizes: list[int]) -> list[optuna.Study]:
    """One study per size (created, or loaded as a resumed driver finds it), minimising the final eval loss; each
    sampler seeded as ``make_sampler`` says, from the trials its study holds."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies = []
    for index, n in enumerate(sizes):
        study = optuna.create_study(study_name=study_name(config.study, n), storage=storage, pruner=make_pruner(config.tune),
                                    direction="minimize", load_if_exists=True)  # fmt: skip
        study.sampler = make_sampler(config.tune, index, len(study.get_trials(deepcopy=False)))
        studies.append(study)
    return studies


def suggest(trial: optuna.Trial, config: SweepConfig) -> dict:
    """The trial's values of ``tune.space`` (the learning rate always; the rest when searched)."""
    space = config.tune.space
    params = {"lr": trial.suggest_float("lr", space.lr.low, space.lr.high, log=True)}
    if space.batch_tokens:
        params["batch_tokens"] = trial.suggest_categorical("batch_tokens", list(space.batch_tokens))
    if space.warmup_fraction:
        params["warmup_fraction"] = trial.suggest_float("warmup_fraction", space.warmup_fraction.low, space.warmup_fraction.high)
    if space.beta2:
        params["beta2"] = trial.suggest_float("beta2", space.beta2.low, space.beta2.high)
    return params


def tuned_sizes(config: SweepConfig) -> list[float]:
    """The target sizes to tune (``tune.sizes``, default every ``model.sizes`` entry), in the ladder's order."""
    return sorted(config.tune.sizes or config.model.fixed_sizes)


def trial_budget(config: SweepConfig, size: float, vocab_size: int) -> float:
    """The FLOPs of a trial of target ``size``: ``tune.horizon.budget_flops``, or ``tokens_per_param`` tokens per
    non-embedding parameter at the size's own FLOPs per token (``flops_convention``)."""
    horizon = config.tune.horizon
    if horizon.budget_flops is not None:
        return horizon.budget_flops
    m = config.model
    shape = ladder_shape(m, size, vocab_size)
    return horizon.tokens_per_param * param_counts(shape).nonembedding * flops_per_token(shape, config.flops_convention)


def trial_spec(config: SweepConfig, size: float, params: dict, vocab_size: int, data_fingerprint: str,
               trial: int | None = None) -> RunSpec:  # fmt: skip
    """The run a trial of target ``size`` with ``params`` trains (module docstring); ``ConfigError`` naming
    ``tune.horizon`` when its budget buys fewer than ``training.min_steps`` steps."""
    data = config.model_dump(mode="json", exclude_unset=True)
    training = {k: v for k, v in data.get("training", {}).items() if k not in ("lr_rule", "lr_power", "lr_tuned", "lr_scale")}
    training.update(lr=params["lr"], lr_rule="fixed", eval_points=config.tune.eval_points, seeds=[config.training.seeds[0]])
    training.update({key: params[key] for key in PARAMETERS[1:] if key in params})
    budget = trial_budget(config, size, vocab_size)
    data.update(name=config.study, budgets=[budget], training=training, tune=None, results=None,
                model={**data.get("model", {}), "sizes": [size], "shapes": [], "auto_sizes": None})  # fmt: skip
    plan = plan_sweep(parse_config(data, source="tune"), vocab_size, data_fingerprint)
    if not plan.runs:
        raise ConfigError(f"tune.horizon: {plan.skipped[0] if plan.skipped else f'no run for size {size:g}'}")
    # Under training.schedule wsd the plan is a trunk and one readout: the trial is that readout trained alone.
    return replace(plan.readouts[0], study=config.study, trial=trial, parent_run_id=None)


def objective_value(status: str, final_eval_loss: float | None, vocab_size: int) -> float | None:
    """What a finished trial tells its study: its final evaluation loss; a diverged one the loss of predicting
    every token uniformly, ln(vocab), so a sampler learns that region is bad (the rule fit leaves it out); None for
    a trial that has no value (pruned, failed)."""
    if status == "completed" and final_eval_loss is not None and math.isfinite(final_eval_loss):
        return float(final_eval_loss)
    if status == "diverged":
        return math.log(vocab_size)
    return None
