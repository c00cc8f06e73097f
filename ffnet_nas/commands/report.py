"""`ffnet-nas report`: figures like the paper's Fig. 3/5/6 for this device, and the evidence behind them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ffnet_nas.commands._common import FORMATS, common_options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", parents=[common_options(progress=True)],
        help="draw the Pareto figure for this device, the paper's figures and the evidence (offline HTML, PNG, SVG)",
        description="Reads the workdir's tables (latency LUT + validation, block library, search, evaluated points, "
                    "accuracy predictor) and draws: --paper, the paper's Fig. 3/5/6 re-drawn from its tables; --pareto, "
                    "latency on this device vs mIoU with the search's front, this device's latency vs the paper's, plus the "
                    "evidence (LUT fidelity, predictor fidelity, hypervolume over trials, block-library NSR). Neither flag: both. Missing inputs are listed "
                    "in index.html with the command that makes them. Writes OUT/index.html (open it offline).",
    )
    p.add_argument("--paper", action="store_true", help="the paper's Fig. 3 (GPU-large), 5 (GPU-small), 6 (mobile)")
    p.add_argument("--pareto", action="store_true", help="the device Pareto figure, device vs paper, and the evidence figures")
    p.add_argument("--format", default="html,png", metavar="LIST",
                   help=f"comma-separated: {', '.join(FORMATS)} "
                        "(default html,png; PNG/SVG use kaleido or headless Chromium)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default WORKDIR/report)")
    p.add_argument("--lut", default=None, metavar="SLUG",
                   help="which latency table of WORKDIR/lut to report on (default: the one at the teacher's input "
                        "size, the table search and evaluate use; name one when several fit)")
    p.add_argument("--study", default=None, metavar="NAME",
                   help="which search study of WORKDIR/search to report on (default: the newest)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ffnet_nas import steps
    from ffnet_nas.reports.build import parse_formats
    from ffnet_nas.workspace import Workspace

    formats = parse_formats(args.format)
    ws = Workspace(Path(args.workdir))
    both = not args.paper and not args.pareto
    result = steps.report(workspace=ws, progress=not args.no_progress, request=steps.ReportRequest(
        formats=formats, paper=args.paper or both, pareto=args.pareto or both,
        out_dir=Path(args.out) if args.out else None, lut=args.lut, study=args.study))
    for fig in result.figures:
        state = "drawn" if fig.drawn else "not drawn"
        print(f"{fig.slug}: {state}" + (f" ({fig.summary})" if fig.summary else ""))
        for m in fig.missing:
            print(f"  missing: {m.sentence()}")
    for note in result.notes:
        print(f"note: {note}")
    for path in result.written:
        print(f"wrote {path}")
    print(f"open {result.index}")
    return 0
