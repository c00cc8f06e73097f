"""`ffnet-nas measure-latency`: bad input is one line and exit 2; a tiny run writes every file."""

import json

import pandas as pd
import pytest
import torch
import yaml
from ffnet_nas.predictors.latency.protocol import cpu_flags

from ffnet_nas.cli import main

TINY = {"base": "mobile", "name": "tiny", "stems": ["B"],
        "stages": {4: {"depths": [[1, 2], [1], [1], [1]], "widths": [[16], [32], [48], [64]]}},
        "first_strides": [1], "up_heads": ["B"], "seg_heads": ["B"], "pre_downs": [False], "input_size": "64x128"}
FAST = ["--rounds", "1", "--repeats", "3:6", "--tolerance", "0.5", "--max-seconds", "1", "--threads", "1", "--no-progress"]


@pytest.fixture
def tiny_space(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return str(path)


def _bad(capsys, tmp_path, *args, match):
    code = main(["measure-latency", "--workdir", str(tmp_path / "w"), *args])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and match in lines[0], err
    assert not (tmp_path / "w" / "lut").exists() or not any((tmp_path / "w" / "lut").glob("*.csv"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu(capsys, tmp_path, tiny_space):
    _bad(capsys, tmp_path, "--device", "cuda", "--space", tiny_space, match="no CUDA GPU")


@pytest.mark.skipif(bool({"avx512_fp16", "amx_fp16"} & cpu_flags()), reason="this CPU computes fp16 natively")
def test_fp16_on_cpu(capsys, tmp_path, tiny_space):
    _bad(capsys, tmp_path, "--dtype", "fp16", "--space", tiny_space, match="no native fp16")


@pytest.mark.parametrize("args, match", [
    (["--input-size", "256by512"], "malformed input size"),
    (["--backend", "tensorrt"], "unknown backend"),
    (["--dtype", "int8"], "unknown dtype"),
    (["--device", "tpu"], "unknown device"),
    (["--repeats", "10:2"], "--repeats"),
    (["--estimator", "fastest"], "estimator"),
    (["--rounds", "0"], "rounds"),
    (["--clock", "cpu", "--threads", "2"], "--threads 1"),
    (["--space", "mobil"], "did you mean: mobile"),
])
def test_bad_input_is_one_line(capsys, tmp_path, args, match):
    _bad(capsys, tmp_path, *args, match=match)


def test_tiny_run_writes_table_calibration_and_validation(capsys, tmp_path, tiny_space):
    workdir = tmp_path / "w"
    code = main(["measure-latency", "--space", tiny_space, "--workdir", str(workdir), "--calibrate", "1",
                 "--validate", "1", *FAST])
    out = capsys.readouterr().out
    assert code == 0
    lut = workdir / "lut"
    slug = "cpu-fp32-eager-b1-64x128-t1"
    table = pd.read_csv(lut / f"{slug}.csv")
    assert len(table) == 7 and table["key"].is_unique
    meta = json.loads((lut / f"{slug}.json").read_text())
    assert meta["spec"]["threads"] == 1 and meta["spec"]["backend"] == "eager" and meta["provenance"]["torch"]
    cal = json.loads((lut / f"{slug}.calibration.json").read_text())["calibration"]
    assert cal["n_points"] == 1 and cal["a"] > 0
    val = pd.read_csv(lut / f"{slug}.validation.csv")
    assert len(val) == 1 and (val["measured_1_ms"] > 0).all() and (val["measured_2_ms"] > 0).all()
    assert val["code"].iloc[0] not in cal["codes"]  # never validated on a calibration point
    summary = json.loads((lut / f"{slug}.validation.json").read_text())
    assert set(summary["predictor"]) == {"n", "median_abs_pct", "within_10pct", "spearman", "kendall"}
    assert summary["predictor_vs_pass_1"]["n"] == summary["predictor_vs_pass_2"]["n"] == 1
    for word in ("latency table:", "calibration (", "predictor", "repeatability", "validation:"):
        assert word in out
    # a second run measures nothing new and reuses the saved end-to-end figures
    e2e = pd.read_csv(lut / f"{slug}.e2e.csv")
    assert main(["measure-latency", "--space", tiny_space, "--workdir", str(workdir), "--calibrate", "1",
                 "--validate", "1", *FAST]) == 0
    assert "0 measured now" in capsys.readouterr().out
    assert pd.read_csv(lut / f"{slug}.e2e.csv").equals(e2e)
