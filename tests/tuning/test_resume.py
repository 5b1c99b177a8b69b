"""What a resumed ``sweep tune`` does with each trial an earlier driver left ``RUNNING`` in the journal, wherever it
was killed: asked but never started (no ``run_id`` yet) -> failed and replaced; its run finished meanwhile -> told
from the ledger, not retrained; its run unfinished -> trained again (resumed from its checkpoint); its run no
longer the one the sweep file gives -> failed and replaced. No Ray: the loop's resume step only reads."""

from datetime import datetime, timezone

import optuna

from sweep.config import parse_config
from sweep.results.storage import ResultsStore
from sweep.training.train import RunOutcome
from sweep.training.worker import ledger_row
from sweep.tuning.driver import TuneLoop, prepare_sizes, tuning_root
from sweep.tuning.study import open_storage, open_studies, suggest, trial_spec
from tests.conftest import tiny_config

NOW = datetime.now(timezone.utc)


def test_every_trial_left_running_is_told_requeued_or_replaced(tmp_path):
    config = parse_config(tiny_config(model={"sizes": [3e3]}, tune={"horizon": {"budget_flops": 2e9}, "n_trials": 5}))
    store = ResultsStore(tuning_root(str(tmp_path)))
    sizes = prepare_sizes(config, 256, "f00d")
    studies = open_studies(config, open_storage(config, store), [size.n_params for size in sizes])
    study = studies[0]

    never_started = study.ask()
    suggest(never_started, config)  # killed before its run id was stored
    finished, unfinished, changed = study.ask(), study.ask(), study.ask()
    for trial in (finished, unfinished, changed):
        spec = trial_spec(config, 3e3, suggest(trial, config), 256, "f00d", trial=trial.number)
        trial.set_user_attr("run_id", spec.run_id if trial is not changed else "0123456789abcdef")
        if trial is finished:  # its worker recorded it after the driver died
            store.write_run(spec.sweep, ledger_row(spec, RunOutcome(status="completed", final_eval_loss=2.5, final_train_loss=2.6), NOW, NOW, None))
            finished_spec = spec
        if trial is unfinished:
            unfinished_spec = spec

    for size, reopened in zip(sizes, open_studies(config, open_storage(config, store), [s.n_params for s in sizes])):
        size.study = reopened  # as a new driver opens them
    loop = TuneLoop(config, store, sizes, 256, "f00d", backend=None)
    loop.resume()

    states = {t.number: t.state for t in sizes[0].study.get_trials()}
    assert states[never_started.number] == optuna.trial.TrialState.FAIL
    assert states[changed.number] == optuna.trial.TrialState.FAIL
    assert states[finished.number] == optuna.trial.TrialState.COMPLETE
    assert sizes[0].study.get_trials()[finished.number].value == 2.5 and loop.outcome.told_from_ledger == 1
    assert [t.spec.run_id for t in loop.waiting] == [unfinished_spec.run_id] and states[unfinished.number].name == "RUNNING"
    assert loop.counted(sizes[0]) == 2 and loop.wants_more(sizes[0])  # the failed ones are replaced by new trials
    assert finished_spec.run_id != unfinished_spec.run_id
