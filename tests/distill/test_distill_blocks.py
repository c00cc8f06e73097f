"""Block choices, student blocks, NSR, teacher features, and the algebra that assembly relies on."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ffnet_nas.distill.assemble import fold
from ffnet_nas.distill.blocks import StudentBlock, block_io, match_size, nsr
from ffnet_nas.distill.choices import ChoiceSpec, arch_choices, space_choices
from ffnet_nas.distill.features import FEATURE_KEYS, teacher_features
from ffnet_nas.space.builder import build_model, make_stage
from ffnet_nas.space.catalogue import variants
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import BUILTIN, get_space
from tests.helpers.distill import one_thread, NUM_CLASSES, tiny_space, tiny_teacher


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from one_thread()


def test_space_choices_equal_the_choices_of_every_point():
    space = tiny_space()
    from_points = {(b.position, b.choice) for arch in space for b in arch.blocks()}
    enumerated = [(s.position, s.choice) for s in space_choices(space)]
    assert len(enumerated) == len(set(enumerated))
    assert set(enumerated) == from_points


def test_mobile_space_has_few_choices_and_covers_sampled_points():
    space = get_space("mobile")
    choices = {(s.position, s.choice) for s in space_choices(space)}
    assert len(choices) == 71  # 44 s4 + 7 s8 + 8 s16 + 8 s32 + 4 heads, vs 16,432 points
    for arch in space.sample_many(300, seed=3):
        assert {(b.position, b.choice) for b in arch.blocks()} <= choices
    for v in variants(family="mobile"):
        assert {(b.position, b.choice) for b in v.arch.blocks()} <= choices


def test_choice_text_round_trips_and_bad_text_is_one_clear_error():
    for arch in list(tiny_space()) + [v.arch for v in variants(family="mobile")[:5]]:
        for spec, block in zip(arch_choices(arch), arch.blocks()):
            assert (spec.position, spec.choice) == (block.position, block.choice)
            assert ChoiceSpec.parse(spec.position, spec.choice) == spec
    with pytest.raises(InvalidInput, match="unknown block choice"):
        ChoiceSpec.parse("s8", "basic.d5.w128")
    with pytest.raises(InvalidInput, match="unknown position"):
        ChoiceSpec.parse("s64", "basic.d5.w128.s2")


@pytest.mark.parametrize("name", BUILTIN)
def test_every_adapter_is_followed_by_a_projection(name):
    """Folding is exact only where the block after an adapter has a projection shortcut.

    Adapters sit in front of s8, s16, s32 and the head. Every stage there starts with stride 2,
    hence a projection; the only projection-less first block (stride 1, 64 -> 64) is stage 1
    of a 4-stage point, which lives inside the s4 block where no adapter precedes it.
    """
    for spec in space_choices(get_space(name)):
        if spec.position in ("s8", "s16", "s32"):
            assert spec.stride == 2, spec
            for cin in (64, spec.out_channels):  # any input width: the stride alone forces it
                with torch.device("meta"):
                    stage = make_stage(spec.block, cin, spec.width, 1, spec.stride)
                assert stage[0].downsample is not None


def test_projection_less_first_blocks_exist_only_inside_s4():
    found = []
    for v in variants(task="segmentation"):
        with torch.device("meta"):  # structure only: no memory, no init
            model = build_model(v.arch.replace(depths=tuple(1 for _ in v.arch.depths)))  # first blocks suffice
        backbone = model.backbone_model
        for i in range(1, v.arch.num_stages + 1):
            if getattr(backbone, f"layer{i}")[0].downsample is None:
                found.append((v.name, i, v.arch.num_stages))
    assert found, "expected the s1 4-stage points to have a projection-less stage 1"
    assert all(i == 1 and n == 4 for _, i, n in found)


def test_fold_is_exact_for_strided_padded_convs():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 9, 11)
    adapter = torch.randn(4, 6, 1, 1)
    for k, stride in ((3, 2), (3, 1), (1, 2)):
        weight = torch.randn(5, 4, k, k)
        chained = F.conv2d(F.conv2d(x, adapter), weight, stride=stride, padding=k // 2)
        folded = F.conv2d(x, fold(weight, adapter), stride=stride, padding=k // 2)
        torch.testing.assert_close(folded, chained, rtol=1e-5, atol=1e-5)


def test_nsr_and_size_matching():
    t = torch.rand(2, 3, 8, 8) + 0.1
    assert nsr(t, t).item() == 0
    assert nsr(torch.zeros_like(t), t).item() == pytest.approx(1.0)
    small = torch.rand(2, 3, 4, 4)
    s, tt = match_size(small, t)  # the larger (the target) is pooled to the student's size
    assert s.shape == tt.shape == (2, 3, 4, 4)
    torch.testing.assert_close(tt, F.avg_pool2d(t, 2))
    s, tt = match_size(t, small)
    assert s.shape == (2, 3, 4, 4)


@pytest.mark.parametrize("code", [
    "stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest",
    "stemC-basic-d1.1.1-w16.24.32-s2-upC-segC-nearest-predown",
])
def test_teacher_features_reproduce_the_forward(code):
    torch.manual_seed(0)
    teacher = build_model(code, num_classes=3).eval()
    x = torch.randn(2, 3, 32, 64)
    feats = teacher_features(teacher, x)
    assert tuple(feats) == FEATURE_KEYS
    with torch.no_grad():
        torch.testing.assert_close(feats["logits"], teacher(x))
        torch.testing.assert_close(feats["s32"], teacher.backbone_model(teacher.smoothing(x) if teacher.smoothing else x)[-1])
    assert [feats[p].shape[1] for p in ("s4", "s8", "s16", "s32")] == list(teacher.arch.feature_channels)


def test_student_blocks_read_teacher_widths_and_write_teacher_widths():
    teacher = tiny_teacher()
    x = torch.randn(2, 3, 32, 64)
    feats = teacher_features(teacher, x)
    widths = teacher.arch.feature_channels
    for spec in space_choices(tiny_space()):
        student = StudentBlock(spec, teacher_channels=widths, num_classes=NUM_CLASSES).eval()
        inp, target = block_io(spec, feats, teacher_input_scale=1)
        with torch.no_grad():
            out = student(inp)
        assert out.shape[1] == target.shape[1], spec
        if spec.position == "s4":
            # s2 halves the output; pre_down's 2x input brings it back: strides differ only through s
            expected = target.shape[-1] // (spec.stride if spec.has_stage else 1)
            assert out.shape[-1] == expected, spec
        else:
            assert out.shape[-2:] == target.shape[-2:], spec
        assert nsr(out, target).isfinite()
