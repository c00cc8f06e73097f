import hashlib

import pytest

from ffnet_nas.space import Arch, InvalidInput, parse_code, resolve
from ffnet_nas.space.arch import POSITIONS
from ffnet_nas.space.catalogue import published_variants, reference_data

ALL = published_variants()


@pytest.mark.parametrize("variant", ALL, ids=lambda v: v.name)
def test_published_code_round_trips(variant):
    arch = variant.arch
    assert Arch.parse(arch.code) == arch
    assert Arch.parse(arch.code).code == arch.code
    assert hash(Arch.parse(arch.code)) == hash(arch)


def test_code_is_readable_and_shell_safe():
    arch = Arch.from_name("segmentation_ffnet122NS_CBB_mobile_pre_down")
    assert arch.code == "stemC-basic-d16.24.20-w64.128.256-s2-upB-segB-nearest-predown"
    assert all(c.isalnum() or c in "-." for c in arch.code)


def test_nominal_depth_matches_published_names():
    for v in ALL:
        digits = "".join(c for c in v.name.split("ffnet")[1] if c.isdigit())
        assert v.arch.nominal_depth == int(digits), v.name


def test_stable_hash_is_fixed_across_runs():
    # sha1 of the code: a change in this value means every workdir's file names would change
    arch = Arch.from_name("segmentation_ffnet40S_BBB_mobile")
    assert arch.stable_hash == hashlib.sha1(arch.code.encode()).hexdigest()[:12]
    assert len({v.arch.stable_hash for v in ALL}) == len({v.arch for v in ALL})


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"stem": "D"}, "stem"),
        ({"block": "wide"}, "block"),
        ({"depths": (1, 2)}, "depths"),
        ({"widths": (64, 128, 192)}, "widths"),
        ({"depths": (0, 5, 6, 4)}, "depths[0]"),
        ({"widths": (64, 130, 192, 320)}, "widths[1]"),
        ({"first_stride": 3}, "first_stride"),
        ({"up_head": "Z"}, "up_head"),
        ({"seg_head": "Q"}, "seg_head"),
        ({"upsample": "bicubic"}, "upsample"),
        ({"pre_down": "yes"}, "pre_down"),
    ],
)
def test_validation_names_the_wrong_field(changes, field):
    base = Arch.from_name("segmentation_ffnet40S_BBB_mobile")
    with pytest.raises(InvalidInput) as e:
        base.replace(**changes)
    assert f"field {field}=" in str(e.value)


def test_three_stage_requires_stride_two():
    with pytest.raises(InvalidInput, match="3-stage"):
        Arch("C", "basic", (4, 4, 4), (64, 128, 256), first_stride=1)


@pytest.mark.parametrize(
    "code, fragment",
    [
        ("", "empty"),
        ("stemB-basic", "expected 8"),
        ("stemB-basic-d4.5.6.4-w64.128.192.320-s3-upB-segB-nearest", "'s3'"),
        ("stemB-basic-d4.x.6.4-w64.128.192.320-s1-upB-segB-nearest", "'d4.x.6.4'"),
        ("stemB-basic-d4.5.6.4-w64.128-s1-upB-segB-nearest", "'w64.128'"),
        ("stemBB-basic-d4.5.6.4-w64.128.192.320-s1-upB-segB-nearest", "'stemBB'"),
        ("stemB-basic-d4.5.6.4-w64.128.192.320-s1-uB-segB-nearest", "'uB'"),
        ("stemB-basic-d4.5.6.4-w64.128.192.320-s1-upB-sB-nearest", "'sB'"),
        ("stemB-basic-d4.5.6.4-w64.128.192.320-s1-upB-segB-linear", "upsample"),
    ],
)
def test_malformed_codes_say_which_part(code, fragment):
    with pytest.raises(InvalidInput) as e:
        parse_code(code)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_resolve_accepts_name_code_and_arch():
    arch = Arch.from_name("segmentation_ffnet46NS_CCC_mobile")
    assert resolve(arch) is arch
    assert resolve(arch.code) == arch
    assert resolve("segmentation_ffnet46NS_CCC_mobile") == arch


def test_unknown_name_suggests_closest():
    with pytest.raises(InvalidInput) as e:
        resolve("segmentation_ffnet40S_BBB_mobil")
    assert "segmentation_ffnet40S_BBB_mobile" in str(e.value)


def test_blocks_cut_four_stage():
    arch = Arch.from_name("segmentation_ffnet40S_BBB_mobile")
    blocks = arch.blocks()
    assert [b.position for b in blocks] == list(POSITIONS)
    s4, s8, s16, s32, head = blocks
    assert s4.choice == "stemB+basic.d4.w64.s1" and s4.out_stride == 4 and s4.out_channels == (64,)
    assert (s8.in_channels, s8.out_channels, s8.in_stride, s8.out_stride) == ((64,), (128,), 4, 8)
    assert s32.out_stride == 32 and s32.out_channels == (320,)
    assert head.in_channels == (64, 128, 192, 320) and head.choice == "upB-segB-nearest"


def test_blocks_cut_three_stage_shares_positions():
    arch = Arch.from_name("segmentation_ffnet122NS_CBB_mobile_pre_down")
    s4, s8, s16, s32, head = arch.blocks()
    assert s4.choice == "predown+stemC" and s4.out_stride == 8  # pre_down doubles every stride
    assert s8.choice == "basic.d16.w64.s2" and s8.in_channels == (64,)
    assert head.in_channels == (64, 64, 128, 256)
    assert arch.output_stride == 8


def test_d_models_double_the_output_stride():
    assert Arch.from_name("segmentation_ffnet34_dAAA").output_stride == 8
    assert Arch.from_name("segmentation_ffnet34_AAA").output_stride == 4


def test_blocks_agree_with_published_structure():
    records = {r["name"]: r for r in reference_data()["records"]}
    for v in published_variants():
        arch = v.arch
        assert arch.feature_channels == tuple(records[v.name]["backbone_feature_channels"]), v.name
        # consecutive backbone blocks chain: each one's input is the previous one's output
        blocks = arch.blocks()
        for prev, nxt in zip(blocks[:3], blocks[1:4]):
            assert nxt.in_channels == prev.out_channels and nxt.in_stride == prev.out_stride
