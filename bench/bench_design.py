"""Which extra design points teach the accuracy predictor most: a spread of random points, or
contrasts (a point already evaluated with one choice changed)?

    .venv/bin/python -m bench.bench_design --workdir runs/quick --out /tmp/qD [--extra 5] CHECK [CHECK ...]

On a finished `ffnet-nas run` workdir (copied to `--out` first, hard links, so the run is never
written): the points the run's last predictor was fitted on are the base design. Two sets of
`--extra` points are added to it by `ffnet_nas.fit_predictor.select_points(already=base)`, one per
design ("spread": the run's own rule; "contrast": one-choice neighbours of evaluated points, of the
same output stride), fine-tuned and scored as the run's design points were (its budget and seed; the
float32 mIoU, which an INT8 run's predictor does not learn). The default feature set's ridge is fitted on the base alone, on base + spread and on base +
contrast, and ranks the held-out points of each CHECK folder (`bench.bench_predictor --out`
folders of the same run: the mean of their two seeds is the truth). Held-out points that either
design picked are left out. Prints Kendall tau with bootstrap 95% intervals overall and within each
folder's largest stride group, pooled over the folders, and the paired differences contrast minus
spread and contrast minus the base. Resumable: points already in --out's evaluated.csv are skipped.
Issue 13, item 3 (docs/results.md, "Contrasts or spread").
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd

from bench._workdir import link_copy

DESIGNS = ("spread", "contrast")


def extra_designs(space, base, k: int) -> dict:
    """{"spread": [...], "contrast": [...]}: `k` points each, added to `base` (the evaluated points)."""
    from ffnet_nas.fit_predictor import select_points

    return {design: select_points(space, k, seed=0, already=base, design=design) for design in DESIGNS}


def ranked(frames: list[pd.DataFrame], columns: list[str]) -> list[str]:
    """Markdown rows: each column's tau against the truth, overall and within each folder's largest
    stride group, pooled over the folders (a tau is the mean of the per-folder taus)."""
    from bench.bench_predictor_features import largest_groups
    from ffnet_nas.stats import kendall_difference

    points = pd.concat(frames, ignore_index=True)
    g = points["folder"].to_numpy()
    inside = largest_groups(points["stride"].to_numpy(), g)
    truth = points["truth"].to_numpy(float)
    rows = ["| ranking by | tau, all points | tau, largest stride group |", "|---|---:|---:|"]
    for column in columns:
        score = points[column].to_numpy(float)
        rows.append(f"| {column} | {kendall_difference(score, None, truth, groups=g).text()} | "
                    f"{kendall_difference(score[inside], None, truth[inside], groups=g[inside]).text()} |")
    rows.append("")
    for a, b in (("contrast", "spread"), ("contrast", "base"), ("spread", "base")):
        x, y = points[f"ridge_{a}"].to_numpy(float), points[f"ridge_{b}"].to_numpy(float)
        rows.append(f"- {a} minus {b}, paired: all points {kendall_difference(x, y, truth, groups=g).text()}; "
                    f"largest stride group {kendall_difference(x[inside], y[inside], truth[inside], groups=g[inside]).text()}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checks", nargs="+", help="bench.bench_predictor --out folders of the same run")
    parser.add_argument("--workdir", required=True, help="the finished run (read only)")
    parser.add_argument("--out", required=True, help="where its copy and the extra points go")
    parser.add_argument("--extra", type=int, default=5, help="points each design adds")
    parser.add_argument("--device", default="cpu", help="where the extra points are fine-tuned (the run's, for its figures)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from bench.bench_predictor_features import held_out
    from ffnet_nas.evaluate import distilled_miou, evaluate_points, read_evaluated
    from ffnet_nas.fit_predictor import library_nsr
    from ffnet_nas.predictor_check import latest_predictor_dir, run_settings
    from ffnet_nas.predictors.accuracy import DEFAULT_FEATURE_SET, AccuracyPredictor, refit_on
    from ffnet_nas.space import Arch
    from ffnet_nas.space.searchspace import get_search_space
    from ffnet_nas.workspace import Workspace

    t0 = time.perf_counter()
    ws = Workspace(link_copy(args.workdir, args.out, ignore=("check", "model.pt")))
    settings = run_settings(ws)
    if settings is None:
        raise SystemExit(f"{args.workdir}: no run_summary.json; expected a workdir finished by 'ffnet-nas run'")
    base = list(AccuracyPredictor.load(latest_predictor_dir(ws) / "accuracy.json").codes)
    extras = extra_designs(get_search_space(settings.space), [Arch.parse(c) for c in base], args.extra)
    for design, points in extras.items():
        print(f"{design}: " + ", ".join(a.code for a in points))
    evaluate_points([a for points in extras.values() for a in points], workspace=ws, config=settings.config,
                    val_images=settings.val_images, score_at=settings.score_at, device=args.device)
    measured, nsr = distilled_miou(read_evaluated(ws.evaluated_path)), library_nsr(ws)
    designs = {"base": base, **{d: base + [a.code for a in points] for d, points in extras.items()}}
    ridges = {d: refit_on(codes, measured, feature_set=DEFAULT_FEATURE_SET, nsr=nsr) for d, codes in designs.items()}
    if any(r is None for r in ridges.values()):
        raise SystemExit(f"{ws.evaluated_path}: lacks a distilled row of a point the run's predictor was fitted on")
    seen = {c for codes in designs.values() for c in codes}
    frames = []
    for folder in args.checks:
        points = held_out(Path(folder))
        points = points[~points["code"].isin(seen)].copy()
        for d, ridge in ridges.items():
            points[f"ridge_{d}"] = [ridge.predict(c, nsr) for c in points["code"]]
        points["neg_stride"] = -points["stride"].astype(float)
        frames.append(points)
    print(f"\n{sum(len(f) for f in frames)} held-out points in {len(frames)} folders; the {DEFAULT_FEATURE_SET} ridge "
          f"on {len(base)} base points, + {args.extra} per design\n")
    print("\n".join(ranked(frames, ["ridge_base", "ridge_spread", "ridge_contrast", "neg_stride"])))
    print(f"\n({time.perf_counter() - t0:.0f} s; the extra points' rows in {ws.evaluated_path})")


if __name__ == "__main__":
    main()
