"""Two fine-tuning protocols on the same held-out points: does the one with less seed noise rank
what the other ranks? Reads two `bench.bench_yardstick --out` folders; fine-tunes nothing.

    .venv/bin/python -m bench.compare_yardsticks DIR_A DIR_B [--variant avg50_bn@truth] [--variant-b NAME]

DIR_B may also be a predictor check's folder (`bench.bench_predictor --out`): its two seeds' scores,
as the run's fine-tune ends and on the check's images, are the variant `check`.

Prints, each with a bootstrap 95% interval (`ffnet_nas.stats.kendall_interval`), like against like:
one seed against one seed within each protocol (its yardstick), one seed of A against one seed of B
(the mean of the four such taus), and the two-seed mean of A against that of B, over all points and
(where the folders record each point's output stride) inside the largest stride group; and the mean
mIoU of each with their difference, point by point, with its bootstrap interval
(`ffnet_nas.stats.mean_interval`). If A's seeds agree better with each other than B's, and a
seed of A agrees with a seed of B about as well as B's own seeds do, A measures B's ordering with
less noise. Issue 13, item 2 (docs/results.md).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench._workdir import check_points

FILE = "yardstick.csv"


@dataclass(frozen=True)
class Comparison:
    points: int
    within_a: str  # seed against seed, protocol A
    within_b: str
    across_seeds: str  # one seed of A against one of B: the mean of the four taus and of their intervals' ends (indicative)
    across_means: str  # the two-seed means
    mean_a: float
    mean_b: float
    mean_difference: str  # A's two-seed mean minus B's, point by point, with its bootstrap interval
    group: str = ""  # the largest stride group ("stride 8, 10 points"); "" when the strides are not known
    group_within_a: str = ""
    group_within_b: str = ""
    group_across_means: str = ""


def wide(frame: pd.DataFrame, variant: str) -> pd.DataFrame:
    """One row per point, one column per seed."""
    if variant not in frame:
        raise SystemExit(f"no column {variant!r} in a yardstick.csv; expected one of "
                         f"{', '.join(c for c in frame.columns if '@' in c)}")
    return frame.pivot_table(index="code", columns="seed", values=variant)


def _strides(*frames: pd.DataFrame) -> pd.Series | None:
    """Each point's output stride, where a folder records it (a check's summary, bench_yardstick's csv)."""
    known = [f[["code", "stride"]].dropna() for f in frames if "stride" in f]
    if not known:
        return None
    return pd.concat(known).drop_duplicates("code").set_index("code")["stride"]


def compare(a: pd.DataFrame, b: pd.DataFrame, *, variant_a: str, variant_b: str) -> Comparison:
    """The figures above for the points both folders scored under both seeds (pure)."""
    from ffnet_nas.predictor_check import largest_group
    from ffnet_nas.stats import kendall_interval, mean_interval

    wa, wb = wide(a, variant_a), wide(b, variant_b)
    common = wa.dropna().index.intersection(wb.dropna().index)
    wa, wb = wa.loc[common], wb.loc[common]
    sa, sb = list(wa.columns), list(wb.columns)
    if len(sa) != 2 or len(sb) != 2:
        raise SystemExit(f"expected two seeds per protocol; got {sa} and {sb}")
    cross = [kendall_interval(wa[x].to_numpy(), wb[y].to_numpy()) for x in sa for y in sb]
    mean = lambda field: float(np.mean([getattr(c, field) for c in cross]))  # noqa: E731
    group = {}
    strides = _strides(a, b)
    if strides is not None and common.isin(strides.index).all():
        largest, inside = largest_group(strides.loc[common].to_numpy())  # the checks' own rule
        ga, gb = wa[inside], wb[inside]
        group = dict(group=f"stride {int(largest)}, {int(inside.sum())} points",
                     group_within_a=kendall_interval(ga[sa[0]].to_numpy(), ga[sa[1]].to_numpy()).text(),
                     group_within_b=kendall_interval(gb[sb[0]].to_numpy(), gb[sb[1]].to_numpy()).text(),
                     group_across_means=kendall_interval(ga.mean(axis=1).to_numpy(), gb.mean(axis=1).to_numpy()).text())
    return Comparison(
        points=len(common),
        within_a=kendall_interval(wa[sa[0]].to_numpy(), wa[sa[1]].to_numpy()).text(),
        within_b=kendall_interval(wb[sb[0]].to_numpy(), wb[sb[1]].to_numpy()).text(),
        across_seeds=f"{mean('value'):.2f} [{mean('low'):.2f}, {mean('high'):.2f}]",
        across_means=kendall_interval(wa.mean(axis=1).to_numpy(), wb.mean(axis=1).to_numpy()).text(),
        mean_a=float(wa.to_numpy().mean()), mean_b=float(wb.to_numpy().mean()),
        mean_difference=mean_interval(wa.mean(axis=1).to_numpy() - wb.mean(axis=1).to_numpy()).text(),
        **group)


def load(folder: Path) -> pd.DataFrame:
    """A `bench_yardstick --out` folder's scores, or a predictor check's as the variant `check`."""
    path = folder / FILE
    if path.is_file():
        return pd.read_csv(path)
    check = folder / "predictor" / "check" / "summary.json"
    if check.is_file():
        points, summary = check_points(folder)
        if "stride" not in points:
            points["stride"] = np.nan
        first, second = summary["seeds"]
        return pd.concat([pd.DataFrame({"code": points["code"], "stride": points["stride"], "seed": seed, "check": points[column]})
                          for seed, column in ((first, "seed_a"), (second, "seed_b"))], ignore_index=True)
    raise SystemExit(f"{str(folder)!r} holds neither {FILE} nor predictor/check/summary.json; expected a "
                     "bench.bench_yardstick or bench.bench_predictor --out folder")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", help="a bench.bench_yardstick --out folder")
    parser.add_argument("b", help="another, on the same workdir and --draw-seed")
    parser.add_argument("--variant", default="avg50_bn@truth", help="the score column of A (ending@images)")
    parser.add_argument("--variant-b", default=None, help="the score column of B (default: --variant)")
    args = parser.parse_args(argv)
    frames = [load(Path(folder)) for folder in (args.a, args.b)]
    variant_b = args.variant_b or args.variant
    c = compare(*frames, variant_a=args.variant, variant_b=variant_b)
    print(f"{c.points} points scored under both seeds by both protocols; A = {args.a} ({args.variant}), "
          f"B = {args.b} ({variant_b})\n")
    print("| Kendall tau | value [95%] |\n|---|---:|")
    print(f"| A: seed against seed | {c.within_a} |\n| B: seed against seed | {c.within_b} |")
    print(f"| a seed of A against a seed of B (mean of the 4 taus and of their intervals) | {c.across_seeds} |")
    print(f"| two-seed mean of A against that of B | {c.across_means} |")
    if c.group:
        print(f"| inside the largest stride group ({c.group}): A seed against seed | {c.group_within_a} |")
        print(f"| ... B seed against seed | {c.group_within_b} |")
        print(f"| ... two-seed mean of A against that of B | {c.group_across_means} |")
    print(f"\nmean mIoU: A {c.mean_a:.2f}, B {c.mean_b:.2f}, A - B {c.mean_a - c.mean_b:+.2f}; "
          f"point by point (two-seed means) {c.mean_difference}")


if __name__ == "__main__":
    main()
