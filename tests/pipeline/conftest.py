"""One finished `ffnet-nas run --budget micro`, shared by the pipeline tests that read a finished
run (the end-to-end, resume and corruption tests): made once per session, about 30 s here. And the
space file of the micro runs the pipeline tests make themselves (`space_file`).

Shared means read-only: a test that changes anything copies the workdir first (`shutil.copytree`).
Under pytest-xdist the workers share it too: the first to need it makes it while holding a lock in
the session's common temporary folder, the others wait and read it (the pattern xdist documents
for session data)."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers.micro import FinishedRun, finished_run, write_run_space


@pytest.fixture()
def space_file(tmp_path) -> Path:
    return write_run_space(tmp_path)


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory, request) -> FinishedRun:
    if not hasattr(request.config, "workerinput"):  # not an xdist worker: nobody to share with
        return finished_run(tmp_path_factory.mktemp("micro_run"))
    root = tmp_path_factory.getbasetemp().parent / "micro_run"  # this session's folder, common to its workers
    with open(root.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when a crashed holder dies
        stdout, failed = root / "stdout.txt", root / "failed.txt"
        if failed.exists():  # the first maker failed: one failure, not one more 30-s attempt per worker
            pytest.fail(f"the shared micro run failed in another worker: {failed.read_text()[-2000:]}")
        if not stdout.exists():
            shutil.rmtree(root, ignore_errors=True)  # a maker killed half-way: start clean, never resume it
            root.mkdir()
            try:
                made = finished_run(root)
            except BaseException as e:
                failed.write_text(f"{type(e).__name__}: {e}")
                raise
            tmp = stdout.with_suffix(".tmp")
            tmp.write_text(made.stdout)
            os.replace(tmp, stdout)  # last, and whole: its presence says the run finished
        return FinishedRun(workdir=root / "run", space=root / "tiny.yaml", stdout=stdout.read_text())
