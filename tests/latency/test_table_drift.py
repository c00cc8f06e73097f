"""predictors.latency.validate.table_drift: a table's scale against timings taken later (a run's
evaluate step), the check that caught a CI run whose table was timed on a busier machine."""

import numpy as np
import pytest

from ffnet_nas.predictors.latency.validate import DRIFT_TOLERANCE, table_drift


def test_a_table_timed_on_a_busier_machine_is_flagged_and_one_within_its_noise_is_not():
    rng = np.random.default_rng(0)
    predicted = rng.uniform(18, 95, size=22)
    noise = rng.normal(0, 0.06, size=22)  # about the validation's own spread on this CPU
    busy = table_drift(predicted, predicted * 0.75 * np.exp(noise))  # today a quarter faster than the table
    assert busy.n == 22 and busy.ratio == pytest.approx(0.75 * np.exp(noise.mean()))
    assert busy.low < busy.ratio < busy.high < 1 - DRIFT_TOLERANCE and busy.drifted
    assert "ran at 0.7" in busy.text() and "this machine runs faster than the table says" in busy.text()
    assert busy.to_dict()["drifted"] is True
    slow_now = table_drift(predicted, predicted * 1.3 * np.exp(noise))
    assert slow_now.drifted and "this machine runs slower than the table says" in slow_now.text()
    steady = table_drift(predicted, predicted * np.exp(noise))
    assert not steady.drifted and steady.low < 1 < steady.high
    assert steady.text().endswith("(not wholly outside +-10%: no drift shown)")
    # a ratio past the band whose interval still reaches into it (a quick run's 1.11 [1.05, 1.18]) is not flagged
    edge = table_drift(predicted, predicted * 1.11 * np.exp(2 * noise))
    assert edge.ratio > 1 + DRIFT_TOLERANCE > edge.low and not edge.drifted


def test_a_drift_inside_the_band_or_over_too_few_points_is_not_flagged():
    predicted = np.linspace(20, 60, 12)
    assert not table_drift(predicted, predicted * 0.95).drifted  # 5% off: what validation accepts
    # points without a timing (NaN) or with an impossible one are left out, not counted as agreeing
    few = table_drift([20.0, 30.0, float("nan"), 40.0, 0.0], [10.0, 15.0, 20.0, float("nan"), 5.0])
    assert few.n == 2 and not few.drifted and few.text().startswith("too few timed points")
    assert few.to_dict() == {"n": 2, "ratio": None, "low": None, "high": None, "drifted": False}  # strict JSON


def _validation(predictor_pct: float, raw_pct: float, ruler_pct: float):
    from pathlib import Path

    from ffnet_nas.predictors.latency.predict import Calibration
    from ffnet_nas.predictors.latency.validate import Agreement, ValidationResult

    def agreement(pct):
        return Agreement(n=10, median_abs_pct=pct, within_10pct=0.5, spearman=0.9, kendall=0.8)

    return ValidationResult(predictor=agreement(predictor_pct), raw_sum=agreement(raw_pct),
                            repeatability=agreement(ruler_pct), per_pass=(agreement(predictor_pct),) * 2,
                            calibration=Calibration(a=1.40, b=0.0, model="scale", n_points=4),
                            table_path=Path("t.validation.csv"), summary_path=Path("t.validation.json"))


def test_a_calibration_that_makes_the_table_worse_than_its_ruler_allows_is_called_out():
    # the figures of three quick runs' tables (docs/results.md): a calibration timed on a slower
    # machine (52% against 8.5% uncalibrated), one within the ruler, one that helped
    bad = _validation(52.1, 8.5, 14.7)
    assert bad.calibration_hurts
    assert "median |error| 52.1% (the uncalibrated sum 8.5%, the ruler, pass 2 vs pass 1, 14.7%)" in bad.text()
    assert "its calibration (scale: 1.40 x sum + 0.0 ms, on 4 networks) makes it worse" in bad.text()
    for fine in (_validation(18.3, 13.8, 10.0), _validation(2.4, 14.0, 1.4), _validation(11.5, 2.0, 1.0)):
        assert not fine.calibration_hurts and "makes it worse" not in fine.text()
    assert _validation(12.5, 2.0, 1.0).calibration_hurts  # a steady ruler: more than 10 points worse is enough
    assert not _validation(35.0, 8.5, 30.0).calibration_hurts  # a ruler that noisy cannot tell 26.5 points apart
    assert not _validation(float("nan"), 8.5, 14.7).calibration_hurts  # no figure, no verdict
