"""ffnet-nas run: the whole pipeline on the embedded default, one command."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("run", help="the whole pipeline: data, teacher, distill, LUT, predictor, search, evaluate, report",
                       description="Generates the embedded data, trains the teacher, distils the block library, "
                                   "measures the latency table on the device, fits the accuracy predictor, searches "
                                   "under the target, evaluates the best points in full and writes the report. Each "
                                   "step is skipped when its output exists and resumes when it was interrupted.")
    p.add_argument("--space", default="mobile", help="built-in space or YAML file (default mobile)")
    p.add_argument("--target", default=None,
                   help='e.g. "latency<25ms" (default: the median predicted latency of the space\'s published '
                        "variants on this device)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for every step (default: torch's)")
    p.add_argument("--budget", default="quick", help="micro (seconds, for tests), quick (minutes), full")
    p.add_argument("--format", default="html", help="report formats: html,png,svg (default html)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--workdir", default="runs/default")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ffnet_nas.pipeline import describe, run_pipeline
    from ffnet_nas.workspace import Workspace
    from ffnet_nas.reports.build import parse_formats

    summary = run_pipeline(workspace=Workspace(args.workdir), space=args.space, budget=args.budget, target=args.target,
                           device=args.device, threads=args.threads, report_formats=parse_formats(args.format),
                           progress=not args.no_progress)
    for line in describe(summary):
        print(line)
    return 0
