"""The modules and inputs that get timed: one LUT unit, or a whole network.

Units are built from the same classes as the full model (`space.builder`), so a unit's
time is the time of exactly that code inside a network.
"""

from __future__ import annotations

import torch
from ffnet_nas.predictors.latency.keys import Unit, network_hw_for
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.builder import (
    BLOCKS,
    Backbone,
    FFNetHead,
    GaussianDownsample,
    build_model,
    init_weights,
)
from torch import nn


class _Stem(nn.Module):
    def __init__(self, stem: str):
        super().__init__()
        # A throwaway 3-stage backbone owns the stem layers under their real names; its
        # stages are dropped so only the stem is timed.
        backbone = Backbone(Arch(stem, "basic", (1, 1, 1), (8, 8, 8), 2))
        for i in (1, 2, 3):
            delattr(backbone, f"layer{i}")
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_stem(x)


class _Head(nn.Module):
    """The head takes a list; exporters and `torch.compile` prefer positional tensors."""

    def __init__(self, spec: str, channels: tuple[int, ...], num_classes: int):
        super().__init__()
        up, seg, upsample = spec.split("-")
        arch = Arch("B", "basic", (1, 1, 1, 1), (8, 8, 8, 8), 1, up[2:], seg[3:], upsample)
        self.head = FFNetHead(arch, channels, num_classes)

    def forward(self, f4: torch.Tensor, f8: torch.Tensor, f16: torch.Tensor, f32: torch.Tensor) -> torch.Tensor:
        return self.head([f4, f8, f16, f32])


def unit_module(unit: Unit) -> nn.Module:
    if unit.kind == "predown":
        module: nn.Module = GaussianDownsample(3)
    elif unit.kind == "stem":
        module = _Stem(unit.spec)
    elif unit.kind == "block":
        block, rest = unit.spec.split(":")
        planes, stride = rest.split("-")
        module = BLOCKS[block](unit.channels[0], int(planes[1:]), int(stride[1:]))
    elif unit.kind == "head":
        module = _Head(unit.spec, unit.channels, unit.num_classes)
    else:  # keys come from keys.py or a table file; a foreign kind means a corrupt table
        raise ValueError(f"unknown unit kind {unit.kind!r}")
    init_weights(module)
    return module.eval()


def unit_inputs(unit: Unit, batch: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.randn(batch, c, h, w, generator=gen) for c, (h, w) in zip(unit.channels, unit.hw))


def network(arch: Arch, stem_hw: tuple[int, int], batch: int, *, num_classes: int | None = None
            ) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """A whole point with its input, for a table measured at stem input `stem_hw`."""
    model = build_model(arch, num_classes=num_classes).eval()
    h, w = network_hw_for(arch, stem_hw)
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(0))
    return model, (x,)
