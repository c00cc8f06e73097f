"""ffnet-nas run: the whole pipeline, one command (the embedded data by default, or --data).

Settings come from, weakest first: the budget (`ffnet_nas.budgets`), a YAML file (`--config`,
as `--print-config` writes it), then the flags given on the command line. Flags default to
None (or an unset marker) so that a flag given explicitly is known, and overrides the file.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys


class _Unset(str):
    """A default that prints as itself in --help but is known not to have been given."""


def register(sub) -> None:
    from ffnet_nas.commands._common import BUDGETS, add_scheduler_arg, common_options

    p = sub.add_parser("run", parents=[common_options(device=_Unset("cpu"), threads=True, progress=True)],
                       help="the whole pipeline: data, teacher, distill, LUT, predictor, search, evaluate, report",
                       description="Generates the embedded data, trains the teacher, distils the block library, "
                                   "measures the latency table on the device, fits the accuracy predictor, searches "
                                   "under the target, evaluates the best points in full and writes the report. Each "
                                   "step is skipped when its output exists and resumes when it was interrupted. "
                                   "--print-config writes every setting as YAML; --config FILE runs with it (flags "
                                   "given on the command line override the file).")
    p.add_argument("--space", default=None, help="built-in space or YAML file (default mobile)")
    p.add_argument("--target", default=None,
                   help='e.g. "latency<25ms" (default: the median predicted latency of the space\'s published '
                        "variants on this device)")
    p.add_argument("--budget", default=None, choices=BUDGETS,
                   help="micro (seconds, for tests), quick (minutes; default), full")
    p.add_argument("--data", default=None, metavar="SPEC",
                   help="the data of every step: synthetic[:SEED[:hard]] (default) | cityscapes:PATH | ade20k:PATH | folder:PATH")
    p.add_argument("--teacher", default=None, metavar="FILE",
                   help="a teacher you have (a teacher file of ffnet-nas, or official FFNet weights of the budget's "
                        "teacher arch, loaded strictly): no teacher training")
    p.add_argument("--init", default=None, metavar="imagenet:FILE",
                   help="start the trained teacher's backbone from official ImageNet weights")
    p.add_argument("--train-size", default=None, metavar="HxW",
                   help="the crop teacher, distillation and fine-tuning train on (default: the budget's)")
    p.add_argument("--input-size", default=None, metavar="HxW",
                   help="the deployment input: latency table, target, timings, MACs (default: the budget's; "
                        "full: the space's paper resolution)")
    p.add_argument("--amp", default=None, choices=("bf16", "fp16", "fp32"),
                   help="mixed precision for every training step (fp16 needs CUDA; fp32: none); default: the "
                        "workdir's (training_precision.json), else the budget's (float32; budget.cpu_amp: bf16 asks for bf16 on a "
                        "CPU with native bf16 instructions)")
    p.add_argument("--workers", default=None, type=int, metavar="N", help="DataLoader worker processes (default 0)")
    p.add_argument("--format", default=None, help="report formats: html,png,svg (default html)")
    p.add_argument("--config", default=None, metavar="FILE", help="run with the settings in this YAML file")
    add_scheduler_arg(p, work="distil the blocks and fine-tune the design points and candidates")
    p.add_argument("--print-config", action="store_true",
                   help="print every setting this run would use as YAML (for --config) and exit")
    p.set_defaults(func=run)


def _given(value):
    return None if isinstance(value, _Unset) else value


def run(args: argparse.Namespace) -> int:
    from ffnet_nas.budgets import DEFAULT_BUDGET, get_budget
    from ffnet_nas.closing import describe
    from ffnet_nas.pipeline import run_pipeline
    from ffnet_nas.reports.build import parse_formats
    from ffnet_nas.run_config import RunConfig, load_config, to_yaml, with_overrides
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.workspace import Workspace

    config = load_config(args.config) if args.config else RunConfig(budget=get_budget(DEFAULT_BUDGET))
    config = with_overrides(config, budget=args.budget, space=args.space, target=args.target, data=args.data,
                            teacher=args.teacher, init=args.init, amp=args.amp, workers=args.workers,
                            device=_given(args.device), threads=args.threads,
                            train_hw=parse_hw(args.train_size) if args.train_size else None,
                            input_hw=parse_hw(args.input_size) if args.input_size else None,
                            formats=parse_formats(args.format) if args.format is not None else None)
    if args.print_config:
        sys.stdout.write(to_yaml(config))
        return 0
    from ffnet_nas.cluster import scheduler_address

    with _shown():
        summary = run_pipeline(workspace=Workspace(args.workdir), config=config, progress=not args.no_progress,
                               scheduler=scheduler_address(args.scheduler))
    for line in describe(summary):
        print(line)
    return 0


@contextlib.contextmanager
def _shown():
    """The pipeline's progress lines reach the user: `ffnet_nas.cli.main` shows the library's
    records on stdout; when nothing does (run() called without main), show INFO here, the same way."""
    library = logging.getLogger("ffnet_nas")
    if library.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous = library.level
    library.addHandler(handler)
    library.setLevel(logging.INFO)
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.setLevel(previous)
