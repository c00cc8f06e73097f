"""Distilled vs random initialisation for the same fine-tuning budget (DONNA's claim, on our data).

    python bench/bench_init.py --workdir runs/quick --points 4 --steps 30,100

Uses the workdir's teacher and block library (run `ffnet-nas run --budget quick` first). For each
point and each step budget, fine-tunes the point twice — assembled from the distilled blocks, and
from random initialisation — with the same data, KD weight, seed and steps, alternating the two so
machine drift hits both alike, then prints val mIoU side by side and the difference. Results go to
a scratch workdir beside the given one (`<workdir>-bench-init/`), so the real evaluated table is
not touched; re-running reuses finished points.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


from ffnet_nas.budgets import finetune_config  # noqa: E402
from ffnet_nas.evaluate import evaluate_points  # noqa: E402
from ffnet_nas.fit_predictor import select_points  # noqa: E402
from ffnet_nas.workspace import Workspace  # noqa: E402
from ffnet_nas.fit_predictor import library_nsr  # noqa: E402
from ffnet_nas.predictors.accuracy import missing_blocks  # noqa: E402
from ffnet_nas.space.catalogue import variants  # noqa: E402
from ffnet_nas.space.searchspace import get_space  # noqa: E402


def scratch(workdir: Path, steps: int) -> Workspace:
    """A workspace that shares the teacher, library and data of `workdir` but has its own table."""
    root = Path(f"{workdir}-bench-init") / f"steps{steps}"
    root.mkdir(parents=True, exist_ok=True)
    for name in ("teacher", "library", "data"):
        link = root / name
        if not link.exists():
            os.symlink((workdir / name).resolve(), link)
    return Workspace(root)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="runs/quick")
    parser.add_argument("--space", default="mobile")
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--steps", default="30,100", help="comma-separated fine-tuning budgets")
    parser.add_argument("--val-images", type=int, default=64)
    args = parser.parse_args()

    import pandas as pd

    workdir = Path(args.workdir)
    ws = Workspace(workdir)
    if not (ws.teacher_path.exists() and (ws.library_dir / "blocks.csv").exists()):
        print(f"{workdir} has no teacher or block library: run 'ffnet-nas run --budget quick --workdir {workdir}' first")
        return 2
    nsr = library_nsr(ws)
    space = get_space(args.space)
    points = [a for a in select_points(space, 4 * args.points, seed=1, published=[v.arch for v in variants()])
              if not missing_blocks(a, nsr)][: args.points]
    budgets = [int(s) for s in args.steps.split(",")]
    rows = []
    t0 = time.perf_counter()
    for steps in budgets:
        bench_ws = scratch(workdir, steps)
        config = finetune_config(steps=steps)  # the run's fine-tuning recipe (KD weight 1) in float32, this many steps
        for arch in points:  # alternate inits point by point: drift hits both alike
            for init in ("distilled", "random"):
                frame = evaluate_points([arch], workspace=bench_ws, config=config, val_images=args.val_images, init=init,
                                        progress=False)
                rows.append({"steps": steps, "code": arch.code, "init": init,
                             "miou": float(frame.iloc[0]["measured_miou"])})
    table = pd.DataFrame(rows).pivot_table(index=["steps", "code"], columns="init", values="miou").reset_index()
    table["distilled - random"] = table["distilled"] - table["random"]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    for steps, group in table.groupby("steps"):
        print(f"steps {steps}: mean mIoU distilled {group['distilled'].mean():.2f} vs random {group['random'].mean():.2f} "
              f"(+{group['distilled - random'].mean():.2f}); distilled better on {int((group['distilled - random'] > 0).sum())}"
              f"/{len(group)} points")
    print(f"{len(points)} points x {len(budgets)} budgets x 2 inits in {time.perf_counter() - t0:.0f} s; "
          f"tables in {workdir}-bench-init/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
