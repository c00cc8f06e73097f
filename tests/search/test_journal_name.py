"""One Optuna journal per workdir: `search`, `run` and the refine rounds share `search/study.journal`."""

import optuna

from ffnet_nas.workspace import JOURNAL_NAME, Workspace


def _journal_with_study(path, name):
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    optuna.create_study(study_name=name, storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)


def test_a_run_workdirs_journal_is_adopted_under_the_one_name(tmp_path):
    ws = Workspace(tmp_path)
    _journal_with_study(ws.search_dir / "journal.log", "from-run")
    path = ws.adopt_legacy_journal()
    assert path == ws.search_dir / JOURNAL_NAME and path.is_file()
    assert not (ws.search_dir / "journal.log").exists()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    assert len(optuna.load_study(study_name="from-run", storage=storage).trials) == 2
    assert ws.adopt_legacy_journal() == path  # idempotent


def test_the_current_journal_wins_and_older_ones_are_left_alone(tmp_path):
    ws = Workspace(tmp_path)
    _journal_with_study(ws.journal_path, "current")
    _journal_with_study(ws.search_dir / "studies.journal", "old-search")
    assert ws.adopt_legacy_journal() == ws.journal_path
    assert (ws.search_dir / "studies.journal").is_file()


def test_a_fresh_workdir_gets_the_one_name_and_no_file(tmp_path):
    ws = Workspace(tmp_path)
    assert ws.adopt_legacy_journal() == tmp_path / "search" / "study.journal"
    assert not ws.journal_path.exists()
