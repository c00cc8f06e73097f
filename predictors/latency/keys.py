"""What a latency table measures: the *unit* key design.

A point's latency is predicted as a sum over units. The units are finer than `Arch.blocks()`
(whole stages) and coarser than single layers (OFA-style):

* ``predown``  the Gaussian pre-downsampler at the network input size;
* ``stem``     the stem (all its convs, and the max-pool of stem A) at its input size;
* ``block``    one residual block: (block type, input channels, planes, stride, input HxW).
  A stage of depth d is its first block (it carries the stride and the projection) plus
  d-1 identical *repeat* blocks, so one table serves every depth: the number of keys does
  not grow with the depth choices, and a 16- and a 28-block stage share all their keys.
  A stride-1 first block with matching channels *is* a repeat block, so it shares the key.
* ``head``     the whole up-head + segmentation (or classification) head, keyed by its four
  input widths and sizes, the head letters, the upsampling mode and the number of classes.
  It is one unit because its six interpolations, adds and the concatenation are cheap
  individually but interleaved with the convs; timing them as one module keeps those
  costs (and their memory traffic) inside the table instead of in the calibration.
  A peer head (`upFAM`, `upFAM2`, `upJPU`: space.peer_heads) is one head unit the same way,
  so its `grid_sample` gathers are timed inside it; a `metamixer` block is a block key
  (`block:metamixer:p64-s2:...`) like a basic or bottleneck one.

Keys are plain strings a person can read in the CSV; batch, dtype, device, backend and
threads are properties of the whole table (its metadata), not of the key.
Everything here is pure Python (no torch): shapes come from conv arithmetic, and a test
checks them against the real model on the meta device.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

from ffnet_nas.space.arch import EXPANSION, STEM_CHANNELS, Arch

KINDS = ("predown", "stem", "block", "head")


@dataclass(frozen=True)
class Unit:
    """One measurable piece of a network, with everything its latency depends on."""

    kind: str
    spec: str  # stem letter, "basic:c64-p128-s2", "upB-segB-nearest", "gauss5"
    channels: tuple[int, ...]  # input channels (four for the head)
    hw: tuple[tuple[int, int], ...]  # input sizes (four for the head)
    num_classes: int = 0  # head only

    @property
    def key(self) -> str:
        sizes = ".".join(f"{h}x{w}" for h, w in self.hw)
        chans = ".".join(map(str, self.channels))
        tail = f":k{self.num_classes}" if self.kind == "head" else ""
        return f"{self.kind}:{self.spec}:c{chans}:hw{sizes}{tail}"


def _half(n: int) -> int:
    # 3x3/s2/p1, 7x7/s2/p3, 1x1/s2/p0 convs and the 3x3/s2/p1 max-pool all give ceil(n/2).
    return (n + 1) // 2


def _halve(hw: tuple[int, int], stride: int) -> tuple[int, int]:
    return hw if stride == 1 else (_half(hw[0]), _half(hw[1]))


def stem_input_hw(arch: Arch, network_hw: tuple[int, int]) -> tuple[int, int]:
    """Size entering the stem. pre_down reflect-pads one row top and bottom, then a valid 5x5/s2."""
    if not arch.pre_down:
        return network_hw
    h, w = network_hw
    return ((h + 2 - 5) // 2 + 1, (w - 5) // 2 + 1)


def network_hw_for(arch: Arch, stem_hw: tuple[int, int]) -> tuple[int, int]:
    """The network input for a table measured at stem input `stem_hw` (pre_down points take 2x)."""
    return (stem_hw[0] * arch.input_scale, stem_hw[1] * arch.input_scale)


def units_of(arch: Arch, stem_hw: tuple[int, int], *, num_classes: int | None = None) -> Counter:
    """The units of `arch` with how many times each runs, for a space input (stem input) `stem_hw`.

    A pre_down point takes a 2x network input (as `SearchSpace.network_input_hw` says), so
    its stem sees slightly less than `stem_hw` (1024x2048 -> 511x1022) and gets its own key.
    """
    counts: Counter = Counter()
    net_hw = network_hw_for(arch, stem_hw)
    hw = stem_input_hw(arch, net_hw)
    if arch.pre_down:
        counts[Unit("predown", "gauss5", (3,), (net_hw,))] += 1
    counts[Unit("stem", arch.stem, (3,), (hw,))] += 1
    hw = _halve(_halve(hw, 2), 2)
    feats: list[tuple[int, int]] = [hw] if arch.num_stages == 3 else []
    cin = STEM_CHANNELS
    for depth, planes, stride in zip(arch.depths, arch.widths, arch.stage_strides):
        counts[_block(arch.block, cin, planes, stride, hw)] += 1
        hw = _halve(hw, stride)
        cin = planes * EXPANSION[arch.block]
        if depth > 1:
            counts[_block(arch.block, cin, planes, 1, hw)] += depth - 1
        feats.append(hw)
    head = f"up{arch.up_head}-seg{arch.seg_head}-{arch.upsample}"
    classes = num_classes if num_classes is not None else (1000 if arch.is_classifier else 19)  # builder defaults
    counts[Unit("head", head, arch.feature_channels, tuple(feats), classes)] += 1
    return counts


def _block(block: str, cin: int, planes: int, stride: int, hw: tuple[int, int]) -> Unit:
    return Unit("block", f"{block}:p{planes}-s{stride}", (cin,), (hw,))


def space_units(space, stem_hw: tuple[int, int], *, num_classes: int | None = None) -> list[Unit]:
    """Every distinct unit any point of `space` needs, in a stable order (cheap units first).

    Enumerates one skeleton per combination of the choices that change shapes, with every
    stage at its largest depth (a deeper stage holds every key of a shallower one), instead
    of iterating the points: the `all` space has millions of points but a few thousand
    skeletons.
    """
    seen: dict[str, Unit] = {}
    for opts in space.stage_options:
        strides = space.first_strides if opts.num_stages == 4 else (2,)
        depths = tuple(max(c) for c in opts.depths)
        for stem, block, widths, fs, up, seg, ups, pd in itertools.product(
            space.stems, space.blocks, itertools.product(*opts.widths), strides,
            space.up_heads, space.seg_heads, space.upsamples, space.pre_downs,
        ):
            arch = Arch(stem, block, depths, widths, fs, up, seg, ups, pd)
            for unit in units_of(arch, stem_hw, num_classes=num_classes):
                seen.setdefault(unit.key, unit)
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(seen.values(), key=lambda u: (order[u.kind], u.key))
