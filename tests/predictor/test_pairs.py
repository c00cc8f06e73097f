"""ffnet_nas.stats.pairs_by_group: the pairs Kendall's tau is made of, split by group."""

import numpy as np

from ffnet_nas.stats import pairs_by_group


def test_pairs_say_how_each_pair_is_ordered_and_whether_it_shares_a_group():
    pairs = pairs_by_group([3.0, 1.0, 1.0, np.nan], [2.0, 3.0, 0.0, 9.0], ["a", "a", "b", "b"])
    # the fourth point has no score: three points, three pairs (0,1), (0,2), (1,2)
    assert pairs.gap.tolist() == [2.0, 2.0, 0.0]
    assert pairs.agree.tolist() == [-1.0, 1.0, 0.0]  # wrong, right, a tie of the ranker
    assert pairs.same.tolist() == [True, False, False]
