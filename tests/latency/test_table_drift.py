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
    assert "ran at 0.7" in busy.text() and "the machine was slower when the table was measured" in busy.text()
    assert busy.to_dict()["drifted"] is True
    slow_now = table_drift(predicted, predicted * 1.3 * np.exp(noise))
    assert slow_now.drifted and "the machine was faster when the table was measured" in slow_now.text()
    steady = table_drift(predicted, predicted * np.exp(noise))
    assert not steady.drifted and steady.low < 1 < steady.high
    assert steady.text().endswith("(within the validation's +-10%)")


def test_a_drift_inside_the_band_or_over_too_few_points_is_not_flagged():
    predicted = np.linspace(20, 60, 12)
    assert not table_drift(predicted, predicted * 0.95).drifted  # 5% off: what validation accepts
    # points without a timing (NaN) or with an impossible one are left out, not counted as agreeing
    few = table_drift([20.0, 30.0, float("nan"), 40.0, 0.0], [10.0, 15.0, 20.0, float("nan"), 5.0])
    assert few.n == 2 and not few.drifted and few.text().startswith("too few timed points")
