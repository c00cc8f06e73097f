"""`ffnet-nas`: a thin command line over the library.

Each sub-command lives in `ffnet_nas/commands/<name>.py` and defines `register(subparsers)`, which adds
its parser and sets `func=run`. Commands are found by listing that package (modules named `_*` are
shared helpers, not commands), so adding one touches no shared file. Options several commands take come
from `ffnet_nas.commands._common.common_options`. Any `InvalidInput` raised below becomes one line on
stderr and exit status 2; nothing prints a traceback for bad input.

Building the parser imports no torch, numpy or pandas: command modules import the library inside `run`.
Library code reports through `logging` (loggers under `ffnet_nas`); `main` shows those records while a
command runs: INFO by default, WARNING with -q, DEBUG with -v.

Under torchrun (`torchrun --nproc_per_node N -m ffnet_nas evaluate ...`) every process runs `main`.
Only `DISTRIBUTED_COMMANDS` accept that; rank 0 alone takes the workdir lock (the others are the
same job, not another writer), prints an error, and shows INFO records; the other ranks show their
warnings, marked with their rank, and exit with the same status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

EXIT_BAD_INPUT = 2
PROG = "ffnet-nas"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong + where to look), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)

    def _check_value(self, action: argparse.Action, value) -> None:
        # A wrong choice reads as the library words it ("unknown budget 'huge': expected one of micro,
        # quick, full"), so a typo reads the same whether argparse or the library catches it.
        if action.choices is not None and value not in action.choices:
            name = (action.dest or "value").replace("_", " ")
            expected = ", ".join(map(str, action.choices))
            raise argparse.ArgumentError(
                None, f"unknown {name} {value!r}: expected one of {expected}{_did_you_mean(value, action.choices)}")


def _did_you_mean(word: str, candidates: Iterable) -> str:
    from ffnet_nas.space.errors import closest  # torch-free: ffnet_nas.space imports its modules lazily

    return closest(str(word), [str(c) for c in candidates])


class _VersionAction(argparse.Action):
    """--version, with the version looked up only when asked (installed metadata, not a copy in the code)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{PROG} {version()}")
        parser.exit()


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("ffnet-nas")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    from ffnet_nas import commands

    parser = _Parser(prog=PROG, description="Blockwise NAS explorer for FFNet segmentation networks.")
    parser.add_argument("--version", action=_VersionAction, help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers (commands/_common.py), not commands
            continue
        module = importlib.import_module(f"ffnet_nas.commands.{info.name}")
        module.register(sub)
    return parser


class _StdStreamHandler(logging.Handler):
    """Plain messages; INFO and below to stdout, WARNING and above to stderr.

    Progress narration ("resumed from step 4", "teacher exists: ... (skipped)") sits with the
    command's results on stdout, where scripts and tests have always read it; warnings join errors
    on stderr. The stream is looked up at emit time, not bound once: pytest's capsys (and any
    caller that redirects sys.stdout) swaps it between calls.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


@contextmanager
def _library_logging(level: int, *, rank: int = 0) -> Iterator[None]:
    """Show the `ffnet_nas` loggers' records at `level` and above while a command runs, then undo it
    (`main` is also called in-process, by tests and notebooks; handlers must not pile up).

    Ranks other than 0 of a torchrun job show warnings and errors only, prefixed with their rank:
    their progress narration would repeat rank 0's line for line."""
    logger = logging.getLogger("ffnet_nas")
    handler = _StdStreamHandler()
    if rank:
        level = max(level, logging.WARNING)
    handler.setFormatter(logging.Formatter(f"[rank {rank}] %(message)s" if rank else "%(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


# Commands that write into --workdir hold its lock (ffnet_nas.lock) while they run. `search` is
# built for several workers on one study journal, `distill` claims each block (ffnet_nas.claims) so
# several distills (local, or on Dask clusters) fill one library together, and `report` only renders
# what is there: they share it with each other; everything else is the only writer. `space` and
# `export` write nothing there.
WORKDIR_LOCK = {"train-teacher": "exclusive", "distill": "shared", "measure-latency": "exclusive",
                "import-latency": "exclusive",
                "fit-predictor": "exclusive", "evaluate": "exclusive", "run": "exclusive",
                "search": "shared", "report": "shared"}


# Commands that run as one job over several processes under torchrun (one DDP training per point or
# teacher); any other command launched that way would do its work N times over.
DISTRIBUTED_COMMANDS = ("train-teacher", "evaluate")


@contextmanager
def _workdir_lock(args: argparse.Namespace, *, rank: int = 0) -> Iterator[None]:
    mode = WORKDIR_LOCK.get(args.command)
    if mode is None or getattr(args, "workdir", None) is None or getattr(args, "print_config", False):
        yield
        return
    if rank:
        # rank 0 of this torchrun job holds it for all of them: the other ranks are the same writer
        yield
        return
    from ffnet_nas.lock import hold
    from ffnet_nas.workspace import Workspace

    with hold(Workspace(args.workdir).lock_path, command=args.command, mode=mode):
        yield


# How long a rank other than 0 that met bad input waits for rank 0 to say so and end the job.
RANK_GRACE_S = 10.0


def _leave_the_word_to_rank_0(line: str) -> None:
    """Let rank 0 print the error, then exit 2 quietly.

    torchrun stops every worker (SIGTERM) as soon as one exits: a rank that met the bad input a
    moment before rank 0 would otherwise end the job before rank 0 printed anything. So it waits;
    rank 0 meets the same input, prints, exits, and torchrun's SIGTERM then ends this rank with
    status 2. A rank still here after RANK_GRACE_S met something rank 0 did not (its own GPU, say)
    and prints its own line."""
    import signal
    import threading
    import time

    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread only
        print(line, file=sys.stderr)
        return

    def stop(signum, frame):
        raise SystemExit(EXIT_BAD_INPUT)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        time.sleep(RANK_GRACE_S)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(line, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (already one line on stderr)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_BAD_INPUT)
    # imported after parsing: ffnet_nas.space loads torch, which --help must not pay for
    from ffnet_nas import distributed  # reads the environment only; torch stays unloaded until a session opens

    rank = distributed.env_rank()  # 0 unless torchrun started this process as another rank
    # a command whose parser does not use common_options yet has no -q/-v: INFO, as before
    try:
        with _library_logging(getattr(args, "log_level", logging.INFO), rank=rank):
            code = _command(args, rank=rank)
    except BaseException as e:  # noqa: BLE001 - re-raised unless a process group was opened
        if not distributed.opened_a_group():
            raise
        # a torchrun worker that fails (or is stopped: SystemExit) ends through `leave` as well
        if isinstance(e, SystemExit):
            if e.code is not None and not isinstance(e.code, int):
                print(e.code, file=sys.stderr)  # as Python prints a SystemExit's message (os._exit would not)
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        else:
            import traceback

            traceback.print_exc()
            code = 1
    # a torchrun worker that opened a process group ends here, without the interpreter's teardown
    return distributed.leave(code)


def _command(args: argparse.Namespace, *, rank: int) -> int:
    """Run the parsed command; its exit status (bad input: one line on stderr, status 2)."""
    from ffnet_nas import distributed
    from ffnet_nas.space.errors import InvalidInput

    try:
        launch = distributed.launched()
        if launch is not None and args.command not in DISTRIBUTED_COMMANDS:
            raise InvalidInput(f"launched as {launch.world_size} processes (torchrun), which only "
                               f"{' and '.join(DISTRIBUTED_COMMANDS)} run as one job; expected one process for "
                               f"'{args.command}'")
        with _workdir_lock(args, rank=rank):
            return int(args.func(args) or 0)
    except InvalidInput as e:
        # every rank of a torchrun job meets the same bad input and exits 2; one line is enough
        if rank == 0:
            print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        else:
            _leave_the_word_to_rank_0(f"[rank {rank}] {PROG} {args.command}: error: {e}")
        return EXIT_BAD_INPUT
    except distributed.PeerFailed as e:
        # Another rank stopped (rank 0 on bad input, say) while this one waited for it: that rank
        # says why; rank 0 says which, the others stay quiet, and every rank exits 2 alike.
        if rank == 0 or getattr(args, "log_level", logging.INFO) <= logging.DEBUG:
            print(f"{f'[rank {rank}] ' if rank else ''}{PROG} {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # `ffnet-nas space list | head`: the reader left; not an error worth a traceback
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        if rank == 0:
            print(f"{PROG} {args.command}: interrupted; finished work is saved, re-run to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
