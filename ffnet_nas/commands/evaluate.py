"""ffnet-nas evaluate: build, fine-tune and measure points in full."""

from __future__ import annotations

import argparse

from ffnet_nas.commands._common import (FINETUNE_AVERAGE_TAIL, FINETUNE_PRECISE_BN, INITS, add_amp_arg, add_scheduler_arg,
                                        common_options)
from ffnet_nas.commands.train_teacher import add_sync_bn_arg
from ffnet_nas.settings import PRECISIONS


# The fine-tune of a workdir that no `ffnet-nas run` made (built step by step); a run's workdir
# fine-tunes as its run did (`finetune_settings`), so its rows stay comparable
CLI_FINETUNE = {"steps": 300, "batch_size": 8, "lr": 0.01, "kd_weight": 1.0}
# flag -> TrainConfig field, for the flags whose default is the run's
_FINETUNE_FLAGS = {"steps": "steps", "batch_size": "batch_size", "lr": "lr", "kd_weight": "kd_weight",
                   "average_tail": "average_tail", "precise_bn": "precise_bn", "freeze_bn": "freeze_bn",
                   "grad_clip": "grad_clip", "amp": "amp"}


def add_finetune_args(p: argparse.ArgumentParser) -> None:
    """The fine-tuning options `evaluate` and `fit-predictor` share (with `common_options(device="cpu")`).
    Each defaults to what the workdir's run used (its run_summary.json), else to the value shown."""
    run = "the workdir's run, else "
    p.add_argument("--steps", type=int, default=None, help=f"fine-tuning steps per point (default: {run}300)")
    p.add_argument("--batch-size", type=int, default=None, help=f"(default: {run}8)")
    p.add_argument("--lr", type=float, default=None, help=f"(default: {run}0.01)")
    p.add_argument("--kd-weight", type=float, default=None, help=f"weight of the KD term from the teacher (default: {run}1)")
    p.add_argument("--val-images", type=int, default=None,
                   help=f"evaluate on the first N validation images only (default: {run}all)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    # the run's ending (ffnet_nas.budgets.FINETUNE_*, through _common's checked copies: no torch for --help)
    p.add_argument("--average-tail", type=float, default=None, metavar="FRACTION",
                   help=f"end with the weights averaged over this last fraction of the steps (default: {run}"
                        f"{FINETUNE_AVERAGE_TAIL}; 0: the last step's weights)")
    p.add_argument("--precise-bn", type=int, default=None, metavar="N",
                   help=f"then recompute BatchNorm statistics on the first N training crops (default: {run}"
                        f"{FINETUNE_PRECISE_BN}; 0: keep the running averages; needed when --average-tail is set, unless "
                        "--freeze-bn is on; with it, the crops the held statistics are computed on)")
    p.add_argument("--freeze-bn", choices=("on", "off"), default=None,
                   help=f"on: hold BatchNorm while fine-tuning, its statistics recomputed first on the --precise-bn "
                        f"crops; set --grad-clip with it (default: {run}off)")
    p.add_argument("--grad-clip", type=float, default=None, metavar="NORM",
                   help=f"clip the gradient norm at NORM (default: {run}none; 0: none)")
    add_amp_arg(p, default=f"{run}float32")


def add_lut_arg(p: argparse.ArgumentParser) -> None:
    """--lut, for the commands that time what they evaluate (`evaluate`, `fit-predictor`)."""
    p.add_argument("--lut", default=None, metavar="NAME",
                   help="latency table name in WORKDIR/lut when several fit the teacher's input size "
                        "(the points are timed with its settings)")


def workdir_run_settings(workspace):
    """How the workdir's `ffnet-nas run` fine-tuned and scored (`predictor_check.run_settings`), None
    for a workdir built step by step; a summary without the run's budget (hand-made, or older) is
    a printed note and None: the flags and their defaults then apply."""
    from ffnet_nas.predictor_check import run_settings
    from ffnet_nas.space.errors import InvalidInput

    try:
        return run_settings(workspace)
    except InvalidInput as e:
        print(f"note: {e}; fine-tuning with the flags and their defaults")
        return None


def finetune_settings(args: argparse.Namespace, settings=None):
    """(TrainConfig, validation images, scoring size) for the points: each flag given, else what
    the workdir's run did (`settings`, from `workdir_run_settings`: a point added by hand is then
    fine-tuned and scored like the run's, so evaluated.csv compares like with like), else the
    CLI's defaults. Prints one line naming the run's settings when they are used."""
    import dataclasses

    from ffnet_nas import distributed
    from ffnet_nas.budgets import finetune_config as config
    from ffnet_nas.settings import autocast_dtype

    base = settings.config if settings is not None else config(**CLI_FINETUNE)
    given = {field: getattr(args, flag) for flag, field in _FINETUNE_FLAGS.items() if getattr(args, flag, None) is not None}
    if "amp" in given:  # fp32: float32 asked for where the run used autocast
        given["amp"] = autocast_dtype(given["amp"])
    if "freeze_bn" in given:
        given["freeze_bn"] = given["freeze_bn"] == "on"
    finetune = dataclasses.replace(base, **given, num_workers=args.workers)
    val_images = args.val_images if args.val_images is not None else (settings.val_images if settings else None)
    score_at = getattr(args, "score_at", None) or (settings.score_at if settings else "train")
    if settings is not None and distributed.env_rank() == 0:  # under torchrun: one line, not one per rank
        print(f"fine-tuning as the workdir's run did unless a flag says otherwise: {finetune.steps} steps, batch "
              f"{finetune.batch_size}, lr {finetune.lr:g}{', ' + finetune.amp if finetune.amp else ''}"
              f"{', BatchNorm held' if finetune.freeze_bn else ''}"
              f"{f', gradient clipped at {finetune.grad_clip:g}' if finetune.grad_clip else ''}, scored on "
              f"{val_images or 'all'} validation images at the {score_at} size (its run_summary.json)")
    return finetune, val_images, score_at


def register(sub) -> None:
    p = sub.add_parser("evaluate", parents=[common_options(device="cpu")],
                       help="assemble, fine-tune and measure points in full",
                       description="For each point: assemble it from the block library, fine-tune it with the task "
                                   "loss plus KD from the teacher, evaluate mIoU on the validation split and time it "
                                   "with the workdir's latency-table settings. One row per point in evaluated.csv.")
    p.add_argument("points", nargs="*", metavar="NAME_OR_CODE")
    p.add_argument("--from-search", action="store_true", help="evaluate the search's best points (search/to_evaluate.csv, else pareto.csv)")
    p.add_argument("--top", type=int, default=3, help="with --from-search: how many (default 3)")
    p.add_argument("--init", choices=INITS, default="distilled",
                   help="distilled blocks (default) or random initialisation (for comparison)")
    p.add_argument("--redo", action="store_true", help="evaluate again even if the point is in the table")
    p.add_argument("--score-at", choices=("train", "input", "native"), default=None,
                   help="the size the mIoU is scored at: train (the teacher's training size), input (the deployment "
                        "input: the latency table's size) or native (real data at its own label size); default: the "
                        "workdir's run's, else train")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="int8: also quantise each fine-tuned model (ONNX Runtime static QDQ, as the int8 latency "
                        "table does) and score it on the same images (column int8_miou); default: the workdir's "
                        "(int8 where its predictor learned INT8 mIoU or its run judged by it), else fp32")
    add_lut_arg(p)
    add_finetune_args(p)
    add_sync_bn_arg(p)
    add_scheduler_arg(p, work="fine-tune and score the points (each timed here, where the latency table was measured)")
    p.set_defaults(func=run)


def _from_search(workspace, top: int) -> list[str]:
    import pandas as pd

    from ffnet_nas.space.errors import InvalidInput

    # the best feasible points (search --evaluate-top); else the Pareto table
    path = workspace.to_evaluate_path
    if not path.exists():
        path = workspace.pareto_path
    if not path.exists():
        raise InvalidInput(f"no search result in {str(workspace.search_dir)!r}: run 'ffnet-nas search --target ...' first")
    frame = pd.read_csv(path)
    if "code" not in frame.columns:
        raise InvalidInput(f"{str(path)!r} has no 'code' column; expected a table written by 'ffnet-nas search'")
    return list(frame["code"])[:top]


def run(args: argparse.Namespace) -> int:
    from ffnet_nas import distributed, steps
    from ffnet_nas.cluster import check_scheduler, scheduler_address
    from ffnet_nas.commands.train_teacher import check_batch_split
    from ffnet_nas.workspace import Workspace
    from ffnet_nas.space.arch import resolve
    from ffnet_nas.space.errors import InvalidInput

    from ffnet_nas.fit_predictor import workdir_precision

    workspace = Workspace(args.workdir)
    args.precision = args.precision or workdir_precision(workspace)  # an INT8 workdir's points are scored in INT8
    points = list(args.points)
    if args.from_search:
        points += _from_search(workspace, args.top)
    if not points:
        raise InvalidInput("no point given: expected NAME_OR_CODE... or --from-search")
    archs = tuple(resolve(p) for p in points)  # every name/code checked before any training starts
    finetune, val_images, score_at = finetune_settings(args, workdir_run_settings(workspace))
    check_batch_split(finetune.batch_size)
    scheduler = scheduler_address(args.scheduler)
    if scheduler and distributed.launched() is not None:
        raise InvalidInput("--scheduler under torchrun: expected one of them (Dask spreads points over workers, "
                           "torchrun spreads one point over processes)")
    check_scheduler(scheduler)
    # under torchrun: the process group, this rank's device (cuda -> cuda:LOCAL_RANK); else nothing
    with distributed.session(device=args.device, sync_bn=args.sync_bn) as device:
        result = steps.evaluate(workspace=workspace, request=steps.EvaluateRequest(
            points=archs, finetune=finetune, val_images=val_images, init=args.init, redo=args.redo,
            device=device, lut=args.lut, scheduler=scheduler, precision=args.precision, score_at=score_at))
    if distributed.env_rank() != 0:
        return 0  # rank 0 prints the table
    frame = result.rows
    cols = [c for c in ("code", "name", "init", "measured_miou", "int8_miou", "predicted_miou", "measured_latency_ms",
                        "predicted_latency_ms", "params") if c in frame.columns and not (c == "int8_miou" and
                                                                                        args.precision != "int8")]
    print(frame[cols].to_string(index=False))
    print(f"wrote {workspace.evaluated_path}")
    from ffnet_nas.evaluate.drift import table_drifts
    from ffnet_nas.predictors.latency.validate import DRIFT_MIN_POINTS

    # the table's scale against every point of the workdir timed with it, as a run checks at its end
    # (docs/latency.md, Validation): a machine that runs faster or slower now than when its table was
    # measured shows here too
    for name, drift in table_drifts(workspace, frame.get("latency_table", ())).items():
        if drift.n >= DRIFT_MIN_POINTS:
            print(f"{name}: {drift.text()}")
    return 0
