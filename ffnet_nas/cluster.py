"""Independent work on a Dask cluster: `--scheduler tcp://HOST:8786` or `DASK_SCHEDULER_ADDRESS`.

    for result in map_unordered(work, tasks, address=scheduler_address(args.scheduler), name="distill"):
        ...

Dask (`dask.distributed`) is optional: `pip install 'ffnet-nas[cluster]'`; it is imported only
when a scheduler is named. Each task runs on some worker and writes its own result into the
workdir, which must be on a filesystem every worker and the client see at the same path (see
docs/scale.md); the client only collects small return values. Nothing here decides who does a
task twice: `ffnet_nas.claims` does, inside the task. A worker that dies takes only its task
with it: the scheduler gives it to another worker (`distributed.scheduler.allowed-failures`
times, 3 by default, before it counts the task itself as the killer).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Callable, Iterable, Iterator, TypeVar

from ffnet_nas.space.errors import InvalidInput

logger = logging.getLogger(__name__)

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
INSTALL_HINT = "pip install 'ffnet-nas[cluster]' (or: pip install distributed)"
CONNECT_TIMEOUT_S = 20
# what `dask scheduler` prints: PROTOCOL://HOST:PORT (tcp, tls; ws/wss/ucx where installed)
ADDRESS = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")

T = TypeVar("T")
R = TypeVar("R")


def scheduler_address(explicit: str | None = None) -> str | None:
    """The scheduler to use: the one named on the command line, else $DASK_SCHEDULER_ADDRESS, else none."""
    address = (explicit if explicit is not None else os.environ.get(SCHEDULER_ENV)) or ""
    return address.strip() or None


def _distributed():
    try:
        import distributed
    except ImportError:
        raise InvalidInput(f"a Dask scheduler was named but dask.distributed is not installed: {INSTALL_HINT}") from None
    return distributed


def connect(address: str, *, timeout: float = CONNECT_TIMEOUT_S):
    """A `distributed.Client` on `address`; one line (InvalidInput) when nothing answers there."""
    if not ADDRESS.match(address):
        # checked here: a Client made on a malformed address fails at once, then hangs for 40 s
        # in its finaliser and prints a traceback there
        raise InvalidInput(f"Dask scheduler address {address!r}: expected PROTOCOL://HOST:PORT as 'dask scheduler' "
                           "prints it, e.g. tcp://10.0.0.5:8786")
    distributed = _distributed()
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise InvalidInput(f"no Dask scheduler answers at {address!r} within {timeout:g} s ({type(e).__name__}: {e}); "
                           "expected the address of a running 'dask scheduler' (tcp://HOST:8786)") from None


def check_scheduler(address: str | None) -> None:
    """Fail now, in one line, when a scheduler is named but does not answer: not after the minutes
    of work (teacher features, a teacher) that come before the first task is sent."""
    if address:
        connect(address).close()


def map_unordered(fn: Callable[[T], R], tasks: Iterable[T], *, address: str, name: str,
                  describe: Callable[[T], str] = str) -> Iterator[R]:
    """`fn(task)` for every task on the cluster at `address`, yielded as each finishes.

    Interrupting the loop (or an error) cancels what has not run yet. A task that killed every
    worker it was given (`KilledWorker`) is one line naming it."""
    distributed = _distributed()
    tasks = list(tasks)
    client = connect(address)
    futures = {}
    try:
        nworkers = len(client.scheduler_info().get("workers", {}))
        logger.info("%s: %d task(s) to the Dask cluster at %s (%d worker(s) now)", name, len(tasks), address, nworkers)
        for i, task in enumerate(tasks):
            # pure=False: the same task submitted again (a resumed run) is run, not looked up
            futures[client.submit(fn, task, key=f"ffnet-nas-{name}-{os.getpid()}-{i}", pure=False)] = task
        for future in distributed.as_completed(list(futures), loop=client.loop):
            try:
                yield future.result()
            except distributed.KilledWorker:
                raise InvalidInput(f"{name} of {describe(futures[future])} killed every Dask worker it was given; "
                                   "expected workers with enough memory for one task (see the workers' logs)") from None
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        client.close()


__all__ = ["INSTALL_HINT", "SCHEDULER_ENV", "check_scheduler", "connect", "map_unordered", "scheduler_address"]
