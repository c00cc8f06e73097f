"""bench/bench_pair_gaps: which pairs of one stride a ranker orders right, and what passing stride needs."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from bench.bench_pair_gaps import across_stride, break_even, gap_cuts, same_stride_pairs


def test_the_break_even_agreement_is_where_tau_b_meets_stride_alones():
    truth = np.array([50.0, 49.0, 48.0, 47.0, 40.0, 39.5, 39.0, 38.0, 37.0, 30.0])
    stride = np.array([4, 4, 4, 4, 8, 8, 8, 8, 8, 16])
    points = pd.DataFrame({"stride": stride, "truth": truth})
    net, n = across_stride(points, "truth")
    assert n == 4 * 5 + 4 + 5 and net == n  # stride orders every cross-stride pair right here
    alone = kendalltau(-stride, truth)[0]  # plain tau-b: scipy leaves stride's ties out as we do
    # a ranker = stride, then within the stride-8 group it orders only the first and the last point
    # (one pair, which it gets right) and ties the rest: tau-b rises above stride alone's ...
    ranker = -stride * 100.0
    ranker[4], ranker[8] = ranker[4] + 1, ranker[8] - 1
    # ... ordering the 7 pairs that involve points 4 or 8 inside the group, all of them right
    gaps, signs = same_stride_pairs(pd.DataFrame({"stride": stride, "s": ranker, "truth": truth}), "s", "truth")
    ordered = int((gaps > 0).sum())
    assert ordered == 7 and signs[gaps > 0].mean() == 1.0
    with_pairs = kendalltau(ranker, truth)[0]
    assert with_pairs > alone
    # the formula: ordering k pairs at agreement c equals stride's tau-b exactly at c = break_even
    c = break_even(across_net=net, across_pairs=n, ordered=ordered)
    assert (net + c * ordered) / math.sqrt(n + ordered) == pytest.approx(net / math.sqrt(n))
    assert (net + 1.0 * ordered) / math.sqrt(n + ordered) / (net / math.sqrt(n)) == pytest.approx(with_pairs / alone)
    assert math.isnan(break_even(across_net=net, across_pairs=n, ordered=0))


def test_gap_cuts_keep_the_pairs_a_ranker_separates_most():
    gaps = np.array([0.1, 0.2, 0.3, 1.0, 2.0, 3.0])
    signs = np.array([-1.0, -1.0, 1.0, 1.0, 1.0, 1.0])  # wrong where it barely separates, right where it does
    cuts = gap_cuts(gaps, signs, quantiles=[0, 0.5], across_net=20.0, across_pairs=20)
    assert [c.pairs for c in cuts] == [6, 3]
    assert cuts[0].agreement == pytest.approx(2 / 6) and cuts[1].agreement == 1.0
    assert cuts[1].needed == pytest.approx(20 * (math.sqrt(1 + 3 / 20) - 1) / 3)
