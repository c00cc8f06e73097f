"""Does the accuracy predictor rank points the run never evaluated, and better than the trivial rules?

    .venv/bin/python -m bench.bench_predictor --workdir runs/quick [--k 16] [--draw-seed 0] [--short-steps 10]
                                              [--finetune-of BUDGET] [--steps N] [--val-images N] [--val-split N]
                                              [--fewer-images N]
                                              [--out DIR]

On a finished `ffnet-nas run` workdir: `ffnet_nas.predictor_check.check_predictor` with the run's own
space, fine-tuning and scoring (its run_summary.json). K never-evaluated points, each fine-tuned
under two seeds, scored again on disjoint images, ranked by the predictor and by every baseline
(output stride, params, MACs, measured latency, grad-norm, ZiCo, no fine-tuning, a short fine-tune);
Kendall tau against the mean of the seeds with bootstrap 95% intervals, overall and within the
largest output-stride group, side by side in one run. Resumable: a killed run measures only what
is missing (WORKDIR/predictor/check/measurements.csv). Prints the Markdown table docs/results.md quotes.

The yardstick experiments of issue 13 change how a point is measured: `--finetune-of BUDGET` (that
budget's whole fine-tune recipe, e.g. `full` on a quick run), `--steps` (fine-tuning steps),
`--val-images` (images scored), `--val-split` (embedded validation images generated). Each such
run needs its own `--out` folder (a copy of the workdir is made there first), or the measurements
of one protocol would resume another's. `--fewer-images N` also scores each seed's fine-tuned
model on the first N images: the yardstick at two image counts on the very same weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

from bench._workdir import link_copy
from ffnet_nas.budgets import get_budget
from ffnet_nas.predictor_check import check_predictor, run_settings
from ffnet_nas.settings import autocast_dtype
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import get_search_space
from ffnet_nas.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--draw-seed", type=int, default=0)
    parser.add_argument("--short-steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--finetune-of", default=None, metavar="BUDGET",
                        help="fine-tune as that budget does (its evaluate.finetune: steps, BatchNorm, clipping, ending) "
                             "instead of as the run did; scoring stays the run's")
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: the run's)")
    parser.add_argument("--val-images", type=int, default=None, help="images scored (default: the run's)")
    parser.add_argument("--amp", choices=("bf16", "fp32"), default=None,
                        help="the fine-tunes' precision (default: the run's; fp32 where the run trained in bf16 "
                             "separates the fine-tune's precision from the library's)")
    parser.add_argument("--val-split", type=int, default=None, help="embedded validation images generated")
    parser.add_argument("--fewer-images", type=int, default=None,
                        help="also score every seed's model on the first N images (the yardstick at two image counts)")
    parser.add_argument("--out", default=None, help="copy the workdir here first (for a changed protocol)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.out is None and (args.steps or args.val_images or args.val_split or args.amp or args.finetune_of):
        raise SystemExit("--steps/--val-images/--val-split/--amp/--finetune-of change the protocol: give --out DIR for "
                         "its measurements")
    recipe = None
    if args.finetune_of is not None:  # checked before the copy is made
        try:
            recipe = get_budget(args.finetune_of).evaluate.finetune
        except InvalidInput as exc:
            raise SystemExit(f"--finetune-of: {exc}") from None
    root = args.workdir
    if args.out is not None:
        root = link_copy(args.workdir, args.out, ignore=("check", "model.pt"))
    workspace = Workspace(root)
    settings = run_settings(workspace)
    if settings is None:
        raise SystemExit(f"{args.workdir}: no run_summary.json; expected a workdir finished by 'ffnet-nas run'")
    config = settings.config
    if recipe is not None:  # e.g. the full budget's fine-tune on a quick run's library and images
        config = recipe
    if args.steps is not None:
        config = dataclasses.replace(config, steps=args.steps)
    if args.amp is not None:
        config = dataclasses.replace(config, amp=autocast_dtype(args.amp))
    t0 = time.perf_counter()
    check = check_predictor(workspace=workspace, space=get_search_space(settings.space), k=args.k, config=config,
                            val_images=args.val_images or settings.val_images, score_at=settings.score_at,
                            short_steps=args.short_steps, draw_seed=args.draw_seed, device=args.device,
                            val_split=args.val_split, fewer_images=args.fewer_images)
    print(check.table())
    print(f"\n({time.perf_counter() - t0:.0f} s; figures in {workspace.predictor_check_dir})")


if __name__ == "__main__":
    main()
