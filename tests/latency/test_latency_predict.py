"""The predictor: sum x counts, calibration, refusal of mismatched tables, agreement metrics."""

import numpy as np
import pytest
from ffnet_nas.predictors.latency.keys import space_units
from ffnet_nas.predictors.latency.lut import (
    LatencyTable,
    LutSpec,
    load_table,
    open_table,
)
from ffnet_nas.predictors.latency.predict import (
    Calibration,
    fit_calibration,
    load_calibration,
    predict_latency,
    raw_sum,
    save_calibration,
)
from ffnet_nas.predictors.latency.protocol import Protocol
from ffnet_nas.predictors.latency.validate import agreement, validation_points
from ffnet_nas.space.arch import Arch
from ffnet_nas.space.errors import InvalidInput
from ffnet_nas.space.searchspace import get_space

SPEC = LutSpec(device="cpu", device_name="test cpu", dtype="fp32", backend="eager", batch=1, input_hw=(64, 128),
               threads=1, num_classes=19)


def _synthetic_table(tmp_path, space) -> LatencyTable:
    """A table whose unit times are known numbers (1 ms per input channel, 100 for a head...)."""
    table = open_table(tmp_path, SPEC, Protocol(), space=space.name)
    rows = {}
    for u in space_units(space, SPEC.input_hw):
        ms = {"predown": 0.5, "stem": 2.0, "head": 100.0 + sum(u.channels) / 10}.get(u.kind, u.channels[0] / 64)
        rows[u.key] = {"key": u.key, "kind": u.kind, "estimate_ms": ms}
    return LatencyTable(spec=SPEC, rows=rows, meta=table.meta, path=table.path)


def test_sum_counts_every_unit(tmp_path):
    space = get_space("mobile")
    table = _synthetic_table(tmp_path, space)
    arch = Arch.from_name("segmentation_ffnet40S_BBB_mobile")  # d4.5.6.4 w64.128.192.320, s1
    blocks = 4 * 1 + (1 + 4 * 2) + (2 + 5 * 3) + (3 + 3 * 5)  # c_in/64 per block: first blocks take the previous width
    head = 100 + (64 + 128 + 192 + 320) / 10
    assert raw_sum(arch, table) == pytest.approx(2.0 + blocks + head)
    assert predict_latency(arch, table, calibrated=False) == pytest.approx(2.0 + blocks + head)
    pre = arch.replace(pre_down=True)
    assert raw_sum(pre, table) == pytest.approx(2.5 + blocks + head)
    assert predict_latency(arch.code, table, calibration=Calibration(a=2.0, b=1.0)) == pytest.approx(
        2 * (2.0 + blocks + head) + 1)


def test_mismatched_settings_are_refused(tmp_path):
    table = _synthetic_table(tmp_path, get_space("mobile"))
    arch = "segmentation_ffnet40S_BBB_mobile"
    predict_latency(arch, table, device="cpu", dtype="fp32", backend="eager", input_hw=(64, 128), batch=1)
    for kw in ({"device": "cuda:0"}, {"dtype": "fp16"}, {"backend": "onnxruntime"}, {"input_hw": (512, 1024)},
               {"batch": 4}):
        with pytest.raises(InvalidInput, match=f"{next(iter(kw))}=.*was asked"):
            predict_latency(arch, table, **kw)


def test_point_outside_the_table_is_refused(tmp_path):
    table = _synthetic_table(tmp_path, get_space("mobile"))
    with pytest.raises(InvalidInput, match="lacks .* key"):
        predict_latency("segmentation_ffnet50_AAA", table)  # bottleneck, stem A: no such keys


def test_calibration_recovers_a_line_and_is_saved(tmp_path):
    raw = np.array([10.0, 20.0, 35.0, 50.0, 80.0])
    cal = fit_calibration(raw, 1.3 * raw + 4.0, codes=list("abcde"), model="line")
    assert cal.a == pytest.approx(1.3) and cal.b == pytest.approx(4.0) and cal.rel_rmse < 1e-9
    assert fit_calibration([10.0], [12.0]).a == pytest.approx(1.2)
    assert fit_calibration(raw, 1.3 * raw + 4.0, model="line").b == pytest.approx(4.0)
    assert fit_calibration([], []).apply(7.0) == 7.0
    table = _synthetic_table(tmp_path, get_space("mobile"))
    table.frame().to_csv(table.path, index=False)
    save_calibration(table, cal)
    assert load_calibration(load_table(table.path)) == cal


def test_agreement_metrics():
    meas = [10.0, 20.0, 30.0, 40.0]
    exact = agreement(meas, meas)
    assert exact.median_abs_pct == 0 and exact.within_10pct == 1 and exact.spearman == pytest.approx(1)
    off = agreement([11.5, 20.0, 30.0, 30.0], meas)  # +15%, 0, 0, -25%
    assert off.within_10pct == 0.5 and off.median_abs_pct == pytest.approx(7.5)
    assert off.kendall < 1
    # the project's one rule (ffnet_nas.stats.rank_correlations): non-finite pairs are dropped,
    # fewer than 3 pairs or constant data have no rank statistic (NaN, not a scipy warning)
    gappy = agreement([10.0, np.nan, 30.0, 40.0], meas)
    assert gappy.n == 3 and gappy.median_abs_pct == 0 and gappy.spearman == pytest.approx(1)
    assert np.isnan(agreement([12.0, 12.0, 12.0], [10.0, 20.0, 30.0]).spearman)
    assert np.isnan(agreement([1.0, 2.0], [1.0, 2.0]).kendall) and agreement([], []).n == 0


def test_validation_points_exclude_calibration_and_add_published():
    space = get_space("mobile")
    pts = validation_points(space, 5, seed=0, exclude=[space.sample_many(1, seed=0)[0].code])
    random = [a for a, src, _ in pts if src == "random"]
    published = [name for _, src, name in pts if src == "published"]
    assert len(random) == 5 and space.sample_many(1, seed=0)[0] not in random
    assert "segmentation_ffnet40S_BBB_mobile" in published and len(published) >= 30
    assert len({a.code for a, _, _ in pts}) == len(pts)


def test_prediction_from_a_path_follows_refits(tmp_path):
    table = _synthetic_table(tmp_path, get_space("mobile"))
    table.frame().to_csv(table.path, index=False)
    arch = "segmentation_ffnet40S_BBB_mobile"
    raw = predict_latency(arch, table.path, calibrated=False)
    assert predict_latency(arch, table.path) == pytest.approx(raw)  # no calibration yet: a=1, b=0
    import os
    import time

    save_calibration(table, Calibration(a=2.0, b=0.0, n_points=3))
    later = time.time() + 5  # the cache is keyed on mtimes: make sure this one differs
    os.utime(table.path.with_suffix(".calibration.json"), (later, later))
    assert predict_latency(arch, str(table.path)) == pytest.approx(2 * raw)


def test_calibration_model_is_chosen_out_of_sample():
    rng = np.random.default_rng(0)
    raw = np.array([50.0, 80.0, 120.0, 200.0, 260.0, 300.0])
    noise = 1 + rng.normal(0, 0.01, raw.size)
    assert fit_calibration(raw, raw * noise).model == "identity"  # nothing to correct
    assert fit_calibration(raw, 1.3 * raw * noise).model == "scale"
    line = fit_calibration(raw, (1.1 * raw + 25) * noise)
    assert line.model == "line" and line.loo_rel_rmse < 0.03
    assert fit_calibration(raw, raw, model="line").model == "line"
    restored = Calibration.from_dict(line.to_dict())
    assert restored == line
    assert Calibration.from_dict({"a": 2.0, "b": 1.0, "n_points": 3, "rel_rmse": 0.1, "codes": []}).model == "identity"
