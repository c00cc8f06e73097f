"""bench/bench_design.py: spread vs contrast extra design points, ranked on held-out checks."""

import numpy as np
import pandas as pd

from bench import bench_design as bench
from ffnet_nas.fit_predictor import select_points
from ffnet_nas.space.searchspace import get_space


def test_the_two_designs_add_disjoint_new_points_to_the_base():
    space = get_space("mobile")
    base = select_points(space, 10, seed=1)
    extras = bench.extra_designs(space, base, 4)
    assert set(extras) == {"spread", "contrast"}
    for points in extras.values():
        assert len(set(points)) == 4 and not set(points) & set(base)
    assert extras["spread"] != extras["contrast"]


def test_ranked_pools_folders_and_pairs_the_designs():
    rng = np.random.default_rng(0)
    frames = []
    for folder in ("a", "b"):
        stride = np.array([4] * 6 + [8] * 10 + [16] * 4)
        truth = -10 * np.log2(stride) + rng.normal(size=20)
        frames.append(pd.DataFrame({"folder": folder, "stride": stride, "truth": truth,
                                    "ridge_contrast": truth, "ridge_spread": -10 * np.log2(stride) - truth / 100,
                                    "ridge_base": -10 * np.log2(stride) + rng.normal(size=20),
                                    "neg_stride": -stride.astype(float)}))
    rows = bench.ranked(frames, ["ridge_contrast", "ridge_spread", "neg_stride"])
    assert rows[2].startswith("| ridge_contrast | 1.00 ") and rows[2].endswith("| 1.00 [1.00, 1.00] |")
    spread = next(r for r in rows if r.startswith("| ridge_spread"))
    assert spread.split("|")[3].strip().startswith("-1.00")  # reversed inside the stride-8 groups
    pair = next(r for r in rows if r.startswith("- contrast minus spread"))
    assert "largest stride group 2.00 [2.00, 2.00]" in pair
