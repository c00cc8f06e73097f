"""BatchNorm folding and channels_last: same outputs as the plain eval model."""

import pytest
import torch
from torch import nn

from ffnet_nas.space import build_model
from ffnet_nas.space.deploy import fold_batchnorm, fold_bn, fuse_conv_bn, prepare_for_inference, to_channels_last

from tests.helpers.bn import randomise_bn


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_fuse_conv_bn_matches_pair():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 6, 3, 2, 1, bias=True), randomise_bn(nn.Sequential(nn.BatchNorm2d(6)))[0]
    bn.eval()
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        assert rel_err(fuse_conv_bn(conv, bn)(x), bn(conv(x))) < 1e-6


@pytest.mark.parametrize(
    "name",
    [
        "segmentation_ffnet40S_BBB_mobile",  # a published point: stem B, basic, 4 stages, up B, seg B, nearest
        # tiny points covering the other structures (a few seconds less each on a 2-core machine)
        "stemC-basic-d1.1.1-w16.24.32-s2-upC-segC-nearest-predown",  # stem C, 3 stages, pre_down
        "stemA-bottleneck-d1.1.1.1-w8.16.16.24-s2-upA-segA-bilinear",  # stem A + max-pool, bottlenecks, seg A
        "stemA-basic-d1.1.1.1-w8.16.24.32-s1-upA-segX-bilinear",  # classification head (projection first)
    ],
)
def test_fold_equals_unfolded_eval_model(name):
    torch.manual_seed(0)
    model = randomise_bn(build_model(name)).eval()
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    result = fold_batchnorm(model)
    # every BN of the network follows a conv: all of them are folded, none left behind
    assert result.folded == n_bn and result.unfolded == ()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in result.model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the input is untouched
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(result.model(x), model(x)) < 1e-5


def test_fold_returns_eval_copy_even_from_train_mode():
    model = randomise_bn(build_model("stemB-basic-d1.1.1.1-w8.16.24.32-s1-upB-segB-nearest")).train()
    folded = fold_bn(model)
    assert not folded.training and model.training
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(folded(x), model.eval()(x)) < 1e-5


def test_channels_last_same_outputs():
    torch.manual_seed(0)
    model = randomise_bn(build_model("stemC-basic-d1.2.1.1-w8.16.24.32-s1-upC-segC-nearest")).eval()
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        ref = model(x)
        fast = prepare_for_inference(model, fold=True, channels_last=True)
        conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        out = fast(x.contiguous(memory_format=torch.channels_last))
        assert rel_err(out, ref) < 1e-5
        assert rel_err(to_channels_last(model)(x), ref) < 1e-5


def test_batchnorm_without_a_conv_before_it_is_reported_not_folded():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    result = fold_batchnorm(model)
    assert result.folded == 1 and result.unfolded == ("2",)
