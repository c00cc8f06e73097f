"""The unit decomposition: shapes match the real network, keys are shared, spaces are covered."""

from collections import Counter

import pytest
from ffnet_nas.predictors.latency.keys import space_units, units_of
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.searchspace import from_dict, get_space

from tests.helpers.lut_keys import traced_keys

ARCHS = [
    "segmentation_ffnet40S_BBB_mobile",
    "segmentation_ffnet40S_BBB_mobile_pre_down",
    "segmentation_ffnet46NS_CCC_mobile_pre_down",
    "segmentation_ffnet18_dAAC",
    "segmentation_ffnet50_AAA",
]


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("stem_hw", [(64, 128), (100, 150)])
def test_units_match_the_real_network(name, stem_hw):
    arch = Arch.from_name(name)
    ours = Counter({u.key: n for u, n in units_of(arch, stem_hw).items()})
    assert ours == traced_keys(arch, stem_hw)


def test_pre_down_stem_sees_the_published_size():
    arch = Arch.from_name("segmentation_ffnet122NS_CBB_mobile_pre_down")
    stem = next(u for u in units_of(arch, (512, 1024)) if u.kind == "stem")
    assert stem.hw == ((511, 1022),)  # FFNET_SPACE.md: 1024x2048 becomes 511x1022


def test_stage_is_first_plus_repeated_blocks_shared_across_depths():
    shallow = Arch.from_name("segmentation_ffnet40S_BBB_mobile")
    deep = Arch.from_name("segmentation_ffnet150S_BBB_mobile")
    a, b = units_of(shallow, (64, 128)), units_of(deep, (64, 128))
    assert set(a) == set(b)  # same widths and strides: depth changes only the counts
    assert sum(a.values()) == sum(shallow.depths) + 2  # blocks + stem + head
    assert sum(b.values()) == sum(deep.depths) + 2
    # stage 1 (stride 1, 64 -> 64): the first block is a repeat block, one key with count = depth
    s1 = [n for u, n in a.items() if u.key.startswith("block:basic:p64-s1:c64")]
    assert s1 == [shallow.depths[0]]


def test_space_units_cover_every_point_and_nothing_more():
    space = from_dict({"base": "mobile", "name": "small",
                       "stages": {3: {"depths": [[2], [1, 3], [1]], "widths": [[64], [128], [256]]},
                                  4: {"depths": [[1, 2], [1], [2], [1]], "widths": [[64], [128], [192], [320]]}}})
    assert space.size < 2000
    union = {u.key for arch in space for u in units_of(arch, (64, 128))}
    assert {u.key for u in space_units(space, (64, 128))} == union


def test_builtin_spaces_keys_are_few_and_cover_samples():
    space = get_space("mobile")
    keys = {u.key for u in space_units(space, (256, 512))}
    for arch in space.sample_many(300, seed=3):
        assert {u.key for u in units_of(arch, (256, 512))} <= keys
    assert len(keys) < 60  # depth-independent: 16k points, a few dozen keys
