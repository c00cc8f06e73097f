import numpy as np
import pytest

from ffnet_nas.search.pareto import dominates, hypervolume, hypervolume_reference, pareto_mask
from ffnet_nas.search.tables import encoding_distance, nearest_published
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.searchspace import get_space


def _brute_mask(pts):
    return np.array([not any(dominates(q, p) for q in pts) for p in pts])


def test_pareto_mask_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = rng.integers(0, 6, size=(40, 2)).astype(float)  # many exact ties
        assert (pareto_mask(pts) == _brute_mask(pts.tolist())).all()


def test_dominates_needs_one_strict():
    assert dominates((1, 5), (2, 5)) and dominates((1, 6), (1, 5))
    assert not dominates((1, 5), (1, 5)) and not dominates((1, 4), (2, 5))


def test_hypervolume_hand_computed():
    # two points, reference (10 ms, 0 mIoU): union of [2,10]x[0,50] and [5,10]x[0,70]
    assert hypervolume([(2, 50), (5, 70)], (10, 0)) == pytest.approx(8 * 50 + 5 * 20)
    assert hypervolume([(2, 50), (5, 70), (6, 60)], (10, 0)) == pytest.approx(500)  # dominated point adds nothing
    assert hypervolume([(12, 90)], (10, 0)) == 0.0  # beyond the reference


def test_hypervolume_equals_optunas():
    from optuna._hypervolume import compute_hypervolume  # private: used only as an oracle here

    rng = np.random.default_rng(1)
    pts = rng.random((300, 2))
    ref = hypervolume_reference(pts)
    ours = hypervolume(pts, ref)
    theirs = compute_hypervolume(np.stack([pts[:, 0], -pts[:, 1]], 1), np.array([ref[0], -ref[1]]))
    assert ours == pytest.approx(theirs, rel=1e-12)


def test_encoding_distance_and_nearest():
    space = get_space("mobile")
    a = Arch.from_name("segmentation_ffnet40S_BBB_mobile")
    b = Arch.from_name("segmentation_ffnet40S_BCC_mobile")
    c = Arch.from_name("segmentation_ffnet122NS_CCC_mobile")
    assert encoding_distance(space, a, a) == 0
    assert 0 < encoding_distance(space, a, b) < encoding_distance(space, a, c) <= 1
    pub = {"x": {"arch": b, "latency_ms": 5.0}, "y": {"arch": c, "latency_ms": 1.0}}
    assert nearest_published(space, a, 1.0, pub)[0] == "x"
    # a tie in distance goes to the closer latency
    pub_tie = {"p": {"arch": b, "latency_ms": 9.0}, "q": {"arch": b, "latency_ms": 2.0}}
    assert nearest_published(space, a, 1.0, pub_tie)[0] == "q"
