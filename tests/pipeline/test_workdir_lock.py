"""One writer per workdir (ffnet_nas.lock): a second writer gets one line naming the holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ffnet_nas.cli import main
from ffnet_nas.lock import EXCLUSIVE, SHARED, hold
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.workspace import Workspace

HOLDER = textwrap.dedent("""
    import sys, time
    from ffnet_nas.lock import hold
    with hold(sys.argv[1], command=sys.argv[2], mode=sys.argv[3]):
        print("held", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds a workdir's lock; yields a function (workdir, command, mode) -> Popen."""
    procs = []

    def start(workdir, command="run", mode=EXCLUSIVE):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(Workspace(workdir).lock_path), command, mode],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_in_one_line_naming_the_holder(tmp_path, holder, capsys):
    work = tmp_path / "w"
    proc = holder(work, "run")
    code = main(["fit-predictor", "--workdir", str(work)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"in use by 'ffnet-nas run' (pid {proc.pid} on " in err and "another --workdir" in err
    assert sorted(p.name for p in work.iterdir()) == [".ffnet-nas.lock"]  # the refused command wrote nothing


def test_shared_holders_coexist_but_not_beside_a_writer(tmp_path, holder):
    lock = Workspace(tmp_path).lock_path
    holder(tmp_path, "search", SHARED)
    with hold(lock, command="search", mode=SHARED):  # a second search worker on the same study
        pass
    with pytest.raises(InvalidInput, match="shared by 'ffnet-nas search'"):
        with hold(lock, command="run", mode=EXCLUSIVE):
            pass


def test_distills_share_the_workdir_and_claim_blocks_instead(tmp_path, holder, capsys):
    """Blocks are claimed one by one (tests/distill/test_distill_dask.py), so a second distill on the
    same library gets past the workdir lock (here it stops at the missing teacher), a run does not."""
    holder(tmp_path, "distill", SHARED)
    assert main(["distill", "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "in use" not in err and "teacher" in err
    assert main(["run", "--budget", "micro", "--workdir", str(tmp_path)]) == 2
    assert "shared by 'ffnet-nas distill'" in capsys.readouterr().err


def test_a_killed_holder_leaves_no_lock_behind(tmp_path, holder):
    proc = holder(tmp_path, "distill")
    with pytest.raises(InvalidInput, match="'ffnet-nas distill'"):
        with hold(Workspace(tmp_path).lock_path, command="run"):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with hold(Workspace(tmp_path).lock_path, command="run"):  # the kernel dropped the dead holder's lock
        assert '"command": "run"' in Workspace(tmp_path).lock_path.read_text()
    assert Workspace(tmp_path).lock_path.read_text() == ""  # released: it names nobody


def test_a_command_that_wrote_nothing_leaves_no_workdir(tmp_path):
    work = tmp_path / "new"
    with hold(Workspace(work).lock_path, command="search", mode=SHARED):
        assert work.is_dir()
    assert not work.exists()


def test_read_only_commands_take_no_lock(tmp_path, holder, capsys):
    holder(tmp_path, "run")
    assert main(["space", "list", "--workdir", str(tmp_path)]) == 0


@pytest.mark.slow  # two micro runs and a re-run: ~100 s on 2 cores; the fast tests above cover the lock itself
def test_two_runs_on_one_workdir_one_refuses_and_the_workdir_stays_whole(tmp_path):
    """The issue's case: two `run`s started together used to train everything twice and could wedge
    the workdir. Now the second refuses in one line and the first finishes alone."""
    work = tmp_path / "w"
    cmd = [sys.executable, "-m", "ffnet_nas", "run", "--budget", "micro", "--workdir", str(work), "--no-progress",
           "--threads", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], [(c, err[-500:]) for c, _, err in results]
    refused = next(err for code, _, err in results if code == 2)
    assert "is in use by 'ffnet-nas run' (pid" in refused and refused.count("\n") == 1
    # the winner's run is complete, and a re-run finds everything done (nothing half-written)
    assert Workspace(work).run_summary_path.is_file()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-500:]
