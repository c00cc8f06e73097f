"""A journal with a torn last record (disk full, power cut, kill mid-write) is repaired, not wedged."""

import logging

import optuna
import pytest

from ffnet_nas.search.api import run_search
from ffnet_nas.search.storage import open_storage, repair_torn_tail
from tests.helpers.search_standins import standin_latency_ms, standin_miou, tiny_space


def _search(journal, n_trials):
    return run_search(space=tiny_space(), predict_latency_ms=standin_latency_ms, predict_miou=standin_miou,
                      n_trials=n_trials, seed=0, progress=False, storage=journal, study_name="s", num_classes=19)


def _complete(journal):
    study = optuna.load_study(study_name="s", storage=open_storage(journal))
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


@pytest.mark.parametrize("cut", [1, 15, 200])
def test_a_torn_tail_is_dropped_and_the_study_goes_on(tmp_path, caplog, cut):
    journal = tmp_path / "study.journal"
    _search(journal, 12)
    intact = journal.read_bytes()
    journal.write_bytes(intact[:-cut])  # the last write was cut short
    with caplog.at_level(logging.WARNING, logger="ffnet_nas"):
        result = _search(journal, 20)  # before the repair this raised on every later open
    assert "dropped an incomplete last record" in caplog.text
    assert result.n_complete == 20 and len(_complete(journal)) == 20
    lines = journal.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends in a complete record


def test_an_intact_journal_is_left_byte_for_byte(tmp_path):
    journal = tmp_path / "study.journal"
    _search(journal, 5)
    before = journal.read_bytes()
    assert repair_torn_tail(journal) == 0
    assert journal.read_bytes() == before


def test_a_completed_but_garbled_last_line_goes_too(tmp_path):
    journal = tmp_path / "study.journal"
    _search(journal, 5)
    good = journal.read_bytes()
    journal.write_bytes(good + b'{"op_code": 4, "worker_id": "x", "tri\x00\x00\n')
    assert repair_torn_tail(journal) > 0
    assert journal.read_bytes() == good
    assert len(_complete(journal)) == 5
