"""Draw the device Pareto figure (render half of `--pareto`): latency on this device vs mIoU.

What was measured is told apart from what was predicted at a glance: filled, bold markers are
measurements on this device; hollow, faint ones are predictions (LUT latency, accuracy-predictor
mIoU), the search's front among them (a red staircase). An evaluated point that was predicted
before it was measured gets a grey arrow from the prediction to the measurement, so the
predictor's optimism is drawn, not only stated. The legend has a few groups (the front, this
workdir's own points, published variants by backbone kind, the peer designs), 3-stage backbones are
diamonds, targets dashed lines, and the run's found point and its reference are annotated.

Peer designs (NOT FFNet) are triangles in their own colour and legend entry, labelled with their
catalogue name; a peer this workdir has a latency for but no mIoU is a dotted vertical line at that
latency (its own legend entry), never a marker at an invented height.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ffnet_nas.reports.evidence import short_name
from ffnet_nas.reports.labels import annotations, place_labels
from ffnet_nas.reports.pareto_data import GROUP_FRONT, GROUP_OWN, GROUP_PEER, ParetoData
from ffnet_nas.reports.style import (
    FRONT_COLOUR,
    PALETTE,
    SYMBOL_3STAGE,
    SYMBOL_4STAGE,
    Frame,
    axis_style,
    base_layout,
    fmt_count,
    log_ticks,
    padded_range,
)

OWN_COLOUR = "#1B1B7A"  # this workdir's points: dark, apart from the published kinds' palette
PEER_COLOUR = "#7B2D8E"  # the peer designs: a purple outside the palette, so no FFNet kind shares it
SYMBOL_PEER = "triangle-up"
PEER_LATENCY_ONLY = "peer designs, NOT FFNet: latency only (no mIoU here)"
ARROW_COLOUR = "#7a7a7a"
PREDICTED_OPACITY = 0.55


def _fmt(v, unit: str = "", digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}{unit}"


def _hover(r: pd.Series) -> str:
    if r.get("peer"):
        name = f"<b>{r['peer_name'] or 'peer design'}: NOT an FFNet</b><br>"
    else:
        name = f"<b>{r['name']}</b><br>" if r["name"] else "<b>not published</b> (found by this workdir)<br>"
    paper = f"<br>published mIoU (Cityscapes val): {_fmt(r['paper_miou'], '%', 1)}" if r["paper_miou"] is not None and not pd.isna(r["paper_miou"]) else ""
    return (
        f"{name}{r['code']}<br>{r['family_label']}"
        f"<br>latency {_fmt(r['latency_ms'], ' ms')} ({r['latency_source']})"
        f"<br>mIoU {_fmt(r['miou'], '%')} ({r['miou_source']})"
        f"<br>predicted: {_fmt(r['predicted_latency_ms'], ' ms')}, {_fmt(r['predicted_miou'], '%')}"
        f" · measured: {_fmt(r['measured_latency_ms'], ' ms')}, {_fmt(r['measured_miou'], '%')}"
        f"{paper}<br>params {fmt_count(r['params'])} · MACs {fmt_count(r['macs'])}"
    )


def group_colours(groups) -> dict[str, str]:
    """The front red, this workdir's points dark blue, published kinds from the palette."""
    out = {GROUP_FRONT: FRONT_COLOUR, GROUP_OWN: OWN_COLOUR, GROUP_PEER: PEER_COLOUR}
    rest = sorted(g for g in set(groups) if g not in out)
    out.update({g: PALETTE[i % len(PALETTE)] for i, g in enumerate(rest)})
    return out


def _symbol(three_stage: bool, *, own: bool, measured: bool, peer: bool = False) -> str:
    base = SYMBOL_PEER if peer else "star" if own else (SYMBOL_3STAGE if three_stage else SYMBOL_4STAGE)
    return base if measured else f"{base}-open"


def _key_traces(data: ParetoData, pts: pd.DataFrame) -> list[go.Scatter]:
    search = data.mode == "search"
    keys = [
        ("filled, bold: measured here" + (" (mIoU and latency)" if search else " (latency)"),
         dict(color="#333", size=10, line=dict(color="#000", width=1.5))),
        ("hollow, faint: predicted" + (" (LUT latency, predictor mIoU)" if search else " (LUT latency)"),
         dict(symbol="circle-open", color="#333", size=10, line=dict(width=2), opacity=PREDICTED_OPACITY)),
        ("◆ 3-stage backbone", dict(symbol="diamond-open", color="#555", size=9)),
    ]
    if (pts["group"] == GROUP_OWN).any():
        keys.append(("★ not a published variant", dict(symbol="star-open", color="#555", size=11)))
    if (pts["group"] == GROUP_PEER).any():
        keys.append(("▲ peer design: NOT FFNet", dict(symbol=f"{SYMBOL_PEER}-open", color=PEER_COLOUR, size=11)))
    traces = [go.Scatter(x=[None], y=[None], mode="markers", name=name, marker=marker, legendgroup="key",
                         legendgrouptitle_text="Markers" if i == 0 else None, hoverinfo="skip")
              for i, (name, marker) in enumerate(keys)]
    if _arrows(pts):
        traces.append(go.Scatter(x=[None], y=[None], mode="lines", name="grey arrow: predicted → measured",
                                 line=dict(color=ARROW_COLOUR, width=1.5), legendgroup="key", hoverinfo="skip"))
    return traces


def _arrows(pts: pd.DataFrame) -> list[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1): prediction -> measurement, for evaluated points predicted before measured."""
    ev = pts[(pts["role"] == "evaluated")]
    out = []
    for _, r in ev.iterrows():
        px, py = r["predicted_latency_ms"], r["predicted_miou"]
        if px is None or py is None or pd.isna(px) or pd.isna(py):
            continue
        out.append((float(px), float(py), float(r["latency_ms"]), float(r["miou"])))
    return out


def _axis_ranges(data: ParetoData, pts: pd.DataFrame, arrows) -> tuple[bool, tuple, tuple]:
    lat = list(pts["latency_ms"].astype(float)) + [a[0] for a in arrows]
    bounds = [b for m, _, b in data.targets if m == "latency"]
    x_vals = lat + bounds
    log = min(lat) > 0 and max(lat) / min(lat) > 10
    if log:
        v = np.log10([x for x in x_vals if x > 0])
        span = max(v.max() - v.min(), 0.1)
        x_range = (v.min() - 0.05 * span, v.max() + 0.05 * span)
    else:
        x_range = padded_range(x_vals, pad=0.06, floor=0.0, min_span=0.5)
    ys = [float(v) for v in pts["miou"] if v is not None and not pd.isna(v)] + [a[1] for a in arrows] + [b for m, _, b in data.targets if m == "miou"]
    return log, x_range, padded_range(ys, pad=0.1, min_span=1.0)


def render_pareto(data: ParetoData) -> go.Figure | None:
    pts = data.points
    if pts.empty:
        return None
    frame = Frame(width=1250, height=720, right=360)
    arrows = _arrows(pts)
    log, x_range, y_range = _axis_ranges(data, pts, arrows)
    colours = group_colours(pts["group"].unique())
    fig = go.Figure(_key_traces(data, pts))
    shown: set[str] = set()
    # Predictions first (underneath), then measurements on top of them.
    others = pts[(pts["role"] != "front") & pts["miou"].notna()]
    order = sorted(others.groupby(["group", "measured", "three_stage"], sort=False),
                   key=lambda g: (bool(g[0][1]), g[0][0] == GROUP_OWN, g[0][0]))
    for (group, measured, three), sub in order:
        sub = sub.sort_values(["latency_ms"])
        own, peer = group == GROUP_OWN, group == GROUP_PEER
        colour = colours[group]
        fig.add_trace(go.Scatter(
            x=sub["latency_ms"], y=sub["miou"], mode="markers",
            name=group, legendgroup=group, showlegend=group not in shown,
            opacity=1.0 if measured else PREDICTED_OPACITY,
            marker=dict(symbol=_symbol(bool(three), own=own, measured=bool(measured), peer=peer),
                        size=(15 if own or peer else 12) if measured else (11 if peer else 9),
                        color=colour, line=dict(width=1.5, color="#111" if measured else colour)),
            hovertext=[_hover(r) for _, r in sub.iterrows()], hoverinfo="text"))
        shown.add(group)
    latency_only = pts[(pts["role"] == "peer") & pts["miou"].isna()].sort_values("latency_ms")
    if not latency_only.empty:
        fig.add_trace(_latency_only_trace(latency_only, y_range))
    front = pts[pts["role"] == "front"].sort_values("latency_ms")
    if not front.empty:
        fig.add_trace(go.Scatter(
            x=front["latency_ms"], y=front["miou"], mode="lines+markers", name=f"{GROUP_FRONT}, {len(front)} points",
            opacity=PREDICTED_OPACITY, line=dict(color=FRONT_COLOUR, width=1.5, shape="hv", dash="dot"),
            # a peer design on the front keeps its triangle: the front may mix FFNets and peers
            marker=dict(symbol=[f"{SYMBOL_PEER if bool(p) else SYMBOL_3STAGE if t else SYMBOL_4STAGE}-open"
                                for t, p in zip(front["three_stage"], front["peer"].fillna(False))], size=8,
                        color=FRONT_COLOUR, line=dict(width=1.5)),
            hovertext=[_hover(r) for _, r in front.iterrows()], hoverinfo="text", legendgroup="front",
            legendgrouptitle_text="Search"))
    shapes, target_notes = _targets(data)
    panel = frame.panel((0, 1), x_range, y_range, x_log=log)
    highlights = _highlights(data, pts, log)
    special = {c for c in (data.found_code, data.reference_code) if c}
    measured_pub = pts[(pts["role"] == "evaluated") & pts["published"] & ~pts["code"].isin(special)]
    label_pts = [(r["latency_ms"], r["miou"], short_name(r["name"]) or r["label"], colours[r["group"]])
                 for _, r in measured_pub.sort_values("miou", ascending=False).iterrows()]
    # every placed peer carries its catalogue name (or its head), so no reader takes it for an FFNet
    peers = pts[(pts["group"] == GROUP_PEER) & pts["miou"].notna() & ~pts["code"].isin(special)]
    label_pts += [(r["latency_ms"], r["miou"], f"{r['peer_name'] or r['label']} (not FFNet)", PEER_COLOUR)
                  for _, r in peers.sort_values("miou", ascending=False).iterrows()]
    drawn = pts[pts["miou"].notna()]
    placed, dropped = place_labels(label_pts, panel, obstacles=list(zip(drawn["latency_ms"], drawn["miou"])), font_size=10)
    fig.update_layout(**base_layout(frame, title=f"Latency on {data.device} vs {data.accuracy_label}: measured (filled) vs predicted (hollow)",
                                    subtitle=_subtitle(data, target_notes, dropped)))
    fig.update_layout(
        xaxis=dict(axis_style(f"latency on {data.device} (ms, batch 1)", x_range), type="log" if log else "linear",
                   **(log_ticks(*x_range) if log else {})),
        yaxis=axis_style(data.y_title, y_range),
        shapes=shapes,
        annotations=_arrow_annotations(arrows, log) + annotations(placed, font_size=10, x_log=log)
        + _target_labels(data, x_log=log) + _latency_only_labels(latency_only, x_log=log) + highlights,
        legend=dict(groupclick="toggleitem"),
    )
    return fig


def _latency_only_trace(rows: pd.DataFrame, y_range: tuple[float, float]) -> go.Scatter:
    """One dotted vertical line per peer with a latency here but no mIoU (one legend entry)."""
    xs, ys, hover = [], [], []
    for _, r in rows.iterrows():
        xs += [r["latency_ms"], r["latency_ms"], None]
        ys += [y_range[0], y_range[1], None]
        hover += [_hover(r)] * 2 + [None]
    return go.Scatter(x=xs, y=ys, mode="lines", name=PEER_LATENCY_ONLY, legendgroup=GROUP_PEER,
                      line=dict(color=PEER_COLOUR, width=1.5, dash="dot"), opacity=PREDICTED_OPACITY,
                      hovertext=hover, hoverinfo="text")


def _latency_only_labels(rows: pd.DataFrame, *, x_log: bool) -> list[dict]:
    return [dict(x=float(np.log10(r["latency_ms"])) if x_log else float(r["latency_ms"]), y=0, xref="x", yref="paper",
                 text=f"{r['peer_name']} (not FFNet)", textangle=-90, showarrow=False, xanchor="right", yanchor="bottom",
                 font=dict(size=10, color=PEER_COLOUR)) for _, r in rows.iterrows()]


def _subtitle(data: ParetoData, target_notes: str, dropped: int) -> str:
    source = {
        "search": "Front and published variants: predicted (hollow). Evaluated points: measured (filled); grey arrows from what was predicted.",
        "published": "No search yet: published variants (README/paper mIoU) with their latency measured here and predicted by the LUT.",
    }.get(data.mode, "")
    bias = ""
    if data.miou_bias is not None:
        word = "overrates" if data.miou_bias > 0 else "underrates"
        bias = (f"<br>On the {data.n_bias} evaluated point(s) predicted before they were measured, the accuracy predictor "
                f"{word} mIoU by {abs(data.miou_bias):.1f} points on average: read the hollow front with that in mind.")
    pts = data.points
    peers = ""
    if not pts.empty and (pts["group"] == GROUP_PEER).any():
        peers = ("<br>Purple triangles: peer designs, NOT FFNet (filled: evaluated here; hollow: predicted)"
                 + ("; dotted lines: a peer's latency here with no mIoU." if (pts["role"] == "peer").any() and pts.loc[pts["role"] == "peer", "miou"].isna().any() else ".")
                 + (f" {len(data.peer_notes)} peer point(s) not placed: the latency table lacks their units." if data.peer_notes else ""))
    extra = " ".join(x for x in (target_notes, f"{dropped} label(s) hidden to avoid overlap." if dropped else "") if x)
    return source + bias + peers + (f"<br>{extra}" if extra else "")


def _arrow_annotations(arrows, log: bool) -> list[dict]:
    tx = (lambda v: float(np.log10(v))) if log else float
    return [dict(x=tx(x1), y=y1, ax=tx(x0), ay=y0, xref="x", yref="y", axref="x", ayref="y", text="", showarrow=True,
                 arrowhead=2, arrowsize=1, arrowwidth=1.3, arrowcolor=ARROW_COLOUR, standoff=7, opacity=0.8)
            for x0, y0, x1, y1 in arrows]


def _highlights(data: ParetoData, pts: pd.DataFrame, log: bool) -> list[dict]:
    """Bold call-outs for the run's verdict: the point found and the published reference."""
    out = []
    measured = pts[pts["role"] == "evaluated"]
    for code, label, ay in ((data.found_code, "found", -46), (data.reference_code, "reference", 46)):
        row = measured[measured["code"] == code]
        if not code or row.empty:
            continue
        r = row.iloc[0]
        who = short_name(data.reference_name) if label == "reference" and data.reference_name else ""
        text = f"<b>{label}{': ' + who if who else ''}</b><br>{r['miou']:.1f}% at {r['latency_ms']:.1f} ms (measured)"
        x = float(np.log10(r["latency_ms"])) if log else float(r["latency_ms"])
        out.append(dict(x=x, y=float(r["miou"]), xref="x", yref="y", text=text, showarrow=True, arrowhead=0,
                        arrowwidth=1.5, arrowcolor="#111", ax=0, ay=ay, font=dict(size=12, color="#111"),
                        bgcolor="rgba(255,255,240,0.95)", bordercolor="#111", borderwidth=1, align="left"))
    return out


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
