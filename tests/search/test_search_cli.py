"""`ffnet-nas search` end to end, with STAND-IN objectives (tests/search_standins.py) in place of the
workdir's predictors: these check the command's behaviour, not any prediction."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from tests.helpers import search_standins
from ffnet_nas import cli
from ffnet_nas.predictors import load as loading
from tests.helpers.search_standins import write_tiny_space

WORKER_SCRIPT = str(Path(search_standins.__file__))


@pytest.fixture
def standins(monkeypatch):
    monkeypatch.setattr(loading, "load_predictors", lambda **kw: loading.Predictors(
        latency_ms=search_standins.standin_latency_ms, miou=search_standins.standin_miou,
        objective_id="standin-v1", description="STAND-IN objectives (tests)"))


def _one_error_line(err: str) -> str:
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_malformed_target_is_one_line_and_writes_nothing(tmp_path, capsys):
    work = tmp_path / "w"
    assert cli.main(["search", "--target", "latency<25", "--workdir", str(work)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "at character 11" in line and "unit for latency: us/ms/s" in line
    assert not work.exists()


def test_missing_predictors_name_the_commands_that_make_them(tmp_path, capsys):
    assert cli.main(["search", "--target", "latency<25ms", "--workdir", str(tmp_path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "ffnet-nas measure-latency --space mobile" in line and "ffnet-nas fit-predictor" in line


def test_only_the_missing_predictor_is_named(tmp_path, capsys):
    (tmp_path / "predictor").mkdir()
    (tmp_path / "predictor" / "accuracy.json").write_text("{}")
    (tmp_path / "lut").mkdir()
    assert cli.main(["search", "--workdir", str(tmp_path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "ffnet-nas measure-latency" in line and "fit-predictor" not in line


def test_search_writes_tables_and_prints_them(tmp_path, capsys, standins):
    space = write_tiny_space(tmp_path / "tiny.yaml")
    work = tmp_path / "w"
    args = ["search", "--space", space, "--target", "latency<6ms", "--trials", "30", "--seed", "1",
            "--evaluate-top", "3", "--no-progress", "--workdir", str(work)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    study_dir = work / "search" / "tiny.latency_lt_6"
    for name in ("pareto.csv", "published.csv", "summary.json", "to_evaluate.csv"):
        assert (study_dir / name).is_file() and f"wrote {study_dir / name}" in out
    front = pd.read_csv(study_dir / "pareto.csv")
    assert len(front) and (front["latency_ms"] < 6).all()
    assert {"code", "nearest_published", "latency_ms", "miou", "params", "macs", "dominates"} <= set(front.columns)
    top = pd.read_csv(study_dir / "to_evaluate.csv")
    assert list(top["rank"]) == [1, 2, 3] and top["miou"].is_monotonic_decreasing
    assert "best point under latency<6ms:" in out
    # the latest search's list is where `ffnet-nas evaluate --from-search` reads it
    assert pd.read_csv(work / "search" / "to_evaluate.csv").equals(top)
    assert "ffnet-nas evaluate --from-search --top 3" in out
    assert f"dashboard: optuna-dashboard {work / 'search' / 'study.journal'}" in out
    # a re-run with the same budget does no new trial and gives the same front
    assert cli.main(args) == 0
    assert "(0 this run" in capsys.readouterr().out
    assert pd.read_csv(study_dir / "pareto.csv").equals(front)


def test_unmeetable_target_lists_closest_and_exits_2(tmp_path, capsys, standins):
    space = write_tiny_space(tmp_path / "tiny.yaml")
    code = cli.main(["search", "--space", space, "--target", "latency<0.1ms", "--trials", "15",
                     "--no-progress", "--workdir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2
    assert "no point of the 15 searched meets latency<0.1ms" in _one_error_line(captured.err)
    assert "the closest" in captured.out
    assert len(pd.read_csv(tmp_path / "search" / "tiny.latency_lt_0.1" / "closest.csv")) == 5


def _worker(args, **kw):
    return subprocess.Popen([sys.executable, WORKER_SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _ran(out: str) -> int:
    return int(re.search(r"\((\d+) this run", out).group(1))


def _check_shared_study(storage, study_name: str, outs: list[str], budget: int, workers: int) -> None:
    """Neither lost nor duplicated: every trial a worker completed is in the study, once."""
    from ffnet_nas.search.storage import open_storage

    trials = optuna.load_study(study_name=study_name, storage=open_storage(storage)).get_trials()
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # unique and gapless
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == len(trials), [t.state for t in trials]  # nothing left RUNNING or FAILED
    assert sum(_ran(o) for o in outs) == len(complete)  # what the workers did is what the study holds
    assert budget <= len(complete) <= budget + workers - 1  # they shared the budget


def _run_workers(args_per_worker, timeout=240, *, meet_in=None):
    """Run worker processes to the end; with `meet_in` (a folder), they all enter their first trial
    before any goes on (tests.helpers.search_standins.start_barrier)."""
    env = dict(os.environ, FFNET_TEST_START_BARRIER=f"{meet_in}:{len(args_per_worker)}") if meet_in else None
    procs = [_worker(a, env=env) for a in args_per_worker]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-2000:]
        outs.append(out)
    return outs


def test_two_processes_share_one_journal_study(tmp_path):
    space = write_tiny_space(tmp_path / "tiny.yaml")
    work = tmp_path / "w"
    common = ["search", "--space", space, "--trials", "40", "--study", "shared", "--no-progress", "--workdir", str(work)]
    outs = _run_workers([common + ["--seed", "1"], common + ["--seed", "2"]], meet_in=tmp_path / "barrier")
    assert all(_ran(o) > 0 for o in outs), outs  # both did work
    _check_shared_study(work / "search" / "study.journal", "shared", outs, budget=40, workers=2)


def test_killed_search_resumes_without_losing_trials(tmp_path):
    from ffnet_nas.search.storage import open_storage

    space = write_tiny_space(tmp_path / "tiny.yaml")
    work = tmp_path / "w"
    journal = work / "search" / "study.journal"
    args = ["search", "--space", space, "--trials", "400", "--study", "k", "--no-progress", "--workdir", str(work)]
    p = _worker(args)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and done < 15:
        time.sleep(0.5)
        if journal.exists():
            try:
                study = optuna.load_study(study_name="k", storage=open_storage(journal))
                done = len(study.get_trials(states=(TrialState.COMPLETE,)))
            except KeyError:
                pass  # the study is not created yet
    assert done >= 15, "the search did not start"
    p.send_signal(signal.SIGKILL)
    p.communicate()
    before = optuna.load_study(study_name="k", storage=open_storage(journal)).get_trials(states=(TrialState.COMPLETE,))
    args[args.index("400")] = str(len(before) + 5)
    (out,) = _run_workers([args])
    trials = optuna.load_study(study_name="k", storage=open_storage(journal)).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert [t.number for t in complete[: len(before)]] == [t.number for t in before]  # finished work kept
    assert len(complete) == len(before) + 5 and _ran(out) == 5
    # The killed worker's claimed trial is failed. A kill between Optuna creating a trial and the
    # worker claiming it (a few ms) leaves an unclaimed stub with no params: it is failed once it
    # is older than the grace period (a live worker could be claiming it right now), never blocks,
    # and holds no work.
    running = [t for t in trials if t.state == TrialState.RUNNING]
    assert all("worker" not in t.user_attrs and not t.params for t in running), running


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on a loopback port (skipped where the server or driver is missing)."""
    pytest.importorskip("psycopg2", reason="psycopg2 (pip install psycopg2-binary) is needed for PostgreSQL storage")
    bindir = next((d for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True) if (d / "initdb").exists()), None)
    if bindir is None:
        if not shutil.which("initdb"):
            pytest.skip("no PostgreSQL server binaries (initdb/pg_ctl): apt-get install postgresql")
        bindir = Path(shutil.which("initdb")).parent
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the 'postgres' user
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL as a non-root user")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="ffnet-pg-"))
    if as_user:
        shutil.chown(root, user="postgres")
    data, port = root / "data", _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True, text=True)
    try:
        run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres")
        run(bindir / "pg_ctl", "-D", data, "-l", root / "log", "-w", "-o", f"-p {port} -k {root} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", "start")
        run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "optuna")
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_processes_share_one_postgresql_study(tmp_path, postgres_url):
    space = write_tiny_space(tmp_path / "tiny.yaml")
    common = ["search", "--space", space, "--trials", "24", "--study", "pg", "--storage", postgres_url,
              "--no-progress", "--workdir", str(tmp_path / "w")]
    outs = _run_workers([common + ["--seed", "1"], common + ["--seed", "2"]], meet_in=tmp_path / "barrier")
    assert all(_ran(o) > 0 for o in outs), outs
    _check_shared_study(postgres_url, "pg", outs, budget=24, workers=2)
    assert "dashboard" not in outs[0]  # the dashboard hint is for journal files
