"""ffnet-nas fit-predictor: evaluate a space-filling set of points and fit the accuracy predictor."""

from __future__ import annotations

import argparse

from ffnet_nas.commands._common import common_options
from ffnet_nas.commands.evaluate import add_finetune_args, finetune_settings


def register(sub) -> None:
    p = sub.add_parser("fit-predictor", parents=[common_options(device="cpu")],
                       help="fit the accuracy predictor (evaluating points as needed)",
                       description="Picks N points (published variants of the space plus a space-filling sample), "
                                   "evaluates those not yet evaluated, fits a ridge model from per-block held-out NSR "
                                   "to measured mIoU, and reports leave-one-out Kendall tau and Spearman.")
    p.add_argument("--n", type=int, default=12, help="points to pick (default 12); all evaluated rows are used")
    p.add_argument("--space", default="mobile", help="built-in space name or YAML file (default mobile)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--refit-only", action="store_true", help="refit on the evaluated rows, evaluate nothing")
    add_finetune_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ffnet_nas.fit_predictor import fit_from_table, fit_predictor
    from ffnet_nas.workspace import Workspace
    from ffnet_nas.space.searchspace import get_space

    workspace = Workspace(args.workdir)
    if args.refit_only:
        predictor = fit_from_table(workspace)
    else:
        predictor = fit_predictor(workspace=workspace, space=get_space(args.space), n=args.n,
                                  settings=finetune_settings(args), seed=args.seed, device=args.device)
    v = predictor.validation
    print(f"accuracy predictor: ridge (alpha {predictor.alpha:g}) on {v.n} fine-tuned points; leave-one-out "
          f"Kendall tau {v.kendall_tau:.3f}, Spearman {v.spearman:.3f}, mean abs error {v.mae:.2f} mIoU")
    print(f"wrote {workspace.predictor_dir / 'accuracy.json'} and {workspace.predictor_dir / 'loo.csv'}")
    return 0
