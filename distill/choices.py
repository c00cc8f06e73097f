"""Block choices: what is distilled at each position, parsed back from the `Block.choice` text.

`arch.blocks()` names each position's choice independently of its neighbours, e.g.
`predown+stemB+basic.d4.w64.s2` (s4 of a 4-stage point), `stemC` (s4 of a 3-stage point),
`basic.d8.w128.s2` (a residual stage) or `upB-segC-nearest` (the head). A `ChoiceSpec` is that
text made structured, so the library table (one row per choice) is self-describing and a
block can be rebuilt from its row alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from ffnet_nas.space.arch import BLOCK_TYPES, EXPANSION, POSITIONS, STEM_CHANNELS, STEMS, UP_HEADS, Arch
from ffnet_nas.space.errors import InvalidInput

BACKBONE_POSITIONS = POSITIONS[:4]  # s4 s8 s16 s32: their outputs are the four up-head inputs
# block types and up-heads from the space (the peer designs metamixer, FAM, FAM2, JPU included);
# longest first so FAM2 is not read as FAM
_STAGE = re.compile(rf"^({'|'.join(BLOCK_TYPES)})\.d(\d+)\.w(\d+)\.s([12])$")
_HEAD = re.compile(rf"^up({'|'.join(sorted(UP_HEADS, key=len, reverse=True))})-seg([ABC])-(bilinear|nearest)$")


@dataclass(frozen=True)
class ChoiceSpec:
    """One (position, choice) pair: the unit of distillation and of the block library."""

    position: str
    choice: str
    # s4 only
    stem: str | None = None
    pre_down: bool = False
    # s4 (4-stage) and s8..s32: one residual stage
    block: str | None = None
    depth: int | None = None
    width: int | None = None
    stride: int | None = None
    # head only
    up_head: str | None = None
    seg_head: str | None = None
    upsample: str | None = None

    @property
    def has_stage(self) -> bool:
        return self.depth is not None

    @property
    def out_channels(self) -> int | None:
        """Channels this block produces (None for the head: the number of classes)."""
        if self.position == "head":
            return None
        return self.width * EXPANSION[self.block] if self.has_stage else STEM_CHANNELS

    @property
    def input_scale(self) -> int:
        return 2 if self.pre_down else 1

    @property
    def file_stem(self) -> str:
        # choices only hold [A-Za-z0-9.+-]: safe in file names on every OS
        return f"{self.position}__{self.choice}"

    @classmethod
    def parse(cls, position: str, choice: str) -> "ChoiceSpec":
        bad = InvalidInput(f"unknown block choice {choice!r} at position {position!r}: expected the text of "
                           "space.arch.Block.choice (e.g. stemB+basic.d4.w64.s1, basic.d5.w128.s2, upB-segB-nearest)")
        if position == "head":
            m = _HEAD.match(choice)
            if not m:
                raise bad
            return cls(position, choice, up_head=m[1], seg_head=m[2], upsample=m[3])
        if position not in BACKBONE_POSITIONS:
            raise InvalidInput(f"unknown position {position!r}: expected one of {', '.join(POSITIONS)}")
        if position != "s4":
            m = _STAGE.match(choice)
            if not m:
                raise bad
            return cls(position, choice, block=m[1], depth=int(m[2]), width=int(m[3]), stride=int(m[4]))
        rest, pre_down = choice, choice.startswith("predown+")
        if pre_down:
            rest = rest[len("predown+"):]
        stem, _, stage = rest.partition("+")
        if not (stem.startswith("stem") and stem[4:] in STEMS):
            raise bad
        if not stage:
            return cls(position, choice, stem=stem[4:], pre_down=pre_down)
        m = _STAGE.match(stage)
        if not m:
            raise bad
        return cls(position, choice, stem=stem[4:], pre_down=pre_down, block=m[1], depth=int(m[2]),
                   width=int(m[3]), stride=int(m[4]))


def arch_choices(arch: Arch) -> tuple[ChoiceSpec, ...]:
    """The five choices of one point, in position order."""
    return tuple(ChoiceSpec.parse(b.position, b.choice) for b in arch.blocks())


def space_choices(space) -> list[ChoiceSpec]:
    """Every distinct (position, choice) of a space, enumerated from its domains, not its points.

    The mobile space has 16k points but a few dozen choices; iterating the points would
    rebuild the same handful of choices thousands of times. Order: position, then text.
    """
    seen: dict[tuple[str, str], ChoiceSpec] = {}
    for arch in _representatives(space):
        for spec in arch_choices(arch):
            seen.setdefault((spec.position, spec.choice), spec)
    return sorted(seen.values(), key=lambda s: (POSITIONS.index(s.position), s.choice))


def _representatives(space) -> Iterator[Arch]:
    """Points that together cover every choice: vary one position's options at a time.

    A choice at one position does not depend on the others, so each domain value need only
    appear in some point; the other fields take their first value.
    """
    heads = [(u, s, m) for u in space.up_heads for s in space.seg_heads for m in space.upsamples]
    for opts in space.stage_options:
        n = opts.num_stages
        strides = space.first_strides if n == 4 else (2,)
        base_d = tuple(c[0] for c in opts.depths)
        base_w = tuple(c[0] for c in opts.widths)
        for block in space.blocks:
            def point(stem=space.stems[0], depths=base_d, widths=base_w, fs=strides[0], head=heads[0], pd=space.pre_downs[0]):
                return Arch(stem, block, depths, widths, fs, head[0], head[1], head[2], pd)

            for stem in space.stems:
                for pd in space.pre_downs:
                    for fs in strides:
                        for d0 in opts.depths[0]:
                            for w0 in opts.widths[0]:
                                yield point(stem=stem, pd=pd, fs=fs, depths=(d0,) + base_d[1:], widths=(w0,) + base_w[1:])
            for i in range(1, n) if n == 4 else range(n):
                for d in opts.depths[i]:
                    for w in opts.widths[i]:
                        depths = base_d[:i] + (d,) + base_d[i + 1:]
                        widths = base_w[:i] + (w,) + base_w[i + 1:]
                        yield point(depths=depths, widths=widths)
            for head in heads:
                yield point(head=head)

