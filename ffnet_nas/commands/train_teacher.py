"""`ffnet-nas train-teacher`: train a published variant (or any point) as the distillation teacher."""

from __future__ import annotations

import argparse

from ffnet_nas.commands._common import (DEFAULT_TEACHER, DEFAULT_TEACHER_STEPS, OPTIMIZERS, add_amp_arg, common_options,
                                        resolve_device)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-teacher", parents=[common_options(device="auto", threads=True, progress=True)],
        help="train (or load) the teacher network on a data set",
        description="Train the teacher FFNet that blockwise distillation copies, or load official weights with "
                    "--checkpoint. Checkpoints periodically to WORKDIR/teacher/; re-running after a kill continues "
                    "from the last checkpoint. Writes WORKDIR/teacher/teacher.pt.")
    p.add_argument("--arch", default=DEFAULT_TEACHER, help=f"published name or arch code (default {DEFAULT_TEACHER})")
    p.add_argument("--data", default="synthetic", help="synthetic[:SEED[:hard]] | cityscapes:PATH | ade20k:PATH | folder:PATH")
    p.add_argument("--checkpoint", default=None, metavar="FILE", help="official weights to load (strict) instead of training")
    p.add_argument("--init", default=None, metavar="imagenet:FILE",
                   help="start the backbone from official ImageNet classification weights (strict on the backbone)")
    p.add_argument("--steps", type=int, default=DEFAULT_TEACHER_STEPS,
                   help=f"optimisation steps (default {DEFAULT_TEACHER_STEPS})")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--input-size", default=None, metavar="HxW",
                   help="network input size for training crops and evaluation (default: 128x256 for synthetic, native otherwise)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3 AdamW, 1e-2 SGD)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    p.add_argument("--checkpoint-every", type=int, default=50, metavar="STEPS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--eval-images", type=int, default=None, metavar="N", help="evaluate on the first N val images only")
    add_amp_arg(p)
    add_sync_bn_arg(p)
    p.set_defaults(func=run)


def add_sync_bn_arg(p: argparse.ArgumentParser) -> None:
    """--sync-bn, for the commands that train under torchrun (`train-teacher`, `evaluate`)."""
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun with --device cuda: BatchNorm statistics over the whole global batch "
                        "(SyncBatchNorm) instead of each process's share; no effect in one process")


def run(args: argparse.Namespace) -> int:
    import torch

    from ffnet_nas import distributed, steps
    from ffnet_nas.settings import check_amp
    from ffnet_nas.space.complexity import parse_hw
    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.workspace import Workspace

    if args.steps < 1 or args.batch_size < 1 or args.checkpoint_every < 1:
        raise InvalidInput("--steps, --batch-size and --checkpoint-every: expected positive integers")
    check_batch_split(args.batch_size)
    if args.threads is not None:  # checked by the parser (commands._common.thread_count)
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    init = parse_init(args.init)
    if init is not None and args.checkpoint:
        raise InvalidInput("--init with --checkpoint: expected one (loaded weights are not trained, so they have no "
                           "initialisation)")
    check_amp(args.amp, device)
    ws = Workspace(args.workdir)
    input_hw = parse_hw(args.input_size) if args.input_size else None
    # under torchrun: the process group, this rank's device (cuda -> cuda:LOCAL_RANK); else nothing
    with distributed.session(device=device, sync_bn=args.sync_bn) as device:
        # reuse=False: re-running trains on (resumes a killed run, or continues to more --steps)
        result = steps.train_teacher(workspace=ws, device=device, progress=not args.no_progress,
                                     request=steps.TeacherRequest(
            arch=args.arch, steps=args.steps, data=args.data, batch_size=args.batch_size, input_hw=input_hw, lr=args.lr,
            optimizer=args.optimizer, checkpoint_every=args.checkpoint_every, seed=args.seed, workers=args.workers,
            eval_images=args.eval_images, checkpoint=args.checkpoint, init=init, amp=args.amp))
    if distributed.env_rank() != 0:
        return 0  # rank 0 says what was written
    meta = result.meta
    hw = f"{meta.input_hw[0]}x{meta.input_hw[1]}" if meta.input_hw else "native size"
    miou = "n/a" if meta.miou is None else f"{100 * meta.miou:.1f}"
    print(f"teacher: {meta.arch} on {meta.data} at {hw}, {meta.num_classes} classes, val mIoU {miou}")
    if result.run is not None and result.run.state_path is not None and result.run.state_path.exists():
        print(f"wrote {result.run.state_path}")
    print(f"wrote {ws.teacher_path}")
    return 0


def parse_init(text: str | None):
    """--init imagenet:FILE -> the file (checked to exist); None when not given."""
    from pathlib import Path

    from ffnet_nas.space.errors import InvalidInput

    if text is None:
        return None
    kind, _, path = text.partition(":")
    if kind != "imagenet" or not path:
        raise InvalidInput(f"--init {text!r}: expected imagenet:FILE (official ImageNet classification weights)")
    if not Path(path).expanduser().is_file():
        raise InvalidInput(f"--init {text!r}: file {path!r} not found; expected official ImageNet weights")
    return Path(path).expanduser()


def check_batch_split(batch_size: int) -> None:
    """Under torchrun the global batch is shared out evenly: refuse a size that does not split,
    on every rank, before any process group or data exists (so none waits for another)."""
    from ffnet_nas import distributed
    from ffnet_nas.space.errors import InvalidInput

    launch = distributed.launched()
    if launch is not None and batch_size % launch.world_size:
        raise InvalidInput(f"--batch-size {batch_size} does not split over {launch.world_size} processes: expected a "
                           f"multiple of {launch.world_size} (it is the global batch, shared out evenly)")
