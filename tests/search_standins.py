"""Cheap, deterministic STAND-IN objectives for testing and benchmarking the search.

They are NOT predictions of anything: latency grows with depth x width (halved by pre_down,
like a smaller input) and mIoU rises smoothly and saturates with the same budget, plus a small
bonus per head type, so the two objectives conflict and the front is non-trivial.
"""

from __future__ import annotations

import math

from space.arch import Arch

_HEAD_BONUS = {"A": 0.0, "B": 0.4, "C": 0.7}


def _budget(arch: Arch) -> float:
    expansion = 4 if arch.block == "bottleneck" else 1
    return sum(d * w * expansion for d, w in zip(arch.depths, arch.widths)) / (2.0 if arch.first_stride == 2 else 1.0)


def standin_latency_ms(arch: Arch) -> float:
    scale = 0.25 if arch.pre_down else 1.0
    return 1.0 + scale * _budget(arch) / 500.0 + 0.3 * "ABC".index(arch.up_head) + (0.2 if arch.upsample == "bilinear" else 0.0)


def standin_miou(arch: Arch) -> float:
    resolution_penalty = 3.0 if arch.pre_down else 0.0
    return (55.0 + 20.0 * (1.0 - math.exp(-_budget(arch) / 4000.0)) + _HEAD_BONUS[arch.seg_head]
            + 0.3 * "ABC".index(arch.up_head) - resolution_penalty + 0.1 * "ABC".index(arch.stem))
