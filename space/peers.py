"""The peers of the FFNet paper's argument as named points of the catalogue — NOT FFNets.

The FFNet paper argues that a plain ResNet backbone with a tiny convolutional head matches designs
with "a tad more fuss" once latency is measured on hardware. Three such designs are choices of
this space (`space.peer_heads`, `space.metamixer`); the points below place them beside the
published FFNets. Every one carries `family == "peer"` and `is_ffnet == False`, so a table or
figure can never mistake it for a published FFNet variant (`peer_points()` lists them; the
published FFNets stay in `space.catalogue`, untouched).

Two kinds of point:

* the papers' own shapes (`peer_sfnet_r18`, `peer_sfnet_r50`, `peer_sfnet_lite_r18`,
  `peer_fastfcn_r50`): a ResNet-18/50-shaped backbone with the peer head, with the figures
  their papers publish — on their hardware and data, never to be mixed with figures measured here;
* transplants onto FFNet-40S's mobile backbone (`peer_*_mobile`): members of the `mobile_peers`
  space, so a table measured there predicts them, and directly comparable with the published
  FFNet that shares their backbone (`ffnet_twins`). Nobody published figures for these shapes.

The figures come from /work/shared/reference/ANCHORS.md (the project's transcription of the
peers' READMEs). Where it has no figure for a shape, the point says so instead of borrowing one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ffnet_nas.space.arch import Arch, parse_code
from ffnet_nas.space.errors import InvalidInput, closest

PEER_FAMILY = "peer"
_MOBILE_BACKBONE = "stemB-{block}-d4.5.6.4-w64.128.192.320-s1-up{up}-seg{seg}-nearest"  # FFNet-40S BBB mobile's


@dataclass(frozen=True)
class PeerPoint:
    name: str
    system: str  # the peer design, as its paper names it
    design: str  # the choice of this space that carries it: upFAM, upFAM2, upJPU, metamixer
    arch: Arch
    input_hw: tuple[int, int]  # the network input its figures (or, for transplants, the mobile space) use
    source: str  # where the figures below come from
    # published figures as (what, value) text, on THEIR hardware and data; empty when none exist
    figures: tuple[tuple[str, str], ...]
    note: str  # how this point departs from the paper's network
    miou: float | None = None  # Cityscapes val mIoU published for exactly this shape, else None
    family: str = PEER_FAMILY
    is_ffnet: bool = False

    @property
    def display_name(self) -> str:
        return f"{self.system} [not FFNet]"


_SFNET_SRC = "lxtGH/SFSegNets README, via ANCHORS.md"
_NO_FIGURE = (("published figures", "none for this shape (a transplant onto FFNet-40S's mobile backbone)"),)


@functools.cache
def peer_points() -> tuple[PeerPoint, ...]:
    r18 = "stemA-basic-d2.2.2.2-w64.128.256.512-s1-up{up}-seg{seg}-bilinear"
    r50 = "stemA-bottleneck-d3.4.6.3-w64.128.256.512-s1-up{up}-seg{seg}-bilinear"
    full = (1024, 2048)
    mobile = (512, 1024)
    return (
        PeerPoint("peer_sfnet_r18", "SFNet (FAM head), ResNet-18", "upFAM", parse_code(r18.format(up="FAM", seg="C")),
                  full, _SFNET_SRC + " (ECCV 2020)",
                  (("Cityscapes val mIoU", "79.0 (78.4 without balanced sampling)"),
                   ("latency", "none published for this backbone in ANCHORS.md")),
                  "no pyramid pooling on the coarsest level; SFNet's 3x3 + 1x1 final head is segC",
                  miou=79.0),
        PeerPoint("peer_sfnet_r50", "SFNet (FAM head), ResNet-50", "upFAM", parse_code(r50.format(up="FAM", seg="C")),
                  full, _SFNET_SRC + " (ECCV 2020)", (("Cityscapes val mIoU", "80.4"),),
                  "no pyramid pooling on the coarsest level", miou=80.4),
        PeerPoint("peer_sfnet_lite_r18", "SFNet-Lite (gated dual-flow FAM), ResNet-18", "upFAM2",
                  parse_code(r18.format(up="FAM2", seg="C")), full, _SFNET_SRC + " (IJCV 2023)",
                  (("SFNet-Lite, backbone not stated in ANCHORS.md",
                    "78.8 mIoU at 120 FPS and 80.1 mIoU at 50 FPS on a TITAN RTX (TensorRT)"),),
                  "the v2 module at every level; the published figures are not attributed to this backbone, "
                  "so no mIoU is claimed for it"),
        PeerPoint("peer_fastfcn_r50", "FastFCN (JPU), ResNet-50", "upJPU", parse_code(r50.format(up="JPU", seg="A")),
                  full, "wuhuikai/FastFCN README, via ANCHORS.md",
                  (("Cityscapes", "no results published"),
                   ("PASCAL Context mIoU / FPS", "EncNet+JPU 51.05 at 37.56 FPS (EncNet 49.91 at 18.77); "
                    "PSP+JPU 50.89 at 28.48; DeepLabV3+JPU 50.07 at 20.67"),
                   ("ADE20K mIoU", "EncNet+JPU R50 42.75 (multi-scale)")),
                  "JPU width 128 (FastFCN: 512) followed by an FCN-style seg head (segA), not EncNet; "
                  "standard ResNet stem (FastFCN: deep stem)"),
        PeerPoint("peer_metamixer_mobile", "MetaMixer FFNet block (a different network named FFNet)", "metamixer",
                  parse_code(_MOBILE_BACKBONE.format(block="metamixer", up="B", seg="B")), mobile,
                  "ysj9909/FFNet README (arXiv 2406.02021), via ANCHORS.md",
                  (("this shape", "none published (FFNet-40S's backbone with metamixer blocks)"),
                   ("their FFNet_seg (68M params, 577 GFLOPs)", "Cityscapes 83.2 mIoU (84.1 multi-scale+flip); "
                    "ADE20K 50.1 (51.2) at 74 GFLOPs"),
                   ("their ImageNet FFNet-1..4", "81.3-85.3 top-1 at 1.8-15.2 ms on an iPhone 12")),
                  "kernel 7, MLP ratio 4, BN throughout; depths and widths of FFNet-40S mobile"),
        PeerPoint("peer_sfnet_mobile", "SFNet (FAM head) on FFNet-40S's mobile backbone", "upFAM",
                  parse_code(_MOBILE_BACKBONE.format(block="basic", up="FAM", seg="B")), mobile,
                  "-", _NO_FIGURE, "FFNet-40S BBB mobile with the FAM up-head"),
        PeerPoint("peer_sfnet_lite_mobile", "SFNet-Lite (FAM2 head) on FFNet-40S's mobile backbone", "upFAM2",
                  parse_code(_MOBILE_BACKBONE.format(block="basic", up="FAM2", seg="B")), mobile,
                  "-", _NO_FIGURE, "FFNet-40S BBB mobile with the FAM2 up-head"),
        PeerPoint("peer_fastfcn_mobile", "FastFCN (JPU head) on FFNet-40S's mobile backbone", "upJPU",
                  parse_code(_MOBILE_BACKBONE.format(block="basic", up="JPU", seg="B")), mobile,
                  "-", _NO_FIGURE, "FFNet-40S BBB mobile with the JPU up-head (output stride 8)"),
    )


@functools.cache
def _by_name() -> dict[str, PeerPoint]:
    return {p.name: p for p in peer_points()}


def is_peer_name(name: str) -> bool:
    return name in _by_name()


def get_peer(name: str) -> PeerPoint:
    try:
        return _by_name()[name]
    except KeyError:
        raise InvalidInput(f"unknown peer point {name!r}: expected one of {', '.join(_by_name())}"
                           f"{closest(name, _by_name())}") from None


def peer_of(arch: Arch) -> PeerPoint | None:
    """The peer reference point with exactly this structure, if any."""
    return next((p for p in peer_points() if p.arch == arch), None)


def ffnet_twins(peer: "PeerPoint | str") -> tuple[str, ...]:
    """Published FFNet segmentation variants with the same backbone (stem, block, depths, widths,
    first stride, pre_down): the FFNet points a peer is best compared with. Empty when none."""
    from ffnet_nas.space.catalogue import variants

    p = peer if isinstance(peer, PeerPoint) else get_peer(peer)
    a = p.arch.replace(block="basic") if p.arch.block == "metamixer" else p.arch

    def backbone(x: Arch) -> tuple:
        return (x.stem, x.block, x.depths, x.widths, x.first_stride, x.pre_down)

    return tuple(v.name for v in variants(task="segmentation") if backbone(v.arch) == backbone(a))
