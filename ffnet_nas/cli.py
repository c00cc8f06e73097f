"""`ffnet-nas`: a thin command line over the library.

Each sub-command lives in `ffnet_nas/commands/<name>.py` and defines
`register(subparsers)`, which adds its parser and sets `func=run`. Commands are found by
listing that package, so adding one touches no shared file. Any `InvalidInput` raised below
becomes one line on stderr and exit status 2; nothing prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ffnet_nas.space.errors import InvalidInput

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong + where to look), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from ffnet_nas import commands

    parser = _Parser(prog="ffnet-nas", description="Blockwise NAS explorer for FFNet segmentation networks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"ffnet_nas.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InvalidInput as e:
        print(f"ffnet-nas {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # `ffnet-nas space list | head`: the reader left; not an error worth a traceback
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"ffnet-nas {args.command}: interrupted; finished work is saved, re-run to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
