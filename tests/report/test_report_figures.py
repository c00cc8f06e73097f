"""The render half: what each figure shows (traces, markers, axes, titles), from known tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ffnet_nas.reports import evidence, inputs as inp
from ffnet_nas.reports.build import paper_report_figures
from ffnet_nas.reports.pareto import render_pareto
from ffnet_nas.reports.pareto_data import pareto_data
from ffnet_nas.reports.style import GREY

from tests.helpers.report import make_workdir, write_lut


def _inputs(root: Path) -> inp.ReportInputs:
    return inp.ReportInputs(lut_dir=root / "lut", library_dir=root / "library", search_dir=root / "search",
                            evaluated_path=root / "evaluated.csv", predictor_dir=root / "predictor")


def test_paper_figures_draw_families_baselines_and_three_stage_apart():
    figs = {f.slug: f for f in paper_report_figures()}
    assert set(figs) == {"paper_gpu_large", "paper_gpu_small", "paper_mobile"}
    large = figs["paper_gpu_large"].figure
    assert "Fig. 3" in large.layout.title.text and "Table 2" in large.layout.title.subtitle.text
    assert large.layout.xaxis.title.text.endswith("(ms)") and "FP32" in large.layout.xaxis.title.text
    assert "FP16" in large.layout.xaxis2.title.text and large.layout.yaxis.title.text == "Cityscapes val mIoU (%)"
    first_panel = [t for t in large.data if t.xaxis == "x"]
    by_name = {t.name: t for t in first_panel}
    assert set(by_name["FFNet-N CBB (3-stage)"].marker.symbol) == {"diamond"}
    assert set(by_name["FFNet AAA"].marker.symbol) == {"circle"} and by_name["FFNet AAA"].mode == "lines+markers"
    # A family line runs by increasing depth: AAA 34 < 56 < 86 < 134 < 150 have increasing fp32 latency.
    assert list(by_name["FFNet AAA"].x) == [152.0, 135.0, 105.0, 82.0, 67.0]
    hrnet = by_name["HRNetv2 — baseline"]
    assert hrnet.marker.color == GREY and hrnet.mode == "markers"
    assert len({t.marker.color for t in first_panel if "baseline" not in t.name}) == len([t for t in first_panel if "baseline" not in t.name])
    mobile = figs["paper_mobile"].figure
    assert "S21" in mobile.layout.xaxis.title.text and "INT8" in mobile.layout.xaxis.title.text
    assert sum(len(t.x) for t in mobile.data) == 19
    bbb = next(t for t in mobile.data if t.name == "FFNet-S BBB")
    # 22S and 30S are in the paper's table but were never released: hollow.
    assert list(bbb.marker.symbol) == ["circle", "circle", "circle", "circle-open", "circle-open"]
    for f in figs.values():
        assert f.figure.layout.annotations  # point labels were placed (non-overlap: test_report_compute)


def test_pareto_with_search_front_target_and_filled_vs_hollow(tmp_path):
    root = make_workdir(tmp_path / "w")
    data = pareto_data(_inputs(root))
    assert data.mode == "search" and data.targets == (("latency", "<", 20.0),) and not data.missing
    fig = render_pareto(data)
    front = [t for t in fig.data if t.name and t.name.startswith("search front (predicted)")]
    assert len(front) == 1 and front[0].line.shape == "hv"
    assert all(s.endswith("-open") for s in front[0].marker.symbol)  # predicted: hollow
    symbols = [t.marker.symbol for t in fig.data if t.x is not None and t.x[0] is not None and t.legendgroup not in ("front", "key")]
    assert any(s.endswith("-open") for s in symbols) and any(not s.endswith("-open") for s in symbols)
    assert [s.x0 for s in fig.layout.shapes] == [20.0]  # the latency target as a line
    assert "params<30M" in fig.layout.title.subtitle.text  # a target that cannot be drawn is named
    hover = " ".join(h for t in fig.data if t.hovertext for h in t.hovertext)
    for word in ("params", "MACs", "predicted:", "measured:", "segmentation_ffnet"):
        assert word in hover
    assert "Test CPU" in fig.layout.xaxis.title.text and "(ms" in fig.layout.xaxis.title.text


def test_pareto_without_search_draws_published_variants_measured_here(tmp_path):
    write_lut(tmp_path)
    data = pareto_data(_inputs(tmp_path))
    assert data.mode == "published" and [m.command for m in data.missing] == ["ffnet-nas search"]
    assert data.points["measured"].any() and (~data.points["measured"]).any()
    assert data.y_title.startswith("Cityscapes val mIoU")
    assert render_pareto(data) is not None
    empty = pareto_data(_inputs(tmp_path / "nothing"))
    assert empty.mode == "empty" and render_pareto(empty) is None and len(empty.missing) == 2


def test_lut_fidelity_figure_states_its_numbers():
    meas = np.array([10.0, 20.0, 30.0, 40.0])
    frame = pd.DataFrame({"code": list("abcd"), "source": ["random", "random", "published", "published"],
                          "name": ["", "", "segmentation_ffnet40S_BBB_mobile", "segmentation_ffnet54S_BBB_mobile"],
                          "predicted_ms": [10.5, 25.0, 29.0, 44.0], "measured_ms": meas,
                          "measured_1_ms": meas * 0.98, "measured_2_ms": meas * 1.02})
    fig, fid = evidence.lut_fidelity_figure(frame, device="Test CPU", summary={"repeatability": {"median_abs_pct": 4.0}})
    title = fig.layout.title.text
    assert "75% within ±10%" in title and "median |error| 7.5%" in title and "Spearman 1.00" in title
    assert "4.0%" in fig.layout.title.subtitle.text
    names = [t.name for t in fig.data]
    assert "±10% band" in names and "y = x (perfect)" in names
    assert {a.text for a in fig.layout.annotations} == {"40S BBB m", "54S BBB m"}


def test_predictor_search_and_library_figures(tmp_path):
    root = make_workdir(tmp_path / "w", lut=False)
    loaded, _ = inp.predictor(_inputs(root))
    fig, fid = evidence.predictor_fidelity_figure(loaded.frame, meta=loaded.meta)
    assert f"Kendall τ {fid.kendall:.2f}" in fig.layout.title.text and fid.n == 8
    search, _ = inp.search(_inputs(root))
    trials, _ = inp.search_trials(_inputs(root), search.meta["summary"])
    fig, hv = evidence.hypervolume_figure(trials)
    assert hv > 0 and np.all(np.diff(fig.data[0].y) >= 0) and "hypervolume" in fig.layout.yaxis.title.text
    lib, _ = inp.library(_inputs(root))
    fig = evidence.nsr_heatmap_figure(lib.frame)
    assert [t.type for t in fig.data] == ["heatmap"] * 5
    assert "1 block(s) not usable" in fig.layout.title.subtitle.text
    xs, ys, z = evidence.nsr_grid(lib.frame, "s8")
    assert xs == sorted(xs, key=lambda s: int(s[1:])) and np.isfinite(z).sum() == ((lib.frame["position"] == "s8") & (lib.frame["status"] == "ok")).sum()


def test_device_vs_paper_pairs_published_latencies(tmp_path):
    from ffnet_nas.reports.compare import device_vs_paper, device_vs_paper_figure
    from ffnet_nas.space.catalogue import get_variant

    write_lut(tmp_path)
    loaded, _ = inp.lut_validation(_inputs(tmp_path), "cpu-fp32-eager-b1-256x512-t2")
    frame = device_vs_paper(loaded.frame)
    # 20 non-pre_down mobile variants in the LUT; the 5 with depth 150S/86S are README-only (no paper latency).
    assert len(frame) == 15 and set(frame["paper_device"]) == {"paper S21 DSP int8"}
    row = frame[frame["name"] == "segmentation_ffnet46NS_CCC_mobile"].iloc[0]
    assert row["paper_ms"] == 12.0 and row["paper_ms"] == get_variant(row["name"]).latency_ms["paper S21 DSP int8"]
    fig, headline = device_vs_paper_figure(frame, device="Test CPU")
    assert headline.startswith("paper S21 DSP int8: Spearman") and "(n=15)" in headline
    assert "Test CPU" in fig.layout.yaxis.title.text and "(ms" in fig.layout.xaxis.title.text
