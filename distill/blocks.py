"""The student module for one (position, choice), and what it reads and must reproduce.

A student block is `body` (exactly the layers the arch has at that position, with the arch's
module names) + `out_adapter` (bias-free 1x1 conv from the block's own width to the teacher's
width at that position, used for the loss). The body's FIRST convolutions read the teacher's
width at the previous position directly: that plays the role of the input adapter, and
`assemble` folds the previous block's out_adapter into them (a 1x1 linear map followed by a
convolution is one convolution). So each block is trained independently of its neighbours,
and any chain of them is exactly one FFNet of the arch's shapes.

Resolution: every student of a stage reads the teacher's feature at that position. A choice
whose stride differs from the teacher's (a `d` point's s4 block, a pre_down s4 block fed the
teacher's image) gives a different output size: the loss then average-pools the LARGER of
student output and target to the smaller one (`nsr`). A pre_down s4 student is fed the image
upsampled 2x (its network input is twice the stem's input, like in the paper), so on data with
no finer detail than the teacher's input its NSR measures the cost of the Gaussian + stride,
not the benefit of a truly larger image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ffnet_nas.distill.choices import BACKBONE_POSITIONS, ChoiceSpec
from ffnet_nas.space.arch import STEM_CHANNELS, Arch
from ffnet_nas.space.builder import BN_MOMENTUM, STEM_CONVS, FFNetHead, GaussianDownsample, init_weights, make_stage


class Stem(nn.Module):
    """The stem with the backbone's own module names (conv0/bn0.. or conv1/bn1 + maxpool for A)."""

    def __init__(self, kind: str):
        super().__init__()
        first = 1 if kind == "A" else 0
        self.ids = tuple(range(first, first + len(STEM_CONVS[kind])))
        cin = 3
        for i, (cout, k, s) in zip(self.ids, STEM_CONVS[kind]):
            self.add_module(f"conv{i}", nn.Conv2d(cin, cout, k, s, k // 2, bias=False))
            self.add_module(f"bn{i}", nn.BatchNorm2d(cout, momentum=BN_MOMENTUM))
            cin = cout
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if kind == "A" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in self.ids:
            x = self.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return x if self.maxpool is None else self.maxpool(x)


class S4Body(nn.Module):
    def __init__(self, spec: ChoiceSpec):
        super().__init__()
        self.smoothing = GaussianDownsample() if spec.pre_down else None
        self.stem = Stem(spec.stem)
        self.layer1 = make_stage(spec.block, STEM_CHANNELS, spec.width, spec.depth, spec.stride) if spec.has_stage else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.smoothing is not None:
            x = self.smoothing(x)
        x = self.stem(x)
        return x if self.layer1 is None else self.layer1(x)


def head_arch(spec: ChoiceSpec) -> Arch:
    """A placeholder point carrying the head's fields: FFNetHead reads only those."""
    return Arch("B", "basic", (1, 1, 1, 1), (8, 8, 8, 8), 1, spec.up_head, spec.seg_head, spec.upsample)


class StudentBlock(nn.Module):
    def __init__(self, spec: ChoiceSpec, *, teacher_channels: tuple[int, ...], num_classes: int):
        """`teacher_channels`: the teacher's four up-head input widths (outputs of s4..s32)."""
        super().__init__()
        self.spec = spec
        self.teacher_channels = tuple(teacher_channels)
        if spec.position == "s4":
            self.body = S4Body(spec)
        elif spec.position == "head":
            self.body = FFNetHead(head_arch(spec), self.teacher_channels, num_classes)
        else:
            cin = self.teacher_channels[BACKBONE_POSITIONS.index(spec.position) - 1]
            self.body = make_stage(spec.block, cin, spec.width, spec.depth, spec.stride)
        init_weights(self.body)
        zero_init_last(self.body)
        self.out_adapter = None
        if spec.position != "head":
            cout_t = self.teacher_channels[BACKBONE_POSITIONS.index(spec.position)]
            self.out_adapter = nn.Conv2d(spec.out_channels, cout_t, 1, bias=False)
            # identity (or its rectangular part) to start: the block is then asked to produce
            # the teacher's channels in place, which trains faster than a random rotation
            nn.init.eye_(self.out_adapter.weight.view(cout_t, spec.out_channels))

    def forward(self, x):
        y = self.body(x)
        return y if self.out_adapter is None else self.out_adapter(y)


def zero_init_last(module: nn.Module) -> None:
    """Zero the last BN scale of every residual block (timm's `zero_init_last`, Goyal et al. 2017).

    Each block then starts as its shortcut, so a deep stage starts no worse than a shallow
    one. Measured on the embedded data (bench_distill, 100 steps): without it, NSR rose with
    depth in every stage group (Spearman +0.5..+1.0), an artefact of under-training.
    """
    from ffnet_nas.space.builder import BasicBlock, Bottleneck
    from ffnet_nas.space.metamixer import MetaMixerBlock

    for m in module.modules():
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)
        elif isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, MetaMixerBlock):  # two residual branches (token and channel mixer)
            for bn in m.last_bns():
                nn.init.zeros_(bn.weight)


def block_io(spec: ChoiceSpec, feats: dict[str, torch.Tensor], *, teacher_input_scale: int):
    """(student input, target) for `spec` from a batch of teacher features (see features.py)."""
    if spec.position == "s4":
        image = feats["image"]
        factor = spec.input_scale / teacher_input_scale
        if factor != 1:
            # the student's network input is `factor` x the teacher's at the same stem input
            image = F.interpolate(image, scale_factor=factor, mode="bilinear", align_corners=False,
                                  antialias=factor < 1)
        return image, feats["s4"]
    if spec.position == "head":
        return [feats[p] for p in BACKBONE_POSITIONS], feats["logits"]
    previous = BACKBONE_POSITIONS[BACKBONE_POSITIONS.index(spec.position) - 1]
    return feats[previous], feats[spec.position]


def match_size(student: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool whichever of the two is spatially larger to the other's size."""
    hs, ht = student.shape[-2:], target.shape[-2:]
    if hs == ht:
        return student, target
    if hs[0] * hs[1] > ht[0] * ht[1]:
        return F.adaptive_avg_pool2d(student, ht), target
    return student, F.adaptive_avg_pool2d(target, hs)


def nsr_terms(student: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(||S-T||^2, ||T||^2) summed over the batch, after matching sizes."""
    s, t = match_size(student, target)
    return (s - t).pow(2).sum(), t.pow(2).sum()


def nsr(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Noise-to-signal ratio ||S-T||^2 / ||T||^2 (0 = exact, 1 = as bad as predicting zeros)."""
    noise, signal = nsr_terms(student, target)
    return noise / signal.clamp_min(1e-12)
