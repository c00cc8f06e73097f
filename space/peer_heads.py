"""The "fussier" up-heads the FFNet paper argues against, as up-head choices of the space.

Built from the papers' descriptions (not their code):

* `FAM` — SFNet (Li et al., ECCV 2020): a top-down path whose fusion is a Flow Alignment Module.
  At each level the coarse map h and the fine map l are squeezed by 1x1 convs to half width, the
  squeezed h is upsampled to l's size, and a 3x3 conv over their concatenation predicts a
  2-channel flow (in output pixels); h is warped onto l's grid with `grid_sample` (which also
  does the upsampling) and added to l.
* `FAM2` — SFNet-Lite (IJCV 2023), the v2 module: a 4-channel flow warps BOTH h and l, and a
  3x3 conv + sigmoid gate mixes them (gate*h' + (1-gate)*l') in place of the sum.
* `JPU` — FastFCN's Joint Pyramid Upsampling (Wu et al., 2019): 3x3 conv-BN-ReLU on the
  stride-8/16/32 features to one width, upsampled to stride 8 and concatenated, then four
  parallel separable 3x3 convs with dilations 1/2/4/8, concatenated. The seg head follows; the
  output is at stride 8 and the stride-4 feature is not read.

The FAM heads keep FFNet's head layout (`layers.0` the 1x1 adapters, `layers.1` the top-down
path, `layers.2` upsample + concat, `layers.3` the seg head; SFNet's own lateral convs are 1x1
conv-BN-ReLU too), at SFNet-ResNet-18's width (128 at every level). SFNet's pyramid pooling on
the coarsest level is left out: the comparison is about the fusion, and FFNet's heads have none.
The JPU head is `layers.0` the JPU and `layers.1` the seg head; its width (128) is a mobile
width, FastFCN's ResNet-50 uses 512.

Flow convs start at zero, so an untrained FAM is exactly bilinear upsampling (align_corners) and
an untrained FAM2 the mean of the upsampled h and l: distillation from an FFNet teacher starts from
FFNet's own fusion. `grid_sample` exports to ONNX GridSample (opset >= 16; the project uses 18).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# the builder imports this module lazily (inside FFNetHead), so importing it here is not circular
from ffnet_nas.space.builder import BN_MOMENTUM, AdapterConv, ConvBNReLU, SegmentationHead, UpsampleCat, upsample_kwargs

FAM_WIDTH = 128  # SFNet-ResNet-18's FPN width, every level
JPU_WIDTH = 128
JPU_DILATIONS = (1, 2, 4, 8)
FAM_BASE = (FAM_WIDTH,) * 4
FAM_OUT = (FAM_WIDTH,) * 4


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `x` at (output grid + flow), flow in output pixels; the output has flow's size.

    With zero flow this is bilinear resizing with align_corners=True.
    """
    h, w = flow.shape[-2:]
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack((gx, gy), dim=-1).unsqueeze(0)  # grid_sample wants (x, y) last
    # one output pixel is 2/(n-1) in the normalised grid
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=flow.device, dtype=flow.dtype)
    grid = base + flow.permute(0, 2, 3, 1) * scale
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


class FlowAlign(nn.Module):
    """Fuse coarse `h` into fine `l`: FAM (version 1) or SFNet-Lite's gated dual-flow FAM (version 2)."""

    def __init__(self, channels: int, upsample: str, *, version: int):
        super().__init__()
        half = max(channels // 2, 1)
        self.version = version
        self.up = upsample_kwargs(upsample)
        self.down_h = nn.Conv2d(channels, half, 1, bias=False)
        self.down_l = nn.Conv2d(channels, half, 1, bias=False)
        self.flow_make = nn.Conv2d(2 * half, 2 * version, 3, 1, 1, bias=False)
        self.flow_gate = nn.Conv2d(2 * half, 1, 3, 1, 1) if version == 2 else None

    def after_init(self) -> None:
        # zero flow = plain upsampling (see the module docstring); the gate starts at 0.5
        nn.init.zeros_(self.flow_make.weight)
        if self.flow_gate is not None:
            nn.init.zeros_(self.flow_gate.weight)
            nn.init.zeros_(self.flow_gate.bias)

    def forward(self, l: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        squeezed = torch.cat([self.down_l(l), F.interpolate(self.down_h(h), size=l.shape[-2:], **self.up)], dim=1)
        flow = self.flow_make(squeezed)
        if self.version == 1:
            return l + warp(h, flow)
        gate = torch.sigmoid(self.flow_gate(squeezed))
        return warp(h, flow[:, :2]) * gate + warp(l, flow[:, 2:]) * (1 - gate)


class FAMBranch(nn.Module):
    """FFNet's top-down path (`space.builder.UpBranch`, same names) with flow alignment as the fusion."""

    def __init__(self, base: Sequence[int], outs: Sequence[int], upsample: str, *, version: int):
        super().__init__()
        self.fam_32_sm = ConvBNReLU(base[3], outs[3], 3)
        self.fam_32_up = ConvBNReLU(base[3], base[2], 1)
        self.align_16 = FlowAlign(base[2], upsample, version=version)
        self.fam_16_sm = ConvBNReLU(base[2], outs[2], 3)
        self.fam_16_up = ConvBNReLU(base[2], base[1], 1)
        self.align_8 = FlowAlign(base[1], upsample, version=version)
        self.fam_8_sm = ConvBNReLU(base[1], outs[1], 3)
        self.fam_8_up = ConvBNReLU(base[1], base[0], 1)
        self.align_4 = FlowAlign(base[0], upsample, version=version)
        self.fam_4 = ConvBNReLU(base[0], outs[0], 3)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        f4, f8, f16, f32 = feats
        out32 = self.fam_32_sm(f32)
        x = self.align_16(f16, self.fam_32_up(f32))
        out16 = self.fam_16_sm(x)
        x = self.align_8(f8, self.fam_16_up(x))
        out8 = self.fam_8_sm(x)
        out4 = self.fam_4(self.align_4(f4, self.fam_8_up(x)))
        return [out4, out8, out16, out32]


def separable(cin: int, cout: int, dilation: int) -> nn.Sequential:
    """FastFCN's separable conv: depthwise 3x3 (dilated) - BN - pointwise 1x1 - BN - ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, 1, dilation, dilation=dilation, groups=cin, bias=False),
        nn.BatchNorm2d(cin, momentum=BN_MOMENTUM),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    )


class JPU(nn.Module):
    """Joint Pyramid Upsampling over the stride-8/16/32 features; output 4 x width at stride 8."""

    def __init__(self, in_channels: Sequence[int], upsample: str, width: int = JPU_WIDTH):
        super().__init__()
        self.up = upsample_kwargs(upsample)
        # adapter_conv.{0,1,2} read the up-head inputs 1, 2, 3 (FEATURES_READ)
        self.adapter_conv = nn.ModuleList(ConvBNReLU(c, width, 3) for c in in_channels[1:])
        self.dilation = nn.ModuleList(separable(3 * width, width, d) for d in JPU_DILATIONS)
        self.out_channels = width * len(JPU_DILATIONS)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        maps = [conv(f) for conv, f in zip(self.adapter_conv, feats[1:])]
        size = maps[0].shape[-2:]
        x = torch.cat([maps[0]] + [F.interpolate(m, size=size, **self.up) for m in maps[1:]], dim=1)
        return torch.cat([branch(x) for branch in self.dilation], dim=1)


def peer_head_layers(up_head: str, upsample: str, in_channels: Sequence[int], seg_head: str,
                     num_classes: int) -> list[nn.Module]:
    """The `FFNetHead.layers` of a peer up-head (segmentation only; Arch refuses segX with these)."""
    if up_head == "JPU":
        jpu = JPU(in_channels, upsample)
        return [jpu, SegmentationHead(jpu.out_channels, seg_head, num_classes)]
    version = 2 if up_head == "FAM2" else 1
    return [AdapterConv(in_channels, FAM_BASE), FAMBranch(FAM_BASE, FAM_OUT, upsample, version=version),
            UpsampleCat(upsample), SegmentationHead(sum(FAM_OUT), seg_head, num_classes)]


def head_input_convs(up_head: str) -> tuple[str | None, ...]:
    """Per up-head input (finest first): the conv in `FFNetHead` that reads it (None: not read)."""
    if up_head == "JPU":
        return (None,) + tuple(f"layers.0.adapter_conv.{i}.layers.0" for i in range(3))
    return tuple(f"layers.0.adapter_conv.{i}.layers.0" for i in range(4))
