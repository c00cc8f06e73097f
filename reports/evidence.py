"""Evidence figures (render): LUT fidelity, predictor fidelity, search progress, block library.

Each `*_figure` takes plain tables (see `inputs.py`) and returns a plotly Figure whose title
carries the headline numbers, so a PNG on its own still says how good the evidence is.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ffnet_nas.reports.labels import annotations, place_labels
from ffnet_nas.reports.metrics import Fidelity, fidelity, hypervolume_history
from ffnet_nas.reports.style import FRONT_COLOUR, GREY, PALETTE, Frame, axis_style, base_layout, log_ticks, padded_range

SOURCE_COLOURS = {"random": PALETTE[0], "published": PALETTE[1]}


def _log_range(values, pad: float = 0.06) -> tuple[float, float]:
    v = np.log10(np.asarray([x for x in values if x > 0], float))
    lo, hi = float(v.min()), float(v.max())
    span = max(hi - lo, 0.1)
    return lo - pad * span, hi + pad * span


def _identity_and_band(lo: float, hi: float, band: float | None) -> list[go.Scatter]:
    xs = np.geomspace(lo, hi, 50) if lo > 0 else np.linspace(lo, hi, 50)
    traces = []
    if band:
        traces.append(go.Scatter(
            x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([xs * (1 + band), (xs * (1 - band))[::-1]]),
            fill="toself", fillcolor="rgba(0,114,178,0.10)", line=dict(width=0), hoverinfo="skip",
            name=f"±{band * 100:.0f}% band"))
    traces.append(go.Scatter(x=xs, y=xs, mode="lines", line=dict(color="#444", dash="dash", width=1),
                             hoverinfo="skip", name="y = x (perfect)"))
    return traces


def lut_fidelity_figure(frame: pd.DataFrame, *, device: str, summary: dict | None = None) -> tuple[go.Figure, Fidelity]:
    """Predicted (calibrated LUT sum) vs measured end-to-end latency, one point per validated arch.

    The horizontal error bar is half the gap between the two independent measurement passes:
    the ruler's own spread, against which the prediction's error should be read.
    """
    fid = fidelity(frame["predicted_ms"], frame["measured_ms"])
    both = pd.concat([frame["predicted_ms"], frame["measured_ms"]])
    log = both.min() > 0 and both.max() / both.min() > 8
    frame_px = Frame(width=1000, height=700, right=230)
    rng = _log_range(both) if log else padded_range(both, floor=0.0, min_span=0.5)
    lo, hi = (10 ** rng[0], 10 ** rng[1]) if log else rng
    fig = go.Figure(_identity_and_band(max(lo, 1e-6) if log else lo, hi, 0.10))
    spread = (frame["measured_2_ms"] - frame["measured_1_ms"]).abs() / 2 if {"measured_1_ms", "measured_2_ms"} <= set(frame.columns) else None
    for source, rows in frame.groupby("source", sort=False):
        colour = SOURCE_COLOURS.get(source, PALETTE[2])
        hover = [
            f"<b>{r.get('name') or ''}</b><br>{r['code']}<br>predicted {r['predicted_ms']:.2f} ms · measured {r['measured_ms']:.2f} ms"
            + (f"<br>error {r['error_pct']:+.1f}%" if "error_pct" in r else "")
            + (f"<br>passes {r['measured_1_ms']:.2f} / {r['measured_2_ms']:.2f} ms" if "measured_1_ms" in r else "")
            for _, r in rows.iterrows()
        ]
        fig.add_trace(go.Scatter(
            x=rows["measured_ms"], y=rows["predicted_ms"], mode="markers", name=f"{source} points (n={len(rows)})",
            marker=dict(color=colour, size=9, line=dict(color="white", width=1)),
            error_x=dict(type="data", array=spread.loc[rows.index], color=colour, thickness=1, width=0) if spread is not None else None,
            hovertext=hover, hoverinfo="text"))
    if "raw_sum_ms" in frame:
        fig.add_trace(go.Scatter(x=frame["measured_ms"], y=frame["raw_sum_ms"], mode="markers", name="raw LUT sum (before calibration)",
                                 marker=dict(symbol="circle-open", color=GREY, size=8), visible="legendonly", hoverinfo="skip"))
    panel = frame_px.panel((0, 1), rng, rng, x_log=log, y_log=log)
    pub = frame[frame["source"] == "published"]
    pts = [(r["measured_ms"], r["predicted_ms"], short_name(r.get("name", "")), SOURCE_COLOURS["published"]) for _, r in pub.iterrows()]
    placed, _ = place_labels(pts, panel, obstacles=list(zip(frame["measured_ms"], frame["predicted_ms"])), font_size=10)
    ruler = ""
    if summary and summary.get("repeatability"):
        rep = summary["repeatability"]
        ruler = f"Ruler: the two measurement passes differ by a median {rep.get('median_abs_pct', float('nan')):.1f}% (error bars: half that gap). "
    cal = (summary or {}).get("calibration") or {}
    cal_text = f"Calibration: measured ≈ {cal['a']:.3f} × sum + {cal['b']:.2f} ms on {cal.get('n_points', '?')} points. " if "a" in cal and "b" in cal else ""
    fig.update_layout(**base_layout(frame_px, title=f"LUT fidelity on {device}: {fid.headline()}",
                                    subtitle=ruler + cal_text))
    kind = "log" if log else "linear"
    ticks = log_ticks(*rng) if log else {}
    fig.update_layout(
        xaxis=dict(axis_style("measured end-to-end latency (ms, mean of 2 passes)", rng), type=kind, **ticks),
        yaxis=dict(axis_style("predicted latency (ms, calibrated LUT sum)", rng), type=kind, **ticks),
        annotations=annotations(placed, font_size=10, x_log=log, y_log=log),
        legend_title_text="Points",
    )
    return fig, fid


def short_name(name) -> str:
    """'segmentation_ffnet40S_BBB_mobile' -> '40S BBB m'."""
    if not isinstance(name, str) or not name:
        return ""
    m = re.match(r"segmentation_ffnet(\d+[A-Z]*)_(d?[ABC]{3})(_mobile)?(_pre_down)?", name)
    if not m:
        return name
    return f"{m.group(1)} {m.group(2)}" + (" m" if m.group(3) else "") + (" pd" if m.group(4) else "")


def predictor_fidelity_figure(frame: pd.DataFrame, *, meta: dict | None = None, out_of_sample: pd.DataFrame | None = None,
                              benchmark: pd.DataFrame | None = None, unit: str = "mIoU") -> tuple[go.Figure, Fidelity]:
    """Predicted vs measured mIoU: leave-one-out on the predictor's design points (circles), and
    out of sample (squares): the evaluated points, predicted before they were measured; plus
    the held-out benchmark (diamonds) when the workdir has one. Returns the LOO fidelity."""
    fid = fidelity(frame["predicted"], frame["measured"])
    sets = [("leave-one-out (design points)", frame, "circle", PALETTE[0], "predicted (LOO)")]
    if out_of_sample is not None and len(out_of_sample):
        sets.append(("out of sample (evaluated after the fit)", out_of_sample, "square", PALETTE[1], "predicted before measuring"))
    if benchmark is not None and len(benchmark):
        sets.append(("held-out benchmark", benchmark, "diamond", PALETTE[2], "predicted (held out)"))
    frame_px = Frame(width=1000, height=700, right=300, top=140)
    both = pd.concat([pd.concat([f["predicted"], f["measured"]]) for _, f, *_ in sets])
    rng = padded_range(both, min_span=1.0)
    fig = go.Figure(_identity_and_band(rng[0], rng[1], None))
    headlines = [f"LOO {fid.headline(unit='mIoU points', relative=False)}"]
    for name, f, symbol, colour, said in sets:
        fig.add_trace(go.Scatter(
            x=f["measured"], y=f["predicted"], mode="markers", name=f"{name} (n={len(f)})",
            marker=dict(symbol=symbol, color=colour, size=11, line=dict(color="white", width=1)),
            hovertext=[f"{c}<br>measured {m:.2f}% · {said} {p:.2f}%" for c, m, p in zip(f["code"], f["measured"], f["predicted"])],
            hoverinfo="text"))
        if f is not frame:
            oos = fidelity(f["predicted"], f["measured"])
            bias = float(np.mean(f["predicted"] - f["measured"]))
            headlines.append(f"{name.split(' (')[0]}: n={oos.n}, MAE {oos.mae:.2f}, bias {bias:+.2f} points")
    alpha = (meta or {}).get("alpha")
    fig.update_layout(**base_layout(
        frame_px,
        title=f"Accuracy predictor: {headlines[0]}",
        subtitle="<br>".join([*(f"<b>{h}</b>" for h in headlines[1:]),
                              "Leave-one-out: each design point predicted by a model fitted without it.",
                              "Out of sample: points predicted when the search or a refine round chose them, measured "
                              "afterwards (the real test)." + (f" Ridge strength α={alpha:g}." if alpha is not None else "")])))
    # `unit`: "INT8 mIoU" after an INT8 run (the accuracy the predictor learned)
    fig.update_layout(xaxis=axis_style(f"measured {unit} (%, full fine-tune + evaluation)", rng),
                      yaxis=axis_style(f"predicted {unit} (%)", rng),
                      legend_title_text="Points")
    return fig, fid


def hypervolume_figure(trials: pd.DataFrame, *, targets_text: str = "") -> tuple[go.Figure, float]:
    """Hypervolume of the feasible front after each trial (higher = a better front)."""
    history = hypervolume_history(trial=trials["trial"], latency=trials["latency_ms"], miou=trials["miou"],
                                  feasible=trials.get("feasible"))
    t, hv, ref = history.trial, history.hypervolume, history.reference
    frame_px = Frame(width=1000, height=560, right=60)
    fig = go.Figure(go.Scatter(x=t, y=hv, mode="lines", line=dict(color=FRONT_COLOUR, width=2, shape="hv"),
                               name="hypervolume", hovertemplate="trial %{x}<br>hypervolume %{y:.3g}<extra></extra>"))
    final = float(hv[-1]) if len(hv) else 0.0
    reach = int(t[np.argmax(hv >= 0.99 * final)]) if final > 0 else 0
    fig.update_layout(**base_layout(
        frame_px,
        title=f"Search progress: hypervolume over {len(t)} trials (99% of the final value by trial {reach})",
        subtitle=f"Area dominated by the feasible front (predicted latency ms × predicted mIoU points), "
        f"reference point {ref[0]:.2f} ms / {ref[1]:.2f}%." + (f" Targets: {targets_text}." if targets_text else "")))
    fig.update_layout(showlegend=False, xaxis=axis_style("trial number", padded_range(t, pad=0.02)),
                      yaxis=axis_style("hypervolume (ms × mIoU points)", padded_range(hv, pad=0.05, floor=0.0)))
    return fig, final


_DEPTH = re.compile(r"\.d(\d+)\.")


def nsr_grid(blocks: pd.DataFrame, position: str) -> tuple[list[str], list[str], np.ndarray]:
    """(x labels, y labels, NSR matrix) for one position: x = depth (or seg head), y = the rest."""
    rows = blocks[(blocks["position"] == position) & (blocks["status"] == "ok")]
    cells: dict[tuple[str, str], float] = {}
    for choice, nsr in zip(rows["choice"], rows["nsr_val"]):
        m = _DEPTH.search(choice + ".")
        head = re.match(r"^(up[ABC])-(seg[ABC])-(\w+)$", choice)
        if m:
            x, y = f"d{m.group(1)}", _DEPTH.sub(".", choice + ".", count=1).rstrip(".")
        elif head:
            x, y = head.group(2), f"{head.group(1)} {head.group(3)}"
        else:
            x, y = "—", choice
        cells[(x, y)] = float(nsr)
    xs = sorted({k[0] for k in cells}, key=lambda s: (int(s[1:]) if s[1:].isdigit() else 0, s))
    ys = sorted({k[1] for k in cells})
    z = np.full((len(ys), len(xs)), np.nan)
    for (x, y), v in cells.items():
        z[ys.index(y), xs.index(x)] = v
    return xs, ys, z


def nsr_heatmap_figure(blocks: pd.DataFrame, *, positions=("s4", "s8", "s16", "s32", "head")) -> go.Figure:
    """Held-out NSR of every distilled block, one heat map per position (log colour scale)."""
    from plotly.subplots import make_subplots

    present = [p for p in positions if ((blocks["position"] == p) & (blocks["status"] == "ok")).any()]
    grids = {p: nsr_grid(blocks, p) for p in present}
    heights = [max(len(grids[p][1]), 1) for p in present]
    row_px, gap_px = 42, 78  # the gap holds the x tick labels of one panel and the title of the next
    plot_px = row_px * sum(heights) + gap_px * (len(present) - 1)
    fig = make_subplots(rows=len(present), cols=1, subplot_titles=[f"position {p}" for p in present],
                        row_heights=heights, vertical_spacing=gap_px / plot_px if len(present) > 1 else 0)
    vals = blocks.loc[(blocks["status"] == "ok") & (blocks["nsr_val"] > 0), "nsr_val"]
    zmin, zmax = (math.log10(vals.min()), math.log10(vals.max())) if len(vals) else (-2, 0)
    ticks = [m * 10.0 ** e for e in range(math.floor(zmin), math.ceil(zmax) + 1) for m in (1, 2, 5)
             if zmin - 1e-9 <= math.log10(m * 10.0 ** e) <= zmax + 1e-9] or [10 ** zmin]
    for i, p in enumerate(present, start=1):
        xs, ys, z = grids[p]
        text = np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.2g}")(z)
        fig.add_trace(go.Heatmap(
            x=xs, y=ys, z=np.log10(np.where(z > 0, z, np.nan)), text=text, texttemplate="%{text}",
            zmin=zmin, zmax=zmax, colorscale="Viridis", reversescale=True, showscale=i == 1,
            colorbar=dict(title=dict(text="NSR<br>(log scale)"), tickvals=[math.log10(t) for t in ticks], ticktext=[f"{t:g}" for t in ticks]),
            hovertemplate="%{y} %{x}<br>NSR %{text}<extra></extra>"), row=i, col=1)
    failed = int((blocks["status"] != "ok").sum())
    frame_px = Frame(width=1000, height=max(420, plot_px + 100 + 75), right=120)
    fig.update_layout(**base_layout(
        frame_px,
        title=f"Block library: held-out NSR of {int((blocks['status'] == 'ok').sum())} distilled blocks (lower = closer to the teacher)",
        subtitle="NSR = ||student − teacher||² / ||teacher||² on held-out images. Columns: depth (stages) or seg head; rows: the rest of the choice."
        + (f" {failed} block(s) not usable (failed or unfinished) are left blank." if failed else "")))
    fig.update_layout(showlegend=False)
    return fig
