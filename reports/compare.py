"""Your device vs the paper's: does the published latency ranking hold here? (compute + render)

For every published variant that the LUT validation timed on this device, its latency here is
set against the latency the paper published on its own device (Samsung S21 DSP for the mobile
models, RTX 2080Ti for the GPU ones). A high rank correlation means the paper's Fig. 3/5/6
ordering carries over to this device; a low one means the paper's Pareto front is not this
device's, which is the reason to search.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ffnet_nas.reports.evidence import short_name
from ffnet_nas.reports.labels import annotations, place_labels
from ffnet_nas.reports.style import PALETTE, Frame, axis_style, base_layout, log_ticks
from ffnet_nas.space.catalogue import get_variant
from ffnet_nas.stats import rank_correlations

# How each published latency was measured: device, precision, runtime (as the paper's tables say).
PAPER_SETTINGS = {
    "paper S21 DSP int8": ("Samsung S21 DSP", "int8", "8-bit quantized, BN folded (paper Table 4)"),
    "paper 2080Ti fp16": ("RTX 2080Ti GPU", "fp16", "runtime as in the paper's Tables 2-3"),
    "README fp16 (2080Ti)": ("RTX 2080Ti GPU", "fp16", "runtime as in the FFNet README"),
}

# Which published latency stands for each family's paper device (first one present wins).
PAPER_DEVICE = {
    "mobile": ("paper S21 DSP int8",),
    "gpu_large": ("paper 2080Ti fp16", "README fp16 (2080Ti)"),
    "gpu_small": ("paper 2080Ti fp16", "README fp16 (2080Ti)"),
}


def device_vs_paper(validation: pd.DataFrame) -> pd.DataFrame:
    """One row per published variant with both numbers: name, paper_device, paper_ms, here_ms."""
    rows = []
    pub = validation[validation["source"] == "published"] if "source" in validation else validation.iloc[0:0]
    for r in pub.to_dict("records"):
        name = r.get("name")
        if not isinstance(name, str) or not name:
            continue
        v = get_variant(name)
        label = next((k for k in PAPER_DEVICE.get(v.family, ()) if k in v.latency_ms), None)
        if label is None:
            continue
        rows.append({"name": name, "code": r["code"], "family": v.family, "paper_device": label,
                     "paper_ms": v.latency_ms[label], "here_ms": float(r["measured_ms"])})
    return pd.DataFrame(rows, columns=["name", "code", "family", "paper_device", "paper_ms", "here_ms"])


def _range(values: pd.Series, log: bool) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    if log:
        return float(np.log10(lo * 0.85)), float(np.log10(hi * 1.15))
    pad = 0.07 * max(hi - lo, 1.0)
    return max(0.0, lo - pad), hi + pad


def like_for_like(paper_devices, *, dtype: str | None, backend: str | None, device: str) -> str:
    """Precision and runtime on both sides, and what differs (plotly subtitle text, <br> between lines)."""
    lines = [f"Here: {device}, {(dtype or '?').upper()}, {backend or '?'} runtime."]
    for label in sorted(set(paper_devices)):
        name, precision, runtime = PAPER_SETTINGS.get(label, (label, "?", "as published"))
        differs = ["device"] + (["precision"] if precision != (dtype or "").lower() else []) + ["runtime"]
        lines.append(f"Paper: {name}, {precision.upper()}, {runtime}.")
        lines.append(f"They differ in {', '.join(differs)}: compare the ranking (Spearman), not the milliseconds.")
    return "<br>".join(lines)


def device_vs_paper_figure(frame: pd.DataFrame, *, device: str, dtype: str | None = None,
                           backend: str | None = None) -> tuple[go.Figure, str]:
    frame_px = Frame(width=1000, height=720, right=260, top=165)
    fig = go.Figure()
    headlines = []
    # Log axes only where the values span a wide range; a narrow one reads better linear.
    x_log = frame["paper_ms"].max() / frame["paper_ms"].min() > 5
    y_log = frame["here_ms"].max() / frame["here_ms"].min() > 5
    xr, yr = _range(frame["paper_ms"], x_log), _range(frame["here_ms"], y_log)
    panel = frame_px.panel((0, 1), xr, yr, x_log=x_log, y_log=y_log)
    label_pts = []
    for i, (paper_device, rows) in enumerate(frame.groupby("paper_device", sort=True)):
        colour = PALETTE[i % len(PALETTE)]
        rho = rank_correlations(rows["here_ms"], rows["paper_ms"]).spearman
        headlines.append(f"{paper_device}: Spearman {rho:.2f} (n={len(rows)})" if np.isfinite(rho) else f"{paper_device}: n={len(rows)}")
        fig.add_trace(go.Scatter(
            x=rows["paper_ms"], y=rows["here_ms"], mode="markers", name=f"vs {paper_device} (n={len(rows)})",
            marker=dict(color=colour, size=10, line=dict(color="white", width=1)),
            hovertext=[f"<b>{r['name']}</b><br>{r['code']}<br>{r['paper_device']}: {r['paper_ms']:.1f} ms<br>here: {r['here_ms']:.2f} ms"
                       for _, r in rows.iterrows()], hoverinfo="text"))
        label_pts += [(r["paper_ms"], r["here_ms"], short_name(r["name"]), colour) for _, r in rows.iterrows()]
    placed, dropped = place_labels(label_pts, panel, font_size=10)
    fig.update_layout(**base_layout(
        frame_px, title=f"Latency here vs as published: {'; '.join(headlines)}",
        subtitle="Each point: a published variant timed here (LUT validation, lower of 2 passes) against the latency the "
                 "paper published.<br>Spearman near 1: the paper's ranking holds here.<br>"
                 + like_for_like(frame["paper_device"], dtype=dtype, backend=backend, device=device)
                 + (f" {dropped} label(s) hidden to avoid overlap." if dropped else "")))
    fig.update_layout(
        xaxis=dict(axis_style("latency published in the paper (ms; " + ", ".join(
            f"{PAPER_SETTINGS.get(d, (d, '?', ''))[0]} {PAPER_SETTINGS.get(d, (d, '?', ''))[1].upper()}"
            for d in sorted(set(frame["paper_device"]))) + ")", xr), type="log" if x_log else "linear",
                   **(log_ticks(*xr) if x_log else {})),
        yaxis=dict(axis_style(f"latency measured here (ms; {device}, {(dtype or '?').upper()}, {backend or '?'})", yr),
                   type="log" if y_log else "linear",
                   **(log_ticks(*yr) if y_log else {})),
        annotations=annotations(placed, font_size=10, x_log=x_log, y_log=y_log),
        legend_title_text="Paper device",
    )
    return fig, "; ".join(headlines)
