"""The one rule for choosing a latency table (`ffnet_nas.predictors.load.choose_lut`) and the loader."""

import json
import math

import numpy as np
import pytest

from ffnet_nas.predictors.load import choose_lut, load_accuracy_predictor, load_predictors, lut_candidates, slug_settings
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import get_space


def _table(lut_dir, stem):
    lut_dir.mkdir(exist_ok=True)
    (lut_dir / f"{stem}.csv").write_text("key\n")
    (lut_dir / f"{stem}.json").write_text("{}")
    return lut_dir / f"{stem}.csv"


def test_slug_settings_read_every_setting_the_name_spells():
    assert slug_settings("cuda-nvidia-h200-fp16-onnxruntime-b4-64x128-t8") == {
        "device": "cuda", "dtype": "fp16", "backend": "onnxruntime", "batch": 4, "input_hw": (64, 128), "threads": 8}
    assert slug_settings("cpu-fp32-eager-b1-512x1024-t2")["device"] == "cpu"
    assert slug_settings("my-renamed-table") is None


def test_by_products_beside_a_table_are_not_tables(tmp_path):
    lut = tmp_path / "lut"
    want = _table(lut, "cpu-fp32-eager-b1-64x128-t1")
    for extra in ("validation", "e2e"):  # validate.py writes <slug>.validation.csv + .json, <slug>.e2e.csv
        (lut / f"{want.stem}.{extra}.csv").write_text("x\n")
        (lut / f"{want.stem}.{extra}.json").write_text("{}")
    assert lut_candidates(lut) == [want]
    assert choose_lut(lut_dir=lut, input_hw=(64, 128)) == want


def test_the_rule_name_wins_then_the_only_fitting_table(tmp_path):
    lut = tmp_path / "lut"
    assert choose_lut(lut_dir=lut, input_hw=(64, 128)) is None  # no folder: none (the caller says what makes one)
    cpu1 = _table(lut, "cpu-fp32-eager-b1-64x128-t1")
    cpu2 = _table(lut, "cpu-fp32-eager-b1-64x128-t2")
    _table(lut, "cpu-fp32-eager-b1-128x256-t1")
    gpu = _table(lut, "cuda-nvidia-h200-fp16-eager-b1-64x128-t1")
    # 1. an explicit name wins, even over a better fit
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), lut=cpu2.stem, threads=1) == cpu2
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), lut=str(cpu2)) == cpu2
    with pytest.raises(InvalidInput, match="no latency table 'cpu-fp32-eager-b1-64x128-t3'.*did you mean"):
        choose_lut(lut_dir=lut, input_hw=(64, 128), lut="cpu-fp32-eager-b1-64x128-t3")
    # 2./3. otherwise every setting asked must fit, and exactly one table may fit
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), device="cpu", threads=1) == cpu1
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), device="cuda:0") == gpu
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), dtype="fp16") == gpu
    with pytest.raises(InvalidInput) as e:
        choose_lut(lut_dir=lut, input_hw=(64, 128), device="cpu", space_name="tiny")
    msg = str(e.value)
    assert "several latency tables" in msg and cpu1.stem in msg and cpu2.stem in msg and "--lut NAME" in msg
    assert "\n" not in msg
    with pytest.raises(InvalidInput, match="measured at 32x64 with threads=1 .*measure-latency --space tiny.*--lut NAME"):
        choose_lut(lut_dir=lut, input_hw=(32, 64), threads=1, space_name="tiny")


def test_a_table_under_a_name_that_is_not_a_slug_is_picked_only_by_name(tmp_path):
    lut = tmp_path / "lut"
    odd = _table(lut, "my_table")
    with pytest.raises(InvalidInput, match="have my_table"):
        choose_lut(lut_dir=lut, input_hw=(64, 128))
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), lut="my_table") == odd


def test_load_predictors_names_every_missing_piece(tmp_path):
    with pytest.raises(InvalidInput) as e:
        load_predictors(lut_dir=tmp_path / "lut", predictor_dir=tmp_path / "predictor", space=get_space("mobile"))
    msg = str(e.value)
    assert "ffnet-nas measure-latency --space mobile" in msg and "ffnet-nas fit-predictor" in msg and "\n" not in msg
    assert load_accuracy_predictor(tmp_path / "predictor") is None


def test_an_undefined_rank_correlation_is_stored_as_null_and_read_back_as_nan(tmp_path):
    from ffnet_nas.predictors.accuracy import FEATURES, AccuracyPredictor, fit_accuracy_predictor

    x = np.random.default_rng(0).normal(size=(5, len(FEATURES)))
    flat = fit_accuracy_predictor(x, np.full(5, 40.0), codes=[f"p{i}" for i in range(5)])  # constant mIoU
    assert math.isnan(flat.validation.kendall_tau) and math.isnan(flat.validation.spearman)
    path = flat.save(tmp_path / "accuracy.json")
    stored = json.loads(path.read_text())  # strict JSON: no NaN token
    assert stored["validation"]["kendall_tau"] is None and stored["validation"]["spearman"] is None
    again = AccuracyPredictor.load(path)
    assert math.isnan(again.validation.kendall_tau) and again.validation.n == 5


def _imported(lut_dir, device_name, dtype="int8", hw=(64, 128)):
    from ffnet_nas.predictors.latency.lut import LutSpec

    spec = LutSpec(device="external", device_name=device_name, dtype=dtype, backend="tflite-2-16", batch=1,
                   input_hw=hw, threads=1, num_classes=8)
    lut_dir.mkdir(exist_ok=True)
    (lut_dir / f"{spec.slug}.csv").write_text("key\n")
    (lut_dir / f"{spec.slug}.json").write_text(json.dumps({"spec": spec.to_dict()}))
    return lut_dir / f"{spec.slug}.csv"


def test_an_imported_table_fits_by_its_metadata_and_answers_to_its_device_name(tmp_path):
    lut = tmp_path / "lut"
    s24 = _imported(lut, "Galaxy S24")
    assert choose_lut(lut_dir=lut, input_hw=(64, 128)) == s24  # the only table at the size: no name needed
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), dtype="int8") == s24
    with pytest.raises(InvalidInput, match="no latency table .*measured at 32x64"):
        choose_lut(lut_dir=lut, input_hw=(32, 64))
    with pytest.raises(InvalidInput, match="with device=cpu"):  # a command timing here never gets a phone's table
        choose_lut(lut_dir=lut, input_hw=(64, 128), device="cpu")
    cpu = _table(lut, "cpu-fp32-eager-b1-64x128-t1")
    with pytest.raises(InvalidInput, match="several latency tables"):
        choose_lut(lut_dir=lut, input_hw=(64, 128))
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), device="cpu") == cpu
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), lut="GALAXY s24") == s24
    pixel = _imported(lut, "Pixel 8", dtype="fp16")
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), dtype="fp16") == pixel
    _imported(lut, "Galaxy S24", dtype="fp16")
    with pytest.raises(InvalidInput, match="2 tables were imported from that device"):
        choose_lut(lut_dir=lut, input_hw=(64, 128), lut="galaxy s24")
    (lut / f"{s24.stem}.json").write_text("{not json")  # unreadable metadata: only its name picks it
    assert choose_lut(lut_dir=lut, input_hw=(64, 128), lut=s24.stem) == s24
