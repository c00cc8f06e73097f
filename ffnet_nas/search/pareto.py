"""Pareto sets, dominance and hypervolume for the two objectives (latency down, mIoU up).

Optuna's hypervolume (`optuna._hypervolume.compute_hypervolume`) is private, so the 2-D case is
computed exactly here (a sort and a sweep, O(n log n)); a test checks it against Optuna's.
Points are (latency_ms, miou) pairs throughout.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` dominates `b`: no slower and no less accurate, and strictly better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def pareto_mask(points: "Sequence[Sequence[float]] | np.ndarray") -> np.ndarray:
    """Boolean mask of the non-dominated points (duplicates of a front point all stay on it)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    n = len(pts)
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    # sort by latency ascending, then mIoU descending: a point is on the front iff its mIoU beats
    # every faster point's (ties in both coordinates share the verdict of the first of them)
    order = np.lexsort((-pts[:, 1], pts[:, 0]))
    best = -np.inf
    prev = None
    for i in order:
        lat, acc = pts[i]
        if prev is not None and (lat, acc) == prev:
            mask[i] = mask_prev
            continue
        mask_prev = acc > best
        mask[i] = mask_prev
        best = max(best, acc)
        prev = (lat, acc)
    return mask


def hypervolume(points: Iterable[Sequence[float]], reference: Sequence[float]) -> float:
    """Exact 2-D hypervolume dominated by `points` and bounded by `reference` (worst latency, worst mIoU).

    Points not better than the reference in both coordinates add nothing.
    """
    pts = np.asarray(list(points), dtype=float).reshape(-1, 2)
    ref_lat, ref_acc = float(reference[0]), float(reference[1])
    pts = pts[(pts[:, 0] < ref_lat) & (pts[:, 1] > ref_acc)]
    if len(pts) == 0:
        return 0.0
    pts = pts[pareto_mask(pts)]
    pts = pts[np.argsort(pts[:, 0])]  # on a front, faster means less accurate
    area, acc_below = 0.0, ref_acc
    # sweep up in mIoU: between two front points' mIoU levels the fastest point reaching that
    # level is the upper one, so each point adds a slab (ref_lat - lat) x (its mIoU - previous)
    for lat, acc in pts:
        area += (ref_lat - lat) * (acc - acc_below)
        acc_below = acc
    return area


def hypervolume_reference(points: Iterable[Sequence[float]], *, margin: float = 0.05) -> tuple[float, float]:
    """A reference point a little worse than the worst of `points` in both coordinates."""
    pts = np.asarray(list(points), dtype=float).reshape(-1, 2)
    lat_span = float(np.ptp(pts[:, 0])) or 1.0
    acc_span = float(np.ptp(pts[:, 1])) or 1.0
    return (float(pts[:, 0].max() + margin * lat_span), float(pts[:, 1].min() - margin * acc_span))


def dominated_by(point: Sequence[float], others: dict[str, Sequence[float]]) -> list[str]:
    """Names in `others` that `point` dominates."""
    return [name for name, q in others.items() if dominates(point, q)]
