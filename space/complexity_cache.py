"""Params and MACs of a point in microseconds, by summing cached parts.

`space.complexity` builds the whole network on the meta device (about 0.1-0.2 s here), too slow
to call once per trial when a search draws thousands of distinct points. But a network is a sum
of parts whose cost depends only on a few local facts: the stem (+ pre_down smoothing), each
residual stage (block type, input width, width, depth, stride, input size), each head adapter
(input width, output width, resolution) and the rest of the head (up/seg head, upsampling, feature
resolutions, classes). The stem is only ever measured as what a whole network has beyond its
other parts (one full meta-device pass, counted like `space.complexity`); any other missing part
is built and measured alone, and a point made of known parts costs a few dictionary look-ups. The parts always add up to the full count
exactly (convolutions and linear layers are additive); `tests/test_search_complexity.py` checks
that against `space.complexity` on random points at odd input sizes.

The class count changes the segmentation head's cost, so it is the caller's to give (from the
data set or the teacher file), never assumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ffnet_nas.space.arch import PEER_UP_HEADS, STEM_CHANNELS, Arch
from ffnet_nas.space.builder import STEM_CONVS, UP_HEAD_BASE


def _half(hw: tuple[int, int]) -> tuple[int, int]:
    # every stride-2 op here (3x3/7x7 conv pad k//2, 1x1 conv, 3x3 max-pool pad 1) gives ceil(n/2)
    return (math.ceil(hw[0] / 2), math.ceil(hw[1] / 2))


def _smoothed(hw: tuple[int, int]) -> tuple[int, int]:
    # the pre_down Gaussian: rows padded by 1 each side, 5x5 valid, stride 2
    return ((hw[0] + 2 - 5) // 2 + 1, (hw[1] - 5) // 2 + 1)


def parts(arch: Arch, net_hw: tuple[int, int], num_classes: int) -> list[tuple[tuple, tuple[str, ...]]]:
    """(cache key, module-name prefixes) per part; the first part (the stem) takes the remainder.

    Every key but the stem's says all that is needed to build that part alone (`_build_part`).
    """
    hw = _smoothed(net_hw) if arch.pre_down else tuple(net_hw)
    for _, _, stride in STEM_CONVS[arch.stem]:
        hw = _half(hw) if stride == 2 else hw
    if arch.stem == "A":
        hw = _half(hw)  # max-pool
    out: list[tuple[tuple, tuple[str, ...]]] = [(("stem", arch.stem, arch.pre_down, tuple(net_hw)), ())]
    feats = [hw] if arch.num_stages == 3 else []
    cin = STEM_CHANNELS
    for i, (d, w, s, cout) in enumerate(zip(arch.depths, arch.widths, arch.stage_strides, arch.stage_out_channels), 1):
        out.append((("stage", arch.block, cin, w, d, s, tuple(hw)), (f"backbone_model.layer{i}",)))
        hw = _half(hw) if s == 2 else hw
        feats.append(hw)
        cin = cout
    if arch.up_head in PEER_UP_HEADS:
        # a peer head (space.peer_heads) is one part: its adapters are not FFNet's 1x1 convs
        out.append((("peer_head", arch.up_head, arch.seg_head, arch.upsample, arch.feature_channels,
                     tuple(map(tuple, feats)), num_classes), ("head",)))
        return out
    base = UP_HEAD_BASE[arch.up_head]
    for i, (c, f) in enumerate(zip(arch.feature_channels, feats)):
        out.append((("adapter", c, base[i], tuple(f)), (f"head.layers.0.adapter_conv.{i}",)))
    out.append((("head", arch.up_head, arch.seg_head, arch.upsample, tuple(map(tuple, feats)), num_classes),
                ("head.layers.1", "head.layers.2", "head.layers.3")))
    return out


@dataclass
class ComplexityCache:
    """`get(arch) -> (params, macs)` at `input_hw` (the tensor entering the stem; pre_down doubles it)
    for a head predicting `num_classes` classes."""

    input_hw: tuple[int, int]
    # Keyword-only and required: the head's cost depends on it (the data's, from the teacher file).
    num_classes: int = field(kw_only=True)
    _parts: dict[tuple, tuple[int, int]] = field(default_factory=dict, repr=False)
    _whole: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    full_passes: int = 0  # how many whole networks had to be built (the expensive path)
    part_passes: int = 0  # how many single parts had to be built

    def __post_init__(self) -> None:
        _check_num_classes(self.num_classes)

    def net_hw(self, arch: Arch) -> tuple[int, int]:
        return (self.input_hw[0] * arch.input_scale, self.input_hw[1] * arch.input_scale)

    def get(self, arch: Arch) -> tuple[int, int]:
        code = arch.code
        hit = self._whole.get(code)
        if hit is not None:
            return hit
        if arch.is_classifier:  # the classification head is not cut into parts: count it whole
            counts = self._count(arch, [])
        else:
            plist = parts(arch, self.net_hw(arch), self.num_classes)
            if plist[0][0] not in self._parts:  # the stem is only known as a remainder: build it all
                counts = self._count(arch, plist)
            else:
                for key, _ in plist[1:]:
                    if key not in self._parts:
                        self._parts[key] = self._count_part(key)
                known = [self._parts[k] for k, _ in plist]
                counts = (sum(v[0] for v in known), sum(v[1] for v in known))
        self._whole[code] = counts
        return counts

    def _count(self, arch: Arch, plist: list) -> tuple[int, int]:
        """The whole network once (filling every part's counts)."""
        import torch

        from ffnet_nas.space.builder import build_model

        self.full_passes += 1
        with torch.device("meta"):
            model = build_model(arch, num_classes=self.num_classes).eval()
            x = torch.empty(1, 3, *self.net_hw(arch))
        named_params, macs = _measure(model, x)
        total_params, total_macs = sum(n for _, n in named_params), sum(macs.values())
        if plist:
            rest_params, rest_macs = total_params, total_macs
            for key, prefixes in plist[1:]:
                dotted = tuple(q + "." for q in prefixes)
                p = sum(k for n, k in named_params if n.startswith(dotted))
                m = sum(v for n, v in macs.items() if n.startswith(dotted))
                self._parts[key] = (p, m)
                rest_params, rest_macs = rest_params - p, rest_macs - m
            self._parts[plist[0][0]] = (rest_params, rest_macs)
        return total_params, total_macs

    def _count_part(self, key: tuple) -> tuple[int, int]:
        """One part alone (a stage, an adapter or the head after the adapters): much cheaper than a network."""
        import torch
        from torch import nn

        from ffnet_nas.space.builder import UP_HEAD_OUT, ConvBNReLU, SegmentationHead, UpBranch, UpsampleCat, make_stage

        self.part_passes += 1
        kind = key[0]
        with torch.device("meta"):
            if kind == "stage":
                _, block, cin, w, d, s, hw = key
                module, x = make_stage(block, cin, w, d, s), torch.empty(1, cin, *hw)
            elif kind == "peer_head":
                from ffnet_nas.space.builder import FFNetHead

                _, up, seg, upsample, chans, feats, classes = key
                placeholder = Arch("B", "basic", (1, 1, 1, 1), (8, 8, 8, 8), 1, up, seg, upsample)
                module, x = FFNetHead(placeholder, chans, classes), [torch.empty(1, c, *f) for c, f in zip(chans, feats)]
            elif kind == "adapter":
                _, cin, cout, hw = key
                module, x = ConvBNReLU(cin, cout, 1), torch.empty(1, cin, *hw)
            else:
                _, up, seg, upsample, feats, classes = key
                base, outs = UP_HEAD_BASE[up], UP_HEAD_OUT[up]
                module = nn.Sequential(UpBranch(base, outs, upsample), UpsampleCat(upsample),
                                       SegmentationHead(sum(outs), seg, classes))
                x = [torch.empty(1, c, *f) for c, f in zip(base, feats)]
        named_params, macs = _measure(module.eval(), x)
        return sum(n for _, n in named_params), sum(macs.values())


def _measure(model, x) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """Parameter sizes by name, and MACs by module name, from one meta-device forward with hooks.

    Same convention as `space.complexity` (FlopCounterMode: conv and linear MACs, no bias, BN,
    activations or resizes), but hooks skip FlopCounterMode's dispatch of every op, which made
    one pass ~4x slower here. The tests compare both on random points.
    """
    import torch
    from torch import nn

    from ffnet_nas.space.builder import GaussianDownsample

    named_params = [(n, t.numel()) for n, t in model.named_parameters()]
    # BatchNorm keeps shapes and costs no MACs, but on the meta device it runs through a slow
    # decomposition (two thirds of a pass): swap it for Identity once the params are counted
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, nn.Identity())
    macs: dict[str, int] = {}

    def hook(name: str, module: nn.Module):
        def count(_m, inputs, output) -> None:
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1]
                macs[name] = output.numel() * (module.in_channels // module.groups) * k
            elif isinstance(module, nn.Linear):
                macs[name] = output.numel() * module.in_features
            else:  # the pre_down Gaussian: a depthwise 5x5 convolution in F.conv2d
                macs[name] = output.numel() * module.weight.shape[-1] * module.weight.shape[-2]
        return count

    handles = [m.register_forward_hook(hook(n, m)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, GaussianDownsample))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return named_params, macs


_SHARED: dict[tuple, ComplexityCache] = {}


def _check_num_classes(num_classes: object) -> None:
    from ffnet_nas.space.errors import InvalidInput

    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise InvalidInput(f"num_classes={num_classes!r}: expected a positive number of classes "
                           "(from the data set or the teacher file)")


def shared_cache(input_hw: tuple[int, int], num_classes: int) -> ComplexityCache:
    """One cache per (input size, classes) for the whole process: parts learnt by one search serve the next.

    `num_classes` is required (no default); give it by keyword (positional still works for older callers)."""
    _check_num_classes(num_classes)
    key = (tuple(input_hw), num_classes)
    if key not in _SHARED:
        _SHARED[key] = ComplexityCache(tuple(input_hw), num_classes=num_classes)
    return _SHARED[key]
