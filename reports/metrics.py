"""Numbers the evidence figures state (compute, no drawing): how well predictions follow
measurements (`Fidelity`), and a study's hypervolume trial by trial (`hypervolume_history`).

Only what is report-specific lives here. The statistics themselves have one home,
`ffnet_nas.stats`: rank correlations with the project's NaN rule, Pareto masks and the exact
2-D hypervolume (this module used to carry copies of its own; they had drifted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ffnet_nas.stats import hypervolume_curve, hypervolume_reference, rank_correlations

EMPTY_REFERENCE = (1.0, 0.0)  # no feasible trial yet: any box will do, the area is 0


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
    """Errors and rank agreement over the pairs where both values are finite (`ffnet_nas.stats`'s rule)."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    ok = np.isfinite(p) & np.isfinite(m)
    p, m = p[ok], m[ok]
    if len(p) == 0:
        nan = float("nan")
        return Fidelity(0, nan, nan, nan, nan, nan)
    rel = np.abs(p - m) / np.abs(m) * 100
    ranks = rank_correlations(p, m)
    return Fidelity(
        n=int(len(p)),
        within_10pct=float(np.mean(rel <= 10.0)),
        median_abs_pct=float(np.median(rel)),
        spearman=ranks.spearman,
        kendall=ranks.kendall,
        mae=float(np.mean(np.abs(p - m))),
    )


@dataclass(frozen=True)
class HypervolumeHistory:
    """The hypervolume of the feasible points seen up to each trial, in trial order."""

    trial: np.ndarray  # trial numbers, ascending
    hypervolume: np.ndarray  # one value per trial; never decreases
    reference: tuple[float, float]  # (worst latency_ms, worst miou) bounding the area


def hypervolume_history(*, trial, latency, miou, feasible=None,
                        reference: tuple[float, float] | None = None) -> HypervolumeHistory:
    """Sort the trials, skip the infeasible ones (they hold the area where it was), and take the
    default reference a little worse than the worst feasible point, so every such point counts."""
    t = np.asarray(trial)
    pts = np.column_stack([np.asarray(latency, float), np.asarray(miou, float)]) if len(t) else np.zeros((0, 2))
    ok = np.ones(len(t), bool) if feasible is None else np.asarray(feasible, bool)
    if not (len(pts) == len(t) == len(ok)):
        raise ValueError(f"hypervolume_history: {len(t)} trials, {len(pts)} points, {len(ok)} feasibility flags; "
                         "expected one of each per trial")
    order = np.argsort(t, kind="stable")
    t, pts, ok = t[order], pts[order], ok[order]
    if reference is None:
        reference = hypervolume_reference(pts[ok]) if ok.any() else EMPTY_REFERENCE
    feasible_curve = hypervolume_curve(pts[ok], reference=reference)
    seen = np.cumsum(ok)  # feasible trials up to and including each trial (0: none yet, area 0)
    hv = np.concatenate(([0.0], feasible_curve))[seen]
    return HypervolumeHistory(trial=t, hypervolume=hv, reference=(float(reference[0]), float(reference[1])))
