"""The peer designs as choices of the space: codes, builder, complexity, deployment, ONNX, timm.

upFAM / upFAM2 (SFNet, SFNet-Lite), upJPU (FastFCN) and the block `metamixer` (MetaMixer's FFNet
block). Tiny points at 32x64 keep this fast.
"""

import dataclasses

import onnx
import pytest
import torch
import torch.nn.functional as F

from ffnet_nas.space import Arch, InvalidInput, build_model
from ffnet_nas.space.complexity import complexity
from ffnet_nas.space.complexity_cache import ComplexityCache
from ffnet_nas.space.deploy import DEFAULT_OPSET, check_onnx, export_onnx, fold_batchnorm
from ffnet_nas.space.metamixer import MetaMixerBlock, RepDWConv
from ffnet_nas.space.peer_heads import warp
from tests.helpers.bn import randomise_bn

ISSUE_CODES = ["stemA-basic-d2.2.2.2-w64.128.256.512-s1-upFAM-segB-bilinear",
               "stemB-metamixer-d2.2.6.2-w64.128.192.320-s1-upB-segB-nearest"]
TINY = {
    "FAM": "stemB-metamixer-d1.1.1.1-w16.24.32.40-s1-upFAM-segB-nearest",
    "FAM2": "stemB-basic-d1.1.1-w16.24.32-s2-upFAM2-segC-bilinear",
    "JPU": "stemC-metamixer-d1.2.1.1-w16.24.32.40-s2-upJPU-segA-nearest-predown",
}
HW = (32, 64)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("code", ISSUE_CODES + list(TINY.values()))
def test_codes_round_trip(code):
    a = Arch.parse(code)
    assert a.code == code and Arch.parse(a.code) == a and not a.is_ffnet
    assert Arch(**a.to_dict()) == a


def test_published_codes_are_still_ffnets():
    a = Arch.from_name("segmentation_ffnet40S_BBB_mobile")
    assert a.is_ffnet and a.code == "stemB-basic-d4.5.6.4-w64.128.192.320-s1-upB-segB-nearest"


def test_bad_peer_codes_name_the_part():
    with pytest.raises(InvalidInput, match=r"part 'upFAM3' should be .*upFAM, upFAM2, upJPU"):
        Arch.parse("stemB-basic-d1.1.1.1-w16.24.32.40-s1-upFAM3-segB-nearest")
    with pytest.raises(InvalidInput, match=r"seg_head='X'.*up-head JPU"):
        Arch.parse("stemB-basic-d1.1.1.1-w16.24.32.40-s1-upJPU-segX-nearest")
    with pytest.raises(InvalidInput, match="block='metamixr'"):
        Arch.parse("stemB-metamixr-d1.1.1.1-w16.24.32.40-s1-upB-segB-nearest")


@pytest.mark.parametrize("up", list(TINY))
def test_every_choice_builds_and_runs_at_its_output_stride(up):
    a = Arch.parse(TINY[up])
    model = build_model(a, num_classes=5).eval()
    x = torch.randn(2, 3, HW[0] * a.input_scale, HW[1] * a.input_scale)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 5, HW[0] * a.input_scale // a.output_stride, HW[1] * a.input_scale // a.output_stride)
    assert a.output_stride == (a.feature_strides[1] if up == "JPU" else a.feature_strides[0])
    assert torch.isfinite(y).all()


def test_complexity_counts_the_peer_parts_and_the_cache_adds_up():
    base = Arch.parse(TINY["FAM"])
    cache = ComplexityCache((50, 98), num_classes=5)
    counts = {}
    for up in ("B", "FAM", "FAM2", "JPU"):
        for block in ("basic", "metamixer"):
            a = dataclasses.replace(base, up_head=up, block=block)
            c = complexity(a, (50, 98), num_classes=5)
            assert cache.get(a) == (c.params, c.macs), a.code
            counts[up, block] = c
    # the flow convs cost params and MACs; FAM2's 4-channel flow and gate cost more than FAM's 2 channels
    assert counts["FAM2", "basic"].macs > counts["FAM", "basic"].macs
    assert counts["FAM", "metamixer"].params > counts["FAM", "basic"].params
    # JPU reads stride 8 and up: its output is 4x smaller in area
    assert counts["JPU", "basic"].output_hw == (7, 13) and counts["B", "basic"].output_hw == (13, 25)


def test_zero_flow_is_bilinear_upsampling_and_a_flow_of_one_shifts_by_a_pixel():
    x = torch.randn(1, 3, 5, 7)
    flow = torch.zeros(1, 2, 9, 13)
    up = F.interpolate(x, size=(9, 13), mode="bilinear", align_corners=True)
    assert torch.allclose(warp(x, flow), up, atol=1e-5)
    same = torch.randn(1, 3, 6, 8)
    shift = torch.zeros(1, 2, 6, 8)
    shift[:, 0] = 1.0  # one output pixel to the right, along x
    assert torch.allclose(warp(same, shift)[..., :-1], same[..., 1:], atol=1e-5)


def test_untrained_fam_head_equals_bilinear_fusion():
    """Flow convs start at zero: FAM fuses exactly like upsample + add (FFNet's fusion, bilinear)."""
    torch.manual_seed(0)
    model = build_model(TINY["FAM"].replace("nearest", "bilinear"), num_classes=5).eval()
    branch = model.head.layers[1]
    f = torch.randn(1, 128, 4, 6)
    h = torch.randn(1, 128, 2, 3)
    with torch.no_grad():
        got = branch.align_16(f, h)
        want = f + F.interpolate(h, size=(4, 6), mode="bilinear", align_corners=True)
    assert torch.allclose(got, want, atol=1e-5)


def test_metamixer_reparameterisation_is_exact():
    torch.manual_seed(0)
    model = randomise_bn(build_model(TINY["FAM"], num_classes=5)).eval()
    # random (not zero) last-BN scales: the residual branches must do something
    result = fold_batchnorm(model)
    n_rep = sum(isinstance(m, RepDWConv) for m in model.modules())
    assert result.reparameterized == n_rep == 2 * sum(isinstance(m, MetaMixerBlock) for m in model.modules())
    assert result.unfolded == ()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in result.model.modules())
    x = torch.randn(1, 3, *HW)
    with torch.no_grad():
        want, got = model(x), result.model(x)
    assert ((got - want).norm() / want.norm()).item() < 1e-5
    fused = next(m for m in result.model.modules() if isinstance(m, RepDWConv))
    assert fused.fused.kernel_size == (7, 7) and not hasattr(fused, "small")


@pytest.mark.parametrize("up", list(TINY))
def test_onnx_export_runs_under_onnxruntime_and_matches(up, tmp_path):
    torch.manual_seed(0)
    a = Arch.parse(TINY[up])
    model = randomise_bn(build_model(a, num_classes=5)).eval()
    hw = (HW[0] * a.input_scale, HW[1] * a.input_scale)
    path = export_onnx(model, tmp_path / "m.onnx", input_hw=hw)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    ops = {n.op_type for n in proto.graph.node}
    if up.startswith("FAM"):
        assert "GridSample" in ops and DEFAULT_OPSET >= 16
    assert check_onnx(path, model, input_hw=hw).ok


def test_grid_sample_needs_opset_16(tmp_path):
    # why the project's default opset (18) matters here: ONNX has GridSample from opset 16 on
    model = build_model(TINY["FAM2"], num_classes=5).eval()
    with pytest.raises(torch.onnx.errors.UnsupportedOperatorError, match=r"grid_sampler.*added in version 16"):
        export_onnx(model, tmp_path / "old.onnx", input_hw=HW, exporter="torchscript", opset=15)


def test_any_point_registers_with_timm_by_code():
    timm = pytest.importorskip("timm")
    import ffnet_nas.timm_models as tm

    name = tm.register_point(TINY["JPU"])
    assert name == tm.code_model_name(Arch.parse(TINY["JPU"])) and "." not in name
    assert tm.register_point(TINY["JPU"]) == name  # idempotent
    model = timm.create_model(name, num_classes=5)
    assert model.arch == Arch.parse(TINY["JPU"])
    ours = build_model(TINY["JPU"], num_classes=5)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    cfg = timm.get_pretrained_cfg(name)
    assert cfg.classifier == "head.layers.1.last_layer.3" and cfg.classifier in dict(model.named_modules())
    feats = timm.create_model(tm.register_point(TINY["FAM"]), features_only=True).eval()
    with torch.no_grad():
        assert [o.shape[1] for o in feats(torch.randn(1, 3, *HW))] == feats.feature_info.channels() == [16, 24, 32, 40]
    # the peer reference points are registered by name, described as not FFNet
    assert "peer_sfnet_r18" in timm.list_models("peer_*")
    assert "NOT an FFNet" in timm.get_pretrained_cfg("peer_sfnet_r18").description
