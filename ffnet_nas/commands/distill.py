"""`ffnet-nas distill`: blockwise knowledge distillation of every block choice of a space."""

from __future__ import annotations

import argparse

from ffnet_nas.commands._common import add_amp_arg, add_scheduler_arg, common_options, resolve_device


def _positive(name: str, value: int, minimum: int = 1) -> int:
    if value < minimum:
        from ffnet_nas.space.errors import InvalidInput  # not at module level: it loads torch

        raise InvalidInput(f"--{name} {value}: expected an integer >= {minimum}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "distill", parents=[common_options(device="cpu", threads=True, progress=True)],
        help="distil every block choice of a space from the teacher into the block library",
        description="For every (position, choice) of the space, trains the student block alone to reproduce the "
                    "teacher's output at that position from the teacher's input there (loss: NSR = "
                    "||S-T||^2/||T||^2), and writes WORKDIR/library/{blocks.csv, blocks/*.pt}. Teacher features "
                    "are cached in WORKDIR/library/features/. Each block is saved when it finishes: interrupt at "
                    "any time, a re-run trains only what is missing.",
    )
    p.add_argument("--space", default="mobile", help="built-in space (mobile, gpu_large, gpu_small, all, mobile_peers) or a YAML file")
    p.add_argument("--teacher", default=None, metavar="FILE", help="teacher file (default: WORKDIR/teacher/teacher.pt)")
    p.add_argument("--data", default=None,
                   help="synthetic | synthetic:SEED[:hard] | cityscapes:PATH | ade20k:PATH | folder:PATH "
                        "(default: the data the teacher was trained on, else synthetic)")
    p.add_argument("--jobs", type=int, default=1,
                   help="blocks trained in parallel processes, each with cores/N torch threads (default 1)")
    add_scheduler_arg(p, work="train the blocks (each with --threads torch threads, default 1)")
    p.add_argument("--steps", type=int, default=300, help="training steps per block (default 300)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--train-images", type=int, default=256, help="images whose teacher features train the blocks")
    p.add_argument("--val-images", type=int, default=64, help="held-out images for each block's NSR")
    p.add_argument("--retry-failed", action="store_true", help="train again the blocks marked failed")
    p.add_argument("--seed", type=int, default=0)
    add_amp_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ffnet_nas import steps
    from ffnet_nas.settings import BlockTrainConfig, check_amp
    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.space.searchspace import get_search_space
    from ffnet_nas.workspace import Workspace

    for name in ("jobs", "steps", "batch_size", "train_images", "val_images"):
        _positive(name.replace("_", "-"), getattr(args, name))
    if not args.lr > 0:
        raise InvalidInput(f"--lr {args.lr}: expected a positive learning rate")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)  # checked by the parser (commands._common.thread_count)
    from ffnet_nas.cluster import check_scheduler, scheduler_address

    scheduler = scheduler_address(args.scheduler)
    if scheduler and args.jobs > 1:
        raise InvalidInput(f"--jobs {args.jobs} with a Dask scheduler ({scheduler}): expected one of them "
                           "(the cluster's workers are the jobs)")
    check_scheduler(scheduler)
    device = resolve_device(args.device)
    check_amp(args.amp, device)
    ws = Workspace(args.workdir)
    space = get_search_space(args.space)
    config = BlockTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, amp=args.amp)
    # the data defaults to the teacher's, and a data set whose class count differs from the
    # teacher's is refused inside the step
    result = steps.distill(workspace=ws, progress=not args.no_progress, request=steps.DistillRequest(
        space=space, config=config, train_images=args.train_images, val_images=args.val_images,
        teacher_path=args.teacher, data=args.data, jobs=args.jobs, scheduler=scheduler, threads=args.threads,
        retry_failed=args.retry_failed, device=device))
    summary = result.summary
    for path in summary.feature_paths:
        print(f"teacher features: {path}")
    print(f"block library: {summary.library_dir} ({summary.choices} choices in space {space.name!r}: "
          f"{summary.trained} trained now, {summary.skipped} already there)")
    print(f"table: {summary.table_path}")
    if summary.failed:
        print(f"{len(summary.failed)} block(s) FAILED and will not be used by assemble:")
        for line in summary.failed:
            print(f"  {line}")
        return 1
    return 0
