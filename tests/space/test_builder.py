"""The builder reproduces every published variant exactly: keys, shapes, order, params, MACs."""

import numpy as np
import pytest
import torch

from ffnet_nas.space import build_model, published_variants
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.builder import gaussian_kernel
from ffnet_nas.space.complexity import complexity, count_params, parse_hw
from ffnet_nas.space.errors import InvalidInput
from tests.helpers import REFERENCE_KEYS

ALL = published_variants()


def _reference_lines(name):
    return [line for line in (REFERENCE_KEYS / f"{name}.txt").read_text().splitlines() if line]


@pytest.mark.parametrize("variant", ALL, ids=lambda v: v.name)
def test_state_dict_matches_reference_key_for_key(variant):
    with torch.device("meta"):
        model = build_model(variant.name)
    ours = [f"{k} ({','.join(map(str, t.shape))})" for k, t in model.state_dict().items()]
    assert ours == _reference_lines(variant.name)
    assert sum(p.numel() for p in model.parameters()) == variant.n_params


def test_reference_files_cover_every_variant():
    assert len(ALL) == 94
    assert sum(v.task == "segmentation" for v in ALL) == 73
    assert {p.stem for p in REFERENCE_KEYS.glob("*.txt")} == {v.name for v in ALL}


@pytest.mark.parametrize("variant", ALL, ids=lambda v: v.name)
def test_macs_match_reference(variant):
    c = complexity(variant.arch, variant.macs_input_hw, num_classes=variant.num_classes)
    assert c.macs == variant.macs
    assert c.params == variant.n_params


def test_forward_shapes_at_tiny_input():
    for name, hw, out_hw in [
        ("segmentation_ffnet40S_BBB_mobile", (64, 128), (16, 32)),
        ("segmentation_ffnet46NS_CCC_mobile_pre_down", (128, 256), (16, 32)),
        ("segmentation_ffnet18_dAAC", (64, 128), (8, 16)),
    ]:
        model = build_model(name, num_classes=5).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, *hw))
        assert out.shape == (2, 5, *out_hw), name
        assert torch.isfinite(out).all()


def test_classifier_keeps_batch_dimension_for_batch_of_one():
    model = build_model("stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segX-bilinear", num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_gaussian_kernel_is_normalised_and_symmetric():
    k = gaussian_kernel()
    assert k.shape == (5, 5)
    assert abs(k.sum() - 1.0) < 1e-5
    # symmetric up to float32 rounding inside scipy's separable filter
    assert np.allclose(k, k.T, atol=1e-8) and np.allclose(k, k[::-1, ::-1], atol=1e-8)
    assert k.argmax() == 12  # centre


def test_pre_down_halves_the_input_like_the_reference():
    # 1024x2048 becomes 511x1022 after reflect-padding rows and a valid stride-2 5x5 conv
    model = build_model("segmentation_ffnet46NS_CCC_mobile_pre_down")
    x = torch.randn(1, 3, 64, 128)
    assert model.smoothing(x).shape == (1, 3, 31, 62)
    # a constant image stays constant (kernel sums to one)
    assert torch.allclose(model.smoothing(torch.ones(1, 3, 16, 16)), torch.ones(1, 3, 7, 6), atol=1e-5)


def test_every_point_builds_not_only_published_ones():
    arch = Arch("C", "bottleneck", (1, 2, 1, 1), (16, 32, 48, 64), 2, "C", "A", "nearest", True)
    model = build_model(arch, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 128))
    assert out.shape == (1, 3, 8, 8)  # pre_down x2, stem x4, first stage x2
    assert count_params(arch, num_classes=3) == sum(p.numel() for p in model.parameters())


def test_bad_num_classes_and_sizes_are_clear_errors():
    with pytest.raises(InvalidInput, match="num_classes"):
        build_model("segmentation_ffnet40S_BBB_mobile", num_classes=0)
    for bad in ["512", "512x", "axb", "0x100", "512x1024x3"]:
        with pytest.raises(InvalidInput, match="HxW|range"):
            parse_hw(bad)
    assert parse_hw("256x512") == (256, 512)
