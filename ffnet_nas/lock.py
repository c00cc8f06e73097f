"""One writer per workdir: an OS file lock on `Workspace.lock_path`, naming its holder.

Commands that write into a workdir take it for their whole run; a second writer gets one line
naming the holder (command, pid, host, since when) and exit status 2, instead of both training the
same teacher or blocks and leaving the workdir wedged. Commands built for several workers on one
workdir (`search` shares its study journal; `report` only renders) take it *shared*: any number
of them together, never beside an exclusive writer such as `run`.

The lock is `flock(2)`: the kernel drops it when the holder dies, however it dies, so a lock file
left behind by a killed process is stale by construction and the next writer simply takes it. The
file's content (who holds it) is information for the message, never trusted for the decision.

A torchrun job is one writer: `ffnet_nas.cli` takes the lock on rank 0 only (its other ranks write
nothing and wait for rank 0), so they are not refused as a second writer.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ffnet_nas.space.errors import InvalidInput

logger = logging.getLogger(__name__)

EXCLUSIVE, SHARED = "exclusive", "shared"


@contextmanager
def hold(path: Path, *, command: str, mode: str = EXCLUSIVE) -> Iterator[None]:
    """Hold the workdir lock at `path` while the block runs; InvalidInput naming the holder if taken."""
    if mode not in (EXCLUSIVE, SHARED):
        raise ValueError(f"lock mode {mode!r}: expected {EXCLUSIVE!r} or {SHARED!r}")
    path = Path(path)
    created = not path.parent.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        # An unwritable or impossible workdir: the command's own first write fails with the message
        # made for it (which file, what to do); a lock error here would only hide that.
        logger.debug("no workdir lock at %s (%s)", path, e.strerror or e)
        yield
        return
    acquired = False
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if mode == EXCLUSIVE else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInput(f"workdir {str(path.parent)!r} is in use by {_holder(fd)}; expected one writer "
                               "at a time: wait for it to finish (or stop it), or use another --workdir") from None
        except OSError as e:  # a filesystem without locks (some network mounts): say so, do not refuse
            logger.warning("workdir lock %s not available (%s): two writers on this workdir would not be stopped",
                           path, e.strerror or e)
            yield
            return
        acquired = True
        _write_holder(fd, command, shared=mode == SHARED)  # shared holders: the latest one is named
        try:
            yield
        finally:
            if mode == EXCLUSIVE:
                os.ftruncate(fd, 0)  # nobody holds it now; a leftover record would name a finished process
    finally:
        if created and acquired and [p.name for p in path.parent.iterdir()] == [path.name]:
            # the command made the workdir only to lock it and wrote nothing: leave nothing behind
            path.unlink(missing_ok=True)
            path.parent.rmdir()
        os.close(fd)  # closing the descriptor releases the flock


def _write_holder(fd: int, command: str, *, shared: bool = False) -> None:
    record = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%d %H:%M:%S"), "shared": shared}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)


def _holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote (best effort: the file may be mid-write)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        kind = "shared by " if record.get("shared") else ""
        return (f"{kind}'ffnet-nas {record['command']}' (pid {record['pid']} on {record['host']}, "
                f"since {record['since']})")
    except (ValueError, KeyError, UnicodeDecodeError, OSError):
        return "another ffnet-nas process"
