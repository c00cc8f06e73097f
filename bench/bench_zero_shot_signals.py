"""Does anything read from the distilled model's forward pass rank points better than its mIoU (Z)?

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.bench_zero_shot_signals CHECK_WORKDIR [CHECK_WORKDIR ...]

Each CHECK_WORKDIR is a finished `bench.bench_predictor --out` folder: its summary.json holds K held-out
points, two fine-tuning seeds each (their mean is the truth), and `zero_shot_bn`, the zero-shot stage's
score (Z: the assembled distilled model, BatchNorm recalibrated on the stage's 64 training images,
mIoU on the run's scoring images). For every point this recalibrates the model as the stage does and,
from the same forward pass over the scoring images, reads signals the issue names as directions
(issue 13, item 3: "the assembled model's end-to-end KD loss or zero-shot mIoU"):

    z              Z itself; must reproduce the check's stored value (a check that this is the stage's Z)
    ce             cross-entropy to the labels, per labelled pixel (a continuous Z; lower ranks higher)
    kd             KL(teacher || model) per pixel at temperature 1: the end-to-end distillation loss
    agree          mIoU of the model's argmax against the teacher's argmax (the teacher as the labels)
    pixel_acc      pixel accuracy against the labels
    p_true         mean softmax probability of the labelled class
    z_other        mIoU on the next as many images of the split, disjoint from the scoring images
    z_both         mIoU over both sets of images together (twice the images)
    z_recal4x      Z after recalibrating on 4x the training images

Prints, pooled over the folders (a tau is the mean of the per-folder taus; points resampled within
their folder: `ffnet_nas.stats.kendall_difference`), each signal's Kendall tau against the truth,
overall and within each folder's largest output-stride group, and its paired difference from Z, with
bootstrap 95% intervals; and the rank mean of Z and the check's 10-step fine-tune. Values are kept in
FOLDER/predictor/check/zero_shot_signals.csv, so a killed run resumes. Issue 13 (docs/results.md,
"What else the distilled model's forward pass says"). Until 2026-12-07 this bench read one folder and
scored the model as distilled, without recalibration (commit 02bb328; the figures of "The predictor
check again, on a run with the averaged ending" came from that version).
"""

from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

FILE = "zero_shot_signals.csv"
SIGNALS = ("z", "ce", "kd", "agree", "pixel_acc", "p_true", "z_other", "z_both", "z_recal4x")
LOWER_IS_BETTER = ("ce", "kd")
LABELS = {"z": "Z: mIoU (the stage's score)", "ce": "cross-entropy to the labels", "kd": "KL to the teacher (end-to-end KD loss)",
          "agree": "mIoU against the teacher's argmax", "pixel_acc": "pixel accuracy", "p_true": "probability of the labelled class",
          "z_other": "Z on other images (disjoint)", "z_both": "Z on twice the images", "z_recal4x": "Z, recalibrated on 4x the images",
          "z_short": "rank mean of Z and the check's short fine-tune (10 steps at quick)"}
BATCH = 8  # `training.evaluate`'s batch: Z is then the stage's score to the bit


def forward_signals(model, val_ds, *, start: int, stop: int, num_classes: int, teacher_logits=None) -> dict[str, float]:
    """The signals of `model` (eval mode) on images start..stop-1 of `val_ds`; the teacher's terms
    (kd, agree) when `teacher_logits` (one tensor per batch of BATCH, at the label size) is given."""
    import torch
    import torch.nn.functional as F

    from ffnet_nas.metrics import IGNORE_INDEX, ConfusionMeter
    from ffnet_nas.training import kd_loss, segmentation_loss

    labels, agree = ConfusionMeter(num_classes=num_classes), ConfusionMeter(num_classes=num_classes)
    ce = kd = p_true = 0.0
    pixels = labelled = 0
    model.eval()
    with torch.inference_mode():
        for k, i in enumerate(range(start, stop, BATCH)):
            images, masks = zip(*(val_ds[j] for j in range(i, min(i + BATCH, stop))))
            images, masks = torch.stack(images), torch.stack([torch.as_tensor(m) for m in masks]).long()
            logits = model(images).float()
            labels.update(logits, masks)
            logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
            known = masks != IGNORE_INDEX
            ce += float(segmentation_loss(logits, masks, reduction="sum"))
            target = masks.clamp(max=num_classes - 1).unsqueeze(1)
            p_true += float(F.softmax(logits, 1).gather(1, target).squeeze(1)[known].sum())
            labelled += int(known.sum())
            if teacher_logits is not None:  # the fine-tune's own KD term (a mean over this batch's pixels)
                kd += float(kd_loss(logits, teacher_logits[k])) * masks.numel()
                agree.update(logits, teacher_logits[k].argmax(1))
                pixels += masks.numel()
    score = labels.score()
    out = {"z": 100 * score.miou, "ce": ce / max(labelled, 1), "p_true": p_true / max(labelled, 1),
           "pixel_acc": float(np.trace(score.confusion) / max(score.confusion.sum(), 1)), "matrix": labels.matrix.clone()}
    if teacher_logits is not None:
        out.update(kd=kd / max(pixels, 1), agree=100 * agree.score().miou)
    return out


def teacher_batches(teacher, val_ds, *, stop: int) -> list:
    """The teacher's logits on images 0..stop-1, one tensor per batch of BATCH, at the label size."""
    import torch
    import torch.nn.functional as F

    out = []
    teacher.eval()
    with torch.inference_mode():
        for i in range(0, stop, BATCH):
            images, masks = zip(*(val_ds[j] for j in range(i, min(i + BATCH, stop))))
            logits = teacher(torch.stack(images)).float()
            out.append(F.interpolate(logits, size=masks[0].shape[-2:], mode="bilinear", align_corners=False))
    return out


def _point(code: str, *, ws, r, scored: int, teacher_logits) -> dict[str, float]:
    from ffnet_nas.averaging import recalibrate_bn
    from ffnet_nas.data import fixed_batches
    from ffnet_nas.distill.assemble import assemble
    from ffnet_nas.metrics import ConfusionMeter
    from ffnet_nas.space import Arch
    from ffnet_nas.zero_shot import BN_BATCH_SIZE, STAGE_BN_BATCHES, score_point

    t0 = time.perf_counter()
    arch = Arch.parse(code)
    model = assemble(arch, ws.library_dir)
    recalibrate_bn(model, fixed_batches(r.train_ds, batch_size=BN_BATCH_SIZE, n_batches=STAGE_BN_BATCHES, seed=0))
    first = forward_signals(model, r.val_ds, start=0, stop=scored, num_classes=r.num_classes, teacher_logits=teacher_logits)
    row = {k: v for k, v in first.items() if k != "matrix"}
    if len(r.val_ds) >= 2 * scored:  # the split holds as many images again, disjoint from the scored ones
        other = forward_signals(model, r.val_ds, start=scored, stop=2 * scored, num_classes=r.num_classes)
        both = ConfusionMeter(num_classes=r.num_classes)
        both.matrix = first["matrix"] + other["matrix"]
        row.update(z_other=other["z"], z_both=100 * both.score().miou)
    else:
        row.update(z_other=math.nan, z_both=math.nan)
    # the stage's own scorer, on 4x its recalibration batches
    row["z_recal4x"] = score_point(arch, library=ws.library_dir, val_ds=r.val_ds, val_images=scored, train_ds=r.train_ds,
                                   bn_batches=4 * STAGE_BN_BATCHES)
    return {"code": code, **row, "seconds": time.perf_counter() - t0}


def measure(folder: Path) -> pd.DataFrame:
    """The check's points (truth, stride, seeds, stored Z and 10-step score) with every signal."""
    from bench._workdir import check_points
    from ffnet_nas.evaluate import Resources
    from ffnet_nas.predictor_check import latest_predictor_dir
    from ffnet_nas.space.io import atomic_write_csv
    from ffnet_nas.workspace import Workspace

    ws = Workspace(folder)
    points, summary = check_points(folder)
    path = ws.predictor_check_dir / FILE
    done = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["code", *SIGNALS, "seconds"])
    todo = [c for c in points["code"] if c not in set(done["code"])]
    if todo:
        r = Resources.load(ws, predictor_dir=latest_predictor_dir(ws), score_at="train", val_images=summary["val_images"])
        scored = summary["val_images"] or len(r.val_ds)
        logits = teacher_batches(r.teacher, r.val_ds, stop=scored)
        for code in todo:
            done = pd.concat([done, pd.DataFrame([_point(code, ws=ws, r=r, scored=scored, teacher_logits=logits)])],
                             ignore_index=True)
            atomic_write_csv(path, done)
    points = points.merge(done, on="code", how="left")
    drift = float(np.max(np.abs(points["z"] - points["zero_shot_bn"])))
    if drift > 1e-3:
        raise SystemExit(f"{folder}: Z from this bench differs from the check's stored zero_shot_bn by {drift:.4f} mIoU; "
                         "expected the same score (same library, images and recalibration)")
    points["folder"] = str(folder)
    return points


def report(points: pd.DataFrame, *, label: str) -> list[str]:
    from scipy.stats import rankdata

    from bench.bench_predictor_features import largest_groups
    from ffnet_nas.stats import kendall_difference

    g = np.unique(points["folder"], return_inverse=True)[1]
    inside = largest_groups(points["stride"].to_numpy(), g)
    truth = points["truth"].to_numpy(float)
    scores = {s: (-1 if s in LOWER_IS_BETTER else 1) * points[s].to_numpy(float) for s in SIGNALS}
    short = [c for c in points.columns if re.fullmatch(r"short\d+", str(c))]  # the check's short fine-tune
    if short:
        ranks = np.zeros(len(points))
        for k in np.unique(g):  # ranks within a folder (a folder's own scale), Z's and the short fine-tune's summed
            ranks[g == k] = rankdata(scores["z"][g == k]) + rankdata(points[short[0]].to_numpy(float)[g == k])
        scores["z_short"] = ranks
    z = scores["z"]
    a, b = points["seed_a"].to_numpy(float), points["seed_b"].to_numpy(float)
    lines = [f"\n{label}: {len(points)} held-out points; truth = mean of the two seeds; "
             f"median {np.median(points['seconds']):.1f} s per point for all signals",
             "| ranking by | tau, all points | tau, largest stride group | minus Z (paired) | minus Z, largest group |",
             "|---|---:|---:|---:|---:|",
             f"| the other seed (the yardstick) | {kendall_difference(a, None, b, groups=g).text()} "
             f"| {kendall_difference(a[inside], None, b[inside], groups=g[inside]).text()} | | |"]
    for name, s in scores.items():
        has = np.isfinite(s)
        if not has.any():
            continue
        row = [kendall_difference(s[has], None, truth[has], groups=g[has]).text(),
               kendall_difference(s[has & inside], None, truth[has & inside], groups=g[has & inside]).text()]
        if name != "z":
            row += [kendall_difference(s[has], z[has], truth[has], groups=g[has]).text(),
                    kendall_difference(s[has & inside], z[has & inside], truth[has & inside], groups=g[has & inside]).text()]
        else:
            row += ["", ""]
        lines.append(f"| {LABELS[name]} | " + " | ".join(row) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    frames = [measure(f) for f in args.folders]
    for f, frame in zip(args.folders, frames):
        print("\n".join(report(frame, label=str(f))))
    if len(frames) > 1:
        print("\n".join(report(pd.concat(frames, ignore_index=True), label=f"pooled over {len(frames)} checks")))


if __name__ == "__main__":
    main()
