"""bench/bench_pair_gaps: which pairs of one stride a ranker orders right, and what passing stride needs
(on a real micro check: tests/predictor/test_predictor_check.py)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from bench.bench_pair_gaps import break_even, gap_cuts, stride_pairs


def test_the_break_even_agreement_is_where_tau_b_meets_stride_alones():
    truth = np.array([50.0, 49.0, 48.0, 47.0, 40.0, 39.5, 39.0, 38.0, 37.0, 30.0])
    stride = np.array([4, 4, 4, 4, 8, 8, 8, 8, 8, 16])
    # a ranker = stride, and inside the stride-8 group it lifts the first point and drops the last,
    # tying the other three: it orders the 7 pairs of that group that hold point 4 or point 8
    ranker = -stride * 100.0
    ranker[4], ranker[8] = ranker[4] + 1, ranker[8] - 1
    points = pd.DataFrame({"stride": stride, "s": ranker, "truth": truth})
    pairs, net, n = stride_pairs(points, "s", "truth")
    assert n == 4 * 5 + 4 + 5 and net == n  # stride orders every cross-stride pair right here
    ordered = pairs.same & (pairs.gap > 0)
    assert ordered.sum() == 7 and (pairs.agree[ordered] == 1).all()
    assert (pairs.agree[pairs.same & (pairs.gap == 0)] == 0).all()  # its ties agree neither way
    alone, with_pairs = kendalltau(-stride, truth)[0], kendalltau(ranker, truth)[0]  # plain tau-b, as the checks
    # ordering k pairs at agreement c scales stride's tau-b by (S + c k) / sqrt(N + k) / (S / sqrt(N)):
    # here c = 1, checked against scipy ...
    assert with_pairs / alone == pytest.approx((net + 7) / math.sqrt(n + 7) / (net / math.sqrt(n)))
    # ... and break_even is the c at which that factor is 1
    c = break_even(across_net=net, across_pairs=n, ordered=7)
    assert 0 < c < 1 and (net + c * 7) / math.sqrt(n + 7) == pytest.approx(net / math.sqrt(n))
    assert math.isnan(break_even(across_net=net, across_pairs=n, ordered=0))


def test_a_point_without_a_score_is_left_out_not_counted():
    points = pd.DataFrame({"stride": [8, 8, 8, 16], "s": [3.0, np.nan, 1.0, 0.0], "truth": [2.0, 5.0, 1.0, 0.0]})
    pairs, net, n = stride_pairs(points, "s", "truth")
    assert len(pairs.gap) == 3 and pairs.same.sum() == 1 and (net, n) == (2.0, 2)


def test_gap_cuts_keep_the_pairs_a_ranker_separates_most_and_leave_its_ties_out():
    gaps = np.array([0.0, 0.1, 0.2, 0.3, 1.0, 2.0, 3.0])
    signs = np.array([0.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0])  # a tie, wrong where it barely separates, right after
    cuts = gap_cuts(gaps, signs, quantiles=[0, 0.5], across_net=20.0, across_pairs=20)
    assert [c.pairs for c in cuts] == [6, 3]  # the tie is no order
    assert cuts[0].agreement == pytest.approx(2 / 6) and cuts[1].agreement == 1.0
    assert cuts[1].needed == pytest.approx(20 * (math.sqrt(1 + 3 / 20) - 1) / 3)
