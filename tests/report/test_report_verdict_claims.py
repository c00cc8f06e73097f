"""The report's verdict, the paper's claims checked here, and the Pareto figure's measured vs
predicted encoding, from known tables (compute and render halves, no browser)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ffnet_nas.reports import claims, inputs as inp, verdict
from ffnet_nas.reports.build import build_report, claim_inputs
from ffnet_nas.reports.pareto import render_pareto
from ffnet_nas.reports.pareto_data import GROUP_OWN, pareto_data
from ffnet_nas.reports.sketch import sketch, sketch_svg
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.catalogue import get_variant

from tests.helpers.report import make_workdir

FOUND = "stemC-basic-d6.12.8-w64.128.256-s2-upC-segC-nearest"  # not a published variant
REF = "segmentation_ffnet74NS_CCC_mobile_pre_down"


def _inputs(root: Path, **kw) -> inp.ReportInputs:
    return inp.ReportInputs(lut_dir=root / "lut", library_dir=root / "library", search_dir=root / "search",
                            evaluated_path=root / "evaluated.csv", predictor_dir=root / "predictor",
                            run_summary_path=root / "run_summary.json", **kw)


def _summary(found_miou=47.6, ref_miou=35.1, beats=True) -> dict:
    ref_code = get_variant(REF).arch.code
    return {
        "budget": "quick", "space": "mobile", "device": "Test CPU", "target": "latency<=46.8ms", "reference": REF,
        "best": {"code": FOUND, "measured_miou": found_miou, "held_out_miou": 45.2, "predicted_miou": 52.1,
                 "measured_latency_ms": 21.0, "predicted_latency_ms": 30.1, "params": 13.7e6, "macs": 4.7e8},
        "reference_row": {"code": ref_code, "measured_miou": ref_miou, "held_out_miou": 33.8, "predicted_miou": 38.4,
                          "measured_latency_ms": 39.8, "predicted_latency_ms": 42.7, "params": 23.3e6, "macs": 1.4e8},
        "beats_reference": beats, "held_out_confirms": True,
        "closing": ["space mobile, budget quick", "best found: ...", "beats it (...): yes",
                    "time per step (s): teacher 1.0", "wrote report: x"],
    }


def _with_search_point(root: Path) -> None:
    """Add the found point and the reference to evaluated.csv, as evaluate writes them (predicted first)."""
    s = _summary()
    rows = pd.read_csv(root / "evaluated.csv")
    extra = pd.DataFrame([{**{k: v for k, v in r.items() if k != "held_out_miou"}, "init": "distilled", "name": n}
                          for r, n in ((s["best"], ""), (s["reference_row"], REF))])
    pd.concat([rows, extra], ignore_index=True).to_csv(root / "evaluated.csv", index=False)


def test_verdict_headline_table_and_cli_lines():
    v = verdict.verdict(_summary())
    assert v.found.code == FOUND and v.reference.name == REF and v.beats
    assert "beats" in v.headline and "47.60% vs 35.10%" in v.headline and "21.00 ms vs 39.80 ms" in v.headline
    assert "45.20% vs 33.80% (confirmed)" in v.headline
    assert v.closing == ("space mobile, budget quick", "best found: ...", "beats it (...): yes")  # no timings, no paths
    page = verdict.verdict_html(v)
    assert page.count("<svg") == 2 and FOUND in page and "47.60%" in page and "13.7M" in page and "what <code>ffnet-nas run</code> printed" in page.lower()
    lost = verdict.verdict(_summary(found_miou=30.0, beats=False))
    assert "does not beat" in lost.headline
    alone = verdict.verdict({"budget": "micro", "space": "tiny", "best": _summary()["best"], "reference_row": None})
    assert alone.reference is None and "No published variant" in alone.headline


def test_sketch_has_a_bar_per_stage_sized_by_depth_and_width():
    arch = Arch.parse("stemB-basic-d4.5.28.8-w64.128.192.320-s1-upB-segC-nearest-predown")
    boxes = sketch(arch)
    stages = [b for b in boxes if b.kind == "stage"]
    assert len(boxes) == 4 + arch.num_stages and [b.inner for b in stages] == ["4", "5", "28", "8"]
    assert stages[2].w > stages[1].w and stages[3].h > stages[0].h  # deeper is longer, wider is taller
    assert "pre-down" in boxes[0].label and sketch_svg(boxes, caption="c").startswith("<svg")


def test_claims_from_the_paper_tables_and_from_measurements():
    # Measured here: two 3-stage points beat two 4-stage ones at every latency.
    three = [Arch.parse("stemC-basic-d6.8.8-w64.128.256-s2-upC-segC-nearest"), Arch.parse("stemC-basic-d8.12.16-w64.128.256-s2-upC-segC-nearest")]
    four = [Arch.parse("stemB-basic-d4.5.6.4-w64.128.192.320-s1-upB-segB-nearest"), Arch.parse("stemB-basic-d5.8.8.5-w64.128.192.320-s1-upB-segB-nearest")]
    measured = pd.DataFrame({"code": [a.code for a in three + four], "latency_ms": [10.0, 20.0, 12.0, 25.0],
                             "miou": [50.0, 55.0, 45.0, 48.0]})
    results = {r.claim.key: r for r in claims.check_claims(measured=measured, predicted=None, family="mobile")}
    stages = results["stages"]
    assert stages.here_source == "measured" and stages.here_winner == "a" and stages.measured.lead == (1.0, 0.0)
    assert stages.measured.best == ((55.0, 20.0), (48.0, 25.0)) and stages.measured.span_ms == (12.0, 25.0)
    # The paper's side comes from its own tables: basic blocks lead bottleneck ones in Figs. 3 and 5.
    blocks = results["blocks"]
    assert {c.source.split(" (")[0] for c in blocks.paper} == {"paper Fig. 3", "paper Fig. 5"}
    assert blocks.paper_winner == "a" and blocks.status == "cannot be checked here" and "bottleneck" in blocks.sentence
    assert results["peers"].status == "cannot be checked here" and "No peer points in this workdir" in results["peers"].sentence
    # Nothing measured on one side: predictions decide, and the sentence says so.
    predicted = measured.assign(miou=[40.0, 41.0, 50.0, 52.0])
    only_four = measured.iloc[2:]
    r = claims.check_claim(claims.CLAIMS[1], measured=only_four, predicted=predicted, family="mobile")
    assert r.here_source == "predicted" and r.here_winner == "b" and "PREDICTED only" in r.sentence


def test_pareto_tells_measured_from_predicted_and_marks_the_verdict(tmp_path):
    root = make_workdir(tmp_path / "w")
    _with_search_point(root)
    data = pareto_data(_inputs(root), verdict=_summary())
    assert data.found_code == FOUND and data.reference_name == REF
    own = data.points[data.points["group"] == GROUP_OWN]
    assert list(own["code"]) == [FOUND] and own["measured"].all()
    # the predictor's optimism, from the rows that were predicted before they were measured
    ev = pd.read_csv(root / "evaluated.csv")
    ev = ev[ev["init"] == "distilled"]
    assert data.n_bias == len(ev) and abs(data.miou_bias - (ev["predicted_miou"] - ev["measured_miou"]).mean()) < 1e-9
    fig = render_pareto(data)
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert len(legend) <= 12 and GROUP_OWN in legend
    assert not any("dCBC" in (n or "") for n in legend)  # no per-family entries
    for t in fig.data:  # predictions faint and hollow, measurements opaque and filled
        if t.legendgroup in ("key", None) or t.x is None or t.x[0] is None:
            continue
        symbols = [t.marker.symbol] if isinstance(t.marker.symbol, str) else list(t.marker.symbol)
        assert all(s.endswith("-open") for s in symbols) == (t.opacity < 1)
    arrows = [a for a in fig.layout.annotations if a.showarrow and a.axref == "x"]
    assert len(arrows) == data.points["predicted_miou"].notna()[data.points["role"] == "evaluated"].sum()
    callouts = [a.text for a in fig.layout.annotations if a.text and a.text.startswith("<b>")]
    assert any(t.startswith("<b>found") for t in callouts) and any("74NS CCC m pd" in t for t in callouts)
    assert "overrates" in fig.layout.title.subtitle.text or "underrates" in fig.layout.title.subtitle.text


def test_report_reads_the_run_summary_and_checks_claims(tmp_path):
    root = make_workdir(tmp_path / "w")
    _with_search_point(root)
    (root / "run_summary.json").write_text(json.dumps({k: v for k, v in _summary().items() if k != "closing"}))
    result = build_report(inputs=_inputs(root), out_dir=root / "report", paper=False, formats=("html",), progress=False)
    index = (root / "report" / "index.html").read_text()
    assert index.index('id="verdict"') < index.index('id="claims"') < index.index("<h2>Figures</h2>")
    assert result.verdict.found.code == FOUND and "beats" in index
    assert [r.claim.key for r in result.claims] == [c.key for c in claims.CLAIMS]
    manifest = json.loads((root / "report" / "report.json").read_text())
    assert manifest["verdict"]["headline"] == result.verdict.headline and len(manifest["claims"]) == len(claims.CLAIMS)
    # out-of-sample points join the predictor figure (the design points keep their LOO value)
    pred = next(f for f in result.figures if f.slug == "predictor_fidelity")
    assert "out of sample n=2" in pred.summary and pred.produced_by["held-out benchmark"] == "none in this workdir"
    names = [t.name for t in pred.figure.data]
    assert any(n.startswith("leave-one-out") for n in names) and any(n.startswith("out of sample") for n in names)
    # a held-out benchmark, when the workdir has one, is a third set
    pd.DataFrame({"code": ["a", "b", "c"], "predicted_miou": [50, 51, 52], "measured_miou": [49, 50, 53]}).to_csv(
        root / "predictor" / "benchmark.csv", index=False)
    again = build_report(inputs=_inputs(root), out_dir=root / "report2", paper=False, formats=("html",), progress=False)
    pred = next(f for f in again.figures if f.slug == "predictor_fidelity")
    assert any(t.name.startswith("held-out benchmark (n=3)") for t in pred.figure.data)
    # no summary file and none handed over: the verdict says there is none, nothing is "Missing"
    (root / "run_summary.json").unlink()
    bare = build_report(inputs=_inputs(root), out_dir=root / "report3", paper=False, formats=("html",), progress=False)
    assert bare.verdict is None and "No <code>ffnet-nas run</code> verdict" in (root / "report3" / "index.html").read_text()
    assert claim_inputs(_inputs(root), None)["family"] == "mobile"  # from the search summary


def test_device_vs_paper_names_precision_and_runtime_on_both_sides():
    from ffnet_nas.reports.compare import like_for_like

    text = like_for_like(["paper S21 DSP int8"], dtype="fp32", backend="eager", device="Test CPU")
    assert "FP32" in text and "eager" in text and "INT8" in text and "precision" in text.split("differ in")[1]
    same = like_for_like(["paper 2080Ti fp16"], dtype="fp16", backend="eager", device="GPU")
    assert "precision" not in same.split("differ in")[1]
