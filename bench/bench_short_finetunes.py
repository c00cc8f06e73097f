"""How short may a fine-tune be and still rank held-out points, on a seed the truth does not use?

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_short_finetunes CHECK_DIR [CHECK_DIR ...] [--steps 10,30,50] [--seeds 2]

Each CHECK_DIR is a finished `bench.bench_predictor --out` (or `ffnet-nas fit-predictor --check`)
folder made with the run's own fine-tuning: its summary.json holds K held-out points, each
fine-tuned for the run's steps under two seeds (their mean is the truth), and the check's short
fine-tune (`shortN`: N steps, run under the truth's *first* seed). For every point and every N in
`--steps` this fine-tunes the assembled distilled model for N steps under each of `--seeds` exactly as the
check's short fine-tune does (same recipe, images, scoring; only the seed and the steps differ)
and scores it. It then prints, pooled over the folders, with bootstrap 95% intervals:

  * each short fine-tune's Kendall tau against the truth, overall and inside each folder's largest
    output-stride group, and beside them Z (the zero-shot stage) and output stride alone;
  * each one's tau against seed a alone minus against seed b alone (paired): a short fine-tune that
    shares seed a's randomness (the check's own) should lean towards seed a, one under another seed
    should not. This is whether the check's short-fine-tune baseline is flattered by its seed;
  * on the pairs of one stride, each ranker's agreement (right minus wrong, over the pairs) against
    the agreement a ranker needs there to pass stride alone as plain tau-b (`bench_pair_gaps`);
  * the median seconds per point of each of this bench's fine-tunes (assembly and scoring included).

Values are kept in FOLDER/predictor/check/short_finetunes.csv (code, steps, seed, miou, seconds), so a
killed run resumes. Issue 13, items 1 and 3 ("the yardstick says how short a fine-tune may be and
still rank"; docs/results.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

FILE = "short_finetunes.csv"
COLUMNS = ["code", "steps", "seed", "miou", "seconds"]


def column(steps: int, seed: int) -> str:
    return f"ft{steps}_s{seed}"


def measure(folder: Path, *, steps: list[int], seeds: list[int], settings=None) -> pd.DataFrame:
    """The check's points (bench._workdir.check_points) with one column per short fine-tune
    and seed (`column(steps, seed)`) and its seconds (`column(...)_seconds`). `settings`
    (`predictor_check.RunSettings`): the run's fine-tune and scoring, read from the folder's
    run_summary.json when not given."""
    from tqdm.auto import tqdm

    from bench._workdir import check_points
    from ffnet_nas.evaluate import Resources
    from ffnet_nas.predictor_check import latest_predictor_dir, run_settings, short_finetune
    from ffnet_nas.space import Arch
    from ffnet_nas.space.errors import InvalidInput
    from ffnet_nas.space.io import atomic_write_csv
    from ffnet_nas.workspace import Workspace

    ws = Workspace(folder)
    points, summary = check_points(folder)
    settings = settings or run_settings(ws)
    if settings is None:
        raise InvalidInput(f"{str(folder)!r}: no run_summary.json; expected a check folder copied from a finished run")
    config = settings.config
    if summary.get("steps") != config.steps or summary.get("val_images") != settings.val_images:
        raise InvalidInput(f"{str(folder)!r}: its check fine-tuned {summary.get('steps')} steps and scored "
                           f"{summary.get('val_images')} images, the run {config.steps} and {settings.val_images}; "
                           "expected a check made with the run's own protocol")
    shared = [s for s in seeds if s in summary["seeds"]]
    if shared:
        raise InvalidInput(f"--seeds {shared}: the truth's seeds are {summary['seeds']}; expected others")
    bad = [n for n in steps if not 1 <= n < config.steps]
    if bad:
        raise InvalidInput(f"--steps {bad}: expected 1 to {config.steps - 1} (fewer than the run's fine-tune)")
    path = ws.predictor_check_dir / FILE
    done = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=COLUMNS)
    have = {(str(c), int(n), int(s)) for c, n, s in zip(done["code"], done["steps"], done["seed"])}
    todo = [(c, n, s) for s in seeds for c in points["code"] for n in steps if (c, n, s) not in have]
    if todo:
        r = Resources.load(ws, predictor_dir=latest_predictor_dir(ws), score_at=settings.score_at,
                           val_images=settings.val_images)
        for code, n, seed in tqdm(todo, desc=f"short fine-tunes ({folder.name})", unit="fine-tune", dynamic_ncols=True):
            t0 = time.perf_counter()
            miou = short_finetune(Arch.parse(code), r=r, workspace=ws, config=config, steps=n, seed=seed,
                                  val_images=settings.val_images)
            row = {"code": code, "steps": n, "seed": seed, "miou": miou, "seconds": time.perf_counter() - t0}
            done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
            atomic_write_csv(path, done)
    for seed in seeds:
        for n in steps:
            mine = done[(done["steps"] == n) & (done["seed"] == seed)].set_index("code")
            points[column(n, seed)] = points["code"].map(mine["miou"])
            points[column(n, seed) + "_seconds"] = points["code"].map(mine["seconds"])
    points["folder"] = str(folder)
    return points


def rankers(points: pd.DataFrame, *, steps: list[int], seeds: list[int]) -> list[tuple[str, str]]:
    """(label, column) of every ranker compared: Z, the check's own short fine-tune, this bench's."""
    short = sorted(c for c in points.columns if c.startswith("short") and c[5:].isdigit())
    out = [("Z, the zero-shot stage", "zero_shot_bn")]
    out += [(f"{c[5:]} steps, seed a (the check's short fine-tune)", c) for c in short]
    out += [(f"{n} steps, seed {seed}", column(n, seed)) for seed in seeds for n in steps]
    return out


def report(points: pd.DataFrame, *, steps: list[int], seeds: list[int]) -> list[str]:
    from bench.bench_pair_gaps import break_even, pooled_stride_pairs
    from bench.bench_predictor_features import largest_groups, tau_cells
    from ffnet_nas.stats import kendall_difference

    g = np.unique(points["folder"], return_inverse=True)[1]
    inside = largest_groups(points["stride"].to_numpy(), g)
    truth, a, b = (points[c].to_numpy(float) for c in ("truth", "seed_a", "seed_b"))
    stride = -points["stride"].to_numpy(float)
    checks = [points[points["folder"] == f] for f in points["folder"].unique()]
    lines = [f"{len(points)} held-out points in {len(checks)} check(s); truth = the mean of seeds a and b",
             "| ranking by | tau, all | tau, largest stride group | vs seed a minus vs seed b (paired) "
             "| agreement on pairs of one stride (needed) | median s per point |",
             "|---|---:|---:|---:|---:|---:|",
             f"| the other seed (yardstick) | {tau_cells(a, None, b, groups=g, inside=inside)} | | | |",
             f"| output stride alone | {kendall_difference(stride, None, truth, groups=g).text()} | | | | |"]
    for label, col in rankers(points, steps=steps, seeds=seeds):
        s = points[col].to_numpy(float)
        lean = kendall_difference(s, s, a, groups=g, truth_b=b).text()
        _, same, net, n = pooled_stride_pairs(checks, col, "truth")
        needed = break_even(across_net=net, across_pairs=n, ordered=len(same)) if n else float("nan")
        seconds = points.get(col + "_seconds")
        lines.append(f"| {label} | {tau_cells(s, None, truth, groups=g, inside=inside)} | {lean} "
                     f"| {same.mean():.3f} ({needed:.3f}) "
                     f"| {'' if seconds is None else f'{np.nanmedian(seconds):.1f}'} |")
    for n in steps:  # a length measured under two seeds: its own yardstick, and their mean against the truth
        if len(seeds) < 2:
            break
        x, y = (points[column(n, s)].to_numpy(float) for s in seeds[:2])
        lines.append(f"| {n} steps, seed {seeds[0]} against seed {seeds[1]} (its own yardstick) "
                     f"| {tau_cells(x, None, y, groups=g, inside=inside)} | | "
                     f"| mean abs difference {np.nanmean(np.abs(x - y)):.2f} mIoU |")
        mean = (x + y) / 2
        lines.append(f"| {n} steps, mean of seeds {seeds[0]} and {seeds[1]} "
                     f"| {tau_cells(mean, None, truth, groups=g, inside=inside)} | | "
                     f"| mIoU {np.nanmean(mean):.2f} (truth {np.nanmean(truth):.2f}) |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--steps", default="10,30,50", help="short fine-tunes' steps, comma-separated")
    parser.add_argument("--seeds", default="2", help="their seeds, comma-separated: ones the truth does not use "
                        "(two give each length its own seed-to-seed yardstick)")
    parser.add_argument("--save", type=Path, default=None,
                        help="also write the pooled per-point table here (CSV: every check figure and fine-tune)")
    args = parser.parse_args(argv)
    steps, seeds = ([int(n) for n in text.split(",")] for text in (args.steps, args.seeds))
    points = pd.concat([measure(f, steps=steps, seeds=seeds) for f in args.folders], ignore_index=True)
    print("\n".join(report(points, steps=steps, seeds=seeds)))
    if args.save is not None:
        from ffnet_nas.space.io import atomic_write_csv

        args.save.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_csv(args.save, points)
        print(f"wrote {args.save}")


if __name__ == "__main__":
    main()
