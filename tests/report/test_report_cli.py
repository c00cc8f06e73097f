"""`ffnet-nas report` as a user runs it: files written, missing inputs named, bad input refused."""

from __future__ import annotations

import json
import math

import pytest

from ffnet_nas.cli import main

from tests.helpers.report import make_workdir


def test_report_on_an_empty_workdir_draws_the_paper_and_names_what_is_missing(tmp_path, capsys):
    rc = main(["report", "--workdir", str(tmp_path / "w"), "--format", "html", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    report = tmp_path / "w" / "report"
    assert {p.name for p in report.iterdir()} == {"index.html", "paper.html", "pareto.html", "evidence.html", "report.json"}
    manifest = json.loads((report / "report.json").read_text())
    drawn = {f["slug"]: f["drawn"] for f in manifest["figures"]}
    assert drawn == {"paper_gpu_large": True, "paper_gpu_small": True, "paper_mobile": True, "pareto": False,
                     "device_vs_paper": False, "lut_fidelity": False, "predictor_fidelity": False, "search_progress": False, "block_library": False}
    index = (report / "index.html").read_text()
    for command in ("ffnet-nas measure-latency", "ffnet-nas search", "ffnet-nas distill", "ffnet-nas fit-predictor"):
        assert command in index and command in out
    assert "paper Table 4" in index and "wrote " in out and "open " in out
    assert not [p for p in report.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_report_pareto_only_on_a_full_workdir(tmp_path, capsys):
    root = make_workdir(tmp_path / "w")
    out_dir = tmp_path / "out"
    rc = main(["report", "--pareto", "--workdir", str(root), "--out", str(out_dir), "--format", "html", "--no-progress"])
    assert rc == 0
    manifest = json.loads((out_dir / "report.json").read_text())
    assert [f["slug"] for f in manifest["figures"]] == ["pareto", "device_vs_paper", "lut_fidelity", "predictor_fidelity",
                                                        "search_progress", "block_library"]
    assert all(f["drawn"] and not f["missing"] for f in manifest["figures"])
    lut = next(f for f in manifest["figures"] if f["slug"] == "lut_fidelity")
    assert lut["produced_by"]["device"] == "cpu (Test CPU)" and lut["produced_by"]["input size"] == "256x512"
    assert "within ±10%" in lut["summary"]
    assert not (out_dir / "paper.html").exists()
    index = (out_dir / "index.html").read_text()
    assert "2026-01-02T03:04:05" in index and "fp32" in index  # provenance from the LUT's metadata
    page = (out_dir / "pareto.html").read_text()
    assert "<script src" not in page and 'src="http' not in page  # plotly.js is inlined, not fetched


def test_bad_format_is_one_line_and_exit_2(tmp_path, capsys):
    rc = main(["report", "--workdir", str(tmp_path), "--format", "html,jpeg"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "'html,jpeg'" in err and "html, png, svg" in err
    assert not (tmp_path / "report").exists()


def test_unknown_lut_slug_is_reported_not_fatal(tmp_path, capsys):
    root = make_workdir(tmp_path / "w", library=False, search=False, evaluated=False)
    rc = main(["report", "--pareto", "--workdir", str(root), "--lut", "nope", "--format", "html", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "latency table 'nope'" in out and "cpu-fp32-eager-b1-256x512-t2" in out


def test_unwritable_output_is_one_line_and_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    for fmt in ("html", "png"):
        rc = main(["report", "--paper", "--workdir", str(tmp_path), "--out", str(blocker / "sub"), "--format", fmt, "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and "file.txt" in err and "expected" in err


@pytest.mark.slow
def test_report_reads_what_the_real_search_writes(tmp_path):
    """The search's own writer (not a copy of its format): the report finds the study and its trials."""
    from ffnet_nas.search.api import run_search, write_outputs
    from ffnet_nas.workspace import Workspace

    ws = Workspace(tmp_path / "w")
    result = run_search(space="mobile", predict_latency_ms=lambda a: 0.05 * a.nominal_depth * (1 + a.widths[-1] / 256),
                        predict_miou=lambda a: 60 + 5 * math.log(a.nominal_depth), targets="latency<6ms", n_trials=25,
                        storage=ws.search_dir / "study.journal", seed=0, progress=False, num_classes=19)
    write_outputs(result, ws.search_dir / result.study_name)
    rc = main(["report", "--pareto", "--workdir", str(ws.root), "--format", "html", "--no-progress"])
    figures = {f["slug"]: f for f in json.loads((ws.report_dir / "report.json").read_text())["figures"]}
    assert rc == 0 and figures["pareto"]["drawn"] and figures["search_progress"]["drawn"]
    assert figures["search_progress"]["summary"].startswith("25 trials")
