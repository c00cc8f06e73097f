"""Claims: one holder per task in a shared workdir, and one writer at a time per table.

Several processes may work on one workdir at once: the workers of a Dask cluster, a second
cluster, a local `distill --jobs N`, all on a shared filesystem. Each unit of work (a block to
distil, a point to fine-tune) is claimed before it starts, and a table that several of them add
rows to is rewritten under its own lock:

    with claim(folder / "claims" / f"{key}.lock") as mine:
        if not mine:          # somebody else is doing it right now
            ...skip, or wait for it with claim(..., wait=True)
        elif not done(key):   # done in the meantime by whoever held the claim before
            work(); with table_lock(table_path): read, add the row, write atomically

A claim is an `flock(2)` held on a small file for the duration of the task, the mechanism
`ffnet_nas.lock` uses for the whole workdir: the kernel drops it when its holder dies, however it
dies (a SIGKILLed Dask worker, a lost node's NFSv4 lease), so there are no stale claims to expire
and no clocks to trust. The holder's name is written into the file for messages only. Linux
implements flock on NFS as a POSIX lock the server arbitrates, so claims hold across hosts there.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CLAIMED = "claimed"  # a task's answer when another process holds its claim (not a table status)


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def holder(path: Path) -> str:
    """Who holds (or last held) the claim at `path`, from what it wrote (best effort)."""
    try:
        record = json.loads(Path(path).read_text() or "{}")
        return f"pid {record['pid']} on {record['host']} (since {record['since']})"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextmanager
def claim(path: str | Path, *, wait: bool = False, poll_seconds: float = 0.5) -> Iterator[bool]:
    """Hold the claim at `path` while the block runs; yields False (at once) when another process
    holds it, unless `wait`: then it waits for that process to finish or die and yields True.

    Polling rather than a blocking flock keeps a waiting process interruptible (a blocking flock
    does not return on SIGINT) and lets a Dask task be cancelled."""
    path = Path(path)
    fd = _open(path)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                time.sleep(poll_seconds)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def wait_for_release(path: str | Path, *, poll_seconds: float = 0.5) -> None:
    """Return once nobody holds the claim at `path` (its holder finished or died)."""
    with claim(path, wait=True, poll_seconds=poll_seconds):
        pass


@contextmanager
def table_lock(table_path: str | Path) -> Iterator[None]:
    """Exclusive while a table shared by several writers is read, changed and written back
    (`<table>.lock` beside it): without it two writers' read-modify-write cycles lose a row."""
    table_path = Path(table_path)
    fd = _open(table_path.with_name(table_path.name + ".lock"))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for milliseconds: a blocking wait is fine here
        yield
    finally:
        os.close(fd)


__all__ = ["CLAIMED", "claim", "holder", "table_lock", "wait_for_release"]
