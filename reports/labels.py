"""Point labels that never overlap: a greedy placer in pixel space.

Plotly has no label-collision avoidance, and the paper's figures crowd (mobile: 19 points in
22 ms). Each label tries a few positions around its point, in order of preference; a position is
taken only if its box stays inside the plot and touches no earlier label and no marker.
A label that fits nowhere is dropped (the point's hover still names it), and the caller is told
how many were, so a figure never shows a stack of unreadable text.

Box sizes are estimated from the font size (average glyph ~0.6 em wide for the sans fonts
plotly uses), which errs on the wide side; the test checks the invariant on the estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# (dx, dy, xanchor, yanchor) in pixels, screen y pointing down: right, left, above, below, diagonals.
_CANDIDATES = (
    (7, 0, "left", "middle"),
    (-7, 0, "right", "middle"),
    (0, -8, "center", "bottom"),
    (0, 8, "center", "top"),
    (6, -6, "left", "bottom"),
    (6, 6, "left", "top"),
    (-6, -6, "right", "bottom"),
    (-6, 6, "right", "top"),
)


@dataclass(frozen=True)
class Panel:
    """Where one subplot's plot area lies in the figure, in pixels, and its axis ranges."""

    left: float
    top: float
    width: float
    height: float
    x_range: tuple[float, float]  # for a log axis: log10 of the ends, as plotly's `range`
    y_range: tuple[float, float]
    x_log: bool = False
    y_log: bool = False

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        x = math.log10(x) if self.x_log else x
        y = math.log10(y) if self.y_log else y
        return (
            self.left + (x - x0) / (x1 - x0) * self.width,
            self.top + (y1 - y) / (y1 - y0) * self.height,
        )


@dataclass(frozen=True)
class Placed:
    text: str
    x: float  # data coordinates of the point
    y: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    xanchor: str
    yanchor: str
    xshift: float
    yshift: float  # plotly's yshift points up
    color: str = "#333"


def text_box(text: str, font_size: float) -> tuple[float, float]:
    return len(text) * font_size * 0.62 + 2, font_size * 1.25


def _box_at(px: float, py: float, w: float, h: float, cand: tuple) -> tuple[float, float, float, float]:
    dx, dy, xa, ya = cand
    ax, ay = px + dx, py + dy
    x0 = {"left": ax, "right": ax - w, "center": ax - w / 2}[xa]
    y0 = {"top": ay, "bottom": ay - h, "middle": ay - h / 2}[ya]
    return (x0, y0, x0 + w, y0 + h)


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _crosses(box: tuple, a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether segment a-b passes through the box (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = box
    dx, dy = b[0] - a[0], b[1] - a[1]
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, a[0] - x0), (dx, x1 - a[0]), (-dy, a[1] - y0), (dy, y1 - a[1])):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def place_labels(
    points: list[tuple],
    panel: Panel,
    *,
    font_size: float = 11,
    marker_radius: float = 5,
    obstacles: list[tuple[float, float]] = (),
    segments: list[tuple[tuple[float, float], tuple[float, float]]] = (),
) -> tuple[list[Placed], int]:
    """Place `points` = [(x, y, text[, colour])] in order; returns (placed labels, number dropped).

    `obstacles` are further points (data coords) whose markers labels must not cover;
    `segments` are the family lines: a label may cross one only when every free spot does.
    """
    lines = [(panel.to_px(*a), panel.to_px(*b)) for a, b in segments]
    r = marker_radius
    markers = [panel.to_px(p[0], p[1]) for p in points] + [panel.to_px(x, y) for x, y in obstacles]
    taken = [(mx - r, my - r, mx + r, my + r) for mx, my in markers]
    area = (panel.left, panel.top, panel.left + panel.width, panel.top + panel.height)
    placed: list[Placed] = []
    dropped = 0
    for x, y, text, *rest in points:
        if not text:
            continue
        px, py = panel.to_px(x, y)
        w, h = text_box(text, font_size)
        best = None  # (crossings, order, box, candidate)
        for order, cand in enumerate(_CANDIDATES):
            box = _box_at(px, py, w, h, cand)
            inside = box[0] >= area[0] and box[1] >= area[1] and box[2] <= area[2] and box[3] <= area[3]
            if inside and not any(_overlap(box, t) for t in taken):
                crossings = sum(_crosses(box, a, b) for a, b in lines)
                if best is None or crossings < best[0]:
                    best = (crossings, order, box, cand)
                if crossings == 0:
                    break
        if best is None:
            dropped += 1
            continue
        _, _, box, (dx, dy, xa, ya) = best
        taken.append(box)
        placed.append(Placed(text, x, y, box, xa, ya, dx, -dy, rest[0] if rest else "#333"))
    return placed, dropped


def annotations(placed: list[Placed], *, xref: str = "x", yref: str = "y", font_size: float = 11,
                x_log: bool = False, y_log: bool = False) -> list[dict]:
    """Plotly layout annotations for placed labels (no arrows: the label sits next to its point).

    Plotly positions annotations on a log axis in log10 units (shapes it converts itself).
    """
    return [
        dict(
            x=math.log10(p.x) if x_log else p.x,
            y=math.log10(p.y) if y_log else p.y,
            xref=xref,
            yref=yref,
            text=p.text,
            showarrow=False,
            xanchor=p.xanchor,
            yanchor=p.yanchor,
            xshift=p.xshift,
            yshift=p.yshift,
            font=dict(size=font_size, color=p.color),
        )
        for p in placed
    ]
