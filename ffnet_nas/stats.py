"""Numbers about sets of points, shared by search, predictors and reports (one home, one rule each).

Pure functions on arrays; imports nothing from the package, so every layer may use it.

- `finite_or_none`: a cell of a table (blank, NaN, text or a number) as a float when it is a
  finite number, else None: how every reader of measured figures tells a figure from a gap.
- `rank_correlations`: Spearman and Kendall of predicted vs measured values. One NaN rule for the
  whole project: pairs with a non-finite value are dropped, and the statistics of fewer than 3
  pairs or of constant data are undefined, so they are NaN (never 0, which would read as "no
  agreement"). `kendall_interval`: Kendall's tau with a percentile bootstrap 95% interval over the
  pairs (a handful of points gives a wide interval, and a figure without it would mislead).
  `kendall_difference`: whether one ranker beats another on the same points (a paired bootstrap),
  optionally pooled over groups (several runs' held-out points). `mean_interval`: a mean with the
  same kind of interval (e.g. how much one fine-tune scores above another, point by point).
- `probability_greater`: P(A > B) for independent normal predictions (mean, std), and
  `expected_gain`: E[max(A - B, 0)], what the search ranks candidates by against the reference.
- Pareto sets of the two objectives, latency down and mIoU up, on points given as
  (latency_ms, miou) rows: `dominates`, `dominated_by`, `pareto_mask` (a sort and a sweep,
  O(n log n)), the exact 2-D `hypervolume` (O(n log n)), `hypervolume_reference` and
  `hypervolume_curve` (the hypervolume after each point of a sequence, with an incremental front).
  Equal points share one verdict; a point with a non-finite coordinate is never on a front and
  adds nothing. Optuna's hypervolume lives in a private module (`optuna._hypervolume`), so none
  of this uses it; tests check these against brute-force oracles.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import numpy as np

MIN_RANKED = 3  # fewer pairs than this have no meaningful rank statistic


def finite_or_none(value) -> float | None:
    """`value` as a float when it is a finite number (table cells may be blank, NaN or text), else None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class RankCorrelation:
    n: int  # pairs used (both values finite)
    spearman: float  # NaN when undefined
    kendall: float  # NaN when undefined

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.spearman) and np.isfinite(self.kendall))


def rank_correlations(predicted: Sequence[float], measured: Sequence[float]) -> RankCorrelation:
    """Spearman's rho and Kendall's tau-b of `predicted` against `measured` (see the module's NaN rule)."""
    from scipy import stats  # lazy: scipy costs ~0.3 s to import and most commands never rank

    p, m = np.asarray(predicted, float).ravel(), np.asarray(measured, float).ravel()
    if p.shape != m.shape:
        raise ValueError(f"rank_correlations: predicted has {p.size} values, measured {m.size}; expected the same")
    ok = np.isfinite(p) & np.isfinite(m)
    p, m = p[ok], m[ok]
    if len(p) < MIN_RANKED or np.ptp(p) == 0 or np.ptp(m) == 0:
        return RankCorrelation(int(len(p)), float("nan"), float("nan"))
    return RankCorrelation(int(len(p)), float(stats.spearmanr(p, m).statistic), float(stats.kendalltau(p, m).statistic))



@dataclass(frozen=True)
class Interval:
    """A statistic and its bootstrap 95% interval (NaN where undefined)."""

    value: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 2) -> str:
        if not np.isfinite(self.value):
            return f"undefined (n={self.n})"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def kendall_interval(a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, seed: int = 0,
                     level: float = 0.95, ties_at_random: bool = False) -> Interval:
    """Kendall's tau-b of `a` vs `b` and its percentile bootstrap interval: the pairs resampled with
    replacement `resamples` times (resamples where tau is undefined, e.g. all one pair, are left out).
    `ties_at_random`: `a`'s ties broken by a random order, in expectation (`_tau_b`). One ranker
    against a truth: `kendall_difference` with no second ranker, so both draw the same resamples."""
    if np.asarray(a).size != np.asarray(b).size:
        raise ValueError(f"kendall_interval: a has {np.asarray(a).size} values, b {np.asarray(b).size}; expected the same")
    return kendall_difference(a, None, b, resamples=resamples, seed=seed, level=level, ties_at_random=ties_at_random)


def kendall_difference(a: Sequence[float], b: Sequence[float] | None, truth: Sequence[float], *,
                       groups: Sequence | None = None, resamples: int = 2000, seed: int = 0,
                       level: float = 0.95, ties_at_random: bool = False,
                       truth_b: Sequence[float] | None = None) -> Interval:
    """tau(a, truth) - tau(b, truth) (b None: tau(a, truth) alone) with a *paired* percentile bootstrap
    interval: both rankers are judged on the same resampled points, so the interval says whether one
    ranks better than the other, which two overlapping `kendall_interval`s cannot. With `groups`
    (e.g. the run each held-out point came from) a tau is the mean of the per-group taus, points are
    resampled within their group, and no pair across groups is ranked (their truths are not
    comparable). Points with a non-finite value are left out. `ties_at_random`: each ranker's ties
    broken by a random order, in expectation (`_tau_b`). `truth_b`: b is judged against this truth
    instead (two measurements of the same points, e.g. two fine-tuning protocols, each ranked by its
    own predictor), still on the same resampled points."""
    if b is None and truth_b is not None:
        raise ValueError("kendall_difference: truth_b without b; expected b, the ranker judged against it")
    x = np.asarray(a, float).ravel()
    y = np.zeros_like(x) if b is None else np.asarray(b, float).ravel()
    t = np.asarray(truth, float).ravel()
    tb = t if truth_b is None else np.asarray(truth_b, float).ravel()
    g = np.zeros(len(x), dtype=int) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    if not (x.shape == y.shape == t.shape == tb.shape == g.shape):
        raise ValueError(f"kendall_difference: {x.size}, {y.size}, {t.size}, {tb.size} values and {g.size} groups; "
                         "expected the same")
    every_group = np.unique(g)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(t) & np.isfinite(tb)
    x, y, t, tb, g = x[ok], y[ok], t[ok], tb[ok], g[ok]
    rng = np.random.default_rng(seed)
    # a group left with too few finite points makes the pooled figure undefined, not silently
    # a figure of the other groups
    members = [np.flatnonzero(g == k) for k in every_group]

    def mean_tau(scores: np.ndarray, picks: list[np.ndarray], target: np.ndarray = t) -> np.ndarray:
        # _tau_b holds a few (resamples, n, n) arrays: in chunks of ~4M pairs, so a check over
        # hundreds of points stays within memory (the chunks draw the very same resamples)
        def tau(idx: np.ndarray) -> np.ndarray:
            chunks = max(1, len(idx) * idx.shape[1] ** 2 // 4_000_000)
            return np.concatenate([_tau_b(scores[i], target[i], ties_at_random=ties_at_random)
                                   for i in np.array_split(idx, chunks)])

        return np.mean([tau(idx) for idx in picks], axis=0)

    def value(scores: np.ndarray, target: np.ndarray = t) -> float:
        return float(mean_tau(scores, [m[None, :] for m in members], target)[0])

    if not members or any(len(m) < MIN_RANKED for m in members):
        return Interval(float("nan"), float("nan"), float("nan"), int(len(x)))
    diff = value(x) - (0.0 if b is None else value(y, tb))
    if not np.isfinite(diff):
        return Interval(float("nan"), float("nan"), float("nan"), int(len(x)))
    picks = [m[rng.integers(0, len(m), size=(resamples, len(m)))] for m in members]
    draws = mean_tau(x, picks) - (0.0 if b is None else mean_tau(y, picks, tb))
    draws = draws[np.isfinite(draws)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(diff, float(low), float(high), int(len(x)))


@dataclass(frozen=True)
class Pairs:
    """Every pair (i < j) of n points: how a ranker orders it against a truth, and whether both
    points share a group (an output stride, say). Arrays of n (n - 1) / 2."""

    gap: np.ndarray  # |score_i - score_j|: 0 where the ranker ties the pair
    agree: np.ndarray  # sign(score_i - score_j) * sign(truth_i - truth_j): +1 right, -1 wrong, 0 a tie
    same: np.ndarray  # both points in one group


def pairs_by_group(score: Sequence[float], truth: Sequence[float], group: Sequence) -> Pairs:
    """`Pairs` over the points whose score and truth are both finite (pure). Kendall's tau is built
    from these signs; split by group they say where a ranker's tau comes from (the pairs of one
    output stride, which stride alone ties, or the pairs across strides)."""
    score, truth, group = (np.asarray(v) for v in (score, truth, group))
    ok = np.isfinite(score.astype(float)) & np.isfinite(truth.astype(float))
    score, truth, group = score[ok].astype(float), truth[ok].astype(float), group[ok]
    i, j = np.triu_indices(len(score), k=1)
    return Pairs(gap=np.abs(score[i] - score[j]), agree=np.sign(score[i] - score[j]) * np.sign(truth[i] - truth[j]),
                 same=group[i] == group[j])


def mean_interval(values: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """The mean of `values` and its percentile bootstrap interval (the values resampled with
    replacement): e.g. the per-point difference between two fine-tuning protocols on the same points,
    so the interval is a paired one. Non-finite values are left out; fewer than two leave it undefined."""
    x = np.asarray(values, float).ravel()
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return Interval(float("nan"), float("nan"), float("nan"), int(len(x)))
    draws = x[np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(float(x.mean()), float(low), float(high), int(len(x)))


def _normal_cdf_pdf(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from math import erf

    cdf = 0.5 * (1 + np.vectorize(erf, otypes=[float])(z / np.sqrt(2)))
    return cdf, np.exp(-z * z / 2) / np.sqrt(2 * np.pi)


def _difference(mean_a, std_a, mean_b, std_b) -> tuple[np.ndarray, np.ndarray]:
    diff = np.asarray(mean_a, float) - np.asarray(mean_b, float)
    spread = np.sqrt(np.asarray(std_a, float) ** 2 + np.asarray(std_b, float) ** 2)
    diff, spread = np.broadcast_arrays(diff, spread)
    return np.array(diff, dtype=float, ndmin=1), np.array(spread, dtype=float, ndmin=1)


def probability_greater(mean_a, std_a, mean_b, std_b) -> np.ndarray:
    """P(A > B) for independent normals A ~ N(mean_a, std_a^2), B ~ N(mean_b, std_b^2), elementwise
    (arrays broadcast; at least 1-d). Both spreads zero: 1, 0.5 or 0 by the means."""
    diff, spread = _difference(mean_a, std_a, mean_b, std_b)
    out = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    ok = spread > 0
    out[ok] = _normal_cdf_pdf(diff[ok] / spread[ok])[0]
    return out


def expected_gain(mean_a, std_a, mean_b, std_b) -> np.ndarray:
    """E[max(A - B, 0)] for independent normals (the expected improvement of Bayesian optimisation
    with B as the incumbent): d Phi(d/s) + s phi(d/s), d = mean_a - mean_b, s the spread of the
    difference. It is P(A > B) weighted by the margin: far ahead it is the mean difference; close
    to B a less sure point gains more than a sure one of the same mean, as it may overshoot more."""
    diff, spread = _difference(mean_a, std_a, mean_b, std_b)
    out = np.maximum(diff, 0.0)
    ok = spread > 0
    cdf, pdf = _normal_cdf_pdf(diff[ok] / spread[ok])
    out[ok] = diff[ok] * cdf + spread[ok] * pdf
    return out


def _tau_b(xs: np.ndarray, ys: np.ndarray, *, ties_at_random: bool = False) -> np.ndarray:
    """Kendall's tau-b of each row pair (rows: resamples), vectorised: sum of sign products over the
    pairs, over the root of the untied pair counts of each side (NaN where one side is constant).

    `ties_at_random`: the expected tau-b once the ties of `xs` are broken by a random order (those of
    `ys`, the truth, are kept). A tied pair then agrees with the truth as often as not, so it adds
    nothing to the numerator but counts in the denominator, which no longer depends on the order:
    the expectation is exact. A pair tied on *both* sides counts on neither, as in plain tau-b: that
    is a point the bootstrap drew twice (the truth, a mean of fine-tunes, has no other ties), and a
    point is not ranked against itself. Plain tau-b leaves a ranker's tied pairs out of its
    denominator, so a rule that declines to order most pairs (output stride alone) scores higher
    than the same rule with its ties broken at random, or by anything no better than chance; with
    this, it scores what ranking by it and choosing anyway would.
    """
    sx = np.sign(xs[:, :, None] - xs[:, None, :])
    sy = np.sign(ys[:, :, None] - ys[:, None, :])
    untied_x = ((sx != 0) | (sy != 0)).sum((1, 2)) if ties_at_random else np.abs(sx).sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sx * sy).sum((1, 2)) / np.sqrt(untied_x * np.abs(sy).sum((1, 2)))

# ---- Pareto sets and hypervolume (latency down, mIoU up) ---------------------------------------

Points = Union[Sequence[Sequence[float]], np.ndarray]  # rows of (latency_ms, miou); a DataFrame of two columns too


def _points(points: "Points | Iterator", *, what: str = "points") -> np.ndarray:
    pts = np.asarray(list(points) if isinstance(points, Iterator) else points, dtype=float)
    if pts.size == 0:
        return pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{what}: got an array of shape {pts.shape}; expected (n, 2) rows of (latency_ms, miou)")
    return pts


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` dominates `b`: no slower and no less accurate, and strictly better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def dominated_by(point: Sequence[float], others: Mapping[str, Sequence[float]]) -> list[str]:
    """Names in `others` that `point` dominates."""
    return [name for name, q in others.items() if dominates(point, q)]


def pareto_mask(points: Points) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `points` ((latency_ms, miou) each).

    Duplicates of a front point all stay on it; rows with a non-finite value are never on it.
    """
    pts = _points(points, what="pareto_mask")
    mask = np.zeros(len(pts), dtype=bool)
    finite = np.flatnonzero(np.isfinite(pts).all(axis=1))
    if len(finite) == 0:
        return mask
    lat, acc = pts[finite, 0], pts[finite, 1]
    # Sort by latency ascending, then mIoU descending: a point is on the front iff its mIoU beats
    # every point before it (all of them are at least as fast; a faster one at equal mIoU dominates).
    order = np.lexsort((-acc, lat))
    lat, acc = lat[order], acc[order]
    best_before = np.maximum.accumulate(np.concatenate(([-np.inf], acc[:-1])))
    on = acc > best_before
    # An exact duplicate sees its twin before it and would lose to it: copies take the verdict of
    # the first of their run (identical rows are adjacent after the sort).
    first = np.concatenate(([True], (lat[1:] != lat[:-1]) | (acc[1:] != acc[:-1])))
    on = on[np.flatnonzero(first)[np.cumsum(first) - 1]]
    mask[finite[order]] = on
    return mask


def _inside(pts: np.ndarray, reference: Sequence[float]) -> np.ndarray:
    """Rows strictly better than `reference` in both coordinates (others dominate nothing in the box)."""
    return pts[(pts[:, 0] < float(reference[0])) & (pts[:, 1] > float(reference[1]))]


def _check_reference(reference: Sequence[float]) -> tuple[float, float]:
    if len(reference) != 2 or not np.all(np.isfinite(np.asarray(reference, float))):
        raise ValueError(f"reference {tuple(reference)!r}: expected two finite numbers (worst latency_ms, worst miou)")
    return float(reference[0]), float(reference[1])


def hypervolume(points: Points, *, reference: Sequence[float]) -> float:
    """Exact area dominated by `points` inside the box bounded by `reference` (worst latency, worst mIoU).

    Points not strictly better than the reference in both coordinates add nothing.
    """
    ref_lat, ref_acc = _check_reference(reference)
    pts = _inside(_points(points, what="hypervolume"), (ref_lat, ref_acc))
    if len(pts) == 0:
        return 0.0
    front = pts[pareto_mask(pts)]
    front = front[np.lexsort((front[:, 1], front[:, 0]))]  # on a front, faster means less accurate
    # Sweep up in mIoU: between two front points' mIoU levels the fastest point reaching that
    # level is the upper one, so each point adds a slab (ref_lat - lat) x (its mIoU - previous).
    steps = np.diff(np.concatenate(([ref_acc], front[:, 1])))
    return float(np.sum((ref_lat - front[:, 0]) * steps))


def hypervolume_reference(points: Points, *, margin: float = 0.05) -> tuple[float, float]:
    """A reference point a little worse than the worst of `points` in both coordinates, so every point counts.

    The margin is a share of each coordinate's span; a coordinate with no span (one point, or all
    equal) uses a tenth of its magnitude for latency (at least 1) and 1 mIoU point.
    """
    pts = _points(points, what="hypervolume_reference")
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        raise ValueError("hypervolume_reference: no finite points; expected at least one (latency_ms, miou) row")
    lat, acc = pts[:, 0], pts[:, 1]
    lat_span = float(np.ptp(lat)) or max(abs(float(lat.max())), 1.0) * 0.1
    acc_span = float(np.ptp(acc)) or 1.0
    return float(lat.max() + margin * lat_span), float(acc.min() - margin * acc_span)


def hypervolume_curve(points: Points, *, reference: Sequence[float]) -> np.ndarray:
    """The hypervolume of the first k points, for every k (same length as `points`; never decreases).

    Keeps the front as two lists sorted by latency (mIoU then rises too) and adds each point's new
    area directly, so a sequence of n points costs O(n log n) comparisons plus list moves, not n
    full recomputations. Equals `hypervolume(points[:k], reference=reference)` for every k.
    """
    ref_lat, ref_acc = _check_reference(reference)
    pts = _points(points, what="hypervolume_curve")
    out = np.zeros(len(pts))
    front_lat: list[float] = []
    front_acc: list[float] = []
    area = 0.0
    for k, (lat, acc) in enumerate(pts):
        if lat < ref_lat and acc > ref_acc and np.isfinite(lat) and np.isfinite(acc):
            area += _add_to_front(front_lat, front_acc, float(lat), float(acc), ref_lat, ref_acc)
        out[k] = area
    return out


def _add_to_front(front_lat: list[float], front_acc: list[float], lat: float, acc: float,
                  ref_lat: float, ref_acc: float) -> float:
    """Insert (lat, acc) into the sorted front in place; returns the area it adds (0 if dominated)."""
    i = bisect.bisect_right(front_lat, lat)  # front[:i] is at least as fast as the new point
    acc_left = front_acc[i - 1] if i else ref_acc  # the best mIoU among those (mIoU rises with latency)
    if acc_left >= acc:
        return 0.0  # dominated by (or equal to) a point already on the front
    start = i - 1 if i and front_lat[i - 1] == lat else i  # same latency, less accurate: it leaves too
    # Between mIoU levels acc_left and acc, the fastest point reaching a level was the first slower
    # front point at or above it (or none: the reference); the new point now reaches it at `lat`.
    added, level, j = 0.0, acc_left, i
    while j < len(front_lat) and front_acc[j] <= acc:  # these the new point dominates: they leave
        added += (front_lat[j] - lat) * (front_acc[j] - level)
        level = front_acc[j]
        j += 1
    added += ((front_lat[j] if j < len(front_lat) else ref_lat) - lat) * (acc - level)
    front_lat[start:j] = [lat]
    front_acc[start:j] = [acc]
    return added
