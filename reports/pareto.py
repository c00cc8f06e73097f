"""Draw the device Pareto figure (render half of `--pareto`): latency on this device vs mIoU.

Filled markers: latency measured on this device (or points evaluated in full); hollow markers:
predicted by the LUT. Families are coloured lines by increasing depth as in the paper, 3-stage
backbones are diamonds, the search's Pareto front is a red staircase, targets are dashed lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ffnet_nas.reports.labels import annotations, place_labels
from ffnet_nas.reports.pareto_data import ParetoData
from ffnet_nas.reports.style import (
    FRONT_COLOUR,
    SYMBOL_3STAGE,
    SYMBOL_4STAGE,
    Frame,
    axis_style,
    base_layout,
    family_colours,
    fmt_count,
    log_ticks,
    padded_range,
)


def _fmt(v, unit: str = "", digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}{unit}"


def _hover(r: pd.Series) -> str:
    name = f"<b>{r['name']}</b><br>" if r["name"] else ""
    paper = f"<br>published mIoU (Cityscapes val): {_fmt(r['paper_miou'], '%', 1)}" if r["paper_miou"] is not None and not pd.isna(r["paper_miou"]) else ""
    return (
        f"{name}{r['code']}<br>{r['family_label']}"
        f"<br>latency {_fmt(r['latency_ms'], ' ms')} ({r['latency_source']})"
        f"<br>mIoU {_fmt(r['miou'], '%')} ({r['miou_source']})"
        f"<br>predicted: {_fmt(r['predicted_latency_ms'], ' ms')}, {_fmt(r['predicted_miou'], '%')}"
        f" · measured: {_fmt(r['measured_latency_ms'], ' ms')}, {_fmt(r['measured_miou'], '%')}"
        f"{paper}<br>params {fmt_count(r['params'])} · MACs {fmt_count(r['macs'])}"
    )


def render_pareto(data: ParetoData) -> go.Figure | None:
    pts = data.points
    if pts.empty:
        return None
    frame = Frame(width=1250, height=720, right=330)
    lat = pts["latency_ms"].astype(float)
    log = lat.min() > 0 and lat.max() / lat.min() > 10
    bounds = [b for m, _, b in data.targets if m == "latency"]
    x_vals = list(lat) + bounds
    if log:
        v = np.log10([x for x in x_vals if x > 0])
        span = max(v.max() - v.min(), 0.1)
        x_range = (v.min() - 0.05 * span, v.max() + 0.05 * span)
    else:
        x_range = padded_range(x_vals, pad=0.06, floor=0.0, min_span=0.5)
    y_range = padded_range(list(pts["miou"].astype(float)) + [b for m, _, b in data.targets if m == "miou"], pad=0.08, min_span=1.0)
    colours = family_colours(sorted(pts["family"].unique()))
    fig = go.Figure()
    # Legend keys for the encodings that are not families.
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="filled: latency measured here",
                             marker=dict(color="#555", size=9), legendgroup="key", legendgrouptitle_text="Markers"))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="hollow: latency predicted (LUT)",
                             marker=dict(symbol="circle-open", color="#555", size=9, line=dict(width=2)), legendgroup="key"))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="◆ 3-stage backbone",
                             marker=dict(symbol="diamond-open", color="#555", size=9), legendgroup="key"))
    if (pts["role"] == "evaluated").any():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="★ evaluated in full (measured mIoU)",
                                 marker=dict(symbol="star", color="#555", size=12, line=dict(color="#222", width=1)), legendgroup="key"))
    others = pts[pts["role"] != "front"]
    shown: set[str] = set()
    groups = sorted(others.groupby(["family", "role", "measured"], sort=False),
                    key=lambda g: (g[0][0], g[0][1] != "published", bool(g[0][2])))  # legend shows the hollow family line
    for (family, role, measured), sub in groups:
        sub = sub.sort_values(["depth", "latency_ms"])
        three = bool(sub["three_stage"].iloc[0])
        symbol = SYMBOL_3STAGE if three else SYMBOL_4STAGE
        evaluated = role == "evaluated"
        fig.add_trace(go.Scatter(
            x=sub["latency_ms"], y=sub["miou"],
            # A family line joins published depths (the paper's reading); evaluated points stand alone.
            mode="markers" if evaluated else "lines+markers",
            name=f"{sub['family_label'].iloc[0]}" + (" (3-stage)" if three else ""),
            legendgroup=family, showlegend=family not in shown,
            line=dict(color=colours[family], width=1.5 if measured else 1, dash="solid" if measured else "dot"),
            marker=dict(symbol=("star" if evaluated else symbol) if measured else f"{symbol}-open", size=14 if evaluated else 10,
                        color=colours[family],
                        line=dict(width=1 if measured else 2, color=("#222" if evaluated else "white") if measured else colours[family])),
            hovertext=[_hover(r) for _, r in sub.iterrows()], hoverinfo="text"))
        shown.add(family)
    front = pts[pts["role"] == "front"].sort_values("latency_ms")
    if not front.empty:
        fig.add_trace(go.Scatter(
            x=front["latency_ms"], y=front["miou"], mode="lines+markers", name=f"search Pareto front (predicted, {len(front)} points)",
            line=dict(color=FRONT_COLOUR, width=2, shape="hv"),
            marker=dict(symbol=[f"{SYMBOL_3STAGE if t else SYMBOL_4STAGE}-open" for t in front["three_stage"]], size=11,
                        color=FRONT_COLOUR, line=dict(width=2)),
            hovertext=[_hover(r) for _, r in front.iterrows()], hoverinfo="text", legendgroup="front",
            legendgrouptitle_text="Search"))
    shapes, target_notes = _targets(data)
    panel = frame.panel((0, 1), x_range, y_range, x_log=log)
    labelled = others[others["role"] != "evaluated"].sort_values("miou", ascending=False)
    labelled = labelled[labelled["measured"] | ~labelled["code"].isin(labelled.loc[labelled["measured"], "code"])]
    label_pts = [(r["latency_ms"], r["miou"], r["label"], colours[r["family"]]) for _, r in labelled.iterrows()]
    placed, dropped = place_labels(label_pts, panel, obstacles=list(zip(pts["latency_ms"], pts["miou"])), font_size=10)
    source = {
        "search": "Front, published variants and evaluated points from this workdir's search and evaluation.",
        "published": "No search yet: published variants (README/paper mIoU) with their latency measured here and predicted by the LUT.",
    }.get(data.mode, "")
    subtitle = " ".join(x for x in (source, target_notes,
                                     f"{dropped} label(s) hidden to avoid overlap (hover shows every point)." if dropped else "") if x)
    fig.update_layout(**base_layout(frame, title=f"Latency on {data.device} vs mIoU", subtitle=subtitle))
    fig.update_layout(
        xaxis=dict(axis_style(f"latency on {data.device} (ms, batch 1)", x_range), type="log" if log else "linear",
                   **(log_ticks(*x_range) if log else {})),
        yaxis=axis_style(data.y_title, y_range),
        shapes=shapes,
        annotations=annotations(placed, font_size=10, x_log=log) + _target_labels(data, x_log=log),
        legend=dict(groupclick="toggleitem"),
    )
    return fig


def _targets(data: ParetoData) -> tuple[list[dict], str]:
    shapes = []
    for metric, op, bound in data.targets:
        line = dict(type="line", line=dict(color="#222", width=1.5, dash="dash"))
        if metric == "latency":
            shapes.append({**line, "xref": "x", "yref": "paper", "x0": bound, "x1": bound, "y0": 0, "y1": 1})
        else:
            shapes.append({**line, "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": bound, "y1": bound})
    undrawn = data.undrawn_targets
    note = f"Targets not drawable on these axes: {', '.join(undrawn)}." if undrawn else ""
    return shapes, note


def _target_labels(data: ParetoData, *, x_log: bool) -> list[dict]:
    out = []
    for metric, op, bound in data.targets:
        text = f"target: {metric} {op} {bound:g}{' ms' if metric == 'latency' else '%'}"
        if metric == "latency":
            out.append(dict(x=np.log10(bound) if x_log else bound, y=1, xref="x", yref="paper", text=text, showarrow=False, xanchor="left", yanchor="top",
                            xshift=4, yshift=-2, font=dict(size=11, color="#222"), bgcolor="rgba(255,255,255,0.8)"))
        else:
            out.append(dict(x=0, y=bound, xref="paper", yref="y", text=text, showarrow=False, xanchor="left", yanchor="bottom",
                            xshift=4, font=dict(size=11, color="#222"), bgcolor="rgba(255,255,255,0.8)"))
    return out
