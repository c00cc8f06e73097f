"""Parameter count and MACs of any point at any input size, without allocating weights.

MACs are counted with `torch.utils.flop_counter.FlopCounterMode` on the meta device
(FLOPs = 2 x MACs), which covers convolutions and linear layers only — the same convention
as the published reference figures (no BN, activations, additions, resizes or biases).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ffnet_nas.space.arch import Arch, resolve
from ffnet_nas.space.builder import build_model
from ffnet_nas.space.errors import InvalidInput


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int
    input_hw: tuple[int, int]
    output_hw: tuple[int, int] | None  # None for the classifier

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def parse_hw(text: str) -> tuple[int, int]:
    """'512x1024' -> (512, 1024); errors say what was expected."""
    parts = str(text).lower().replace("*", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InvalidInput(f"malformed input size {text!r}: expected HxW, e.g. 512x1024")
    h, w = (int(p) for p in parts)
    if not (16 <= h <= 8192 and 16 <= w <= 8192):
        raise InvalidInput(f"input size {text!r} out of range: expected H and W in 16..8192")
    return h, w


def count_params(arch_or_name: "Arch | str", *, num_classes: int | None = None) -> int:
    with torch.device("meta"):
        model = build_model(arch_or_name, num_classes=num_classes)
    return sum(p.numel() for p in model.parameters())


def complexity(arch_or_name: "Arch | str", input_hw: tuple[int, int], *, num_classes: int | None = None) -> Complexity:
    arch = resolve(arch_or_name)
    with torch.device("meta"):
        model = build_model(arch, num_classes=num_classes).eval()
        x = torch.empty(1, 3, *input_hw)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(x)
    output_hw = None if arch.is_classifier else tuple(out.shape[-2:])
    params = sum(p.numel() for p in model.parameters())
    return Complexity(params=params, macs=counter.get_total_flops() // 2, input_hw=tuple(input_hw), output_hw=output_hw)
