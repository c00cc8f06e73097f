"""Families as the paper draws them: one line per (backbone kind, stem-up-seg letters, d or not).

Within a family only the depth changes, so joining its points by increasing depth shows the
depth/latency trade-off of one design, which is how Fig. 3/5/6 of the paper read. Searched
points with widths no published kind uses get a family named by their widths, so a family
never mixes two backbone widths.
"""

from __future__ import annotations

from dataclasses import dataclass

from ffnet_nas.space.arch import Arch

# Stage widths (planes) of the published backbone kinds; the suffix the paper writes after the depth.
_KIND_OF_WIDTHS = {
    ("basic", (64, 128, 256, 512)): "",
    ("bottleneck", (64, 128, 256, 512)): "",
    ("basic", (64, 128, 192, 320)): "S",
    ("basic", (96, 160, 320)): "N",
    ("basic", (64, 128, 256)): "NS",
}


@dataclass(frozen=True)
class Family:
    key: str  # stable id (used for colours and legend groups)
    label: str  # what the legend says, e.g. "FFNet-S dBBB"
    kind: str  # "", "S", "N", "NS", or "w<widths>" for widths no published kind has
    three_stage: bool

    def point_label(self, depth: int) -> str:
        """The short text next to a point, as the paper writes it: '150', '86S', '122NS'."""
        return f"{depth}{self.kind if not self.kind.startswith('w') else ''}"


def backbone_kind(block: str, widths: tuple[int, ...]) -> str:
    return _KIND_OF_WIDTHS.get((block, tuple(widths)), "w" + ".".join(map(str, widths)))


def make_family(*, kind: str, letters: str, dagger: bool, three_stage: bool, suffix: str = "") -> Family:
    """`letters` is stem-up-seg without separators ('BBB'); `suffix` separates e.g. upsampling."""
    kind_part = f"-{kind}" if kind and not kind.startswith("w") else ""
    width_part = f" {kind}" if kind.startswith("w") else ""
    label = f"FFNet{kind_part}{width_part} {'d' if dagger else ''}{letters}{suffix}"
    return Family(key=label, label=label, kind=kind, three_stage=three_stage)


def family_of_arch(arch: Arch) -> Family:
    """The family of any point of the space (published or searched)."""
    suffix = ""
    if arch.block == "bottleneck":
        suffix += " bottleneck"
    if arch.upsample == "nearest":
        suffix += " mobile"
    if arch.pre_down:
        suffix += " pre-down"
    return make_family(
        kind=backbone_kind(arch.block, arch.widths),
        letters=f"{arch.stem}{arch.up_head}{arch.seg_head}",
        dagger=arch.first_stride == 2 and arch.num_stages == 4,
        three_stage=arch.num_stages == 3,
        suffix=suffix,
    )


def short_label(arch: Arch) -> str:
    """'150', '86S', '122NS': nominal depth plus kind, the paper's point labels."""
    return family_of_arch(arch).point_label(arch.nominal_depth)
