"""Which pairs of one output stride a ranker orders right, by how far apart it puts them.

    .venv/bin/python -m bench.bench_pair_gaps CHECK_DIR [CHECK_DIR ...] [--quantiles 0,0.5,0.75,0.9]

Reads predictor checks (`bench.bench_predictor --out` or `ffnet-nas fit-predictor --check` folders);
fine-tunes nothing. For every pair of held-out points that share an output stride (pairs of one
check only), a ranker "orders it right" when its two scores differ in the same direction as the
truth (the mean of the check's two seeds). Pairs are sorted by the ranker's own gap |score_a -
score_b|, and for the pairs above each gap quantile it prints their number and their agreement
(right minus wrong, over the pairs: a tau on those pairs).

Why: output stride alone ties every such pair, and plain tau-b leaves tied pairs out, so a ranker
that orders the same cross-stride pairs as stride does beats it only if the extra pairs it orders
are right often enough (`break_even`). A ranker may order only the pairs it separates most and tie
the rest; this says whether any such cut would pass stride. One more column ranks one seed by the
other (the yardstick, both sides one fine-tune each). Issue 13, item 3 (docs/results.md).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

from bench._workdir import check_points

# (label, ranker column, truth column): the check's rankers against the two-seed truth, and one seed
# against the other (so neither side holds the other's noise)
RANKERS = (
    ("Z, the zero-shot stage", "zero_shot_bn", "truth"),
    ("10 fine-tuning steps", "short10", "truth"),
    ("the run's predictor", "predicted", "truth"),
    ("NSR ridge", "predicted_nsr", "truth"),
    ("seed 1 against seed 0", "seed_b", "seed_a"),
)


@dataclass(frozen=True)
class GapCut:
    quantile: float  # pairs whose gap is at or above this quantile of the ranker's gaps
    gap: float
    pairs: int
    agreement: float  # (right - wrong) / pairs: a tau on these pairs
    needed: float  # the agreement above which ordering these pairs (and tying the rest) passes stride as tau-b


def break_even(*, across_net: float, across_pairs: int, ordered: int) -> float:
    """The agreement that `ordered` more pairs of one stride need so that a ranker ordering them and
    the `across_pairs` cross-stride pairs as stride does (`across_net`: right minus wrong there) has a
    plain tau-b above stride's: (S + c k) / sqrt(N + k) > S / sqrt(N)  <=>  c > S (sqrt(1 + k/N) - 1) / k
    (the truth's own ties, which both denominators share, cancel). Pure."""
    if ordered <= 0:
        return math.nan
    return across_net * (math.sqrt(1 + ordered / across_pairs) - 1) / ordered


def stride_pairs(points, score: str, truth: str):
    """`ffnet_nas.stats.Pairs` of `points` for the ranker `score` against `truth`, and output stride
    alone on the pairs across strides: (pairs, right minus wrong across strides, pairs across strides).
    Stride ranks a smaller stride higher; the truth's ties count as neither."""
    from ffnet_nas.stats import pairs_by_group

    ok = np.isfinite(points[score].to_numpy(float)) & np.isfinite(points[truth].to_numpy(float))
    points = points[ok]
    pairs = pairs_by_group(points[score], points[truth], points["stride"])
    by_stride = pairs_by_group(-points["stride"].to_numpy(float), points[truth], points["stride"])
    across = ~by_stride.same
    return pairs, float(by_stride.agree[across].sum()), int(across.sum())


def pooled_stride_pairs(checks, score: str, truth: str):
    """`stride_pairs` of each check (pairs of one check only), pooled: the ranker's gaps and signs on
    the pairs of one stride, and stride alone's right minus wrong and count across strides."""
    parts = [stride_pairs(points, score, truth) for points in checks]
    gaps = np.concatenate([pairs.gap[pairs.same] for pairs, _, _ in parts])
    signs = np.concatenate([pairs.agree[pairs.same] for pairs, _, _ in parts])
    return gaps, signs, sum(p[1] for p in parts), sum(p[2] for p in parts)


def gap_cuts(gaps: np.ndarray, signs: np.ndarray, *, quantiles, across_net: float, across_pairs: int) -> list[GapCut]:
    """For each quantile of the ranker's gaps over the pairs it orders (its ties, gap 0, are not
    orders and stay out), the pairs at or above it: how many, and their agreement."""
    ordered = gaps > 0
    gaps, signs = gaps[ordered], signs[ordered]
    cuts = []
    for q in quantiles:
        gap = float(np.quantile(gaps, q))
        chosen = signs[gaps >= gap]
        cuts.append(GapCut(quantile=q, gap=gap, pairs=len(chosen), agreement=float(chosen.mean()),
                           needed=break_even(across_net=across_net, across_pairs=across_pairs, ordered=len(chosen))))
    return cuts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--quantiles", default="0,0.5,0.75,0.9")
    args = parser.parse_args(argv)
    quantiles = [float(q) for q in args.quantiles.split(",")]
    checks = [check_points(folder)[0] for folder in args.folders]
    for label, score, truth in RANKERS:
        if not all(score in points for points in checks):
            print(f"{label}: not in every check ({score}), left out")
            continue
        gaps, signs, net, n = pooled_stride_pairs(checks, score, truth)
        if not (gaps > 0).any() or not n:
            print(f"\n{label}: {len(gaps)} pairs of one stride and {n} across strides; nothing to compare")
            continue
        print(f"\n{label} ({len(gaps)} pairs of one stride in {len(checks)} check(s); stride alone orders "
              f"{n} cross-stride pairs at {net / n:.2f})")
        print("| its pairs of one stride | pairs | its gap at least | agreement on them | needed to pass stride (tau-b) |")
        print("|---|---:|---:|---:|---:|")
        for cut in gap_cuts(gaps, signs, quantiles=quantiles, across_net=net, across_pairs=n):
            share = "all" if cut.quantile == 0 else f"the {100 * (1 - cut.quantile):.0f}% it separates most"
            print(f"| {share} | {cut.pairs} | {cut.gap:.2f} | {cut.agreement:.3f} | {cut.needed:.3f} |")


if __name__ == "__main__":
    main()
