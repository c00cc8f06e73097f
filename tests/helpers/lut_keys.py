"""Latency-table keys read off the real network: forward pre-hooks on a meta-device model.

`traced_keys` is what tests/latency/test_latency_keys.py and tests/latency/test_peer_units.py
compare `units_of` with, so the two cannot drift apart in how they spell a key. Each key is built
from the input tensor a module really receives, never from the Arch, so a wrong shape in the unit
arithmetic shows up as a mismatch.
"""

from __future__ import annotations

from collections import Counter

import torch

from ffnet_nas.space.arch import Arch
from ffnet_nas.space.builder import BasicBlock, Bottleneck, build_model
from ffnet_nas.space.metamixer import MetaMixerBlock


def _block_key(module: torch.nn.Module, x: torch.Tensor) -> str:
    """block:<type>:p<planes>-s<stride>:c<input channels>:hw<input size>, as the module sees it."""
    if isinstance(module, MetaMixerBlock):
        kind, planes = "metamixer", module.token_mixer[0].out_channels
        stride = module.downsample[0].stride[0] if module.downsample is not None else 1
    else:
        kind = "bottleneck" if isinstance(module, Bottleneck) else "basic"
        planes = module.conv1.out_channels
        stride = module.conv2.stride[0] if kind == "bottleneck" else module.conv1.stride[0]
    return f"block:{kind}:p{planes}-s{stride}:c{x.shape[1]}:hw{x.shape[2]}x{x.shape[3]}"


def head_key(arch: Arch, feats, num_classes: int) -> str:
    """The head unit's key from the four feature maps the head receives (FFNet's heads and the peers' alike)."""
    chans = ".".join(str(f.shape[1]) for f in feats)
    sizes = ".".join(f"{f.shape[2]}x{f.shape[3]}" for f in feats)
    return f"head:up{arch.up_head}-seg{arch.seg_head}-{arch.upsample}:c{chans}:hw{sizes}:k{num_classes}"


def traced_keys(arch: Arch, stem_hw: tuple[int, int], *, num_classes: int = 19) -> Counter:
    """Every unit key the real model runs (pre-downsampler, stem, each block, the head), with its count."""
    with torch.device("meta"):
        model = build_model(arch, num_classes=num_classes).eval()
    seen: Counter = Counter()
    stem_in: list[tuple[int, int]] = []
    for m in model.backbone_model.modules():
        if isinstance(m, (BasicBlock, Bottleneck, MetaMixerBlock)):
            m.register_forward_pre_hook(lambda module, args: seen.update([_block_key(module, args[0])]))
    model.head.register_forward_pre_hook(lambda module, args: seen.update([head_key(arch, args[0], num_classes)]))
    first = model.backbone_model.conv1 if arch.stem == "A" else model.backbone_model.conv0
    first.register_forward_pre_hook(lambda m, a: stem_in.append(tuple(a[0].shape[2:])))
    net_hw = (stem_hw[0] * arch.input_scale, stem_hw[1] * arch.input_scale)
    with torch.no_grad():
        model(torch.empty(1, 3, *net_hw, device="meta"))
    h, w = stem_in[0]
    seen[f"stem:{arch.stem}:c3:hw{h}x{w}"] += 1
    if arch.pre_down:
        seen[f"predown:gauss5:c3:hw{net_hw[0]}x{net_hw[1]}"] += 1
    return seen
