"""The compute half of the report: paper tables, label placement, fidelity and hypervolume, readers."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from ffnet_nas.space.errors import InvalidInput

from ffnet_nas.reports import inputs as inp
from ffnet_nas.reports.families import family_of_arch, short_label
from ffnet_nas.reports.labels import Panel, _crosses, place_labels
from ffnet_nas.reports.metrics import fidelity, hypervolume_history
from ffnet_nas.reports.published import paper_points
from ffnet_nas.space.arch import Arch
from ffnet_nas.stats import hypervolume, pareto_mask

from tests.helpers.report import SLUG, write_lut, write_search


# ---- the paper's tables ---------------------------------------------------------------------------

def test_paper_fig3_rows_match_table2():
    pts = paper_points("gpu_large")
    assert len(pts) == 19 and (pts["kind"] == "baseline").sum() == 3  # 16 FFNet + HRNetv2 18/32/48
    row = pts[pts["model_name"] == "segmentation_ffnet150_AAA"].iloc[0]
    assert (row["t2080ti_fp32_ms"], row["t2080ti_fp16_ms"], row["miou"]) == (152.0, 81.0, 84.4)
    assert row["family_label"] == "FFNet AAA" and row["label"] == "150"
    n = pts[pts["family_label"] == "FFNet-N CBB"]
    assert len(n) == 3 and n["three_stage"].all() and list(n.sort_values("depth")["label"]) == ["46N", "74N", "122N"]
    # Bottleneck ResNets (50/101) are a backbone kind of their own, not part of the basic-block line.
    assert set(pts.loc[pts["depth"].isin([50, 101]), "family_label"]) == {"FFNet AAA bottleneck"}


def test_paper_fig5_and_fig6_rows():
    small = paper_points("gpu_small")
    assert len(small) == 25 and set(small.loc[small["kind"] == "baseline", "family_label"]) == {"DDRNet", "FANet"}
    # dABB rows of the paper have no registered model: kept, with no code.
    dabb = small[small["family_label"] == "FFNet dABB"]
    assert len(dabb) == 2 and (dabb["model_name"] == "").all()
    mobile = paper_points("mobile")
    assert len(mobile) == 19 and (mobile["kind"] == "ffnet").all()
    assert mobile["s21_dsp_int8_ms"].min() == 12.0  # 46NS CCC
    assert set(mobile["family_label"]) == {"FFNet-S BBB", "FFNet-S BCC", "FFNet-S dBBB", "FFNet-NS CBB", "FFNet-NS CCC"}


def test_families_of_arbitrary_points():
    a = Arch.from_name("segmentation_ffnet122NS_CCC_mobile")
    assert family_of_arch(a).label == "FFNet-NS CCC mobile" and family_of_arch(a).three_stage
    assert short_label(a) == "122NS"
    odd = a.replace(widths=(48, 96, 160))
    assert family_of_arch(odd).kind == "w48.96.160" and short_label(odd) == "122"


# ---- labels ---------------------------------------------------------------------------------------

def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_labels_never_overlap_each_other_markers_or_leave_the_plot():
    rng = np.random.default_rng(0)
    panel = Panel(left=80, top=100, width=600, height=400, x_range=(0, 10), y_range=(0, 10))
    pts = [(float(x), float(y), f"{i}NS") for i, (x, y) in enumerate(rng.uniform(0.5, 9.5, (150, 2)))]
    placed, dropped = place_labels(pts, panel, marker_radius=5)
    assert placed and dropped > 0  # 150 labels do not fit in 600x400 px
    assert len(placed) + dropped == len(pts)
    for a, b in itertools.combinations(placed, 2):
        assert not _overlap(a.box, b.box)
    for p in placed:
        assert p.box[0] >= 80 and p.box[2] <= 680 and p.box[1] >= 100 and p.box[3] <= 500
        for x, y, _ in pts:
            mx, my = panel.to_px(x, y)
            assert not _overlap(p.box, (mx - 5, my - 5, mx + 5, my + 5))


def test_labels_avoid_lines_when_they_can():
    panel = Panel(left=0, top=0, width=400, height=400, x_range=(0, 10), y_range=(0, 10))
    # A horizontal line through the point to its right: the label must not go right.
    placed, _ = place_labels([(5, 5, "86S")], panel, segments=[((5, 5), (9, 5))])
    assert placed[0].xanchor != "left" or placed[0].yanchor != "middle"
    assert not _crosses(placed[0].box, panel.to_px(5, 5), panel.to_px(9, 5))
    assert _crosses((0, 0, 10, 10), (-5, 5), (15, 5)) and not _crosses((0, 0, 10, 10), (-5, 20), (15, 20))


# ---- metrics --------------------------------------------------------------------------------------

def test_fidelity_numbers():
    meas = np.array([10.0, 20.0, 30.0, 40.0])
    pred = np.array([10.5, 25.0, 29.0, 44.0])  # errors 5%, 25%, 3.3%, 10%
    f = fidelity(pred, meas)
    assert f.n == 4 and f.within_10pct == 0.75
    assert f.median_abs_pct == pytest.approx((5 + 10) / 2)
    assert f.spearman == pytest.approx(1.0) and f.kendall == pytest.approx(1.0)
    assert np.isnan(fidelity([1.0, 2.0], [1.0, 2.0]).spearman)  # too few points for a rank statistic
    # the project's one rule (ffnet_nas.stats): non-finite pairs are dropped, constant data has no rank
    f = fidelity([10.5, np.nan, 29.0, 44.0, 50.0], [10.0, 20.0, 30.0, 40.0, np.inf])
    assert f.n == 3 and f.spearman == pytest.approx(1.0)
    assert np.isnan(fidelity([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]).kendall)


def test_hypervolume_matches_a_brute_force_count():
    rng = np.random.default_rng(1)
    lat, acc = rng.uniform(1, 10, 25), rng.uniform(60, 80, 25)
    ref = (11.0, 58.0)
    gx, gy = np.meshgrid(np.linspace(1, 11, 801)[:-1] + 10 / 1600, np.linspace(58, 80, 801)[:-1] + 22 / 1600)
    dominated = np.zeros_like(gx, bool)
    for x, y in zip(lat, acc):
        dominated |= (gx >= x) & (gy <= y)
    brute = dominated.mean() * (11 - 1) * (80 - 58)
    assert hypervolume(np.column_stack([lat, acc]), reference=ref) == pytest.approx(brute, rel=0.01)
    assert pareto_mask([(1, 5), (2, 4), (3, 6)]).tolist() == [True, False, True]


def test_hypervolume_curve_is_monotone_and_ignores_infeasible():
    trial = np.arange(6)
    lat = np.array([5, 4, 3, 1, 2, 6.0])
    acc = np.array([70, 71, 72, 90, 73, 60.0])
    feasible = np.array([True, True, True, False, True, True])
    h = hypervolume_history(trial=trial[::-1], latency=lat[::-1], miou=acc[::-1], feasible=feasible[::-1])
    t, hv, ref = h.trial, h.hypervolume, h.reference
    assert t.tolist() == list(range(6)) and np.all(np.diff(hv) >= 0)
    assert hv[3] == hv[2]  # the infeasible (very good) trial adds nothing
    assert ref[0] > 6 and ref[1] < 60
    assert hv[-1] == pytest.approx(hypervolume(np.column_stack([lat, acc])[feasible], reference=ref))
    none = hypervolume_history(trial=trial, latency=lat, miou=acc, feasible=np.zeros(6, bool))
    assert none.reference == (1.0, 0.0) and not none.hypervolume.any()  # nothing feasible yet: no area


# ---- readers --------------------------------------------------------------------------------------

def test_readers_report_what_is_missing(tmp_path):
    inputs = inp.ReportInputs(lut_dir=tmp_path / "lut", library_dir=tmp_path / "library", search_dir=tmp_path / "search",
                              evaluated_path=tmp_path / "evaluated.csv", predictor_dir=tmp_path / "predictor")
    slug, missing = inp.pick_lut(inputs)
    assert slug is None and "measure-latency" in missing.sentence()
    _, missing = inp.library(inputs)
    assert "distill" in missing.command and "nsr_val" in missing.columns
    _, missing = inp.search(inputs)
    assert missing.command == "ffnet-nas search"
    (tmp_path / "library").mkdir()
    # a table that is there but damaged is not "missing": the report refuses it, naming the file
    (tmp_path / "library" / "blocks.csv").write_text("position,choice\ns8,x\n")
    with pytest.raises(InvalidInput, match=r"blocks.csv' lacks columns \['status', 'nsr_val'"):
        inp.library(inputs)
    (tmp_path / "library" / "blocks.csv").write_text("position,choice,status,nsr_val\ns8,x,ok,0.1\ns16,y,ok\n")
    with pytest.raises(InvalidInput, match=r"blocks.csv' line 3 has 3 fields"):
        inp.library(inputs)


def test_lut_picking_and_description(tmp_path):
    write_lut(tmp_path)
    inputs = inp.ReportInputs(lut_dir=tmp_path / "lut")
    assert inp.pick_lut(inputs) == (SLUG, None)
    desc = inp.describe_lut(inp.lut_meta(inputs, SLUG))
    assert desc["device"] == "cpu (Test CPU)" and desc["input size"] == "256x512" and desc["dtype"] == "fp32"
    assert "ONNX export" not in desc  # an eager table times no exported graph
    onnx_meta = {"spec": {**inp.lut_meta(inputs, SLUG)["spec"], "backend": "onnxruntime"}}
    assert inp.describe_lut(onnx_meta)["ONNX export"] == "torchscript exporter, opset 17"  # written before it was recorded
    onnx_meta["versions"] = {"onnx_exporter": "dynamo", "onnx_opset": "18", "onnx_fold_bn": "false"}
    assert inp.describe_lut(onnx_meta)["ONNX export"] == "dynamo exporter, opset 18"
    _, missing = inp.pick_lut(inp.ReportInputs(lut_dir=tmp_path / "lut", lut="nope"))
    assert SLUG in missing.command


def test_trials_come_back_from_the_optuna_journal(tmp_path):
    write_search(tmp_path, n_trials=12)
    inputs = inp.ReportInputs(search_dir=tmp_path / "search")
    loaded, _ = inp.search(inputs)
    trials, missing = inp.search_trials(inputs, loaded.meta["summary"])
    assert missing is None and len(trials) == 12 and list(trials["trial"]) == list(range(12))
    assert trials["feasible"].dtype == bool and (trials["latency_ms"] > 0).all()
    assert (trials["feasible"] == (trials["latency_ms"] < 20)).all() and trials["feasible"].nunique() == 2
    assert loaded.meta["dir"].name == "mobile.latency_lt_20"
    # a journal recorded under an older name (run: journal.log) is read where it was renamed to
    legacy = dict(loaded.meta["summary"], storage="runs/elsewhere/search/journal.log")
    assert len(inp.search_trials(inputs, legacy)[0]) == 12
    summary = dict(loaded.meta["summary"], storage="memory")
    assert inp.search_trials(inputs, summary)[0] is None
    _, missing = inp.search(inp.ReportInputs(search_dir=tmp_path / "search", study="other"))
    assert "mobile.latency_lt_20" in missing.command


def test_drawable_targets():
    assert inp.drawable_targets(["latency<25ms", "miou>=75", "params<10M"]) == [("latency", "<", 25.0), ("miou", ">=", 75.0)]
    assert json.dumps(inp.drawable_targets(None)) == "[]"
    # the search's own grammar (`parse_targets`) reads them: units convert, a rejected text is skipped
    texts = ["latency<=0.5s", "latency<banana", "miou>101", "params<10M", "latency<20ms,miou>70"]
    assert inp.drawable_targets(texts) == [("latency", "<=", 500.0), ("latency", "<", 20.0), ("miou", ">", 70.0)]
    assert inp.undrawable_targets(texts) == ["latency<banana", "miou>101", "params<10M"]
    assert inp.drawable_targets("latency<25ms") == [("latency", "<", 25.0)]  # one text, not a list of them


def test_evaluated_and_predictor_tables(tmp_path):
    from tests.helpers.report import write_evaluated_and_predictor

    write_evaluated_and_predictor(tmp_path, n=6)
    inputs = inp.ReportInputs(evaluated_path=tmp_path / "evaluated.csv", predictor_dir=tmp_path / "predictor")
    ev, missing = inp.evaluated(inputs)
    assert missing is None and len(ev) == 6 and (ev["init"] == "distilled").all()  # the random-init row is left out
    assert (ev["miou"] == ev["measured_miou"]).all()
    from_loo, _ = inp.predictor(inputs)
    assert from_loo.path.name == "loo.csv" and len(from_loo.frame) == 6
    (tmp_path / "predictor" / "loo.csv").unlink()  # older runs: accuracy.json + evaluated.csv
    from_json, _ = inp.predictor(inputs)
    assert from_json.path.name == "accuracy.json"
    merged = from_loo.frame.merge(from_json.frame, on="code")
    assert np.allclose(merged["predicted_x"], merged["predicted_y"]) and np.allclose(merged["measured_x"], merged["measured_y"])


def test_after_an_int8_run_the_tables_read_the_int8_accuracy(tmp_path):
    """run_summary.json's `accuracy` (int8_miou under an INT8 latency table) is the mIoU the figures
    show; the predictor's loo.csv then holds that column; an evaluated table without it is a Missing
    box naming the command that scores it."""
    import json

    import pandas as pd

    from tests.helpers.report import write_evaluated_and_predictor

    write_evaluated_and_predictor(tmp_path, n=6)
    table = pd.read_csv(tmp_path / "evaluated.csv")
    summary_path = tmp_path / "run_summary.json"
    summary_path.write_text(json.dumps({"budget": "quick", "space": "mobile", "device": "cpu", "accuracy": "int8_miou"}))
    inputs = inp.ReportInputs(evaluated_path=tmp_path / "evaluated.csv", predictor_dir=tmp_path / "predictor",
                              run_summary_path=summary_path)
    ev, missing = inp.evaluated(inputs)
    assert ev is None and "without column int8_miou" in missing.what and "--precision int8" in missing.command
    table.assign(int8_miou=table["measured_miou"] - 1.0).to_csv(tmp_path / "evaluated.csv", index=False)
    ev, missing = inp.evaluated(inputs)
    assert missing is None and (ev["miou"] == ev["int8_miou"]).all()
    loo = pd.read_csv(tmp_path / "predictor" / "loo.csv").rename(columns={"measured_miou": "int8_miou"})
    loo.to_csv(tmp_path / "predictor" / "loo.csv", index=False)
    loaded, _ = inp.predictor(inputs)
    assert np.allclose(loaded.frame["measured"], loo["int8_miou"])
    loo.drop(columns=["int8_miou"]).to_csv(tmp_path / "predictor" / "loo.csv", index=False)
    with pytest.raises(InvalidInput, match="neither measured_miou nor int8_miou"):
        inp.predictor(inputs)


def test_log_ticks_are_plain_numbers_inside_the_range():
    from ffnet_nas.reports.style import log_ticks

    t = log_ticks(np.log10(18), np.log10(900))
    assert t["tickvals"] == [20, 50, 100, 200, 500] and t["ticktext"] == ["20", "50", "100", "200", "500"]
    assert log_ticks(np.log10(15), np.log10(45))["tickvals"] == [20, 30, 40]  # too few 1-2-5 steps: every mantissa
    assert log_ticks(np.log10(11), np.log10(19)) == {}  # narrower still: plotly's own ticks
