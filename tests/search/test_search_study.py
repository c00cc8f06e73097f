"""The search on a small space with STAND-IN objectives (tests/helpers/search_standins.py): not predictions."""

import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from ffnet_nas.search.api import run_search
from ffnet_nas.search.study import WORKER, published_in
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.stats import dominates
from tests.helpers.search_standins import standin_latency_ms, standin_miou, tiny_space


def _search(**kw):
    args = dict(space=tiny_space(), predict_latency_ms=standin_latency_ms, predict_miou=standin_miou,
                n_trials=40, seed=0, progress=False, num_classes=19)
    args.update(kw)
    return run_search(**args)


def _load(storage, name):
    from ffnet_nas.search.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage))


def test_front_is_feasible_non_dominated_and_published_come_first(tmp_path):
    journal = tmp_path / "s.journal"
    r = _search(targets="latency<6ms", storage=journal)
    assert r.n_complete == 40 and r.n_run == 40
    study = _load(journal, r.study_name)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    n_pub = len(published_in(tiny_space()))
    assert [t.user_attrs.get("published") for t in trials[:n_pub]] == list(published_in(tiny_space()))
    # every trial scored by the stand-ins, constraint stored for the samplers
    for t in trials:
        a = Arch.parse(t.user_attrs["code"])
        assert t.values == [standin_miou(a), standin_latency_ms(a)]
        assert list(t.constraints.values()) == [pytest.approx(standin_latency_ms(a) / 6 - 1)]
    front = r.pareto.to_dict("records")
    assert front and all(p["latency_ms"] < 6 for p in front)
    feasible = [(t.values[1], t.values[0]) for t in trials if t.values[1] < 6]
    for p in front:
        assert not any(dominates(q, (p["latency_ms"], p["miou"])) for q in feasible)
        assert p["params"] > 0 and p["macs"] > 0
    assert r.best["miou"] == max(p["miou"] for p in front)
    # the dominance table agrees with a direct check
    for row in r.published.to_dict("records"):
        direct = sum(dominates((p["latency_ms"], p["miou"]), (row["latency_ms"], row["miou"])) for p in front)
        assert row["dominated_by"] == direct


def test_unmeetable_target_reports_closest_points():
    r = _search(targets="latency<0.5ms", n_trials=25)
    assert not r.feasible and r.pareto.empty
    closest = r.closest.to_dict("records")
    assert len(closest) == 5
    assert closest[0]["latency_ms"] == min(standin_latency_ms(Arch.parse(c["code"])) for c in closest)
    assert all(c["violation"] > 0 for c in closest)


def test_params_target_uses_complexity(tmp_path):
    r = _search(targets="params<25M", n_trials=20)
    assert r.feasible and (r.pareto["params"] < 25e6).all()


def test_resume_counts_only_complete_and_fails_dead_workers_trials(tmp_path):
    journal = tmp_path / "s.journal"
    first = _search(storage=journal, n_trials=20)
    study = _load(journal, first.study_name)
    # a trial left RUNNING by a process that died, and one by a live worker elsewhere
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = study.ask()
    stale.set_user_attr("worker", f"{WORKER.rpartition(':')[0]}:{dead.pid}")
    live = study.ask()
    live.set_user_attr("worker", "another-host:1")
    again = _search(storage=journal, n_trials=30)
    assert again.n_complete == 30 and again.n_run == 10
    assert again.extra["stale_trials_failed"] == 1
    states = {t.number: t.state for t in _load(journal, first.study_name).get_trials()}
    assert states[stale.number] == TrialState.FAIL
    assert states[live.number] == TrialState.RUNNING  # not ours to judge: ignored, does not block
    assert _search(storage=journal, n_trials=30).n_run == 0  # nothing left to do


def test_resumed_study_must_match_targets_and_predictors(tmp_path):
    journal = tmp_path / "s.journal"
    _search(storage=journal, study_name="s", targets="latency<6ms", n_trials=12, objective_id="A")
    with pytest.raises(InvalidInput, match="targets"):
        _search(storage=journal, study_name="s", targets="latency<7ms", n_trials=12, objective_id="A")
    with pytest.raises(InvalidInput, match="other predictors"):
        _search(storage=journal, study_name="s", targets="latency<6ms", n_trials=12, objective_id="B")


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_other_samplers(sampler):
    r = _search(sampler=sampler, targets="latency<6ms", n_trials=20)
    assert r.n_complete == 20 and r.feasible


def test_bad_arguments():
    with pytest.raises(InvalidInput, match="unknown sampler 'nsga3'.*did you mean: nsga2"):
        _search(sampler="nsga3")
    with pytest.raises(InvalidInput, match="n_trials"):
        _search(n_trials=0)
    with pytest.raises(InvalidInput, match="needs the database driver .MySQLdb."):
        _search(storage="mysql://u:secret@127.0.0.1:1/db")


def test_nan_prediction_is_a_clear_error():
    with pytest.raises(InvalidInput, match="no trial completed"):
        _search(predict_miou=lambda a: float("nan"), n_trials=5)


def test_two_workers_share_one_journal_without_loss_or_duplicates(tmp_path):
    """Two workers (threads, each with its own storage object, like two processes) on one journal.

    The same check with two real `ffnet-nas search` processes, and with PostgreSQL, is in
    tests/search/test_search_cli.py (marked slow: process start-up dominates)."""
    import threading

    journal = tmp_path / "s.journal"
    results = {}
    # Both workers must be inside their first trial before either goes on; otherwise, on a busy machine,
    # one thread could finish all 30 trials before the other starts (seen once on a fresh clone) and the
    # test would not be about sharing at all.
    barrier = threading.Barrier(2, timeout=120)

    def first_call_waits(predict):
        calls = []

        def wrapped(arch):
            if not calls:
                calls.append(arch)
                barrier.wait()
            return predict(arch)
        return wrapped

    def work(i):
        results[i] = _search(storage=journal, study_name="shared", n_trials=30, seed=i,
                             predict_latency_ms=first_call_waits(standin_latency_ms))

    threads = [threading.Thread(target=work, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trials = _load(journal, "shared").get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sum(r.n_run for r in results.values()) == len(trials)
    assert 30 <= len(trials) <= 31 and all(r.n_run > 0 for r in results.values())
