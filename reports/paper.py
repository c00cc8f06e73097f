"""Draw the paper's Fig. 3 / 5 / 6 from `published.paper_points` (the render half of `--paper`).

One panel per latency column of the table (GPU: RTX 2080Ti FP32 and FP16 side by side; mobile:
S21 DSP INT8). Families are coloured lines joining increasing depth, 3-stage backbones use a
diamond marker, baselines are grey.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ffnet_nas.reports.labels import annotations, place_labels
from ffnet_nas.reports.published import PaperFigure, paper_figure, paper_points
from ffnet_nas.reports.style import (
    BASELINE_SYMBOLS,
    GREY,
    SYMBOL_3STAGE,
    SYMBOL_4STAGE,
    Frame,
    axis_style,
    base_layout,
    family_colours,
    fmt_count,
    padded_range,
)

Y_TITLE = "Cityscapes val mIoU (%)"


def paper_figure_for(key: str) -> go.Figure:
    """Convenience: compute + render for one of 'gpu_large', 'gpu_small', 'mobile'."""
    return render_paper_figure(paper_points(key), paper_figure(key))


def render_paper_figure(points: pd.DataFrame, spec: PaperFigure) -> go.Figure:
    columns = spec.latency_columns
    frame = Frame(width=1450 if len(columns) > 1 else 1150, height=640)
    domains = frame.domains(len(columns))
    fig = go.Figure()
    ffnet = points[points["kind"] == "ffnet"]
    colours = family_colours(ffnet["family"])
    baseline_symbols = {f: BASELINE_SYMBOLS[i % len(BASELINE_SYMBOLS)] for i, f in enumerate(dict.fromkeys(points.loc[points["kind"] == "baseline", "family"]))}
    y_range = padded_range(points["miou"], pad=0.07)
    notes = []
    layout_annotations: list[dict] = []
    for i, ((column, x_title), domain) in enumerate(zip(columns, domains)):
        xa, ya = ("x", "y") if i == 0 else (f"x{i + 1}", f"y{i + 1}")
        usable = points[points[column].notna()] if column in points else points.iloc[0:0]
        x_range = padded_range(usable[column], pad=0.06, floor=0.0)
        for family, rows in usable.groupby("family", sort=False):
            is_base = rows["kind"].iloc[0] == "baseline"
            # FFNet lines follow depth (the paper's reading); baselines have no common depth axis.
            # Deepest first: plotly's legend shows the first point's marker, and the deepest is always released.
            rows = rows.sort_values(column if is_base else ["depth", column], ascending=is_base)
            fig.add_trace(_trace(rows, column, xa, ya, colour=GREY if is_base else colours[family],
                                 symbol=baseline_symbols.get(family) if is_base else None,
                                 show_legend=i == 0))
        panel = frame.panel(domain, x_range, y_range)
        label_colour = {f: ("#555" if f in baseline_symbols else colours[f]) for f in usable["family"]}
        pts = [(r[column], r["miou"], r["label"], label_colour[r["family"]]) for _, r in usable.sort_values("miou", ascending=False).iterrows()]
        placed, dropped = place_labels(pts, panel, segments=_segments(usable, column))
        layout_annotations += annotations(placed, xref=xa, yref=ya)
        if dropped:
            notes.append(f"{dropped} label(s) hidden to avoid overlap in panel {i + 1}: hover to see them")
        fig.update_layout(**{
            ("xaxis" if i == 0 else f"xaxis{i + 1}"): dict(axis_style(x_title, x_range), domain=list(domain), anchor=ya),
            ("yaxis" if i == 0 else f"yaxis{i + 1}"): dict(axis_style(Y_TITLE if i == 0 else "", y_range), anchor=xa),
        })
    subtitle = spec.note + " Lines join one family by increasing depth; ◆ = 3-stage backbone."
    if ((points["kind"] == "ffnet") & (points["model_name"] == "")).any():
        subtitle += "<br>Hollow: paper rows whose model was not released in the reference code."
    if notes:
        subtitle += " " + "; ".join(notes) + "."
    fig.update_layout(**base_layout(frame, title=f"Paper Fig. {spec.number} (re-drawn): {spec.title}", subtitle=subtitle))
    fig.update_layout(annotations=layout_annotations, legend_title_text="Family (point label = depth)")
    return fig


def _segments(usable: pd.DataFrame, column: str) -> list:
    out = []
    for _, rows in usable[usable["kind"] == "ffnet"].groupby("family", sort=False):
        xy = rows.sort_values(["depth", column])[[column, "miou"]].to_numpy()
        out += [(tuple(a), tuple(b)) for a, b in zip(xy[:-1], xy[1:])]
    return out


def _trace(rows: pd.DataFrame, column: str, xa: str, ya: str, *, colour: str, symbol: str | None, show_legend: bool) -> go.Scatter:
    first = rows.iloc[0]
    is_base = symbol is not None
    three = bool(first["three_stage"])
    name = first["family_label"] + (" (3-stage)" if three else "") + (" — baseline" if is_base else "")
    hover = [
        f"<b>{r['display_name']}</b> {'' if is_base else r['family_label']}<br>"
        f"{r['model_name'] or ('no published code' if not is_base else 'baseline (not FFNet)')}<br>"
        f"mIoU {r['miou']:.1f}% · {r[column]:.1f} ms<br>"
        f"params {fmt_count(r.get('params'))} · MACs {fmt_count(r.get('macs'))} · input {r['input_hw']}"
        for _, r in rows.iterrows()
    ]
    return go.Scatter(
        x=rows[column],
        y=rows["miou"],
        xaxis=xa,
        yaxis=ya,
        mode="markers" if is_base else "lines+markers",
        name=name,
        legendgroup=first["family"],
        showlegend=show_legend,
        line=dict(color=colour, width=1.5, dash="dot" if is_base else "solid"),
        marker=dict(
            # Paper rows whose model was never released (30S/22S, dABB) are hollow.
            symbol=symbol or [(SYMBOL_3STAGE if three else SYMBOL_4STAGE) + ("" if m else "-open") for m in rows["model_name"]],
            size=10 if three else 9,
            color=colour,
            line=dict(color="white", width=1),
        ),
        hovertext=hover,
        hoverinfo="text",
    )
