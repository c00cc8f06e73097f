"""A run under an INT8 latency table ships quantised models, so it ranks and judges by their accuracy:
the predictor learns int8_miou, the best point is chosen by it, and the verdict says so. (The micro
run's space holds no published variant; "beats it", the held-out and the win check in INT8 are
tested on their own: tests/evaluate/test_accuracy_precision.py, test_evaluate.py, test_win_check.py.)"""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import yaml

from ffnet_nas.refine import best_candidate
from tests.helpers.micro import run_command, unbuffered_env

# the micro budget with an INT8 table, timed as briefly as a test needs (exporting and quantising each
# unit is most of the step's time)
INT8 = {"budget": {"name": "micro", "latency": {
    "dtype": "int8", "backend": "onnxruntime", "calibrate": 2, "validate": 1, "validate_published": 0,
    "protocol": {"warmup_runs": 1, "warmup_s": 0.0, "min_repeats": 1, "max_repeats": 2, "max_seconds": 0.05}}}}


def test_a_run_under_an_int8_table_fits_ranks_and_judges_by_int8_miou(tmp_path, space_file):
    workdir, config = tmp_path / "run", tmp_path / "int8.yaml"
    config.write_text(yaml.safe_dump(INT8))
    cmd = [*run_command(workdir, space_file), "--config", str(config)]
    del cmd[cmd.index("--budget"):cmd.index("--budget") + 2]  # a --budget flag would override the file's
    done = subprocess.run(cmd, capture_output=True, text=True, env=unbuffered_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    summary = json.loads((workdir / "run_summary.json").read_text())
    assert summary["accuracy"] == "int8_miou" and "/cpu-int8-onnxruntime-" in summary["files"]["lut"]
    evaluated = pd.read_csv(workdir / "evaluated.csv")
    distilled = evaluated[evaluated["init"] == "distilled"]
    assert distilled["int8_miou"].notna().all()  # the design, the candidates and the reference: all in INT8
    predictor = json.loads((workdir / "predictor" / "accuracy.json").read_text())
    assert predictor["meta"]["accuracy"] == "int8_miou"
    loo = pd.read_csv(workdir / "predictor" / "loo.csv")
    assert "int8_miou" in loo.columns and "measured_miou" not in loo.columns

    # the best point is the most accurate in INT8 of the points the search sent to evaluation
    best = summary["best"]
    rows = {r["code"]: r for r in distilled.to_dict("records")}
    sent = list(pd.read_csv(workdir / "search" / "to_evaluate.csv")["code"])
    assert best_candidate(rows, sent, None, accuracy="int8_miou")[0]["code"] == best["code"]
    assert f"best found: {best['code']}  INT8 mIoU {best['int8_miou']:.2f}" in done.stdout
    assert "INT8 mIoU" in (workdir / "report" / "index.html").read_text()
