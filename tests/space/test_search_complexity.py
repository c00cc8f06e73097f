import dataclasses

from ffnet_nas.space.complexity_cache import ComplexityCache
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.complexity import complexity
from ffnet_nas.space.searchspace import get_space


NUM_CLASSES = 19  # Cityscapes' head: the published variants' reference counts are for it


def _reference(cache, arch):
    c = complexity(arch, cache.net_hw(arch), num_classes=cache.num_classes)
    return c.params, c.macs


def test_full_pass_and_composed_parts_equal_space_complexity_at_odd_sizes():
    # odd sizes exercise every rounding rule (stride-2 ceil, the pre_down Gaussian's floor)
    for name, hw in (("all", (100, 202)),):
        space = get_space(name)
        cache = ComplexityCache(hw, num_classes=NUM_CLASSES)
        # a 3-stage pre_down point and a 4-stage stride-64 point, both small (fast to build)
        arches = [Arch.from_name("segmentation_ffnet46NS_CCC_mobile_pre_down"),
                  Arch.from_name("segmentation_ffnet40S_dBBB_mobile")]
        for a in arches:
            assert cache.get(a) == _reference(cache, a), a.code
        # a point with another head and a point with another depth teach the cache every part
        # of the point that has both changes: that one must be summed, not built
        a = arches[0]
        opts = space._options(a.num_stages)
        other_depth = next(d for d in opts.depths[-1] if d != a.depths[-1])
        other_head = next(h for h in space.seg_heads if h != a.seg_head)
        deeper = dataclasses.replace(a, depths=a.depths[:-1] + (other_depth,))
        new_head = dataclasses.replace(a, seg_head=other_head)
        both = dataclasses.replace(deeper, seg_head=other_head)
        for m in (deeper, new_head):
            assert cache.get(m) == _reference(cache, m), m.code
        passes = cache.full_passes
        assert cache.get(both) == _reference(cache, both), both.code
        assert cache.full_passes == passes, "a point made of known parts must not be built"


def test_published_variant_matches_reference_macs():
    from ffnet_nas.space.catalogue import get_variant

    v = get_variant("segmentation_ffnet40S_BBB_mobile_pre_down")
    cache = ComplexityCache((v.macs_input_hw[0] // v.arch.input_scale, v.macs_input_hw[1] // v.arch.input_scale),
                            num_classes=NUM_CLASSES)
    assert cache.get(v.arch) == (v.n_params, v.macs)


def test_parts_built_alone_add_up_to_the_whole():
    space = get_space("mobile")
    cache = ComplexityCache((98, 130), num_classes=NUM_CLASSES)
    a, b = space.sample_many(2, seed=11)
    cache.get(a)
    full = cache.full_passes
    # same stem and pre_down as `a`, everything else from `b`: only parts are built, never the whole
    c = dataclasses.replace(b, stem=a.stem, pre_down=a.pre_down)
    if c not in space:
        c = dataclasses.replace(a, seg_head=next(h for h in space.seg_heads if h != a.seg_head))
    assert cache.get(c) == _reference(cache, c), c.code
    assert cache.full_passes == full and cache.part_passes > 0
