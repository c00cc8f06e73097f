"""What several commands share: the parent parser of the common options, and the closed sets of choices.

Not a command (its name starts with `_`, so `ffnet_nas.cli` skips it). Building a parser must not import
torch (`ffnet-nas --help` would take seconds), and the modules that own these sets import torch at
module level (they exist to build, time or train models). So the sets and defaults below are copies of the library's constants, each named with its home; tests/pipeline/test_cli.py checks
that they still equal the library's, so a change there fails a test instead of drifting.
"""

from __future__ import annotations

import argparse
import logging
import os

from ffnet_nas.workspace import DEFAULT_WORKDIR  # stdlib-only module: safe at parser-build time

# ---- closed sets (argparse `choices=`) ----------------------------------------------------------
BUDGETS = ("micro", "quick", "full")  # ffnet_nas.pipeline.BUDGETS
SAMPLERS = ("nsga2", "tpe", "random")  # ffnet_nas.search.study.SAMPLERS
DTYPES = ("fp32", "fp16", "bf16")  # ffnet_nas.predictors.latency.protocol.DTYPES
BACKENDS = ("eager", "compile", "onnxruntime")  # ffnet_nas.predictors.latency.backends.BACKENDS
ESTIMATORS = ("p25", "p10", "median", "mean", "min", "trimmed")  # ...latency.protocol.ESTIMATORS
CLOCKS = ("wall", "cpu")  # ffnet_nas.predictors.latency.protocol.CLOCKS
INITS = ("distilled", "random")  # ffnet_nas.evaluate.INITS
FEATURE_SET_NAMES = ("route_free", "within_stride", "choices", "nsr")  # ffnet_nas.predictors.accuracy.FEATURE_SETS (the default first)
RERANK_BY = ("predictor", "zero-shot")  # ffnet_nas.budgets.RERANK_BY (the default first)
OPTIMIZERS = ("adamw", "sgd")  # ffnet_nas.training.OPTIMIZERS (the teacher's default first)
EXPORTERS = ("dynamo", "torchscript")  # ffnet_nas.space.deploy.EXPORTERS
AMP_DTYPES = ("bf16", "fp16")  # ffnet_nas.settings.AMP_DTYPES
# A comma-separated list (html,png), so not an argparse choice: parse_formats checks it when the command runs.
FORMATS = ("html", "png", "svg")  # ffnet_nas.reports.export.FORMATS

# ---- defaults and help text shown by --help -----------------------------------------------------
DEFAULT_EXPORTER = "dynamo"  # ffnet_nas.space.deploy.DEFAULT_EXPORTER
DEFAULT_OPSET = 18  # ffnet_nas.space.deploy.DEFAULT_OPSET
DEFAULT_TEACHER = "segmentation_ffnet46NS_CCC_mobile"  # ffnet_nas.teacher.DEFAULT_TEACHER
DEFAULT_TEACHER_STEPS = 600  # ffnet_nas.teacher.DEFAULT_STEPS
FINETUNE_AVERAGE_TAIL = 0.5  # ffnet_nas.budgets.FINETUNE_AVERAGE_TAIL
FINETUNE_PRECISE_BN = 128  # ffnet_nas.budgets.FINETUNE_PRECISE_BN
TARGET_GRAMMAR = (  # ffnet_nas.search.targets.GRAMMAR
    "accepted: METRIC OP NUMBER[UNIT], comma-separated, e.g. 'latency<25ms,params<10M,macs<50G,miou>75' "
    "(metrics latency/params/macs/miou; ops < <= > >=; units latency us/ms/s, params K/M/G, macs M/G/T)")


def thread_count(text: str) -> int:
    """--threads: a whole number from 1 to the cores this machine has (torch crashes far beyond that).

    Checked here, where the command runs; a run config file's `threads:` is only checked positive,
    because a file written on one machine may be run on another."""
    cores = os.cpu_count() or 1
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of threads, 1 to {cores}") from None
    if not 1 <= n <= cores:
        raise argparse.ArgumentTypeError(f"{n}: expected 1 to {cores} (the cores this machine has)")
    return n


def add_scheduler_arg(parser: argparse.ArgumentParser, *, work: str) -> None:
    """--scheduler ADDRESS: `work` on a Dask cluster (resolved by ffnet_nas.cluster.scheduler_address)."""
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help=f"{work} on the Dask cluster at this address (tcp://HOST:8786; default "
                             "$DASK_SCHEDULER_ADDRESS when set, '' for none); the workdir must be on a filesystem "
                             "the workers share (docs/scale.md)")


def add_amp_arg(parser: argparse.ArgumentParser, *, default: str = "float32") -> None:
    """--amp, for the commands that train (mixed precision: torch.autocast); `default`: what no flag
    means. fp32 is offered where the default may be a run's autocast (`evaluate`, `fit-predictor`)."""
    choices = AMP_DTYPES if default == "float32" else (*AMP_DTYPES, "fp32")
    parser.add_argument("--amp", default=None, choices=choices,
                        help=f"mixed precision while training: bf16 (CPU and GPU) or fp16 (CUDA only)"
                             f"{'' if default == 'float32' else '; fp32: none'}; default {default}")


def resolve_device(name: str) -> str:
    """--device as torch takes it ("auto": cuda when there is one); one line for a malformed name
    or CUDA asked where there is none."""
    import torch

    from ffnet_nas.space.errors import InvalidInput

    device = ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise InvalidInput(f"--device {name!r}: expected cpu, cuda or cuda:N") from None
    if kind not in ("cpu", "cuda"):
        raise InvalidInput(f"--device {name!r}: expected cpu, cuda or cuda:N")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"--device {device}: CUDA is not available here; expected --device cpu")
    return device


def common_options(*, device: str | None = None, threads: bool = False,
                   progress: bool = False) -> argparse.ArgumentParser:
    """A parent parser (`add_parser(..., parents=[common_options(...)])`) with the options commands share.

    Always --workdir and -q/--quiet | -v/--verbose (`args.log_level`, read by `ffnet_nas.cli.main`);
    --device when `device` is given (it is the default: "cpu", or "auto" for cuda-if-available),
    --threads and --no-progress when asked. A new parser per call: argparse shares a parent's actions
    with every child, so one instance reused would let one command's default leak into the others.
    """
    # No titled argument group: Python 3.11 moves an inherited mutually exclusive group (-q | -v) out of
    # it, which would split these options across two help sections.
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--workdir", default=str(DEFAULT_WORKDIR),
                        help="run folder holding every artifact (default %(default)s)")
    if device is not None:
        auto = "; auto: cuda if available" if device == "auto" else ""
        parent.add_argument("--device", default=device, help=f"cpu, cuda or cuda:N{auto} (default %(default)s)")
    if threads:
        parent.add_argument("--threads", type=thread_count, default=None, metavar="N",
                            help="torch CPU threads (default: torch's, the cores this process may use); "
                                 "on a shared CPU 1 can be several times faster than 2")
    if progress:
        parent.add_argument("--no-progress", action="store_true", help="no progress bars")
    verbosity = parent.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", dest="log_level", action="store_const", const=logging.WARNING,
                           default=logging.INFO, help="library messages: warnings and errors only")
    verbosity.add_argument("-v", "--verbose", dest="log_level", action="store_const", const=logging.DEBUG,
                           help="library messages: also debug detail")
    return parent
