"""Pareto sets and hypervolume (`ffnet_nas.stats`, their one home), and the search's nearest-published table."""

import itertools

import numpy as np
import pytest

from ffnet_nas.search.tables import encoding_distance, nearest_published
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.searchspace import get_space
from ffnet_nas.stats import dominated_by, dominates, hypervolume, hypervolume_curve, hypervolume_reference, pareto_mask


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


def test_pareto_mask_edge_cases():
    assert pareto_mask([]).tolist() == [] and pareto_mask(np.zeros((0, 2))).tolist() == []
    assert pareto_mask([(3, 70)]).tolist() == [True]
    # duplicates of a front point all stay on it; a duplicate of a dominated point stays off
    assert pareto_mask([(1, 5), (1, 5), (2, 4), (2, 4)]).tolist() == [True, True, False, False]
    # a non-finite row is never on the front and dominates nothing
    assert pareto_mask([(np.nan, 99), (2, 50), (1, np.inf)]).tolist() == [False, True, False]
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        pareto_mask([1, 2, 3])


def test_dominated_by_names_what_a_point_beats():
    assert dominated_by((2, 60), {"slow": (3, 60), "same": (2, 60), "better": (1, 70), "worse": (5, 10)}) == ["slow", "worse"]


def test_hypervolume_hand_computed():
    # two points, reference (10 ms, 0 mIoU): union of [2,10]x[0,50] and [5,10]x[0,70]
    assert hypervolume([(2, 50), (5, 70)], reference=(10, 0)) == pytest.approx(8 * 50 + 5 * 20)
    assert hypervolume([(2, 50), (5, 70), (6, 60)], reference=(10, 0)) == pytest.approx(500)  # dominated point adds nothing
    assert hypervolume([(12, 90)], reference=(10, 0)) == 0.0  # beyond the reference
    assert hypervolume([], reference=(10, 0)) == 0.0
    assert hypervolume([(2, 50), (2, 50)], reference=(10, 0)) == pytest.approx(400)  # a duplicate adds nothing
    assert hypervolume([(10, 50), (2, 0)], reference=(10, 0)) == 0.0  # on the box's edge: strictly inside only


def _exact_union_area(pts, ref):
    """Oracle: the union of the boxes [lat, ref_lat] x [ref_acc, acc] on the grid of their own
    coordinates (exact, O(n^3)). Optuna's hypervolume is private (`optuna._hypervolume`), so it
    is not the oracle any more."""
    xs = sorted({ref[0], *(p[0] for p in pts if p[0] < ref[0])})
    ys = sorted({ref[1], *(p[1] for p in pts if p[1] > ref[1])})
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(zip(xs, xs[1:]), zip(ys, ys[1:])):
        if any(p[0] <= x0 and p[1] >= y1 for p in pts):
            area += (x1 - x0) * (y1 - y0)
    return area


def test_hypervolume_equals_an_exact_union_of_boxes():
    rng = np.random.default_rng(1)
    pts = rng.random((120, 2))
    ref = hypervolume_reference(pts)
    assert hypervolume(pts, reference=ref) == pytest.approx(_exact_union_area(pts.tolist(), ref), rel=1e-12)
    ties = rng.integers(0, 5, size=(60, 2)).astype(float)  # duplicates, shared coordinates, points outside
    assert hypervolume(ties, reference=(3.5, 0.5)) == pytest.approx(_exact_union_area(ties.tolist(), (3.5, 0.5)), rel=1e-12)


def test_hypervolume_curve_equals_the_hypervolume_of_every_prefix():
    rng = np.random.default_rng(2)
    for pts in (rng.random((80, 2)), rng.integers(0, 6, size=(80, 2)).astype(float)):
        pts[::17] = (np.nan, 0.5)  # non-finite rows add nothing
        ref = (0.9 if pts.max() <= 1 else 4.5, 0.1 if pts.max() <= 1 else 0.5)
        curve = hypervolume_curve(pts, reference=ref)
        assert curve.shape == (80,) and np.all(np.diff(curve) >= 0)
        expected = [hypervolume(pts[: k + 1], reference=ref) for k in range(80)]
        assert curve == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert hypervolume_curve([], reference=(1, 0)).shape == (0,)


def test_hypervolume_reference_is_worse_than_every_point():
    ref = hypervolume_reference([(2, 50), (5, 70)])
    assert ref == pytest.approx((5 + 0.05 * 3, 50 - 0.05 * 20))
    one = hypervolume_reference([(4, 60)])  # no span: a tenth of the latency, 1 mIoU point
    assert one == pytest.approx((4 + 0.05 * 0.4, 60 - 0.05)) and hypervolume([(4, 60)], reference=one) > 0
    with pytest.raises(ValueError, match="expected at least one"):
        hypervolume_reference([])
    with pytest.raises(ValueError, match="expected two finite numbers"):
        hypervolume([(1, 1)], reference=(np.nan, 0))


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
