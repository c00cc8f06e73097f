"""How many validation images does the zero-shot stage need? Z on the first N of the run's images,
against Z on all of them, on the held-out points of finished predictor checks, and its time.

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.bench_zero_shot_images CHECK_WORKDIR [CHECK_WORKDIR ...] --images 64

Each CHECK_WORKDIR is a finished `bench.bench_predictor --out` folder: its summary.json holds K held-out
points, two fine-tuning seeds each (their mean is the truth), and `zero_shot_bn`, the recalibrated
zero-shot score on the run's scoring images (the quick budget's 256). For every point this scores the
same recalibrated model again on all of them and on the first `--images`, alternating which goes
first, and times both side by side (assembly and recalibration included: what the search pays per
point). The re-scored full value must reproduce the stored one (a check that this is the stage's Z).

Prints, per folder and pooled over the folders (a tau is the mean of the per-folder taus; points are
resampled within their folder: `ffnet_nas.stats.kendall_difference`): Kendall tau of each against the
truth, overall and within each folder's largest stride group, the paired difference (fewer minus all)
with its bootstrap 95% interval, and seconds per point with their ratio. Scores are kept in
FOLDER/predictor/check/zero_shot_images.csv, so a killed run resumes. Issue 13 (docs/results.md, "Z on
fewer images").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("code", "images", "zero_shot_bn", "seconds")
FILE = "zero_shot_images.csv"


def _score(arch, *, ws, r, images: int | None) -> tuple[float, float]:
    from ffnet_nas.zero_shot import STAGE_BN_BATCHES, score_point

    t0 = time.perf_counter()
    value = score_point(arch, library=ws.library_dir, val_ds=r.val_ds, val_images=images, train_ds=r.train_ds,
                        bn_batches=STAGE_BN_BATCHES)
    return value, time.perf_counter() - t0


def measure(folder: Path, *, fewer: int) -> pd.DataFrame:
    """The check's points with truth, stride, Z on all images (stored and re-scored) and on `fewer`, and seconds."""
    from bench._workdir import check_points
    from ffnet_nas.evaluate import Resources
    from ffnet_nas.predictor_check import latest_predictor_dir
    from ffnet_nas.space import Arch
    from ffnet_nas.space.io import atomic_write_csv
    from ffnet_nas.workspace import Workspace

    ws = Workspace(folder)
    points, summary = check_points(folder)
    full = summary["val_images"]
    if not (isinstance(full, int) and 0 < fewer < full):
        raise SystemExit(f"--images {fewer}: expected fewer than the {full} images the check in {folder} scored on")
    r = Resources.load(ws, predictor_dir=latest_predictor_dir(ws), score_at="train", val_images=full)
    path = ws.predictor_check_dir / FILE
    done = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=list(COLUMNS))
    for i, code in enumerate(points["code"]):
        have = set(done.loc[done["code"] == code, "images"].astype(int))
        order = [full, fewer] if i % 2 == 0 else [fewer, full]  # alternate: neither count always runs warm
        for images in order:
            if images in have:
                continue
            value, seconds = _score(Arch.parse(code), ws=ws, r=r, images=images)
            done = pd.concat([done, pd.DataFrame([{"code": code, "images": images, "zero_shot_bn": value,
                                                   "seconds": seconds}])], ignore_index=True)
            atomic_write_csv(path, done)
    wide = done.pivot_table(index="code", columns="images", values=["zero_shot_bn", "seconds"])
    points["z_full"] = [wide.loc[c, ("zero_shot_bn", full)] for c in points["code"]]
    points["z_fewer"] = [wide.loc[c, ("zero_shot_bn", fewer)] for c in points["code"]]
    points["s_full"] = [wide.loc[c, ("seconds", full)] for c in points["code"]]
    points["s_fewer"] = [wide.loc[c, ("seconds", fewer)] for c in points["code"]]
    drift = float(np.max(np.abs(points["z_full"] - points["zero_shot_bn"])))
    if drift > 1e-3:
        raise SystemExit(f"{folder}: Z re-scored on all {full} images differs from the check's stored value by "
                         f"{drift:.4f} mIoU; expected the same score (same library, images and recalibration)")
    points["folder"] = str(folder)
    return points


def report(points: pd.DataFrame, *, fewer: int, label: str) -> list[str]:
    from bench.bench_predictor_features import largest_groups, tau_cells  # the same largest-group rule as that bench

    g = np.unique(points["folder"], return_inverse=True)[1]
    inside = largest_groups(points["stride"].to_numpy(), g)
    truth = points["truth"].to_numpy(float)
    full, few = points["z_full"].to_numpy(float), points["z_fewer"].to_numpy(float)
    lines = [f"\n{label}: {len(points)} held-out points; truth = mean of the two seeds",
             "| Z scored on | tau, all points | tau, largest stride group | seconds per point (median) |",
             "|---|---:|---:|---:|"]
    for name, z, s in (("all the run's images", full, points["s_full"]), (f"the first {fewer}", few, points["s_fewer"])):
        lines.append(f"| {name} | {tau_cells(z, None, truth, groups=g, inside=inside)} | {np.median(s):.2f} |")
    lines.append(f"| fewer minus all (paired) | {tau_cells(few, full, truth, groups=g, inside=inside)} "
                 f"| ratio {np.sum(points['s_full']) / np.sum(points['s_fewer']):.2f}x |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=64, help="the fewer images Z is scored on (default 64)")
    args = parser.parse_args(argv)
    frames = [measure(f, fewer=args.images) for f in args.folders]
    for f, frame in zip(args.folders, frames):
        print("\n".join(report(frame, fewer=args.images, label=str(f))))
    if len(frames) > 1:
        print("\n".join(report(pd.concat(frames, ignore_index=True), fewer=args.images,
                               label=f"pooled over {len(frames)} checks")))


if __name__ == "__main__":
    main()
