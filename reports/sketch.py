"""A small drawing of a point's architecture: input, stem, one bar per stage, head (compute + render).

`sketch(arch)` computes the boxes (pure data: positions, sizes, labels); `sketch_svg(boxes)`
draws them as inline SVG for the report's verdict, so the found point and its reference can be
compared at a glance: a stage's bar is as long as its depth and as tall as its width, both on a
square-root scale so a 28-block stage does not squash a 4-block one out of sight.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from ffnet_nas.space.arch import Arch

HEIGHT = 96
_MID = 46  # the bars' centre line
_GAP = 6


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    kind: str  # input | stem | stage | head
    label: str  # drawn under the box
    inner: str = ""  # drawn inside the box


def sketch(arch: Arch) -> tuple[Box, ...]:
    """Boxes left to right: input (halved first for pre_down points), stem, stages, heads."""
    boxes: list[Box] = []
    x = 2.0
    boxes.append(Box(x, _MID - 12, 16, 24, "input", "input ↓2 (pre-down)" if arch.pre_down else "input", "img"))
    x += 16 + _GAP
    boxes.append(Box(x, _MID - 14, 18, 28, "stem", f"stem {arch.stem}", arch.stem))
    x += 18 + _GAP
    strides = arch.feature_strides[-arch.num_stages:]
    for depth, width, stride in zip(arch.depths, arch.widths, strides):
        w = 6 * math.sqrt(depth) + 4
        h = 2.4 * math.sqrt(width)
        boxes.append(Box(x, _MID - h / 2, w, h, "stage", f"/{stride}", f"{depth}"))
        x += w + _GAP
    boxes.append(Box(x, _MID - 16, 24, 32, "head", f"up {arch.up_head}", arch.up_head))
    x += 24 + _GAP
    boxes.append(Box(x, _MID - 12, 22, 24, "head", f"seg {arch.seg_head}", arch.seg_head))
    return tuple(boxes)


_FILL = {"input": "#eeeeee", "stem": "#b7c7e0", "stage": "#6f8fc2", "head": "#e0b070"}


def sketch_svg(boxes: tuple[Box, ...], *, caption: str = "", scale: float = 1.4) -> str:
    """Inline SVG (no external resources) of `sketch`'s boxes, with an optional caption line."""
    width = max(max(b.x + b.w for b in boxes) + 30, len(caption) * 5.2 + 6)  # room for the caption too
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * scale:.0f}" height="{HEIGHT * scale:.0f}" '
             f'viewBox="0 0 {width:.0f} {HEIGHT}" role="img" aria-label="{html.escape(caption)}">']
    for b in boxes:
        parts.append(f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="2" '
                     f'fill="{_FILL[b.kind]}" stroke="#333" stroke-width="0.8"/>')
        if b.inner:
            colour = "#fff" if b.kind == "stage" else "#222"
            parts.append(f'<text x="{b.x + b.w / 2:.1f}" y="{_MID + 4:.1f}" font-size="10" text-anchor="middle" '
                         f'fill="{colour}" font-family="Arial">{html.escape(b.inner)}</text>')
        # the input's label sits above it, left-aligned: under it, it would run into the stem's
        x, y, anchor = (b.x, _MID - 16, "start") if b.kind == "input" else (b.x + b.w / 2, _MID + 38, "middle")
        parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="9" text-anchor="{anchor}" fill="#444" '
                     f'font-family="Arial">{html.escape(b.label)}</text>')
    if caption:
        parts.append(f'<text x="2" y="10" font-size="10" fill="#444" font-family="Arial">{html.escape(caption)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def arch_caption(arch: Arch) -> str:
    """'4-stage basic, widths 64-128-192-320, output stride 8': what the bars do not spell out."""
    return (f"{arch.num_stages}-stage {arch.block}, widths {'-'.join(map(str, arch.widths))}, "
            f"output stride {arch.output_stride}")
