"""Trials left RUNNING by a killed worker: claimed ones fail when their worker is gone; unclaimed ones
(killed between Optuna's ask and the objective's first line) wait out a grace, unless no one else writes."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from ffnet_nas.search.study import WORKER, fail_stale_trials


def _study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=optuna.storages.InMemoryStorage())


def test_an_unclaimed_running_trial_fails_at_once_only_for_a_sole_writer():
    study = _study()
    study.ask()  # RUNNING, no worker recorded: a kill after ask, before the objective started
    assert fail_stale_trials(study) == 0  # another worker may be about to claim it
    assert study.trials[0].state == TrialState.RUNNING
    assert fail_stale_trials(study, sole_writer=True) == 1
    assert study.trials[0].state == TrialState.FAIL


def test_a_running_trial_of_a_live_worker_is_left_alone_even_for_a_sole_writer():
    study = _study()
    trial = study.ask()
    trial.set_user_attr("worker", WORKER)  # this very process: alive
    assert fail_stale_trials(study, sole_writer=True) == 0
    assert study.trials[0].state == TrialState.RUNNING
    dead = study.ask()
    dead.set_user_attr("worker", f"{WORKER.rpartition(':')[0]}:999999999")  # no such pid on this host
    assert fail_stale_trials(study) == 1 and study.trials[1].state == TrialState.FAIL
