"""Can the yardstick's seed noise be cut after fine-tuning? Precise BatchNorm statistics and weight averaging, scored on the same fine-tunes.

    .venv/bin/python -m bench.bench_yardstick --workdir runs/quick --out DIR [--k 16] [--draw-seed 0]
                                              [--average 25,50] [--bn-images 128] [--val-split 512]
                                              [--truth-images 256] [--steps N] [--lr LR] [--batch-size N]
                                              [--freeze-bn] [--grad-clip NORM]

Issue 13, item 2: the quick budget's yardstick (two fine-tuning seeds of one point) ranks held-out
points with Kendall tau ~0.8, and more scoring images or more steps did not sharpen it
(docs/results.md). Two cheap sources of seed noise remain after the last step:

* BatchNorm running statistics: an exponential average (momentum 0.1) over roughly the last ten
  batches of 8 augmented crops, so they depend on which crops the seed happened to draw last.
  "Precise BN" recomputes them as a plain average over a fixed set of training batches.
* The weights themselves: the average of the last N steps' weights (a tail average, as in SWA)
  smooths the last steps' batch-to-batch jitter; its BatchNorm statistics are recomputed, as
  SWA must.

On a finished `ffnet-nas run` workdir this draws the same never-evaluated points as
`fit-predictor --check` (`draw_points`, seeded), fine-tunes each under two seeds as the run does
(its run_summary.json) but ending at the last step, and scores every fine-tune four or more ways from the very same
training run: as trained (the run's yardstick), with precise BN, and each tail average with precise
BN. Scores are taken on the run's scoring images (its first `val_images`) and on `--truth-images`
images of a larger generated split. It prints, per variant, the seed-to-seed Kendall tau with a
bootstrap 95% interval (overall and within the largest output-stride group) and the mean absolute
seed difference, side by side. Resumable: each (point, seed) is written to DIR/yardstick.csv as it
is scored; DIR is a hard-linked copy of the workdir so nothing lands in the run's files.

`--steps`, `--lr` and `--batch-size` change the fine-tune itself (other ways to lower the seed
noise); DIR records the protocol it was measured under and refuses to resume under another.
`bench/gpu_yardstick.sh` runs several protocols side by side on a lent GPU.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench._workdir import held_out_points, link_copy
from ffnet_nas.predictor_check import largest_group
from ffnet_nas.space.io import atomic_write_text
from ffnet_nas.stats import kendall_interval

FILE = "yardstick.csv"
PROTOCOL = "yardstick_protocol.json"


def claim_protocol(path: Path, wanted: dict) -> None:
    """Record the fine-tuning protocol of an --out folder, or refuse one measured under another:
    a resume under other settings would mix two yardsticks in one CSV."""
    if path.exists():
        recorded = json.loads(path.read_text())
        if recorded != wanted:
            raise SystemExit(f"{path}: measured under {recorded}, not {wanted}; expected a new --out folder "
                             "for another protocol")
        return
    atomic_write_text(path, json.dumps(wanted) + "\n")


def summarize(frame: pd.DataFrame, *, variants: list[str], scopes: list[str]) -> pd.DataFrame:
    """Per variant and image set: seed-to-seed tau (overall, largest stride group), mean |difference|,
    and the mean change from the trained model's score (pure)."""
    wide = frame.pivot_table(index=["code", "stride"], columns=["seed"], values=[f"{v}@{s}" for v in variants
                                                                                  for s in scopes]).reset_index()
    _, inside = largest_group(wide["stride"].to_numpy())
    seeds = sorted(frame["seed"].unique())
    rows = []
    for scope in scopes:
        base = (wide[(f"trained@{scope}", seeds[0])].to_numpy(float) + wide[(f"trained@{scope}", seeds[1])].to_numpy(float)) / 2
        for v in variants:
            a, b = (wide[(f"{v}@{scope}", s)].to_numpy(float) for s in seeds)
            rows.append({"images": scope, "variant": v, "tau": kendall_interval(a, b).text(),
                         "tau_within": kendall_interval(a[inside], b[inside]).text(),
                         "mean_abs_seed_diff": float(np.mean(np.abs(a - b))),
                         "mean_change": float(np.mean((a + b) / 2 - base)),
                         "tau_vs_trained_truth": kendall_interval((a + b) / 2, base).text()})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """A Markdown table, floats to two decimals (pandas' to_markdown needs tabulate, not installed)."""
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True, help="a hard-linked copy of the workdir is made (and resumed) here")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--draw-seed", type=int, default=0)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--average", default="25,50", help="tail averages: the last N steps' weights, comma-separated")
    parser.add_argument("--bn-images", type=int, default=128, help="training images precise BN averages over")
    parser.add_argument("--val-split", type=int, default=512, help="embedded validation images generated")
    parser.add_argument("--truth-images", type=int, default=256, help="the larger scoring set (first N of the split)")
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: the run's)")
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=None, help="fine-tuning batch (default: the run's)")
    parser.add_argument("--freeze-bn", action="store_true", help="fine-tune with BatchNorm statistics held fixed "
                        "(recomputed on --bn-images crops first; TrainConfig.freeze_bn)")
    parser.add_argument("--grad-clip", type=float, default=None, help="clip the gradient norm (default: the run's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    from tqdm.auto import tqdm

    from ffnet_nas.data import fixed_batches, make_dataset
    from ffnet_nas.distill.assemble import assemble
    from ffnet_nas.evaluate import Resources
    from ffnet_nas.predictor_check import run_settings
    from ffnet_nas.space.io import atomic_write_csv
    from ffnet_nas.space.searchspace import get_search_space
    from ffnet_nas.training import evaluate, train
    from ffnet_nas.workspace import Workspace
    from ffnet_nas.averaging import TailAverage, recalibrate_bn

    root = link_copy(args.workdir, args.out, ignore=("check", "model.pt"))
    workspace = Workspace(root)
    settings = run_settings(workspace)
    if settings is None:
        raise SystemExit(f"{args.workdir}: no run_summary.json; expected a workdir finished by 'ffnet-nas run'")
    # the run's fine-tune with its own ending switched off: "trained" must be the last step's
    # weights and statistics, whatever ending the run used (runs since the averaged ending record
    # average_tail and precise_bn, which would otherwise be applied before this bench's variants)
    protocol = {"average_tail": 0.0, "precise_bn": 0, **{k: v for k, v in (("steps", args.steps), ("lr", args.lr),
                                                                           ("batch_size", args.batch_size),
                                                                           ("grad_clip", args.grad_clip)) if v}}
    if args.freeze_bn:  # the statistics are recomputed before the first step and held: the "trained" ending keeps them
        protocol.update(freeze_bn=True, precise_bn=args.bn_images)
    base = dataclasses.replace(settings.config, **protocol)
    seeds = [int(s) for s in args.seeds.split(",")]
    tails = sorted(int(n) for n in args.average.split(",") if n)
    if len(seeds) != 2 or any(not 1 <= n <= base.steps for n in tails):
        raise SystemExit(f"expected two seeds and tails between 1 and {base.steps} steps")
    claim_protocol(root / PROTOCOL, {"steps": base.steps, "lr": base.lr, "batch_size": base.batch_size,
                                     "bn_images": args.bn_images, "val_split": args.val_split,
                                     **({"freeze_bn": True} if base.freeze_bn else {}),
                                     **({"grad_clip": base.grad_clip} if base.grad_clip else {})})
    space = get_search_space(settings.space)
    points = held_out_points(workspace, space, args.k, seed=args.draw_seed)
    r = Resources.load(workspace, score_at=settings.score_at)
    if not r.data.startswith("synthetic"):
        raise SystemExit(f"the embedded data only (this workdir's is {r.data!r}): it generates the larger split")
    val_ds = make_dataset(r.data, "val", size_hw=r.score_hw, num_images=args.val_split, cache_dir=workspace.data_dir)
    scopes = {"run": settings.val_images, "truth": args.truth_images}
    bn_batches = fixed_batches(r.train_ds, batch_size=8, n_batches=max(1, args.bn_images // 8), seed=0)
    # held statistics: the averaged weights are also scored with them, as the fine-tune trained under them
    variants = ["trained", "precise_bn"] + [f"avg{n}_bn" for n in tails] + ([f"avg{n}" for n in tails] if base.freeze_bn else [])

    path = root / FILE
    done = pd.read_csv(path) if path.exists() else pd.DataFrame()
    rows = done.to_dict("records")
    have = {(row["code"], int(row["seed"])) for row in rows}
    t0 = time.perf_counter()
    todo = [(a, s) for a in points for s in seeds if (a.code, s) not in have]
    for arch, seed in tqdm(todo, desc="fine-tunes", unit="fine-tune", dynamic_ncols=True):
        model = assemble(arch, workspace.library_dir)
        config = dataclasses.replace(base, seed=seed)
        averages = {n: TailAverage(last=n, steps=config.steps) for n in tails}

        def on_step(step: int, _loss: float) -> None:  # the run's own weights stay the last step's
            for average in averages.values():
                average.add(step, model)

        train(model, r.train_ds, config=config, teacher=r.teacher, device=args.device, progress=False,
              fingerprint={"init": "distilled", "data": r.data}, on_step=on_step)
        models = {"trained": model.eval()}
        precise = copy.deepcopy(model)
        recalibrate_bn(precise, bn_batches)
        models["precise_bn"] = precise
        for n in tails:
            avg = copy.deepcopy(model)
            averages[n].apply(avg)
            if base.freeze_bn:
                models[f"avg{n}"] = copy.deepcopy(avg)
            recalibrate_bn(avg, bn_batches)
            models[f"avg{n}_bn"] = avg
        row = {"code": arch.code, "stride": arch.output_stride, "seed": seed}
        for v, m in models.items():
            for scope, limit in scopes.items():
                row[f"{v}@{scope}"] = 100 * evaluate(m.eval(), val_ds, device=args.device, limit=limit,
                                                     progress=False).miou
        rows.append(row)
        atomic_write_csv(path, pd.DataFrame(rows))
    frame = pd.DataFrame(rows)
    frame = frame[frame["code"].isin({a.code for a in points})]
    table = summarize(frame, variants=variants, scopes=list(scopes))
    print(f"{len(points)} held-out points, fine-tuned {base.steps} steps (lr {base.lr:g}, batch {base.batch_size}"
          f"{', BatchNorm held' if base.freeze_bn else ''}{f', gradient clipped at {base.grad_clip:g}' if base.grad_clip else ''}) "
          f"under seeds {seeds}; scopes: "
          f"run = first {settings.val_images} images, truth = first {args.truth_images} of {args.val_split}; precise "
          f"BN over {len(bn_batches) * 8} training crops\n")
    print(markdown(table))
    print(f"\n({time.perf_counter() - t0:.0f} s; per-fine-tune scores in {path})")


if __name__ == "__main__":
    main()
