"""Numbers about sets of points, shared by search, predictors and reports (one home, one rule each).

Pure functions on arrays; imports nothing from the package, so every layer may use it.

- `rank_correlations`: Spearman and Kendall of predicted vs measured values. One NaN rule for the
  whole project: pairs with a non-finite value are dropped, and the statistics of fewer than 3
  pairs or of constant data are undefined, so they are NaN (never 0, which would read as "no
  agreement").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

MIN_RANKED = 3  # fewer pairs than this have no meaningful rank statistic


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
