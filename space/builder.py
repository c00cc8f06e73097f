"""Build any point of the space as a `torch.nn.Module`.

Module names follow the published FFNet state dicts exactly (`backbone_model.layer1.0.conv1`,
`head.layers.1.fam_32_sm`, ...), so an official checkpoint loads with strict=True, no renaming.
One builder serves every point: the published variants are just particular `Arch` values.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ffnet_nas.space.arch import EXPANSION, PEER_UP_HEADS, STEM_CHANNELS, Arch, resolve
from ffnet_nas.space.metamixer import MetaMixerBlock

BN_MOMENTUM = 0.1
CLS_HEAD_WIDTHS = (128, 256, 512, 1024)
CLS_FINAL_WIDTH = 2048
# Adapter output widths per up-head type (the "base" widths of the top-down path), finest first.
UP_HEAD_BASE = {"A": (64, 128, 256, 512), "B": (64, 128, 128, 256), "C": (128, 128, 128, 128)}
UP_HEAD_OUT = {"A": (128, 128, 128, 128), "B": (96, 96, 64, 32), "C": (128, 16, 16, 16)}
# Segmentation head: (mid channels, kernel of the second conv).
SEG_HEAD = {"A": (512, 1), "B": (256, 3), "C": (128, 1)}


def upsample_kwargs(mode: str) -> dict:
    return {"mode": "bilinear", "align_corners": True} if mode == "bilinear" else {"mode": "nearest"}


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
            nn.BatchNorm2d(cout, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _projection(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, momentum=BN_MOMENTUM))


class BasicBlock(nn.Module):
    expansion = 1
    INPUT_CONVS = ("conv1", "downsample.0")  # the convs that read the block's input (assemble.py folds into them)

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(cin, planes, stride) if stride != 1 or cin != planes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """torchvision v1.5 bottleneck (stride on the 3x3)."""

    expansion = 4
    INPUT_CONVS = ("conv1", "downsample.0")

    def __init__(self, cin: int, planes: int, stride: int = 1, *, projection_first: bool = False):
        super().__init__()
        out = planes * self.expansion
        # The classification head's bottlenecks register the projection first; the backbone's last.
        if projection_first:
            self.downsample = _projection(cin, out, stride) if stride != 1 or cin != out else None
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        if not projection_first:
            self.downsample = _projection(cin, out, stride) if stride != 1 or cin != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck, "metamixer": MetaMixerBlock}


def make_stage(block: str, cin: int, planes: int, depth: int, stride: int) -> nn.Sequential:
    cls = BLOCKS[block]
    layers = [cls(cin, planes, stride)]
    layers += [cls(planes * cls.expansion, planes, 1) for _ in range(depth - 1)]
    return nn.Sequential(*layers)


# Stem convolutions (cout, kernel, stride), each followed by BN+ReLU; stem A then max-pools.
STEM_CONVS = {
    "A": ((64, 7, 2),),
    "B": ((32, 3, 2), (64, 3, 2)),
    "C": ((64, 3, 2), (64, 3, 2), (64, 3, 1)),
}


class Backbone(nn.Module):
    """Stem + residual stages; returns the four up-head inputs, finest first.

    The stem's layers sit directly on the backbone (not in a submodule) because that is where
    the published state dicts put them.
    """

    def __init__(self, arch: Arch):
        super().__init__()
        # stem A is conv1/bn1 (+ max-pool); stems B and C count from conv0
        first = 1 if arch.stem == "A" else 0
        self._stem_ids = tuple(range(first, first + len(STEM_CONVS[arch.stem])))
        cin = 3
        for i, (cout, k, s) in zip(self._stem_ids, STEM_CONVS[arch.stem]):
            self.add_module(f"conv{i}", nn.Conv2d(cin, cout, k, s, k // 2, bias=False))
            self.add_module(f"bn{i}", nn.BatchNorm2d(cout, momentum=BN_MOMENTUM))
            cin = cout
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if arch.stem == "A" else None
        self.num_stages = arch.num_stages
        cin = STEM_CHANNELS
        for i, (d, w, s) in enumerate(zip(arch.depths, arch.widths, arch.stage_strides), start=1):
            self.add_module(f"layer{i}", make_stage(arch.block, cin, w, d, s))
            cin = w * EXPANSION[arch.block]
        self.out_channels = arch.feature_channels

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        for i in self._stem_ids:
            x = self.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return x if self.maxpool is None else self.maxpool(x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.forward_stem(x)
        feats = [x] if self.num_stages == 3 else []
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        return feats


class AdapterConv(nn.Module):
    def __init__(self, cins: Sequence[int], couts: Sequence[int]):
        super().__init__()
        self.adapter_conv = nn.ModuleList(ConvBNReLU(ci, co, 1) for ci, co in zip(cins, couts))

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(f) for conv, f in zip(self.adapter_conv, feats)]


class UpBranch(nn.Module):
    """Top-down path: at each level a 3x3 output conv, and a 1x1 lateral to the next-finer level."""

    def __init__(self, base: Sequence[int], outs: Sequence[int], upsample: str):
        super().__init__()
        self.up = upsample_kwargs(upsample)
        self.fam_32_sm = ConvBNReLU(base[3], outs[3], 3)
        self.fam_32_up = ConvBNReLU(base[3], base[2], 1)
        self.fam_16_sm = ConvBNReLU(base[2], outs[2], 3)
        self.fam_16_up = ConvBNReLU(base[2], base[1], 1)
        self.fam_8_sm = ConvBNReLU(base[1], outs[1], 3)
        self.fam_8_up = ConvBNReLU(base[1], base[0], 1)
        self.fam_4 = ConvBNReLU(base[0], outs[0], 3)

    def _add_up(self, lateral: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.interpolate(lateral, size=target.shape[-2:], **self.up) + target

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        f4, f8, f16, f32 = feats
        out32, x = self.fam_32_sm(f32), f32
        x = self._add_up(self.fam_32_up(x), f16)
        out16 = self.fam_16_sm(x)
        x = self._add_up(self.fam_16_up(x), f8)
        out8 = self.fam_8_sm(x)
        out4 = self.fam_4(self._add_up(self.fam_8_up(x), f4))
        return [out4, out8, out16, out32]


class UpsampleCat(nn.Module):
    def __init__(self, upsample: str):
        super().__init__()
        self.up = upsample_kwargs(upsample)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        return torch.cat([feats[0]] + [F.interpolate(f, size=size, **self.up) for f in feats[1:]], dim=1)


class SegmentationHead(nn.Module):
    def __init__(self, cin: int, kind: str, num_classes: int):
        super().__init__()
        mid, k2 = SEG_HEAD[kind]
        self.last_layer = nn.Sequential(
            nn.Conv2d(cin, mid, 3, 1, 1),
            nn.BatchNorm2d(mid, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, num_classes, k2, 1, k2 // 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(x)


class ClassificationHead(nn.Module):
    """The ImageNet head of the published backbones: per-level bottlenecks fused finest to coarsest."""

    def __init__(self, cins: Sequence[int], num_classes: int):
        super().__init__()
        self.expansion_layers = nn.ModuleList(
            Bottleneck(ci, co // 4, projection_first=True) for ci, co in zip(cins, CLS_HEAD_WIDTHS)
        )
        self.downsampling_layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, 2, 1), nn.BatchNorm2d(b, momentum=BN_MOMENTUM), nn.ReLU())
            for a, b in zip(CLS_HEAD_WIDTHS[:-1], CLS_HEAD_WIDTHS[1:])
        )
        self.final_layer = nn.Sequential(
            nn.Conv2d(CLS_HEAD_WIDTHS[-1], CLS_FINAL_WIDTH, 1),
            nn.BatchNorm2d(CLS_FINAL_WIDTH, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(CLS_FINAL_WIDTH, num_classes)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.expansion_layers[0](feats[0])
        for down, expand, f in zip(self.downsampling_layers, self.expansion_layers[1:], feats[1:]):
            x = expand(f) + down(x)
        # flatten, not squeeze: a batch of one keeps its batch dimension (the reference drops it)
        x = torch.flatten(F.adaptive_avg_pool2d(self.final_layer(x), 1), 1)
        return self.classifier(x)


class FFNetHead(nn.Module):
    """The up-head + task head. A peer up-head (FAM, FAM2, JPU) comes from `space.peer_heads`."""

    def __init__(self, arch: Arch, in_channels: Sequence[int], num_classes: int):
        super().__init__()
        if arch.up_head in PEER_UP_HEADS:
            from ffnet_nas.space.peer_heads import peer_head_layers

            self.layers = nn.Sequential(*peer_head_layers(arch.up_head, arch.upsample, in_channels, arch.seg_head,
                                                          num_classes))
            return
        base, outs = UP_HEAD_BASE[arch.up_head], UP_HEAD_OUT[arch.up_head]
        layers: list[nn.Module] = [AdapterConv(in_channels, base), UpBranch(base, outs, arch.upsample)]
        if arch.is_classifier:
            layers.append(ClassificationHead(outs, num_classes))
        else:
            layers += [UpsampleCat(arch.upsample), SegmentationHead(sum(outs), arch.seg_head, num_classes)]
        self.layers = nn.Sequential(*layers)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.layers(feats)


def head_input_convs(up_head: str) -> tuple[str | None, ...]:
    """Per up-head input (finest first): the name in `FFNetHead` of the conv reading it (None: unread).

    What assembly folds each backbone block's output adapter into.
    """
    if up_head in PEER_UP_HEADS:
        from ffnet_nas.space.peer_heads import head_input_convs as peer

        return peer(up_head)
    return tuple(f"layers.0.adapter_conv.{i}.layers.0" for i in range(4))


def gaussian_kernel(size: int = 5, sigma: float = 0.7) -> np.ndarray:
    """The published pre_down kernel: a unit impulse smoothed by scipy's gaussian_filter."""
    from scipy import ndimage

    impulse = np.zeros((size, size), dtype=np.float32)
    impulse[size // 2, size // 2] = 1.0
    return ndimage.gaussian_filter(impulse, sigma=sigma).astype(np.float32)


class GaussianDownsample(nn.Module):
    """Fixed 5x5 Gaussian, depthwise, stride 2; its kernel is a buffer so training leaves it alone."""

    def __init__(self, channels: int = 3):
        super().__init__()
        kernel = torch.as_tensor(gaussian_kernel()).view(1, 1, 5, 5).repeat(channels, 1, 1, 1)
        self.register_buffer("weight", kernel)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Published behaviour: reflect-pad one row top and bottom only, then a valid conv.
        x = F.pad(x, (0, 0, 1, 1), mode="reflect")
        return F.conv2d(x, self.weight, stride=2, groups=self.channels)


class FFNet(nn.Module):
    def __init__(self, arch: Arch, num_classes: int):
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.backbone_model = Backbone(arch)
        self.head = FFNetHead(arch, self.backbone_model.out_channels, num_classes)
        self.smoothing = GaussianDownsample() if arch.pre_down else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.smoothing is not None:
            x = self.smoothing(x)
        return self.head(self.backbone_model(x))


def init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        # modules whose start matters beyond kaiming (a peer head's flow convs start at zero)
        after_init = getattr(m, "after_init", None)
        if callable(after_init):
            after_init()


def build_model(arch_or_name: "Arch | str", *, num_classes: int | None = None) -> FFNet:
    """An FFNet for a point, a code or a published name.

    `num_classes` defaults to 19 (Cityscapes) for segmentation and 1000 for the classifier.
    """
    arch = resolve(arch_or_name)
    if num_classes is None:
        num_classes = 1000 if arch.is_classifier else 19
    if not isinstance(num_classes, int) or num_classes < 1:
        from ffnet_nas.space.errors import InvalidInput

        raise InvalidInput(f"num_classes={num_classes!r}: expected a positive integer")
    model = FFNet(arch, num_classes)
    if not any(p.is_meta for p in model.parameters()):
        init_weights(model)
    return model
