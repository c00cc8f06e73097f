"""`Arch`: one point of the FFNet space, with a canonical code that round-trips.

A code reads left to right in the order data flows through the network:

    stemB-basic-d4.5.6.4-w64.128.192.320-s1-upB-segB-nearest[-predown]

stem letter, residual block type, blocks per stage, stage widths (planes; a bottleneck
stage outputs 4x), stride of the first residual stage, up-head letter, task-head letter
(A/B/C segmentation heads, X the ImageNet classification head), upsampling mode, and the
optional Gaussian pre-downsampler. Only characters that need no quoting in a shell.

Beyond FFNet, the space holds the "fussier" designs the FFNet paper argues against, so a search
can pick them where they win on the device (`space/peer_heads.py`, `space/metamixer.py`): the
up-heads FAM / FAM2 (SFNet / SFNet-Lite flow alignment) and JPU (FastFCN), and the block type
`metamixer` (MetaMixer's FFNet block, a different network that shares the name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from ffnet_nas.space.errors import InvalidInput

STEMS = ("A", "B", "C")
FFNET_BLOCK_TYPES = ("basic", "bottleneck")
PEER_BLOCK_TYPES = ("metamixer",)  # MetaMixer's FFNet block (Yun et al. 2024): space/metamixer.py
BLOCK_TYPES = FFNET_BLOCK_TYPES + PEER_BLOCK_TYPES
FFNET_UP_HEADS = ("A", "B", "C")
PEER_UP_HEADS = ("FAM", "FAM2", "JPU")  # SFNet, SFNet-Lite, FastFCN: space/peer_heads.py
UP_HEADS = FFNET_UP_HEADS + PEER_UP_HEADS
SEG_HEADS = ("A", "B", "C")
TASK_HEADS = SEG_HEADS + ("X",)  # X: the ImageNet classification head of the published backbones
UPSAMPLE_MODES = ("bilinear", "nearest")
EXPANSION = {"basic": 1, "bottleneck": 4, "metamixer": 1}
# Convolutions per block, for the number in the published names (a metamixer block has two
# mixers, each of two depthwise-or-pointwise convs on its main path; counted like basic)
_CONVS_PER_BLOCK = {"basic": 2, "bottleneck": 3, "metamixer": 2}
# JPU (FastFCN) reads only the stride-8/16/32 features: its output, and the model's, is at the
# second-finest feature's stride
_HEAD_FIRST_FEATURE = {"JPU": 1}
STEM_CHANNELS = 64  # every stem ends in 64 channels at stride 4
STEM_STRIDE = 4
POSITIONS = ("s4", "s8", "s16", "s32", "head")

_CODE_GRAMMAR = ("stem{A|B|C}-{basic|bottleneck|metamixer}-dD1.D2.D3[.D4]-wW1.W2.W3[.W4]-s{1|2}-"
                 "up{A|B|C|FAM|FAM2|JPU}-seg{A|B|C|X}-{bilinear|nearest}[-predown]")
CODE_EXAMPLE = "stemB-basic-d4.5.6.4-w64.128.192.320-s1-upB-segB-nearest"


@dataclass(frozen=True)
class Block:
    """One block of the cut by output stride: the unit of the latency LUT and of distillation.

    `choice` names what was chosen at this position independently of the neighbours (the
    distillation unit: adapters absorb width mismatches); `in_channels`/`out_channels` and the
    strides are the actual shapes inside this arch (what latency depends on).
    """

    position: str
    choice: str
    in_channels: tuple[int, ...]
    out_channels: tuple[int, ...]
    in_stride: int
    out_stride: int

    @property
    def key(self) -> str:
        """Choice plus the actual input widths: identical keys cost the same on a device."""
        return f"{self.position}:{self.choice}:in{'.'.join(map(str, self.in_channels))}"


@dataclass(frozen=True)
class Arch:
    stem: str
    block: str
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    first_stride: int = 1
    up_head: str = "A"
    seg_head: str = "A"
    upsample: str = "bilinear"
    pre_down: bool = False

    def __post_init__(self) -> None:
        # Accept lists from YAML/JSON but store tuples so the value stays hashable.
        object.__setattr__(self, "depths", tuple(self.depths))
        object.__setattr__(self, "widths", tuple(self.widths))
        _validate(self)

    # ---- derived structure -------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.depths)

    @property
    def is_classifier(self) -> bool:
        return self.seg_head == "X"

    @property
    def stage_strides(self) -> tuple[int, ...]:
        return (self.first_stride,) + (2,) * (self.num_stages - 1)

    @property
    def stage_out_channels(self) -> tuple[int, ...]:
        return tuple(w * EXPANSION[self.block] for w in self.widths)

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of the four tensors handed to the up-head, finest first."""
        if self.num_stages == 3:
            return (STEM_CHANNELS,) + self.stage_out_channels
        return self.stage_out_channels

    @property
    def input_scale(self) -> int:
        """How much larger the network input is than the tensor entering the stem."""
        return 2 if self.pre_down else 1

    @property
    def feature_strides(self) -> tuple[int, ...]:
        """Strides of the four up-head inputs relative to the network input."""
        stride = STEM_STRIDE * self.input_scale
        strides = [stride] if self.num_stages == 3 else []
        for s in self.stage_strides:
            stride *= s
            strides.append(stride)
        return tuple(strides)

    @property
    def output_stride(self) -> int:
        return self.feature_strides[_HEAD_FIRST_FEATURE.get(self.up_head, 0)]

    @property
    def is_ffnet(self) -> bool:
        """False for a point with a peer design (a FAM/JPU head or metamixer blocks): not an FFNet."""
        return self.block in FFNET_BLOCK_TYPES and self.up_head in FFNET_UP_HEADS

    @property
    def nominal_depth(self) -> int:
        """The number in the published names: convs per block x blocks + 2."""
        return _CONVS_PER_BLOCK[self.block] * sum(self.depths) + 2

    # ---- code ------------------------------------------------------------------------------
    @property
    def code(self) -> str:
        parts = [
            f"stem{self.stem}",
            self.block,
            "d" + ".".join(map(str, self.depths)),
            "w" + ".".join(map(str, self.widths)),
            f"s{self.first_stride}",
            f"up{self.up_head}",
            f"seg{self.seg_head}",
            self.upsample,
        ]
        if self.pre_down:
            parts.append("predown")
        return "-".join(parts)

    def __str__(self) -> str:
        return self.code

    @property
    def stable_hash(self) -> str:
        """12 hex digits derived from the code: the same on every machine and Python run."""
        return hashlib.sha1(self.code.encode()).hexdigest()[:12]

    @classmethod
    def parse(cls, code: str) -> "Arch":
        return parse_code(code)

    @classmethod
    def from_name(cls, name: str) -> "Arch":
        """A published FFNet name, or a peer reference point's name (`space.peers`, not FFNets)."""
        from ffnet_nas.space.catalogue import get_variant
        from ffnet_nas.space.peers import get_peer, is_peer_name

        # a mistyped peer name gets the peer names as suggestions, not the published ones
        return get_peer(name).arch if is_peer_name(name) or name.startswith("peer_") else get_variant(name).arch

    def replace(self, **changes: Any) -> "Arch":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["depths"], d["widths"] = list(self.depths), list(self.widths)
        return d

    # ---- the cut ------------------------------------------------------------------------
    def blocks(self) -> tuple[Block, ...]:
        """Cut into positions s4, s8, s16, s32 (nominal output strides) and head.

        A 4-stage backbone's s4 block is the stem plus stage 1; a 3-stage backbone's is the
        stem alone, so 3- and 4-stage points share positions. With a stride-2 first stage
        (`s2`) or pre_down, the actual strides (recorded on each block) are larger.
        """
        blocks: list[Block] = []
        pre = "predown+" if self.pre_down else ""
        stride_in = 1
        stem_stride = STEM_STRIDE * self.input_scale
        stages = list(zip(self.depths, self.widths, self.stage_strides, self.stage_out_channels))
        in_ch = STEM_CHANNELS
        if self.num_stages == 3:
            blocks.append(Block("s4", f"{pre}stem{self.stem}", (3,), (STEM_CHANNELS,), stride_in, stem_stride))
            stride = stem_stride
        else:
            d, w, s, out = stages.pop(0)
            stride = stem_stride * s
            choice = f"{pre}stem{self.stem}+{self.block}.d{d}.w{w}.s{s}"
            blocks.append(Block("s4", choice, (3,), (out,), stride_in, stride))
            in_ch = out
        for position, (d, w, s, out) in zip(POSITIONS[1:4], stages):
            choice = f"{self.block}.d{d}.w{w}.s{s}"
            blocks.append(Block(position, choice, (in_ch,), (out,), stride, stride * s))
            in_ch, stride = out, stride * s
        head_choice = f"up{self.up_head}-seg{self.seg_head}-{self.upsample}"
        head_out = (1000,) if self.is_classifier else (0,)  # 0: the number of classes, a task setting
        blocks.append(Block("head", head_choice, self.feature_channels, head_out, self.feature_strides[0], self.output_stride))
        return tuple(blocks)


def _fail(field: str, value: Any, expected: str) -> None:
    raise InvalidInput(f"invalid arch field {field}={value!r}: expected {expected}")


def _validate(a: Arch) -> None:
    if a.stem not in STEMS:
        _fail("stem", a.stem, "one of " + "/".join(STEMS))
    if a.block not in BLOCK_TYPES:
        _fail("block", a.block, "one of " + "/".join(BLOCK_TYPES))
    if len(a.depths) not in (3, 4):
        _fail("depths", a.depths, "3 or 4 entries (one per residual stage)")
    if len(a.widths) != len(a.depths):
        _fail("widths", a.widths, f"{len(a.depths)} entries, one per stage like depths")
    for i, d in enumerate(a.depths):
        if not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= 64:
            _fail(f"depths[{i}]", d, "an integer in 1..64")
    for i, w in enumerate(a.widths):
        if not isinstance(w, int) or isinstance(w, bool) or not 8 <= w <= 2048 or w % 8:
            _fail(f"widths[{i}]", w, "a multiple of 8 in 8..2048")
    if a.first_stride not in (1, 2):
        _fail("first_stride", a.first_stride, "1 or 2")
    if len(a.depths) == 3 and a.first_stride != 2:
        _fail("first_stride", a.first_stride, "2 for a 3-stage backbone (the stem output is the stride-4 feature)")
    if a.up_head not in UP_HEADS:
        _fail("up_head", a.up_head, "one of " + "/".join(UP_HEADS))
    if a.seg_head not in TASK_HEADS:
        _fail("seg_head", a.seg_head, "one of A/B/C (segmentation) or X (classification)")
    if a.seg_head == "X" and a.up_head in PEER_UP_HEADS:
        _fail("seg_head", a.seg_head, f"A/B/C with up-head {a.up_head} (the classifier reads FFNet's up-heads only)")
    if a.upsample not in UPSAMPLE_MODES:
        _fail("upsample", a.upsample, "one of " + "/".join(UPSAMPLE_MODES))
    if not isinstance(a.pre_down, bool):
        _fail("pre_down", a.pre_down, "true or false")


_INT_LIST = re.compile(r"^\d+(\.\d+){2,3}$")


def parse_code(code: str) -> Arch:
    """Parse a canonical code; errors name the token that is wrong and show the grammar."""
    if not isinstance(code, str) or not code.strip():
        raise InvalidInput(f"empty arch code: expected {_CODE_GRAMMAR}")
    tokens = code.strip().split("-")
    pre_down = tokens[-1] == "predown"
    if pre_down:
        tokens = tokens[:-1]
    if len(tokens) != 8:
        raise InvalidInput(
            f"malformed arch code {code!r}: {len(tokens)} dash-separated parts, expected 8 (+ optional 'predown'): "
            f"{_CODE_GRAMMAR}, e.g. {CODE_EXAMPLE}"
        )
    stem, block, depths, widths, stride, up, seg, upsample = tokens

    def bad(part: str, expected: str) -> InvalidInput:
        return InvalidInput(f"malformed arch code {code!r}: part {part!r} should be {expected}")

    if not (stem.startswith("stem") and len(stem) == 5):
        raise bad(stem, "stemA, stemB or stemC")
    if not (depths.startswith("d") and _INT_LIST.match(depths[1:])):
        raise bad(depths, "d followed by 3 or 4 dot-separated block counts, e.g. d4.5.6.4")
    if not (widths.startswith("w") and _INT_LIST.match(widths[1:])):
        raise bad(widths, "w followed by 3 or 4 dot-separated stage widths, e.g. w64.128.192.320")
    if stride not in ("s1", "s2"):
        raise bad(stride, "s1 or s2 (stride of the first residual stage)")
    if not (up.startswith("up") and up[2:] in UP_HEADS):
        raise bad(up, "upA, upB, upC (FFNet) or upFAM, upFAM2, upJPU (peer heads)")
    if not (seg.startswith("seg") and len(seg) == 4):
        raise bad(seg, "segA, segB, segC or segX")
    return Arch(
        stem=stem[4:],
        block=block,
        depths=tuple(int(x) for x in depths[1:].split(".")),
        widths=tuple(int(x) for x in widths[1:].split(".")),
        first_stride=int(stride[1]),
        up_head=up[2:],
        seg_head=seg[3:],
        upsample=upsample,
        pre_down=pre_down,
    )


def resolve(name_or_code: "str | Arch") -> Arch:
    """A published name, a code, or an Arch -> Arch. The CLI and the builder accept all three."""
    if isinstance(name_or_code, Arch):
        return name_or_code
    text = str(name_or_code).strip()
    if text.startswith("stem"):
        return parse_code(text)
    return Arch.from_name(text)
