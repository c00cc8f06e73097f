"""One look for every figure: sizes, fonts, colours, marker symbols, axis ranges.

Figures have a fixed pixel size because the label placer (`labels.py`) works in pixels and a
PNG made from the HTML must show the same layout as the HTML.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ffnet_nas.reports.labels import Panel

FONT = dict(family="Arial, Helvetica, sans-serif", size=13, color="#222")
GREY = "#8c8c8c"
GRID = "#e6e6e6"
# Colour-blind-safe qualitative palette (Okabe-Ito, then Tol's muted) for families.
PALETTE = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#882255",
    "#117733", "#332288", "#AA4499", "#44AA99", "#999933", "#6699CC", "#661100",
)
SYMBOL_4STAGE = "circle"
SYMBOL_3STAGE = "diamond"
BASELINE_SYMBOLS = ("square", "triangle-up", "x", "star", "cross")
FRONT_COLOUR = "#C00000"


@dataclass(frozen=True)
class Frame:
    """Figure size and margins (pixels); panels share the height and split the width."""

    width: int = 1150
    height: int = 640
    left: int = 80
    right: int = 260  # room for the legend outside the plot: it never covers points
    top: int = 100
    bottom: int = 75
    gap: float = 0.07  # between panels, as a share of the plot width

    def domains(self, n: int) -> list[tuple[float, float]]:
        w = (1 - self.gap * (n - 1)) / n
        return [(i * (w + self.gap), i * (w + self.gap) + w) for i in range(n)]

    def panel(self, domain: tuple[float, float], x_range, y_range, *, x_log: bool = False, y_log: bool = False) -> Panel:
        pw = self.width - self.left - self.right
        ph = self.height - self.top - self.bottom
        return Panel(
            left=self.left + domain[0] * pw,
            top=self.top,
            width=(domain[1] - domain[0]) * pw,
            height=ph,
            x_range=tuple(x_range),
            y_range=tuple(y_range),
            x_log=x_log,
            y_log=y_log,
        )


def padded_range(values, *, pad: float = 0.08, floor: float | None = None, min_span: float = 1.0) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return (0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    span = max(hi - lo, min_span)
    lo, hi = lo - pad * span, hi + pad * span
    if floor is not None:
        lo = max(lo, floor)
    return (lo, hi)


def family_colours(keys) -> dict[str, str]:
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(dict.fromkeys(keys))}


def base_layout(frame: Frame, *, title: str, subtitle: str = "") -> dict:
    return dict(
        width=frame.width,
        height=frame.height,
        margin=dict(l=frame.left, r=frame.right, t=frame.top, b=frame.bottom),
        font=FONT,
        paper_bgcolor="white",
        plot_bgcolor="white",
        title=dict(
            text=title,
            x=0.01,
            xanchor="left",
            y=0.97,
            yanchor="top",
            font=dict(size=17),
            subtitle=dict(text=subtitle, font=dict(size=12, color="#555")),
        ),
        legend=dict(
            x=1.02,
            xanchor="left",
            y=1.0,
            yanchor="top",
            bgcolor="rgba(255,255,255,0.9)",
            bordercolor="#ccc",
            borderwidth=1,
            font=dict(size=12),
            tracegroupgap=2,
        ),
        hoverlabel=dict(font=dict(size=12)),
    )


def axis_style(title: str, rng: tuple[float, float]) -> dict:
    return dict(
        title=dict(text=title, font=dict(size=14)),
        range=list(rng),
        showgrid=True,
        gridcolor=GRID,
        zeroline=False,
        showline=True,
        linecolor="#444",
        mirror=True,
        ticks="outside",
    )


def fmt_count(n) -> str:
    """12.5M, 650G: how the paper and the README write params and MACs."""
    if n is None or (isinstance(n, float) and not np.isfinite(n)):
        return "n/a"
    n = float(n)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def log_ticks(lo_log10: float, hi_log10: float) -> dict:
    """Plain-number ticks (1-2-5 per decade) for a log axis whose range is given in log10 units.

    Plotly's default labels a short log range with bare digits ('2 3 4 … 100 2 3'), which reads
    as nonsense in a PNG.
    """
    vals = [m * 10.0 ** e for e in range(int(np.floor(lo_log10)) - 1, int(np.ceil(hi_log10)) + 1) for m in (1, 2, 5)]
    vals = [v for v in vals if lo_log10 <= np.log10(v) <= hi_log10]
    if len(vals) < 3:  # less than a 1-2-5 step in range: every integer mantissa instead
        vals = [m * 10.0 ** e for e in range(int(np.floor(lo_log10)) - 1, int(np.ceil(hi_log10)) + 1) for m in range(1, 10)]
        vals = [v for v in vals if lo_log10 <= np.log10(v) <= hi_log10]
    if len(vals) < 2:  # a range this narrow reads fine with plotly's own ticks
        return {}
    return dict(tickmode="array", tickvals=vals, ticktext=[f"{v:g}" for v in vals])
