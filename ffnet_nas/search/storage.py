"""Where a study lives: in memory, a journal file (the default, one machine), or an RDB URL.

The journal file is Optuna's `JournalStorage` over `JournalFileBackend` (append-only JSON lines
under a file lock, so several processes can share it and `optuna-dashboard FILE` can read it).
Optuna fsyncs every appended line; a trial here is about 30 lines (one per parameter, attribute
and state change) and an fsync costs about 4 ms on this machine, so fsync alone held the search
to ~7 trials/s (bench_search.py, 500 trials: 6.7/s durable vs 41.8/s flushed, same seed). `durable=False` (our default) keeps Optuna's lock and its write + flush, and
skips the fsync: a killed process loses nothing (its lines are already in the OS), an OS crash or
power cut can lose the last lines (at worst the last trials, which a re-run redoes).
`bench/bench_search.py` measures both side by side.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.workspace import JOURNAL_NAME

logger = logging.getLogger(__name__)


def _backend_class():
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    class FlushedJournalFileBackend(JournalFileBackend):
        """JournalFileBackend whose appends are flushed but not fsynced (see the module docstring).

        It keeps its own path and lock (the same lock Optuna makes by default, through the public
        `lock_obj` argument) instead of reaching into the parent's private attributes.
        """

        def __init__(self, file_path: str) -> None:
            self._flushed_path = file_path
            self._flushed_lock = JournalFileSymlinkLock(file_path)
            super().__init__(file_path, lock_obj=self._flushed_lock)

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            self._flushed_lock.acquire()
            try:
                with open(self._flushed_path, "ab") as f:
                    f.write(text.encode("utf-8"))
            finally:
                self._flushed_lock.release()

    return FlushedJournalFileBackend


def open_storage(storage: "str | Path | None", *, durable: bool = False):
    """None: in memory; a URL with '://': SQLAlchemy (RDB); anything else: a journal file path."""
    import optuna

    if storage is None:
        return optuna.storages.InMemoryStorage()
    text = str(storage)
    if "://" in text:
        return _rdb(text)
    path = Path(text)
    if path.is_dir():
        raise InvalidInput(f"storage {text!r} is a folder: expected a journal file path (e.g. search/{JOURNAL_NAME}) or a URL")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        repair_torn_tail(path)
        check_records(path)
        backend = JournalFileBackend(str(path)) if durable else _backend_class()(str(path))
        return JournalStorage(backend)
    except OSError as e:
        raise InvalidInput(f"cannot open journal {text!r}: {e.strerror or e}; expected a writable path") from None


def check_records(path: Path) -> None:
    """Refuse a journal damaged inside (not at its tail): Optuna would fail on it with a traceback.

    Every line must be one JSON record. Such damage comes from outside (a disk error, an edit), and
    the trials after it cannot be trusted, so nothing is repaired: the user chooses.
    """
    if not path.is_file():
        return
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                json.loads(line)
            except (UnicodeDecodeError, ValueError):
                raise InvalidInput(f"Optuna journal {str(path)!r} is damaged at line {number} (not a JSON record): "
                                   "expected the journal as the search wrote it; restore it, or move it away to start "
                                   "the search over (its trials are then lost)") from None


def repair_torn_tail(path: Path) -> int:
    """Drop an incomplete last record of a journal file; the number of bytes dropped (0: intact).

    A write cut short (disk full, power cut, a kill inside `write`) leaves half a JSON line at the
    end. Optuna reads past it, but the next append lands on the same line and from then on the
    study cannot be read at all. So before a journal is opened for writing, a tail that is not a
    complete JSON line is cut off, under the journal's own lock (no other writer is mid-append),
    with one truncate call: the records before it are untouched.
    """
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.is_file() or path.stat().st_size == 0:
        return 0
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, 2)
            keep = _complete_prefix(f, size)
            if keep < size:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
    finally:
        lock.release()
    dropped = size - keep
    if dropped:
        logger.warning("journal %s: dropped an incomplete last record (%d bytes, left by an interrupted write); "
                       "the records before it are intact", path, dropped)
    return dropped


def _complete_prefix(f, size: int) -> int:
    """Bytes of the file that end in a complete, parseable record: everything after the last newline
    goes (an unfinished line), and so does the line before it if it is not JSON (a write torn inside
    the line, then completed by a later newline). Records further up are not this function's to judge."""
    keep = _after_last_newline(f, size)
    if keep:
        start = _after_last_newline(f, keep - 1)
        f.seek(start)
        try:
            json.loads(f.read(keep - start))
        except ValueError:
            keep = start
    return keep


def _after_last_newline(f, end: int, *, chunk: int = 1 << 16) -> int:
    """Position just after the last b"\\n" before `end` (0 when there is none)."""
    while end > 0:
        start = max(0, end - chunk)
        f.seek(start)
        at = f.read(end - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _postgres_driver(url: str) -> str:
    """SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; use psycopg2 when only that is installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _rdb(url: str):
    import optuna

    given, url = url, _postgres_driver(url)
    try:
        for attempt in range(5):
            try:
                # the heartbeat lets Optuna fail the RUNNING trials of a worker that died elsewhere
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90,
                                                      engine_kwargs={"pool_pre_ping": True})
            except Exception as e:
                # workers starting together on an empty database race to create Optuna's tables;
                # the loser sees a duplicate-key error and finds the tables there on a retry
                if attempt == 4 or type(e).__name__ not in ("IntegrityError", "ProgrammingError"):
                    raise
                time.sleep(0.2 * (attempt + 1))
    except ImportError as e:  # Optuna wraps the driver's ModuleNotFoundError
        cause = e.__cause__ if isinstance(e.__cause__, ModuleNotFoundError) else e
        name = getattr(cause, "name", None) or "for this URL"
        raise InvalidInput(f"storage {redact(given)!r} needs the database driver {name!r}: expected it installed "
                           f"(PostgreSQL: pip install psycopg2-binary)") from None
    except Exception as e:  # sqlalchemy's errors: bad URL, server down, authentication
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidInput(f"cannot open storage {redact(given)!r}: {first}; expected a reachable SQLAlchemy URL "
                           "such as postgresql://user:pass@host:5432/db") from None


def redact(url: str) -> str:
    """Hide a password in a URL before it is printed or written."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        return f"{head}{sep}{user}:***@{tail.split('@', 1)[1]}"
    return url
