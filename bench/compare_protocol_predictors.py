"""Two fine-tuning protocols, each with its own run's predictor: which predictor ranks its own truth better?

    .venv/bin/python -m bench.compare_protocol_predictors --run-a WORKDIR --truth-a DIR [DIR ...] \\
        --run-b WORKDIR --truth-b DIR [DIR ...] [--label-a A] [--label-b B] [--images-a run|truth] [--images-b ...]

Each run (`ffnet-nas run` workdir) fine-tuned its design points under one protocol and fitted its
predictor on them. Each truth folder is one draw of held-out points measured under that protocol:
a `bench.bench_yardstick --out` folder (two seeds per point; the run's ending is the variant
`avg50@run` under held BatchNorm, `avg50_bn@run` otherwise, as recorded in its protocol; with
`--images-a truth` the same ending scored on the folder's larger image set, `@truth`: the truth for
a run that scores on that many images, e.g. `val_images: 256`) or a predictor check (`bench.bench_predictor --out`, or a workdir after `fit-predictor --check`). Truth
folders are paired by position (draw i of A with draw i of B); only the points both truths measured
and neither run evaluated count, so both predictors face the same held-out points.

Prints per draw and pooled (the mean of the per-draw taus, points resampled within their draw) each
protocol's yardstick (seed against seed, and its lead over output stride alone ranking the same
seed: the most any ranker could be shown to lead stride by) and its predictor's Kendall tau against the two-seed mean,
overall and within the largest output-stride group, with bootstrap 95% intervals, and the paired
difference of the two predictors' taus. Fine-tunes nothing; seconds. Issue 13 (docs/results.md,
"F5 as the quick budget's fine-tune").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd


def read_truth(folder: Path, images: str = "run") -> pd.DataFrame:
    """code, stride, seed_a, seed_b: one draw's two seeds per point, as the run's fine-tune ends
    (read as `compare_yardsticks` reads either kind of folder); `images`: which of a yardstick
    folder's image sets the scores are on ("run": the original run's scoring images, "truth": its
    larger set)."""
    from bench.compare_yardsticks import load, wide

    frame = load(folder)
    if "check" in frame:
        if images != "run":
            raise SystemExit(f"{str(folder)!r} is a predictor check, scored on the run's images only; expected "
                             "--images run for it")
        variant = "check"
    else:
        protocol = json.loads((folder / "yardstick_protocol.json").read_text())
        # the run's fine-tune ends on the second half's mean weights: with BatchNorm held they keep
        # the held statistics, otherwise the statistics are recomputed (precise BN)
        variant = f"avg50@{images}" if protocol.get("freeze_bn") else f"avg50_bn@{images}"
    seeds = wide(frame, variant)
    a, b = seeds.columns[:2]
    return pd.DataFrame({"code": seeds.index, "stride": frame.groupby("code")["stride"].first().loc[seeds.index].to_numpy(),
                         "seed_a": seeds[a].to_numpy(), "seed_b": seeds[b].to_numpy()})


def run_predictor(workdir: Path):
    """The run's latest predictor and the codes the run evaluated (not held out from it)."""
    from ffnet_nas.evaluate import read_evaluated
    from ffnet_nas.predictor_check import latest_predictor_dir
    from ffnet_nas.predictors.accuracy import AccuracyPredictor
    from ffnet_nas.workspace import Workspace

    ws = Workspace(workdir)
    return (AccuracyPredictor.load(latest_predictor_dir(ws) / "accuracy.json"),
            set(read_evaluated(ws.evaluated_path)["code"]))


def held_out(truth_a: pd.DataFrame, truth_b: pd.DataFrame, *, predict_a: Callable[[str], float],
             predict_b: Callable[[str], float], evaluated: set[str]) -> pd.DataFrame:
    """One draw: the points both truths measured and neither run evaluated, each protocol's truth
    (the mean of its two seeds) and its predictor's prediction, and the largest stride group (pure)."""
    from ffnet_nas.predictor_check import largest_group

    both = truth_a.merge(truth_b, on=["code", "stride"], suffixes=("_A", "_B"))
    # sorted, so the bootstrap resamples the same points whichever folder's order came first
    both = both[~both["code"].isin(evaluated)].sort_values("code").reset_index(drop=True)
    for side, predict in (("A", predict_a), ("B", predict_b)):
        both[f"truth_{side}"] = (both[f"seed_a_{side}"] + both[f"seed_b_{side}"]) / 2
        both[f"predicted_{side}"] = [predict(code) for code in both["code"]]
    both["inside"] = largest_group(both["stride"].to_numpy())[1]
    return both


def table(draws: list[pd.DataFrame], *, labels: tuple[str, str], group: bool) -> list[tuple[str, str]]:
    """(row, tau text) for each protocol's yardstick and predictor, pooled over the draws (the mean of
    the per-draw taus), and the paired difference of the predictors' taus; `group`: within each
    draw's largest stride group only (pure)."""
    from ffnet_nas.stats import kendall_difference

    frame = pd.concat([d.assign(draw=i) for i, d in enumerate(draws)], ignore_index=True)
    if group:
        frame = frame[frame["inside"]]
    draw = frame["draw"].to_numpy()

    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy(float)

    rows = []
    stride = -col("stride")  # smaller first
    for side, label in zip(("A", "B"), labels):
        rows.append((f"{label}: the other seed (yardstick)",
                     kendall_difference(col(f"seed_a_{side}"), None, col(f"seed_b_{side}"), groups=draw).text()))
        # the ceiling on any ranker's lead over stride alone on these points (plain tau-b, paired)
        rows.append((f"{label}: the other seed minus stride alone (paired)",
                     kendall_difference(col(f"seed_a_{side}"), stride, col(f"seed_b_{side}"), groups=draw).text()))
        rows.append((f"{label}: its run's predictor",
                     kendall_difference(col(f"predicted_{side}"), None, col(f"truth_{side}"), groups=draw).text()))
    rows.append((f"predictor tau, {labels[0]} minus {labels[1]} (paired)",
                 kendall_difference(col("predicted_A"), col("predicted_B"), col("truth_A"), truth_b=col("truth_B"),
                                    groups=draw).text()))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-a", required=True, type=Path)
    parser.add_argument("--truth-a", required=True, nargs="+", type=Path)
    parser.add_argument("--run-b", required=True, type=Path)
    parser.add_argument("--truth-b", required=True, nargs="+", type=Path)
    parser.add_argument("--label-a", default="A")
    parser.add_argument("--label-b", default="B")
    for side in ("a", "b"):
        parser.add_argument(f"--images-{side}", choices=("run", "truth"), default="run",
                            help="a yardstick folder's scores on the original run's images or on its larger set")
    args = parser.parse_args(argv)
    if len(args.truth_a) != len(args.truth_b):
        raise SystemExit(f"{len(args.truth_a)} truth folders for A and {len(args.truth_b)} for B; expected one per draw for each")
    (pred_a, done_a), (pred_b, done_b) = run_predictor(args.run_a), run_predictor(args.run_b)
    draws = []
    for folder_a, folder_b in zip(args.truth_a, args.truth_b):
        draws.append(held_out(read_truth(folder_a, args.images_a), read_truth(folder_b, args.images_b),
                              predict_a=pred_a.predict,
                              predict_b=pred_b.predict, evaluated=done_a | done_b))
        print(f"{folder_a} / {folder_b}: {len(draws[-1])} held-out points "
              f"({int(draws[-1]['inside'].sum())} in the largest stride group)")
    labels = (args.label_a, args.label_b)
    for name, chosen in [*((f"draw {i}", [d]) for i, d in enumerate(draws)), ("pooled", draws)]:
        print(f"\n{name}\n| | tau, all points | tau, largest stride group |\n|---|---:|---:|")
        for (label, overall), (_, inside) in zip(table(chosen, labels=labels, group=False),
                                                 table(chosen, labels=labels, group=True)):
            print(f"| {label} | {overall} | {inside} |")


if __name__ == "__main__":
    main()
