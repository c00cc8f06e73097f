"""--precision int8: ONNX Runtime static QDQ quantisation, in the table and for a whole model."""

import json

import numpy as np
import pytest
import torch
import yaml

from ffnet_nas.cli import main

SPACE = {"base": "mobile", "name": "tiny8", "stems": ["B"],
         "stages": {4: {"depths": [[1], [1], [1], [1]], "widths": [[16], [32], [48], [64]]}},
         "first_strides": [1], "up_heads": ["B"], "seg_heads": ["B"], "pre_downs": [False], "input_size": "32x64"}
FAST = ["--threads", "1", "--clock", "cpu", "--rounds", "1", "--repeats", "3:6", "--tolerance", "0.5",
        "--max-seconds", "1", "--no-progress"]
CODE = "stemB-basic-d1.1.1.1-w16.32.48.64-s1-upB-segB-nearest"


def test_int8_table_records_its_recipe_and_times_qdq_graphs(tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    assert main(["measure-latency", "--space", str(space), "--workdir", str(tmp_path / "w"), "--backend", "onnxruntime",
                 "--precision", "int8", "--calibrate", "1", *FAST]) == 0
    lut = tmp_path / "w" / "lut"
    meta = json.loads((lut / "cpu-int8-onnxruntime-b1-32x64-t1.json").read_text())
    assert meta["spec"]["dtype"] == "int8" and "QDQ" in meta["versions"]["int8"]
    from ffnet_nas.predictors.latency import predict_latency

    assert predict_latency(CODE, lut / "cpu-int8-onnxruntime-b1-32x64-t1.csv", dtype="int8") > 0


@pytest.mark.parametrize("args, match", [
    (["--precision", "int8"], "expected --backend onnxruntime --device cpu"),  # eager
    (["--precision", "int8", "--backend", "compile"], "expected --backend onnxruntime"),
    (["--dtype", "int8"], "unknown dtype"),  # --dtype keeps its float choices; --precision adds int8
])
def test_int8_elsewhere_is_one_line(tmp_path, capsys, args, match):
    assert main(["measure-latency", "--workdir", str(tmp_path / "w"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_quantised_model_follows_the_float_one_and_scores_miou():
    from ffnet_nas.predictors.latency.int8 import (
        calibration_images,
        quantize_model,
        score_int8,
        session,
    )
    from ffnet_nas.space.arch import Arch
    from ffnet_nas.space.builder import build_model

    from ffnet_nas.data import make_dataset

    torch.manual_seed(0)
    model = build_model(Arch.parse(CODE), num_classes=8).eval()
    images = calibration_images("synthetic", size_hw=(32, 64), n=4)
    assert images.shape == (4, 3, 32, 64)
    q = session(quantize_model(model, images))
    x = images[:1]
    with torch.no_grad():
        ref = model(x).numpy()
    got = q.run(None, {q.get_inputs()[0].name: x.numpy()})[0]
    # int8 rounding moves logits a little, not their pattern
    assert got.shape == ref.shape and np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.95
    val = make_dataset("synthetic", "val", size_hw=(32, 64))
    score = score_int8(model, calibration=images, images=[val[i] for i in range(3)], num_classes=8)
    assert score.n_images == 3 and 0 <= score.miou <= 1 and 0 <= score.fp32_miou <= 1
    assert abs(score.cost) <= 1
