"""Numbers the evidence figures state: agreement of predictions with measurements, and
hypervolume over a study's trials. Pure functions on arrays (compute, no drawing).

The 2-D hypervolume is written out here rather than imported from the search package because
`reports` only depends on `space` (DESIGN.md); the test checks it against a brute-force count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fidelity:
    """How well `predicted` follows `measured` (latency: relative error; rank: Spearman/Kendall)."""

    n: int
    within_10pct: float  # share of points with |pred - meas| / meas <= 10%
    median_abs_pct: float
    spearman: float
    kendall: float
    mae: float  # mean |pred - meas| in the measured unit

    def headline(self, *, unit: str = "ms", relative: bool = True) -> str:
        parts = [f"n={self.n}"]
        if relative:
            parts += [f"{100 * self.within_10pct:.0f}% within ±10%", f"median |error| {self.median_abs_pct:.1f}%"]
        else:
            parts += [f"MAE {self.mae:.2f} {unit}"]
        if np.isfinite(self.spearman):
            parts += [f"Spearman {self.spearman:.2f}", f"Kendall τ {self.kendall:.2f}"]
        else:
            parts += ["rank correlation n/a (fewer than 3 distinct points)"]
        return " · ".join(parts)


def fidelity(predicted, measured) -> Fidelity:
    from scipy import stats

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    ok = np.isfinite(p) & np.isfinite(m)
    p, m = p[ok], m[ok]
    if len(p) == 0:
        nan = float("nan")
        return Fidelity(0, nan, nan, nan, nan, nan)
    rel = np.abs(p - m) / np.abs(m) * 100
    # Rank statistics of fewer than 3 points, or of constant data, are undefined: say NaN, not 0.
    ranked = len(p) >= 3 and np.ptp(p) > 0 and np.ptp(m) > 0
    return Fidelity(
        n=int(len(p)),
        within_10pct=float(np.mean(rel <= 10.0)),
        median_abs_pct=float(np.median(rel)),
        spearman=float(stats.spearmanr(p, m).statistic) if ranked else float("nan"),
        kendall=float(stats.kendalltau(p, m).statistic) if ranked else float("nan"),
        mae=float(np.mean(np.abs(p - m))),
    )


def pareto_mask(latency, miou) -> np.ndarray:
    """Non-dominated points for (latency down, mIoU up); equal points share the verdict."""
    lat, acc = np.asarray(latency, float), np.asarray(miou, float)
    n = len(lat)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        better_or_equal = (lat <= lat[i]) & (acc >= acc[i])
        strictly = (lat < lat[i]) | (acc > acc[i])
        if np.any(better_or_equal & strictly):
            mask[i] = False
    return mask


def hypervolume(latency, miou, reference: tuple[float, float]) -> float:
    """Area dominated by the points inside the box [lat < ref_lat, miou > ref_miou]."""
    lat, acc = np.asarray(latency, float), np.asarray(miou, float)
    ref_lat, ref_acc = reference
    keep = (lat < ref_lat) & (acc > ref_acc)
    lat, acc = lat[keep], acc[keep]
    if len(lat) == 0:
        return 0.0
    order = np.argsort(lat, kind="stable")
    area, best = 0.0, ref_acc
    # Sweep from fast to slow: each point adds the strip above the best mIoU seen so far.
    for i in order:
        if acc[i] > best:
            area += (ref_lat - lat[i]) * (acc[i] - best)
            best = acc[i]
    return float(area)


def reference_point(latency, miou, *, margin: float = 0.05) -> tuple[float, float]:
    """A little worse than the worst point in both objectives, so every point counts."""
    lat, acc = np.asarray(latency, float), np.asarray(miou, float)
    lat_span = float(np.ptp(lat)) or max(abs(float(lat.max())), 1.0) * 0.1
    acc_span = float(np.ptp(acc)) or 1.0
    return float(lat.max() + margin * lat_span), float(acc.min() - margin * acc_span)


def hypervolume_curve(trial, latency, miou, feasible=None, *, reference: tuple[float, float] | None = None):
    """(trial numbers, hypervolume of the feasible points seen up to each trial, reference used).

    O(n²) in the worst case, fine for the thousands of trials a study holds.
    """
    t = np.asarray(trial)
    lat, acc = np.asarray(latency, float), np.asarray(miou, float)
    ok = np.ones(len(t), bool) if feasible is None else np.asarray(feasible, bool)
    order = np.argsort(t, kind="stable")
    t, lat, acc, ok = t[order], lat[order], acc[order], ok[order]
    if reference is None:
        reference = reference_point(lat[ok], acc[ok]) if ok.any() else (1.0, 0.0)
    hv = np.zeros(len(t))
    front_lat: list[float] = []
    front_acc: list[float] = []
    current = 0.0
    for i in range(len(t)):
        if ok[i]:
            front_lat.append(lat[i])
            front_acc.append(acc[i])
            m = pareto_mask(front_lat, front_acc)
            front_lat = [x for x, k in zip(front_lat, m) if k]
            front_acc = [x for x, k in zip(front_acc, m) if k]
            current = hypervolume(front_lat, front_acc, reference)
        hv[i] = current
    return t, hv, reference
