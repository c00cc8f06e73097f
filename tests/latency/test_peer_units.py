"""The peer designs in the latency table: a FAM/JPU head is one head unit, a metamixer block a block key.

Keys match the shapes the real network sees; every peer unit builds, runs and exports (ONNX Runtime,
the JPU head included though it never reads its stride-4 input).
"""

from collections import Counter

import pytest
import torch

from ffnet_nas.predictors.latency.backends import prepare
from ffnet_nas.predictors.latency.keys import space_units, units_of
from ffnet_nas.predictors.latency.modules import unit_inputs, unit_module
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.builder import build_model
from ffnet_nas.space.metamixer import MetaMixerBlock
from ffnet_nas.space.searchspace import get_space

CODES = ["stemB-metamixer-d2.1.3.1-w16.24.32.40-s1-upFAM-segB-nearest",
         "stemC-metamixer-d1.2.1-w16.24.32-s2-upJPU-segC-bilinear-predown",
         "stemB-basic-d1.1.1.2-w16.24.32.40-s2-upFAM2-segB-nearest"]


def _traced(arch: Arch, stem_hw, num_classes=19) -> Counter:
    """Metamixer block and head keys from the real network's inputs (meta device, hooks)."""
    with torch.device("meta"):
        model = build_model(arch, num_classes=num_classes).eval()
    seen = Counter()

    def block_hook(module, args):
        x = args[0]
        planes = module.token_mixer[0].out_channels
        stride = module.downsample[0].stride[0] if module.downsample is not None else 1
        seen[f"block:metamixer:p{planes}-s{stride}:c{x.shape[1]}:hw{x.shape[2]}x{x.shape[3]}"] += 1

    def head_hook(module, args):
        feats = args[0]
        chans = ".".join(str(f.shape[1]) for f in feats)
        sizes = ".".join(f"{f.shape[2]}x{f.shape[3]}" for f in feats)
        seen[f"head:up{arch.up_head}-seg{arch.seg_head}-{arch.upsample}:c{chans}:hw{sizes}:k{num_classes}"] += 1

    for m in model.modules():
        if isinstance(m, MetaMixerBlock):
            m.register_forward_pre_hook(block_hook)
    model.head.register_forward_pre_hook(head_hook)
    net_hw = (stem_hw[0] * arch.input_scale, stem_hw[1] * arch.input_scale)
    with torch.no_grad():
        model(torch.empty(1, 3, *net_hw, device="meta"))
    return seen


@pytest.mark.parametrize("code", CODES)
def test_peer_units_match_the_real_network(code):
    arch = Arch.parse(code)
    ours = Counter({u.key: n for u, n in units_of(arch, (64, 128)).items() if u.kind in ("head", "block")})
    if arch.block == "basic":
        ours = Counter({k: n for k, n in ours.items() if k.startswith("head:")})
    assert ours == _traced(arch, (64, 128))
    heads = [u for u in units_of(arch, (64, 128)) if u.kind == "head"]
    assert len(heads) == 1 and heads[0].spec.startswith(f"up{arch.up_head}-")  # the whole peer head: one unit


def test_mobile_peers_units_cover_samples_and_hold_the_peer_keys():
    space = get_space("mobile_peers")
    units = space_units(space, (64, 128))
    keys = {u.key for u in units}
    for arch in space.sample_many(100, seed=5):
        assert {u.key for u in units_of(arch, (64, 128))} <= keys
    specs = {u.spec.split("-")[0] for u in units if u.kind == "head"}
    assert specs == {"upB", "upC", "upFAM", "upFAM2", "upJPU"}
    assert any(u.spec.startswith("metamixer:") for u in units if u.kind == "block")
    assert len(keys) < 3 * len(space_units(get_space("mobile"), (64, 128)))  # a few dozen more, not a blow-up


@pytest.mark.parametrize("code", CODES)
def test_peer_units_build_run_and_export(code):
    torch.set_num_threads(1)
    arch = Arch.parse(code)
    for unit in units_of(arch, (32, 64), num_classes=5):
        if unit.kind not in ("head", "block") or (unit.kind == "block" and arch.block == "basic"):
            continue
        module, xs = unit_module(unit), unit_inputs(unit, 1)
        with torch.no_grad():
            want = module(*xs)
        if unit.kind == "head":
            run = prepare(module, xs, backend="onnxruntime", device="cpu", dtype="fp32", threads=1)
            got = torch.from_numpy(run()[0])
            assert got.shape == want.shape
            assert (got - want).abs().max() <= 1e-4 * want.abs().max()
        else:
            assert want.shape[1] == int(unit.spec.split(":p")[1].split("-")[0])
